//! The trace: one JSON object per step, `{"step", "at", "op", "result", "ok"}`, plus `mismatch`
//! when an expectation failed and `message` when the op failed (kept out of `result`, since
//! messages may differ between backends).

use serde::Serialize;
use serde_json::Value;

/// What one step did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRecord {
    /// 1-based index of the step in its file.
    pub step: usize,
    /// The step's offset on the scenario clock.
    pub at: u64,
    /// The op's name.
    pub op: String,
    /// The observed result, in the shape of the op's `expect`; `{"error": KIND}` on failure.
    pub result: Value,
    /// The step passed: its expectations held and it did not fail unexpectedly.
    pub ok: bool,
    /// Why the step did not pass (failed expectations joined with `; `).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<String>,
    /// The error message, when the op failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The step carries an `expect` (it counts in `N passed, M failed`).
    #[serde(skip)]
    pub checked: bool,
}

impl StepRecord {
    /// The step counts as failed: an expectation failed, or the op failed unexpectedly.
    pub fn failed(&self) -> bool {
        !self.ok
    }

    /// The backend-neutral part (`step`, `at`, `op`, `result`, `ok`), for snapshots and compare.
    pub fn neutral(&self) -> Value {
        serde_json::json!({"step": self.step, "at": self.at, "op": self.op, "result": self.result, "ok": self.ok})
    }

    /// The trace line, with the file it comes from when several files run.
    pub fn line(&self, file: Option<&str>) -> String {
        #[derive(Serialize)]
        struct Line<'a> {
            #[serde(flatten)]
            record: &'a StepRecord,
            #[serde(skip_serializing_if = "Option::is_none")]
            file: Option<&'a str>,
        }
        serde_json::to_string(&Line { record: self, file }).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn line_shape() {
        let r = StepRecord {
            step: 3,
            at: 10,
            op: "next_mount".into(),
            result: json!({"mount": null}),
            ok: true,
            mismatch: None,
            message: None,
            checked: true,
        };
        assert_eq!(r.line(None), r#"{"step":3,"at":10,"op":"next_mount","result":{"mount":null},"ok":true}"#);
        let r = StepRecord {
            ok: false,
            result: json!({"error": "not_found"}),
            message: Some("drive \"x\" does not exist".into()),
            mismatch: Some("expected success, got error not_found".into()),
            ..r
        };
        let line: Value = serde_json::from_str(&r.line(Some("a.yaml"))).expect("json");
        assert_eq!(line["file"], "a.yaml");
        assert_eq!(line["result"], json!({"error": "not_found"}));
        assert_eq!(line["message"], "drive \"x\" does not exist");
        assert!(line.get("checked").is_none());
    }
}
