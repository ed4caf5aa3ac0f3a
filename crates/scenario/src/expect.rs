//! Expectation matching: compares a step's `expect` with the op's observed result.
//!
//! Only the keys given in `expect` are checked. `error: KIND` requires the op to fail with that
//! kind (`any`: any kind); without it the op must succeed. Lists are compared as sets except those
//! an op returns "in order" ([`ordered`]); objects inside lists (and nested objects) match
//! partially, on the keys the expected object gives; `subset: true` lets `show_queues` and
//! `show_repacks` list more entries than expected.

use serde_json::{Map, Value};

/// What an op did: its result, or the kind and message of its error.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// The op succeeded with this result.
    Ok(Value),
    /// The op failed.
    Err {
        /// The contract's error kind.
        kind: String,
        /// The human message.
        message: String,
    },
}

/// True for the result lists an op returns in a meaningful order.
pub fn ordered(op: &str, key: &str) -> bool {
    matches!(
        (op, key),
        ("pop_jobs", "archive_file_ids") | ("list_pending", "archive_file_ids") | ("explain_mount", "candidates")
    )
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| v.to_string())
}

/// The mismatches between `expect` and what the op did, one readable line each
/// (`expected X, got Y`); empty when the step passed.
pub fn check(op: &str, expect: &Map<String, Value>, observed: &Observed) -> Vec<String> {
    let mut out = Vec::new();
    match (expect.get("error"), observed) {
        (Some(want), Observed::Err { kind, .. }) => {
            let want = want.as_str().unwrap_or("");
            if want != "any" && want != kind {
                out.push(format!("expected error {want}, got error {kind}"));
            }
        }
        (Some(want), Observed::Ok(result)) => {
            out.push(format!("expected error {}, got success {}", want.as_str().unwrap_or(""), compact(result)));
        }
        (None, Observed::Err { kind, message }) => {
            out.push(format!("expected success, got error {kind} ({message})"));
        }
        (None, Observed::Ok(result)) => {
            let subset = expect.get("subset").and_then(Value::as_bool).unwrap_or(false);
            for (key, want) in expect {
                if key == "subset" {
                    continue;
                }
                let got = result.get(key).unwrap_or(&Value::Null);
                let is_ordered = ordered(op, key);
                let ok = match (want, got) {
                    (Value::Array(w), Value::Array(g)) => lists_match(w, g, is_ordered, subset),
                    _ => matches(want, got),
                };
                if !ok {
                    let mut w = Map::new();
                    w.insert(key.clone(), want.clone());
                    let mut g = Map::new();
                    g.insert(key.clone(), got.clone());
                    out.push(format!("expected {}, got {}", compact(&Value::Object(w)), compact(&Value::Object(g))));
                }
            }
        }
    }
    out
}

/// True when `got` matches `want`: objects partially, nested lists as sets, numbers by value.
pub fn matches(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            w.iter().all(|(k, wv)| g.get(k).map_or(wv.is_null(), |gv| matches(wv, gv)))
        }
        (Value::Array(w), Value::Array(g)) => lists_match(w, g, false, false),
        (Value::Number(w), Value::Number(g)) => match (w.as_i64(), g.as_i64(), w.as_u64(), g.as_u64()) {
            (Some(a), Some(b), _, _) => a == b,
            (_, _, Some(a), Some(b)) => a == b,
            _ => w.as_f64() == g.as_f64(),
        },
        _ => want == got,
    }
}

/// Compares lists: element by element when `ordered`; otherwise as sets (every expected element
/// matched by a distinct actual one, and, unless `subset`, nothing left over).
pub fn lists_match(want: &[Value], got: &[Value], ordered: bool, subset: bool) -> bool {
    if ordered {
        return want.len() == got.len() && want.iter().zip(got).all(|(w, g)| matches(w, g));
    }
    if want.len() > got.len() || (!subset && want.len() != got.len()) {
        return false;
    }
    // Partial matches can overlap, so find a perfect matching of expected to actual elements.
    let edges: Vec<Vec<usize>> =
        want.iter().map(|w| got.iter().enumerate().filter(|(_, g)| matches(w, g)).map(|(j, _)| j).collect()).collect();
    let mut owner: Vec<Option<usize>> = vec![None; got.len()];
    for i in 0..want.len() {
        let mut seen = vec![false; got.len()];
        if !augment(i, &edges, &mut owner, &mut seen) {
            return false;
        }
    }
    true
}

