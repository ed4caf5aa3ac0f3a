//! `tapesched produce --config FILE --events FILE.jsonl --clock START,ORIGIN,FACTOR`: a producer
//! of the processes mode of the end-to-end harness. It replays a list of arrivals
//! (`tapesched_taped::replay`: one JSON event per line, each with its simulated time `at`) on the
//! scaled clock shared with `taped --clock` and `maintenance --clock`, through the scheduler of
//! the configuration's `[backend]`, `[catalogue]` and `[scheduler]` (a tape server's file), and
//! prints one JSON line per applied event (`tapesched_taped::replay::Applied`: when, the requests
//! queued as `archive:ID` / `retrieve:ID`, errors). It exits once every event is applied: 0, or 1
//! if an event had an error; 130 on SIGINT/SIGTERM (before the next event); 2 on a bad file or
//! an unreachable backend.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use tapesched_scheduler::clock::{ClockSpec, ScaledClock};
use tapesched_taped::maintenance::{open_scheduler, MaintenanceConfig};
use tapesched_taped::replay::{read_events, replay, Applied, ReplayEnd};
use tapesched_taped::SetupError;

use crate::exit::{code_of, fail, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID};

/// Arguments of `produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// The configuration: a tape server's file (its `[backend]`, `[catalogue]` and `[scheduler]`
    /// sections are used, the others ignored).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The arrivals: one JSON object per line, `{"at": SECONDS, "op": "queue_archive" |
    /// "queue_retrieve" | "change_tape_state", ...}` in non-decreasing `at` (simulated seconds
    /// since the epoch).
    #[arg(long, value_name = "FILE.jsonl")]
    pub events: PathBuf,
    /// The scaled clock, as `taped --clock`: simulated now = START + (wall now - ORIGIN) x FACTOR.
    #[arg(long, value_name = "START,ORIGIN,FACTOR", value_parser = crate::taped::parse_clock)]
    pub clock: ClockSpec,
}

/// `produce`: see the module documentation for the exit statuses.
pub async fn produce(args: ProduceArgs) -> u8 {
    let config = match MaintenanceConfig::read(&args.config) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_INVALID, anyhow::anyhow!("{e}")),
    };
    if config.backend.name.get_ref() == "objectstore-memory" {
        return fail(
            EXIT_INVALID,
            anyhow::anyhow!(
                "{}: a producer shares the backend with other processes: objectstore-memory lives in one process \
                 (use objectstore-redis or postgres)",
                args.config.display()
            ),
        );
    }
    let events = match read_events(&args.events) {
        Ok(e) => e,
        Err(e) => return fail(EXIT_INVALID, anyhow::anyhow!(e)),
    };
    let clock = Arc::new(ScaledClock::new(args.clock));
    let scheduler = match open_scheduler(&config, None, clock.clone(), "produce").await {
        Ok(s) => s,
        Err(SetupError::Config(c)) => return fail(EXIT_INVALID, anyhow::anyhow!("{c}")),
        Err(SetupError::Scheduler(e)) => return fail(code_of(e.kind), e.into()),
    };
    let mut rx = match crate::exit::stop_flag(None) {
        Ok(rx) => rx,
        Err(e) => return fail(EXIT_FAILED, e),
    };
    let mut failed = 0usize;
    let mut out = |a: Applied| {
        failed += usize::from(!a.errors.is_empty());
        crate::worker::say(serde_json::to_string(&a).expect("a line serializes"));
    };
    let end = replay(&scheduler, &*clock, &events, &mut rx, &mut out).await;
    if end == ReplayEnd::Cancelled {
        return EXIT_INTERRUPTED;
    }
    if failed > 0 {
        return fail(EXIT_FAILED, anyhow::anyhow!("{failed} of {} event(s) had errors", events.len()));
    }
    0
}
