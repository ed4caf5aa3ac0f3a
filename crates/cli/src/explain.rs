//! `tapesched explain`: why a drive gets, or does not get, a mount.
//!
//! With `--scenario`, the scenario's steps are played first, ignoring their expectations: by
//! default up to its first drive operation (the queues as the first drive found them; the whole
//! scenario if it has none), or the first N with `--after-step N`. With `--catalogue` (a
//! catalogue file, or a scenario file whose steps are not played), the decision is explained
//! against empty queues.

use anyhow::anyhow;
use serde_json::{json, Value};
use tapesched_report::explain::decision_text;
use tapesched_scenario::model::{Op, Scenario, SchedulerHeader, DEFAULT_START_TIME};
use tapesched_scenario::runner::{decision_json, play_steps};
use tapesched_scenario::{load_catalogue_file, load_scenario, Backend, CatalogueFile, Runner};
use tapesched_scheduler::decision::{library_enabled, Decision};

use crate::exit::{code_of, interrupted};
use crate::{fail, ExplainArgs, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID};

/// Whether a step is a drive's own operation (as opposed to queueing, catalogue changes and
/// dry runs, which set the scene).
fn is_drive_op(op: &Op) -> bool {
    matches!(
        op,
        Op::NextMount { dry_run: false, .. }
            | Op::PopJobs { .. }
            | Op::CompleteJobs { .. }
            | Op::EndMount { .. }
            | Op::CrashDrive { .. }
    )
}

/// How many steps `explain --scenario` plays by default: those before the first drive operation.
pub fn steps_before_first_drive_op(scenario: &Scenario) -> usize {
    scenario.steps.iter().position(|s| is_drive_op(&s.op)).unwrap_or(scenario.steps.len())
}

/// What is explained: the decision and where the drive stands.
struct Explanation {
    drive: String,
    /// `(steps played, steps in the scenario, whether by default)` with `--scenario`.
    played: Option<(usize, usize, bool)>,
    at: u64,
    time: i64,
    library: String,
    library_enabled: bool,
    decision: Decision,
}

impl Explanation {
    fn to_json(&self) -> Value {
        let mount = self
            .decision
            .chosen
            .as_ref()
            .map(|m| json!({"type": m.mount_type.as_str(), "vid": m.vid, "tape_pool": m.tape_pool, "vo": m.vo}));
        let mut v = json!({
            "drive": self.drive,
            "at": self.at,
            "time": self.time,
            "logical_library": self.library,
            "library_enabled": self.library_enabled,
            "mount": mount,
        });
        if let (Value::Object(m), Some((played, total, _))) = (&mut v, self.played) {
            m.insert("steps_played".into(), json!(played));
            m.insert("steps".into(), json!(total));
        }
        if let (Value::Object(m), Value::Object(d)) = (&mut v, decision_json(&self.decision)) {
            m.extend(d);
        }
        v
    }

    fn to_table(&self) -> String {
        let d = &self.decision;
        let mut out = format!(
            "Drive {} in logical library {} ({}), at offset {} (time {})\n",
            self.drive,
            self.library,
            if self.library_enabled { "enabled" } else { "disabled" },
            self.at,
            self.time
        );
        match self.played {
            Some((played, total, true)) if played < total => out.push_str(&format!(
                "After step {played} of {total}: the steps before the scenario's first drive operation \
                 (--after-step N plays another number)\n"
            )),
            Some((played, total, _)) => out.push_str(&format!("After step {played} of {total}\n")),
            None => {}
        }
        // The decision, candidates and rejected mounts: the form reports show too.
        out.push_str(&decision_text(d));
        out
    }
}

fn invalid(e: impl std::fmt::Display) -> u8 {
    fail(EXIT_INVALID, anyhow!("{e}"))
}

