//! `tapesched explain`: why a drive gets, or does not get, a mount.
//!
//! With `--scenario`, the scenario's steps are played first (all, or the first N), ignoring their
//! expectations; with `--catalogue`, the decision is explained against empty queues.

use serde_json::{json, Value};
use tapesched_scenario::model::{SchedulerHeader, DEFAULT_START_TIME};
use tapesched_scenario::runner::{decision_json, play_steps};
use tapesched_scenario::{load_catalogue, load_scenario, Backend, Runner};
use tapesched_scheduler::decision::{library_enabled, Decision};

use crate::{table, ExplainArgs, EXIT_INVALID};

/// What is explained: the decision and where the drive stands.
struct Explanation {
    drive: String,
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
        match &d.chosen {
            Some(m) => out.push_str(&format!(
                "Decision: mount {} tape {} of pool {} (VO {})\n",
                m.mount_type, m.vid, m.tape_pool, m.vo
            )),
            None => out.push_str("Decision: no mount\n"),
        }
        out.push_str(&format!("\nCandidates in decision order ({}):\n", d.candidates.len()));
        if d.candidates.is_empty() {
            out.push_str("  (none)\n");
        } else {
            let mut rows = vec![["#", "TYPE", "POOL", "VID", "PRIORITY", "FILES", "BYTES", "SELECTED", "SKIP REASON"]
                .map(String::from)
                .to_vec()];
            for (i, c) in d.candidates.iter().enumerate() {
                rows.push(vec![
                    (i + 1).to_string(),
                    c.mount_type.to_string(),
                    c.tape_pool.clone(),
                    c.vid.clone().unwrap_or_else(|| "-".into()),
                    c.priority.to_string(),
                    c.files_queued.to_string(),
                    c.bytes_queued.to_string(),
                    if c.selected { "yes" } else { "no" }.to_string(),
                    c.skip_reason.map_or("-", |r| r.as_str()).to_string(),
                ]);
            }
            out.push_str(&table::render(&rows, 2));
        }
        out.push_str(&format!("\nRejected ({}):\n", d.rejected.len()));
        if d.rejected.is_empty() {
            out.push_str("  (none)\n");
        } else {
            let mut rows = vec![["TYPE", "POOL", "VID", "REASON"].map(String::from).to_vec()];
            for r in &d.rejected {
                rows.push(vec![
                    r.mount_type.to_string(),
                    r.tape_pool.clone().unwrap_or_else(|| "-".into()),
                    r.vid.clone().unwrap_or_else(|| "-".into()),
                    r.reason.as_str().to_string(),
                ]);
            }
            out.push_str(&table::render(&rows, 2));
        }
        out
    }
}

fn fail(e: impl std::fmt::Display) -> u8 {
    eprintln!("error: {e}");
    EXIT_INVALID
}

/// Runs `explain`; exit 0, or 2 on invalid input (file, drive, step count, backend).
pub async fn explain(args: ExplainArgs) -> u8 {
    let backend = match Backend::from_name(&args.backend) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let open = match backend.open().await {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let runner = match (&args.scenario, &args.catalogue) {
        (Some(path), _) => {
            let scenario = match load_scenario(path) {
                Ok(s) => s,
                Err(e) => return fail(e),
            };
            if let Some(n) = args.after_step.filter(|n| *n > scenario.steps.len()) {
                return fail(format!(
                    "{}: --after-step {n}, but the scenario has {} steps",
                    path.display(),
                    scenario.steps.len()
                ));
            }
            let mut runner = match Runner::for_scenario(&scenario, open.db.clone()) {
                Ok(r) => r,
                Err(e) => return fail(format!("{}: {e}", path.display())),
            };
            if let Err(e) = play_steps(&mut runner, &scenario, args.after_step).await {
                return fail(format!("{}: {e}", path.display()));
            }
            runner
        }
        (None, Some(path)) => {
            let spec = match load_catalogue(path) {
                Ok(s) => s,
                Err(e) => return fail(e),
            };
            match Runner::new(&spec, &SchedulerHeader::default(), DEFAULT_START_TIME, open.db.clone()) {
                Ok(r) => r,
                Err(e) => return fail(format!("{}: {e}", path.display())),
            }
        }
        (None, None) => return fail("give --scenario FILE or --catalogue FILE"),
    };
    let decision = match runner.explain(&args.drive).await {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let snapshot = match runner.scheduler().catalogue().snapshot().await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let library = snapshot.drives.get(&args.drive).map(|d| d.logical_library.clone()).unwrap_or_default();
    let explanation = Explanation {
        drive: args.drive.clone(),
        at: runner.at(),
        time: runner.now(),
        library_enabled: library_enabled(&snapshot, &library),
        library,
        decision,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&explanation.to_json()).unwrap_or_default());
    } else {
        print!("{}", explanation.to_table());
    }
    0
}
