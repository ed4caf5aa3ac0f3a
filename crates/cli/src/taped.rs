//! `tapesched taped --config FILE [--simulate-for DURATION | --clock START,ORIGIN,FACTOR]`, the
//! tape daemon of one tape server, and `tapesched config check FILE`, which validates its
//! configuration (`tapesched-taped`).
//!
//! With `--clock` the simulated library runs in real time on a scaled clock
//! ([`ScaledClock`]: simulated now = START + (wall now - ORIGIN) x FACTOR), shared with the
//! producers (`tapesched produce`) and the maintenance daemon of the run; it runs until SIGINT or
//! SIGTERM, then drains on that clock (the processes mode of the end-to-end harness).
//!
//! On the simulated library the daemon runs `--simulate-for` of virtual time (as fast as the
//! backend answers), queues the `[workload]` of the file if it has one and plays its disk side
//! (reports delivered in-process, retrieves queued), then drains its drives and prints a summary.
//! On mhVTL it runs on the wall clock until SIGINT or SIGTERM, then drains. Either way SIGINT or
//! SIGTERM drains the drives (the file in flight finished, the rest handed back, tapes unloaded)
//! and the command exits 130. Each event (mount, end of mount, failures, a drive going Down) is a
//! line on stdout.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use tapesched_scheduler::clock::{Clock, ClockSpec, ScaledClock};
use tapesched_taped::config::LibraryKind;
use tapesched_taped::setup::{queue_workload, SetupError};
use tapesched_taped::workload::DiskSide;
use tapesched_taped::{build, Config, RunEnd};

use crate::exit::{code_of, fail, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID};

/// Arguments of `taped`.
#[derive(Debug, Args)]
pub struct TapedArgs {
    /// The tape server's configuration (TOML; see `tapesched config check`).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Simulated library only (it needs this or --clock): run this much virtual time (`90s`,
    /// `30m`, `8h`, `1d`, or seconds), then drain the drives and print a summary.
    #[arg(long, value_name = "DURATION", conflicts_with = "clock")]
    pub simulate_for: Option<String>,
    /// Simulated library only: run it in real time, sped up, on a scaled clock until SIGINT or
    /// SIGTERM: simulated now = START + (wall now - ORIGIN) x FACTOR, with START in seconds since
    /// the epoch, ORIGIN the wall instant in milliseconds since the epoch, FACTOR simulated
    /// seconds per wall second (e.g. `1767225600,1767225600000,720`: an hour in 5 s). Processes
    /// given the same three numbers share one time. `[workload]` is refused: producers queue.
    #[arg(long, value_name = "START,ORIGIN,FACTOR", value_parser = parse_clock)]
    pub clock: Option<ClockSpec>,
}

/// Parses `--clock START,ORIGIN,FACTOR` ([`ClockSpec::parse`]).
pub fn parse_clock(text: &str) -> Result<ClockSpec, String> {
    ClockSpec::parse(text)
}

/// Arguments of `config check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The configuration file.
    pub file: PathBuf,
}

fn setup_failure(e: SetupError) -> u8 {
    match e {
        SetupError::Config(c) => fail(EXIT_INVALID, anyhow::anyhow!("{c}")),
        SetupError::Scheduler(e) => fail(code_of(e.kind), e.into()),
    }
}

/// A duration: a number with an optional unit `s`, `m`, `h` or `d` (seconds without one).
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c),
        _ => (t, 's'),
    };
    let n: u64 = num.parse().map_err(|_| format!("bad duration {text:?}: expected e.g. 90s, 30m, 8h, 1d"))?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(format!("bad duration {text:?}: the unit is one of s, m, h, d")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("duration {text:?} is too long"))
}

/// `config check`: exit 0 with a one-line description when the file is good, 2 with the error
/// (file, line, what) otherwise.
pub async fn check(args: CheckArgs) -> u8 {
    match tapesched_taped::check(&args.file).await {
        Ok(line) => {
            println!("ok {line}");
            0
        }
        Err(e) => setup_failure(e),
    }
}