fn augment(i: usize, edges: &[Vec<usize>], owner: &mut [Option<usize>], seen: &mut [bool]) -> bool {
    for &j in &edges[i] {
        if seen[j] {
            continue;
        }
        seen[j] = true;
        if owner[j].is_none_or(|k| augment(k, edges, owner, seen)) {
            owner[j] = Some(i);
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expect(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    fn ok(v: Value) -> Observed {
        Observed::Ok(v)
    }

    fn err(kind: &str) -> Observed {
        Observed::Err { kind: kind.into(), message: "boom".into() }
    }

    #[test]
    fn only_given_keys_are_checked() {
        let got = ok(json!({"count": 3, "bytes": 10, "archive_file_ids": [1, 2, 3]}));
        assert!(check("pop_jobs", &expect(json!({"count": 3})), &got).is_empty());
        assert!(check("pop_jobs", &expect(json!({})), &got).is_empty());
        let m = check("pop_jobs", &expect(json!({"count": 4})), &got);
        assert_eq!(m, vec![r#"expected {"count":4}, got {"count":3}"#.to_string()]);
    }

    #[test]
    fn ordered_lists_versus_sets() {
        let got = ok(json!({"archive_file_ids": [1, 2, 3]}));
        assert!(check("pop_jobs", &expect(json!({"archive_file_ids": [1, 2, 3]})), &got).is_empty());
        assert!(!check("pop_jobs", &expect(json!({"archive_file_ids": [3, 2, 1]})), &got).is_empty());
        assert!(check("list_failed", &expect(json!({"archive_file_ids": [3, 1, 2]})), &got).is_empty());
        assert!(!check("list_failed", &expect(json!({"archive_file_ids": [3, 1]})), &got).is_empty());
        assert!(!check("list_pending", &expect(json!({"archive_file_ids": [2, 1, 3]})), &got).is_empty());
        // Sets are multisets: duplicates count.
        assert!(!lists_match(&[json!(1), json!(1)], &[json!(1), json!(2)], false, false));
    }

    #[test]
    fn objects_in_lists_match_partially() {
        let got = ok(json!({"queues": [
            {"mount_type": "Retrieve", "vid": "V1", "tape_pool": "p", "files_queued": 1, "bytes_queued": 5},
            {"mount_type": "ArchiveForUser", "tape_pool": "p", "files_queued": 2, "bytes_queued": 9},
        ]}));
        let e = expect(json!({"queues": [{"mount_type": "ArchiveForUser", "files_queued": 2},
                                         {"mount_type": "Retrieve", "vid": "V1"}]}));
        assert!(check("show_queues", &e, &got).is_empty());
        let e = expect(json!({"queues": [{"mount_type": "ArchiveForUser", "files_queued": 3},
                                         {"mount_type": "Retrieve"}]}));
        assert!(!check("show_queues", &e, &got).is_empty());
        // A key the actual object lacks only matches null.
        assert!(matches(&json!({"skip_reason": null}), &json!({"type": "Retrieve"})));
        assert!(!matches(&json!({"skip_reason": "tape_in_use"}), &json!({"type": "Retrieve"})));
    }

    #[test]
    fn overlapping_partial_matches_find_an_assignment() {
        // The first expected element matches both actual ones; the second only the first.
        let want = [json!({"mount_type": "Retrieve"}), json!({"mount_type": "Retrieve", "vid": "A"})];
        let got = [json!({"mount_type": "Retrieve", "vid": "A"}), json!({"mount_type": "Retrieve", "vid": "B"})];
        assert!(lists_match(&want, &got, false, false));
    }

    #[test]
    fn subset_allows_extra_entries() {
        let got =
            ok(json!({"queues": [{"mount_type": "Retrieve", "vid": "V1"}, {"mount_type": "Retrieve", "vid": "V2"}]}));
        let e = expect(json!({"queues": [{"vid": "V2"}]}));
        assert!(!check("show_queues", &e, &got).is_empty());
        let e = expect(json!({"queues": [{"vid": "V2"}], "subset": true}));
        assert!(check("show_queues", &e, &got).is_empty());
        let e = expect(json!({"queues": [{"vid": "V3"}], "subset": true}));
        assert!(!check("show_queues", &e, &got).is_empty());
        let e = expect(json!({"queues": [], "subset": true}));
        assert!(check("show_queues", &e, &got).is_empty());
    }

    #[test]
    fn candidates_are_in_order() {
        let got = ok(json!({"candidates": [{"type": "Retrieve", "vid": "A"}, {"type": "Retrieve", "vid": "B"}]}));
        assert!(check("explain_mount", &expect(json!({"candidates": [{"vid": "A"}, {"vid": "B"}]})), &got).is_empty());
        assert!(!check("explain_mount", &expect(json!({"candidates": [{"vid": "B"}, {"vid": "A"}]})), &got).is_empty());
        // rejected is a set.
        let got =
            ok(json!({"rejected": [{"type": "Retrieve", "reason": "x"}, {"type": "ArchiveForUser", "reason": "y"}]}));
        assert!(
            check("explain_mount", &expect(json!({"rejected": [{"reason": "y"}, {"reason": "x"}]})), &got).is_empty()
        );
    }

    #[test]
    fn errors() {
        assert!(check("set_vo", &expect(json!({"error": "any"})), &err("not_found")).is_empty());
        assert!(check("set_vo", &expect(json!({"error": "not_found"})), &err("not_found")).is_empty());
        assert_eq!(
            check("set_vo", &expect(json!({"error": "conflict"})), &err("not_found")),
            vec!["expected error conflict, got error not_found".to_string()]
        );
        assert_eq!(
            check("set_vo", &expect(json!({"error": "any"})), &ok(json!({}))),
            vec!["expected error any, got success {}".to_string()]
        );
        // Without expect.error, an error fails the step.
        assert_eq!(
            check("set_vo", &expect(json!({})), &err("not_found")),
            vec!["expected success, got error not_found (boom)".to_string()]
        );
    }

    #[test]
    fn null_and_nested_objects() {
        let got = ok(json!({"mount": null}));
        assert!(check("next_mount", &expect(json!({"mount": null})), &got).is_empty());
        assert!(!check("next_mount", &expect(json!({"mount": {"type": "Retrieve"}})), &got).is_empty());
        let got = ok(json!({"mount": {"type": "Retrieve", "vid": "V1", "tape_pool": "p"}}));
        assert!(check("next_mount", &expect(json!({"mount": {"type": "Retrieve", "vid": "V1"}})), &got).is_empty());
        assert!(!check("next_mount", &expect(json!({"mount": null})), &got).is_empty());
        assert!(
            check("next_mount", &expect(json!({"would_mount": false})), &ok(json!({"would_mount": false}))).is_empty()
        );
    }
}
