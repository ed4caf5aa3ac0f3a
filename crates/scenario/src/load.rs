//! Reading scenario files: YAML, then schema validation, then typed deserialization, then the
//! checks the schema cannot express (time never going backwards, catalogue references).

use std::path::{Path, PathBuf};

use serde_json::Value;
use tapesched_scheduler::catalogue::memory::MemoryCatalogue;

use crate::catalogue;
use crate::error::ScenarioError;
use crate::model::{CatalogueSpec, Scenario};
use crate::validate::{schema_errors, DocumentKind};

fn read(path: &Path) -> Result<String, ScenarioError> {
    std::fs::read_to_string(path).map_err(|source| ScenarioError::Io { path: path.to_path_buf(), source })
}

fn yaml(text: &str, path: &Path) -> Result<Value, ScenarioError> {
    serde_yaml::from_str::<Value>(text)
        .map_err(|e| ScenarioError::Yaml { path: path.to_path_buf(), message: clip(&e.to_string()) })
}

fn invalid(path: &Path, message: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid { path: path.to_path_buf(), message: clip(&message.into()) }
}

/// The longest message about one field: quoted input beyond it is cut (a 50 MB value is not
/// echoed back).
pub const MAX_MESSAGE_BYTES: usize = 400;

/// `message` cut to [`MAX_MESSAGE_BYTES`].
pub fn clip(message: &str) -> String {
    tapesched_backends::clip(message, MAX_MESSAGE_BYTES).into_owned()
}

