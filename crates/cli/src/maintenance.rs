//! `tapesched maintenance --config FILE [--once]`, the maintenance daemon CTA runs beside the
//! tape servers (`tapesched_taped::maintenance`): report delivery, garbage collection of dead
//! owners, retrieve-queue cleanup and repack loops, each at its interval from the `[maintenance]`
//! section of a tape server's configuration file, on the wall clock, until SIGINT or SIGTERM
//! (which stop the loops between passes; exit 0, as `db collect --every`). With `--once`, one
//! pass of every enabled loop, then exit. Each pass is a line on stdout. With `--clock
//! START,ORIGIN,FACTOR` the daemon runs on that scaled clock (as `taped --clock`): its "now" is
//! scaled time and each loop waits its interval / FACTOR of wall time.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use tapesched_scheduler::clock::{Clock, ClockSpec, ScaledClock, SystemClock};
use tapesched_taped::maintenance::{build, Maintenance, MaintenanceConfig};
use tapesched_taped::SetupError;

use crate::exit::{code_of, fail, EXIT_FAILED, EXIT_INVALID};

/// Arguments of `maintenance`.
#[derive(Debug, Args)]
pub struct MaintenanceArgs {
    /// The configuration: a tape server's file (its `[backend]`, `[catalogue]`, `[scheduler]`
    /// and `[maintenance]` sections are used, the others ignored).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// One pass of every enabled loop, then exit (0, or the error's status).
    #[arg(long)]
    pub once: bool,
    /// Run on a scaled clock, as `taped --clock`: simulated now = START + (wall now - ORIGIN) x
    /// FACTOR (START seconds and ORIGIN milliseconds since the epoch); the loops' intervals are
    /// simulated time (each waits interval / FACTOR of wall time).
    #[arg(long, value_name = "START,ORIGIN,FACTOR", value_parser = crate::taped::parse_clock)]
    pub clock: Option<ClockSpec>,
}

/// `maintenance`: exit 0 after `--once` or a signal, 2 on a bad configuration or an unreachable
/// backend, 1 on another error of a `--once` pass (in the loops an error is a line and the loop
/// goes on).
pub async fn maintenance(args: MaintenanceArgs) -> u8 {
    let config = match MaintenanceConfig::read(&args.config) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_INVALID, anyhow::anyhow!("{e}")),
    };
    let clock: Arc<dyn Clock> = match args.clock {
        Some(spec) => Arc::new(ScaledClock::new(spec)),
        None => Arc::new(SystemClock),
    };
    let daemon: Maintenance = match build(&config, None, clock).await {
        Ok(m) => m.with_time_factor(args.clock.map_or(1.0, |c| c.factor)),
        Err(SetupError::Config(c)) => return fail(EXIT_INVALID, anyhow::anyhow!("{c}")),
        Err(SetupError::Scheduler(e)) => return fail(code_of(e.kind), e.into()),
    };
    if args.once {
        return match daemon.once().await {
            Ok(lines) => {
                for l in lines {
                    crate::worker::say(l);
                }
                0
            }
            Err(e) => fail(code_of(e.kind), e.into()),
        };
    }
    let rx = match crate::exit::stop_flag(Some("stopping after the passes in progress")) {
        Ok(rx) => rx,
        Err(e) => return fail(EXIT_FAILED, e),
    };
    let loops: Vec<&str> = daemon.enabled().iter().map(|l| l.name()).collect();
    crate::worker::say(format!("maintenance: loops {}", loops.join(", ")));
    Arc::new(daemon).run(rx, Arc::new(crate::worker::say)).await;
    0
}
