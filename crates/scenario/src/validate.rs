//! Schema validation: every scenario file is checked against the embedded
//! `scenario.schema.json` (Draft 2020-12) before it is deserialized, and every failure is
//! reported with the path of the offending field (`steps/3/size: -1 is less than the minimum of 0`).
//!
//! Steps are a `oneOf` over the ops; a plain validator only says that a step matches none of them.
//! [`schema_errors`] looks into the branch of the step's own op instead, so the message names the
//! field that is wrong, or says that the op is unknown.

use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

/// The normative schema, as shipped beside the contract.
pub const SCHEMA: &str = include_str!("../scenario.schema.json");

/// Most errors reported for one file.
const MAX_ERRORS: usize = 10;

struct Schemas {
    scenario: Validator,
    catalogue: Validator,
    ops: Vec<String>,
}

fn build() -> Result<Schemas, String> {
    let schema: Value = serde_json::from_str(SCHEMA).map_err(|e| format!("embedded schema is not JSON: {e}"))?;
    let scenario = jsonschema::draft202012::new(&schema).map_err(|e| format!("embedded schema is invalid: {e}"))?;
    let mut catalogue_schema =
        schema.pointer("/properties/catalogue").cloned().ok_or("embedded schema has no catalogue section")?;
    if let Value::Object(m) = &mut catalogue_schema {
        m.insert("$schema".into(), schema["$schema"].clone());
    }
    let catalogue =
        jsonschema::draft202012::new(&catalogue_schema).map_err(|e| format!("embedded schema is invalid: {e}"))?;
    let ops = schema
        .pointer("/properties/steps/items/oneOf")
        .and_then(Value::as_array)
        .map(|branches| {
            branches
                .iter()
                .map(|b| b.pointer("/properties/op/const").and_then(Value::as_str).unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    Ok(Schemas { scenario, catalogue, ops })
}

fn schemas() -> Result<&'static Schemas, String> {
    static SCHEMAS: OnceLock<Result<Schemas, String>> = OnceLock::new();
    SCHEMAS.get_or_init(build).as_ref().map_err(Clone::clone)
}

/// The ops the schema knows, in schema order.
pub fn known_ops() -> Vec<String> {
    schemas().map(|s| s.ops.clone()).unwrap_or_default()
}

/// What the document is validated as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// A whole scenario file.
    Scenario,
    /// A file holding only a catalogue mapping.
    Catalogue,
}

/// Validates `doc` against the schema; returns one readable message per failure (empty when valid),
/// each starting with the failing field's path.
pub fn schema_errors(doc: &Value, kind: DocumentKind) -> Vec<String> {
    let schemas = match schemas() {
        Ok(s) => s,
        Err(e) => return vec![e],
    };
    let validator = match kind {
        DocumentKind::Scenario => &schemas.scenario,
        DocumentKind::Catalogue => &schemas.catalogue,
    };
    let mut out = Vec::new();
    for error in validator.iter_errors(doc) {
        describe(&error, &schemas.ops, &mut out);
    }
    out.sort();
    out.dedup();
    out.truncate(MAX_ERRORS);
    out
}

/// `steps/3/size` from the JSON pointer `/steps/3/size`.
fn path_of(error: &ValidationError<'_>) -> String {
    error.instance_path().as_str().trim_start_matches('/').to_string()
}

/// `path: message`, the message cut to a few hundred bytes: a schema error quotes the value it
/// refuses, which may be a whole file.
fn with_path(path: &str, message: impl std::fmt::Display) -> String {
    let message = crate::load::clip(&message.to_string());
    if path.is_empty() {
        message
    } else {
        format!("{path}: {message}")
    }
}

/// True when the branch failed because it is for another shape or another op: a `const` on an
/// `op` field, or a `type` at the `oneOf`'s own location.
fn branch_excluded(branch: &[ValidationError<'_>], at: &str) -> bool {
    branch.iter().any(|e| {
        let p = path_of(e);
        match e.kind() {
            ValidationErrorKind::Constant { .. } => p == "op" || p.ends_with("/op"),
            ValidationErrorKind::Type { .. } => p == at,
            _ => false,
        }
    })
}

fn describe(error: &ValidationError<'_>, ops: &[String], out: &mut Vec<String>) {
    let path = path_of(error);
    let context = match error.kind() {
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => context,
        _ => {
            out.push(with_path(&path, error));
            return;
        }
    };
    let live: Vec<&Vec<ValidationError<'static>>> =
        context.iter().filter(|branch| !branch_excluded(branch, &path)).collect();
    if let [branch] = live.as_slice() {
        for e in branch.iter() {
            describe(e, ops, out);
        }
        return;
    }
    // A step matching no op: say which op is wrong.
    let instance = error.instance();
    if let Some(step) = instance.as_object().filter(|_| is_step_path(&path)) {
        match step.get("op") {
            None => out.push(with_path(&path, "\"op\" is a required property")),
            Some(Value::String(op)) if !ops.iter().any(|o| o == op) => {
                out.push(with_path(&format!("{path}/op"), format!("unknown op {op:?} (known ops: {})", ops.join(", "))))
            }
            Some(Value::String(_)) => out.push(with_path(&path, error)),
            Some(other) => out.push(with_path(&format!("{path}/op"), format!("{other} is not a string"))),
        }
        return;
    }
    out.push(with_path(&path, error));
}

fn is_step_path(path: &str) -> bool {
    path.strip_prefix("steps/").is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"version": 1, "name": "t", "catalogue": {}, "steps": []})
    }

    fn errors_with_step(step: Value) -> Vec<String> {
        let mut doc = base();
        doc["steps"] = json!([{"op": "show_queues"}, step]);
        schema_errors(&doc, DocumentKind::Scenario)
    }

    #[test]
    fn valid_minimal_file() {
        assert_eq!(schema_errors(&base(), DocumentKind::Scenario), Vec::<String>::new());
    }

    #[test]
    fn negative_size_names_the_field() {
        let e = errors_with_step(json!({"op": "queue_archive", "requester": {"name": "a", "group": "b"},
            "storage_class": "sc", "size": -1}));
        assert_eq!(e, vec!["steps/1/size: -1 is less than the minimum of 0".to_string()]);
    }

    #[test]
    fn unknown_op_is_named() {
        let e = errors_with_step(json!({"op": "frobnicate"}));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("steps/1/op: unknown op \"frobnicate\""), "{e:?}");
    }

    #[test]
    fn missing_op_is_named() {
        let e = errors_with_step(json!({"drive": "d"}));
        assert_eq!(e, vec!["steps/1: \"op\" is a required property".to_string()]);
    }

    #[test]
    fn missing_field_is_named() {
        let e = errors_with_step(json!({"op": "pop_jobs", "drive": "d", "max_files": 1}));
        assert_eq!(e, vec!["steps/1: \"max_bytes\" is a required property".to_string()]);
    }

    #[test]
    fn unknown_extra_field_is_named() {
        let e = errors_with_step(json!({"op": "end_mount", "drive": "d", "colour": "blue"}));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("steps/1: Additional properties are not allowed ('colour'"), "{e:?}");
    }

    #[test]
    fn bad_expect_inside_nested_one_of() {
        let e = errors_with_step(json!({"op": "next_mount", "drive": "d", "expect": {"mount": {"type": "Nope"}}}));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("steps/1/expect/mount/type: "), "{e:?}");
    }

    #[test]
    fn catalogue_errors_are_named() {
        let mut doc = base();
        doc["catalogue"] = json!({"tapes": [{"vid": "V1", "tape_pool": "p", "logical_library": "l"}]});
        let e = schema_errors(&doc, DocumentKind::Scenario);
        assert_eq!(e, vec!["catalogue/tapes/0: \"capacity_bytes\" is a required property".to_string()]);
        let e = schema_errors(&json!({"tapes": [{"vid": ""}]}), DocumentKind::Catalogue);
        assert!(e.iter().any(|m| m.starts_with("tapes/0/vid: ")), "{e:?}");
    }

    #[test]
    fn top_level_errors() {
        let e = schema_errors(
            &json!({"version": 2, "name": "x", "catalogue": {}, "steps": [], "extra": 1}),
            DocumentKind::Scenario,
        );
        assert!(e.iter().any(|m| m.starts_with("version: ")), "{e:?}");
        assert!(e.iter().any(|m| m.contains("'extra'")), "{e:?}");
    }

    /// The embedded schema is a copy of the contract's (`../shared/compat/scenario.schema.json`
    /// beside the repository); it must not drift from it. Skipped only where `../shared` is absent
    /// (a clone without the contract beside it).
    #[test]
    fn embedded_schema_follows_the_shared_one() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let shared = root.join("../shared");
        if !shared.is_dir() {
            eprintln!("{} is absent: the embedded schema is not compared with the contract's", shared.display());
            return;
        }
        let path = shared.join("compat/scenario.schema.json");
        let contract = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            contract == SCHEMA,
            "crates/scenario/scenario.schema.json differs from {}: copy it over",
            path.display()
        );
    }

    #[test]
    fn knows_every_op() {
        let ops = known_ops();
        assert!(ops.contains(&"queue_archive".to_string()));
        assert_eq!(ops.len(), 30);
    }
}