/// Runs `explain`: exit 0, 2 on invalid input (file, drive, step count, backend) or an
/// unreachable backend, 130 when interrupted (the backend's namespace is removed).
pub async fn explain(args: ExplainArgs) -> u8 {
    let stop = match interrupted() {
        Ok(s) => s,
        Err(e) => return fail(EXIT_FAILED, e.context("cannot listen for signals")),
    };
    tokio::select! {
        code = explain_inner(&args) => code,
        signal = stop => {
            eprintln!("interrupted by {signal}: the backend's namespace was removed");
            EXIT_INTERRUPTED
        }
    }
}

async fn explain_inner(args: &ExplainArgs) -> u8 {
    let backend = match Backend::from_name(&args.backend) {
        Ok(b) => b,
        Err(e) => return invalid(e.message),
    };
    // Read the files before a backend is opened: a bad file costs no server.
    enum Input {
        Scenario(Box<Scenario>, usize),
        Catalogue(CatalogueFile),
    }
    let input = match (&args.scenario, &args.catalogue) {
        (Some(path), _) => {
            let scenario = match load_scenario(path) {
                Ok(s) => s,
                Err(e) => return invalid(e),
            };
            let upto = match args.after_step {
                Some(n) if n > scenario.steps.len() => {
                    return invalid(format!(
                        "{}: --after-step {n}, but the scenario has {} steps",
                        path.display(),
                        scenario.steps.len()
                    ))
                }
                Some(n) => n,
                None => steps_before_first_drive_op(&scenario),
            };
            Input::Scenario(Box::new(scenario), upto)
        }
        (None, Some(path)) => match load_catalogue_file(path) {
            Ok(c) => Input::Catalogue(c),
            Err(e) => return invalid(e),
        },
        (None, None) => return invalid("give --scenario FILE or --catalogue FILE"),
    };
    let open = match backend.open().await {
        Ok(o) => o,
        Err(e) => return fail(code_of(e.kind), anyhow!("{}", e.message)),
    };
    let path = args.scenario.as_ref().or(args.catalogue.as_ref()).map(|p| p.display().to_string()).unwrap_or_default();
    let (runner, played) = match &input {
        Input::Scenario(scenario, upto) => {
            let mut runner = match Runner::for_scenario(scenario, open.db.clone()) {
                Ok(r) => r,
                Err(e) => return invalid(format!("{path}: {e}")),
            };
            if let Err(e) = play_steps(&mut runner, scenario, Some(*upto)).await {
                return invalid(format!("{path}: {e}"));
            }
            (runner, Some((*upto, scenario.steps.len(), args.after_step.is_none())))
        }
        Input::Catalogue(CatalogueFile::Scenario(scenario)) => match Runner::for_scenario(scenario, open.db.clone()) {
            Ok(r) => (r, None),
            Err(e) => return invalid(format!("{path}: {e}")),
        },
        Input::Catalogue(CatalogueFile::Catalogue(spec)) => {
            match Runner::new(spec, &SchedulerHeader::default(), DEFAULT_START_TIME, open.db.clone()) {
                Ok(r) => (r, None),
                Err(e) => return invalid(format!("{path}: {e}")),
            }
        }
    };
    let decision = match runner.explain(&args.drive).await {
        Ok(d) => d,
        Err(e) => return fail(code_of(e.kind), e.into()),
    };
    let snapshot = match runner.scheduler().catalogue().snapshot().await {
        Ok(s) => s,
        Err(e) => return fail(code_of(e.kind), e.into()),
    };
    let library = snapshot.drives.get(&args.drive).map(|d| d.logical_library.clone()).unwrap_or_default();
    let explanation = Explanation {
        drive: args.drive.clone(),
        played,
        at: runner.at(),
        time: runner.now(),
        library_enabled: library_enabled(&snapshot, &library),
        library,
        decision,
    };
    drop(runner);
    open.close().await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&explanation.to_json()).unwrap_or_default());
    } else {
        print!("{}", explanation.to_table());
    }
    0
}