/// Integers written with a fractional part (`size: 1000.0`, `1e3`). JSON Schema counts them as
/// integers, but the contract writes integers without one; each is named with its path.
pub fn fractional_integers(doc: &Value) -> Vec<String> {
    fn walk(v: &Value, path: &mut Vec<String>, out: &mut Vec<String>) {
        match v {
            Value::Number(n) if n.is_f64() => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.is_finite() && f.fract() == 0.0 {
                    out.push(format!(
                        "{}: {n} is written with a fractional part; integers are written without one ({f:.0})",
                        path.join("/")
                    ));
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(i.to_string());
                    walk(item, path, out);
                    path.pop();
                }
            }
            Value::Object(map) => {
                for (k, item) in map {
                    path.push(k.clone());
                    walk(item, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, &mut Vec::new(), &mut out);
    out
}

/// The offset of every step: `at` where given, else the previous step's (0 for the first).
/// An `at` smaller than the previous step's is an error naming the step.
pub fn step_times(scenario: &Scenario) -> Result<Vec<u64>, String> {
    let mut now = 0u64;
    let mut out = Vec::with_capacity(scenario.steps.len());
    for (i, step) in scenario.steps.iter().enumerate() {
        if let Some(at) = step.at {
            if at < now {
                return Err(format!("steps/{i}/at: {at} is before the previous step's time {now}"));
            }
            now = at;
        }
        out.push(now);
    }
    Ok(out)
}

/// The Unix time of a request's `created_at` offset, or of the step itself when omitted.
pub fn created_at(start_time: i64, step_at: u64, created_at: Option<i64>) -> i64 {
    match created_at {
        Some(offset) => start_time.saturating_add(offset),
        None => start_time.saturating_add_unsigned(step_at),
    }
}

/// Checks that a catalogue section loads: no duplicate names and every reference resolves.
pub fn check_catalogue(spec: &CatalogueSpec, backend_name: &str) -> Result<(), String> {
    let (snapshot, files) = catalogue::build(spec, backend_name)?;
    MemoryCatalogue::new(snapshot, files).map(|_| ()).map_err(|e| format!("catalogue: {}", e.message))
}

/// Parses, validates and checks a scenario held in `text`; `path` names it in errors.
pub fn parse_scenario(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
    let doc = yaml(text, path)?;
    let mut errors = schema_errors(&doc, DocumentKind::Scenario);
    if errors.is_empty() {
        errors = fractional_integers(&doc);
    }
    if !errors.is_empty() {
        return Err(ScenarioError::Schema { path: path.to_path_buf(), errors });
    }
    let steps = doc.get("steps").and_then(Value::as_array).cloned().unwrap_or_default();
    let scenario: Scenario = serde_json::from_value(doc).map_err(|e| {
        // Name the step when a step is what failed.
        let step = steps.iter().position(|s| serde_json::from_value::<crate::model::Step>(s.clone()).is_err());
        match step {
            Some(i) => invalid(path, format!("steps/{i}: {e}")),
            None => invalid(path, e.to_string()),
        }
    })?;
    step_times(&scenario).map_err(|m| invalid(path, m))?;
    let backend_name = scenario.scheduler.backend_name.clone().unwrap_or_else(|| "default".to_string());
    check_catalogue(&scenario.catalogue, &backend_name).map_err(|m| invalid(path, m))?;
    Ok(scenario)
}

/// Reads, validates and checks a scenario file.
pub fn load_scenario(path: &Path) -> Result<Scenario, ScenarioError> {
    parse_scenario(&read(path)?, path)
}

/// Parses a file holding only a catalogue mapping (the schema of a scenario's `catalogue:`).
pub fn parse_catalogue(text: &str, path: &Path) -> Result<CatalogueSpec, ScenarioError> {
    let doc = yaml(text, path)?;
    let mut errors = schema_errors(&doc, DocumentKind::Catalogue);
    if errors.is_empty() {
        errors = fractional_integers(&doc);
    }
    if !errors.is_empty() {
        return Err(ScenarioError::Schema { path: path.to_path_buf(), errors });
    }
    let spec: CatalogueSpec = serde_json::from_value(doc).map_err(|e| invalid(path, e.to_string()))?;
    check_catalogue(&spec, "default").map_err(|m| invalid(path, m))?;
    Ok(spec)
}

/// Reads a catalogue-only file.
pub fn load_catalogue(path: &Path) -> Result<CatalogueSpec, ScenarioError> {
    parse_catalogue(&read(path)?, path)
}

/// What a file given as a catalogue holds: a catalogue mapping, or a whole scenario.
#[derive(Debug, Clone)]
pub enum CatalogueFile {
    /// A catalogue-only file.
    Catalogue(Box<CatalogueSpec>),
    /// A scenario file (its `catalogue:` section is the catalogue).
    Scenario(Box<Scenario>),
}

impl CatalogueFile {
    /// The catalogue.
    pub fn catalogue(&self) -> &CatalogueSpec {
        match self {
            CatalogueFile::Catalogue(c) => c,
            CatalogueFile::Scenario(s) => &s.catalogue,
        }
    }
}

/// Reads a catalogue file, or a scenario file for its `catalogue:` section (`catalogue load`,
/// `explain --catalogue`): a mapping with `steps` or `version` is read as a scenario, any other
/// as a catalogue, and errors are those of that reading.
pub fn load_catalogue_file(path: &Path) -> Result<CatalogueFile, ScenarioError> {
    let text = read(path)?;
    let doc = yaml(&text, path)?;
    if doc.get("steps").is_some() || doc.get("version").is_some() {
        parse_scenario(&text, path).map(|s| CatalogueFile::Scenario(Box::new(s)))
    } else {
        parse_catalogue(&text, path).map(|c| CatalogueFile::Catalogue(Box::new(c)))
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ScenarioError> {
    let io = |source| ScenarioError::Io { path: dir.to_path_buf(), source };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
    Ok(())
}

/// The scenario files named by command-line arguments: a file stands for itself, a directory for
/// every `*.yaml` below it, recursively, in sorted path order.
pub fn collect_files(args: &[PathBuf]) -> Result<Vec<PathBuf>, ScenarioError> {
    let mut out = Vec::new();
    for arg in args {
        if arg.is_dir() {
            let mut found = Vec::new();
            walk(arg, &mut found)?;
            found.sort();
            out.extend(found);
        } else if arg.is_file() {
            out.push(arg.clone());
        } else {
            return Err(ScenarioError::NotFound { path: arg.clone() });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "version: 1\nname: t\ncatalogue: {}\n";

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        parse_scenario(text, Path::new("t.yaml"))
    }

    #[test]
    fn a_huge_value_is_not_echoed_whole() {
        // A one-line file of 5 MB: the schema error quotes the value, cut to a few hundred bytes.
        let huge = "x".repeat(5_000_000);
        let err = parse(&huge).expect_err("not a mapping").to_string();
        assert!(err.len() < 1000, "{} bytes", err.len());
        assert!(err.contains("more bytes)"), "{err}");
        let err = parse(&format!("{HEADER}steps:\n  - {{op: show_queues, drive: {huge}}}\n")).expect_err("invalid");
        assert!(err.to_string().len() < 2000, "{} bytes", err.to_string().len());
    }

    #[test]
    fn at_omitted_is_previous_step_time() {
        let s = parse(&format!(
            "{HEADER}steps:\n  - {{op: show_queues}}\n  - {{at: 5, op: show_queues}}\n  - {{op: show_queues}}\n  - {{at: 9, op: garbage_collect}}\n"
        ))
        .expect("valid");
        assert_eq!(step_times(&s).expect("times"), vec![0, 5, 5, 9]);
    }

    #[test]
    fn time_going_backwards_is_invalid() {
        let err = parse(&format!("{HEADER}steps:\n  - {{at: 5, op: show_queues}}\n  - {{at: 4, op: show_queues}}\n"))
            .expect_err("invalid");
        assert!(err.is_invalid_file());
        assert!(err.to_string().contains("steps/1/at: 4 is before the previous step's time 5"), "{err}");
    }

    #[test]
    fn created_at_is_an_offset_and_may_be_negative() {
        assert_eq!(created_at(1_700_000_000, 10, Some(-1000)), 1_699_999_000);
        assert_eq!(created_at(1_700_000_000, 10, None), 1_700_000_010);
        assert_eq!(created_at(1_700_000_000, 10, Some(3)), 1_700_000_003);
    }

    #[test]
    fn schema_failure_names_field() {
        let err = parse(&format!(
            "{HEADER}steps:\n  - {{op: queue_archive, requester: {{name: a, group: b}}, storage_class: sc, size: -1}}\n"
        ))
        .expect_err("invalid");
        assert!(err.to_string().contains("steps/0/size: -1 is less than the minimum of 0"), "{err}");
    }

    #[test]
    fn integers_with_a_fractional_part_are_named() {
        let err = parse(&format!(
            "{HEADER}steps:\n  - {{op: queue_archive, requester: {{name: a, group: b}}, storage_class: sc, size: 1000.0}}\n"
        ))
        .expect_err("invalid");
        assert!(err.is_invalid_file());
        assert!(
            err.to_string().contains(
                "steps/0/size: 1000.0 is written with a fractional part; integers are written without one (1000)"
            ),
            "{err}"
        );
        let err = parse_catalogue(
            "tapes: [{vid: V1, tape_pool: p, logical_library: l, capacity_bytes: 1e3}]\n",
            Path::new("c.yaml"),
        )
        .expect_err("invalid");
        assert!(err.to_string().contains("tapes/0/capacity_bytes: 1000.0 is written with a fractional part"), "{err}");
    }

    #[test]
    fn integers_are_bounded() {
        let step = |size: &str| {
            format!("{HEADER}steps:\n  - {{op: queue_archive, requester: {{name: a, group: b}}, storage_class: sc, size: {size}}}\n")
        };
        assert!(parse(&step("9223372036854775807")).is_ok());
        let err = parse(&step("9223372036854775808")).expect_err("invalid");
        assert!(err.to_string().contains("steps/0/size: 9223372036854775808 is greater than the maximum"), "{err}");
    }

    #[test]
    fn a_tape_out_of_active_needs_a_reason_at_load_time() {
        let err = parse(
            "version: 1\nname: t\ncatalogue:\n  virtual_organizations: [{name: vo, read_max_drives: 1, write_max_drives: 1}]\n  logical_libraries: [{name: l}]\n  tape_pools: [{name: p, vo: vo}]\n  tapes: [{vid: V1, tape_pool: p, logical_library: l, capacity_bytes: 1, state: BROKEN_PENDING}]\nsteps: []\n",
        )
        .expect_err("invalid");
        assert!(err.to_string().contains("tape \"V1\" in state BROKEN_PENDING needs a state reason"), "{err}");
    }

    #[test]
    fn catalogue_reference_errors_make_the_file_invalid() {
        let err = parse("version: 1\nname: t\ncatalogue:\n  tape_pools: [{name: p, vo: nobody}]\nsteps: []\n")
            .expect_err("invalid");
        assert!(err.to_string().contains("virtual organization \"nobody\" does not exist"), "{err}");
        let err = parse("version: 1\nname: t\ncatalogue:\n  logical_libraries: [{name: l}, {name: l}]\nsteps: []\n")
            .expect_err("invalid");
        assert!(err.to_string().contains("catalogue/logical_libraries/1: duplicate name"), "{err}");
    }

    #[test]
    fn set_drive_distinguishes_absent_and_null_backend() {
        use crate::model::Op;
        let s = parse(&format!(
            "{HEADER}steps:\n  - {{op: set_drive, drive: d, status: Up}}\n  - {{op: set_drive, drive: d, status: Up, scheduler_backend: null}}\n  - {{op: set_drive, drive: d, status: Up, scheduler_backend: other}}\n"
        ))
        .expect("valid");
        let backends: Vec<_> = s
            .steps
            .iter()
            .map(|st| match &st.op {
                Op::SetDrive { scheduler_backend, .. } => scheduler_backend.clone(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(backends, vec![None, Some(None), Some(Some("other".to_string()))]);
    }

    #[test]
    fn every_example_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../compat");
        for file in collect_files(&[dir]).expect("compat folder") {
            load_scenario(&file).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn add_tape_and_defaults() {
        use crate::model::Op;
        let s = parse(&format!(
            "{HEADER}steps:\n  - {{op: add_tape, vid: V9, tape_pool: p, logical_library: l, capacity_bytes: 10}}\n  - {{op: next_mount, drive: d}}\n"
        ))
        .expect("valid");
        match &s.steps[0].op {
            Op::AddTape(t) => {
                let tape = catalogue::tape(t);
                assert_eq!(tape.media_type, "LTO8");
                assert_eq!(tape.state, tapesched_scheduler::types::TapeState::Active);
            }
            other => panic!("unexpected {other:?}"),
        }
        match &s.steps[1].op {
            Op::NextMount { dry_run, report_starting, .. } => assert!(!dry_run && *report_starting),
            other => panic!("unexpected {other:?}"),
        }
    }
}