/// `taped`: exit 0 after a simulated run, 130 when a signal drained the drives, 2 on a bad
/// configuration or an unreachable backend, 1 on another backend error.
pub async fn taped(args: TapedArgs) -> u8 {
    let config = match Config::read(&args.config) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_INVALID, anyhow::anyhow!("{e}")),
    };
    if let Some(spec) = args.clock {
        return scaled(&config, spec).await;
    }
    let simulate = match (&args.simulate_for, config.library.kind) {
        (Some(d), LibraryKind::Sim) => match parse_duration(d) {
            Ok(s) => Some(s),
            Err(e) => return fail(EXIT_INVALID, anyhow::anyhow!(e)),
        },
        (None, LibraryKind::Sim) => {
            return fail(
                EXIT_INVALID,
                anyhow::anyhow!("the simulated library needs --simulate-for DURATION or --clock START,ORIGIN,FACTOR"),
            )
        }
        (Some(_), LibraryKind::Mhvtl) => {
            return fail(EXIT_INVALID, anyhow::anyhow!("--simulate-for is for the simulated library only"))
        }
        (None, LibraryKind::Mhvtl) => None,
    };
    let mut built = match build(&config, None, None).await {
        Ok(b) => b,
        Err(e) => return setup_failure(e),
    };
    built.daemon.set_on_event(Arc::new(|line: &str| crate::worker::say(line.to_string())));
    let rx = match crate::exit::stop_flag(Some("draining")) {
        Ok(rx) => rx,
        Err(e) => return fail(EXIT_FAILED, e),
    };
    let Some(seconds) = simulate else {
        let summary = built.daemon.run_realtime(rx).await;
        print!("{}", summary.render());
        return EXIT_INTERRUPTED;
    };
    let mut disk = DiskSide::new(config.workload.as_ref().is_some_and(|w| w.retrieve));
    if let Some(w) = &config.workload {
        match queue_workload(&built.scheduler, w).await {
            Ok(ids) => crate::worker::say(format!("queued {} archive requests", ids.len())),
            Err(e) => return fail(code_of(e.kind), e.into()),
        }
    }
    let start = built.daemon.shared().timeline.now_ms();
    let end = start + (seconds as i64) * 1000;
    let mut at = start;
    let mut interrupted = false;
    let outcome: Result<(), tapesched_scheduler::Error> = async {
        while at < end {
            at = (at + 900_000).min(end);
            let r = built.daemon.run_until(at, Some(&rx)).await?;
            if config.workload.is_some() {
                disk.pump(&built.scheduler).await?;
            }
            if r == RunEnd::Cancelled {
                interrupted = true;
                break;
            }
        }
        built.daemon.drain().await?;
        if config.workload.is_some() {
            disk.pump(&built.scheduler).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        return fail(code_of(e.kind), e.into());
    }
    print!("{}", built.daemon.summary().render());
    if config.workload.is_some() {
        println!(
            "disk side: {} archives reported, {} retrieves queued, {} retrieves reported, {} failure reports",
            disk.archived.len(),
            disk.retrieves_queued,
            disk.retrieved.len(),
            disk.failures.len()
        );
    }
    if interrupted {
        EXIT_INTERRUPTED
    } else {
        0
    }
}

/// `taped --clock`: the simulated library in real time on the scaled clock `spec`, until a
/// signal, then drained on that clock; exit 130 after the signal, 2 on a configuration this mode
/// cannot run or a backend unreachable at the start. A step that fails later (the backend slow to
/// answer) is a line on stdout and the drive probes again, as in real time.
async fn scaled(config: &Config, spec: ClockSpec) -> u8 {
    if config.library.kind != LibraryKind::Sim {
        return fail(EXIT_INVALID, anyhow::anyhow!("--clock is for the simulated library only"));
    }
    if config.workload.is_some() {
        return fail(
            EXIT_INVALID,
            anyhow::anyhow!(
                "{}: [workload] is not played with --clock (producers queue the requests: tapesched produce)",
                config.source.display()
            ),
        );
    }
    if config.backend.name.get_ref() == "objectstore-memory" {
        return fail(
            EXIT_INVALID,
            anyhow::anyhow!(
                "{}: --clock shares the backend with other processes: objectstore-memory lives in one process \
                 (use objectstore-redis or postgres)",
                config.source.display()
            ),
        );
    }
    let clock = ScaledClock::new(spec);
    let mut built = match build(config, None, Some(clock.now())).await {
        Ok(b) => b,
        Err(e) => return setup_failure(e),
    };
    built.daemon.set_on_event(Arc::new(|line: &str| crate::worker::say(line.to_string())));
    let mut rx = match crate::exit::stop_flag(Some("draining")) {
        Ok(rx) => rx,
        Err(e) => return fail(EXIT_FAILED, e),
    };
    crate::worker::say(format!("clock {spec}: now {}", clock.now()));
    let end = built.daemon.run_paced(&clock, &mut rx).await;
    built.daemon.drain_paced(&clock).await;
    print!("{}", built.daemon.summary().render());
    match end {
        RunEnd::Cancelled => EXIT_INTERRUPTED,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), 90);
        assert_eq!(parse_duration("30m").unwrap(), 1800);
        assert_eq!(parse_duration("8h").unwrap(), 28_800);
        assert_eq!(parse_duration("1d").unwrap(), 86_400);
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
    }
}
