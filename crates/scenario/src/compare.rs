//! Backend comparison: the same scenario played on several backends must give the same trace,
//! step by step, on the backend-neutral fields (`op`, `ok`, `result`).

use serde_json::Value;

use crate::trace::StepRecord;

/// The first step where two traces differ.
#[derive(Debug, Clone, PartialEq)]
pub struct Divergence {
    /// 1-based step index.
    pub step: usize,
    /// The first backend's record (`None`: its trace is shorter).
    pub left: Option<Value>,
    /// The second backend's record.
    pub right: Option<Value>,
}

/// The fields compared: everything backend-neutral but the step's position.
fn compared(r: &StepRecord) -> (&str, bool, &Value) {
    (&r.op, r.ok, &r.result)
}

/// The first divergent step of two traces, if any.
pub fn first_divergence(left: &[StepRecord], right: &[StepRecord]) -> Option<Divergence> {
    let n = left.len().max(right.len());
    (0..n).find_map(|i| {
        let (l, r) = (left.get(i), right.get(i));
        let same = match (l, r) {
            (Some(a), Some(b)) => compared(a) == compared(b),
            _ => false,
        };
        (!same).then(|| Divergence { step: i + 1, left: l.map(StepRecord::neutral), right: r.map(StepRecord::neutral) })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(step: usize, result: Value, message: Option<&str>) -> StepRecord {
        StepRecord {
            step,
            at: 0,
            op: "show_queues".into(),
            result,
            ok: true,
            mismatch: None,
            message: message.map(String::from),
            checked: false,
        }
    }

    #[test]
    fn identical_traces_do_not_diverge_even_with_different_messages() {
        let a = vec![rec(1, json!({"queues": []}), None), rec(2, json!({"error": "not_found"}), Some("a"))];
        let b = vec![rec(1, json!({"queues": []}), None), rec(2, json!({"error": "not_found"}), Some("b"))];
        assert_eq!(first_divergence(&a, &b), None);
    }

    #[test]
    fn first_difference_is_reported() {
        let a = vec![rec(1, json!({"queues": []}), None), rec(2, json!({"x": 1}), None), rec(3, json!({}), None)];
        let b = vec![rec(1, json!({"queues": []}), None), rec(2, json!({"x": 2}), None), rec(3, json!({"y": 1}), None)];
        let d = first_divergence(&a, &b).expect("diverges");
        assert_eq!(d.step, 2);
        assert_eq!(d.left.expect("left")["result"], json!({"x": 1}));
        let d = first_divergence(&a[..1], &b).expect("shorter");
        assert_eq!((d.step, d.left), (2, None));
    }
}
