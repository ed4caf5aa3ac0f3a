//! The daemon: every drive's [`DriveSession`] and the driver that runs them.
//!
//! # Simulated time: a discrete-event loop
//!
//! With the simulated library every drive, the library and the scheduler read one
//! [`SimClock`](tapesched_library::sim::SimClock) (the scheduler's injected `Clock` is that
//! clock; the library is built without auto-advance). Each drive has a "next at" time: when its
//! last library operation ends (the simulator's `drive_free_at_ms`), or when an idle drive asks
//! for a mount again. [`Daemon::run_until`] repeatedly takes the drive whose next time is the
//! earliest (ties by the configuration's order), moves the clock there and runs that drive's
//! next step ([`DriveSession::step`]: at most one timed library operation, plus the scheduler
//! calls around it, which take no virtual time). Nothing sleeps: a simulated day of ten drives is
//! a few tens of thousands of steps, and the run is deterministic for a given workload because
//! one step runs at a time, in a fixed order.
//!
//! A transferring drive's step goes on with the next files of its batch while nothing that
//! another drive or the scheduler sees can happen in between ([`DriveSession::step_until`]:
//! files that the library says will succeed, starting by `run_until`'s end);
//! the calls the scheduler sees keep their simulated times and their order, there are only fewer
//! steps. [`Daemon::set_multi_file_steps`] turns it off (one file per step) for comparison.
//! Each step and each kind of call the drives make is timed ([`crate::timing`]).
//!
//! # Heartbeats
//!
//! The daemon, not each drive, says that it and its mounts are alive: every `heartbeat_ms` one
//! call ([`Shared::beat`], `SchedulerDb::heartbeat_mounts`) beats the process and every mount its
//! drives hold. On a virtual timeline the heartbeat is one more event of the loop (before a
//! drive's step at the same time); in real time it is a task of its own. A tape server of a
//! hundred drives thus makes one heartbeat call a minute instead of a hundred, and a drive's step
//! never stops for one.
//!
//! # Real time
//!
//! With real devices ([`Daemon::run_realtime`]) each drive runs its steps in a task of its own and
//! waits for its next time on the wall clock, or for the cancellation.
//!
//! # Scaled time: the simulated library in real time, sped up
//!
//! In the processes mode of the end-to-end harness ([`Daemon::run_paced`], `tapesched taped
//! --clock`) the same event loop runs on a [`Pacer`] (a [`ScaledClock`](
//! tapesched_scheduler::clock::ScaledClock) shared with the producer and maintenance processes):
//! before each step it waits until the scaled time reaches the drive's next time, then moves the
//! `SimClock` to the scaled now (never back) and steps. The scheduler of the daemon still reads
//! the `SimClock`, which is thus the scaled time of the step in progress; steps run one at a time,
//! so a step that takes wall time delays the next ones, as a busy tape server would. As in real
//! time, a step or heartbeat that fails (a backend slow to answer on a loaded machine) is said
//! through the event lines and the run goes on: the drive hands its mount to the collector and
//! probes again after the idle pause; the heartbeat is tried again at its next time.
//!
//! # Draining
//!
//! [`Daemon::drain`] (SIGTERM in `tapesched taped`) asks every drive to drain and runs until every
//! drive has stopped or is Down: a drive finishes the file in flight, reports, hands the rest of
//! its batch back to the queues, unloads, and reports Shutdown.

use std::sync::Arc;

use tapesched_library::sim::Fault;
use tapesched_scheduler::types::DriveStatus;
use tapesched_scheduler::Result;
use tokio::sync::watch;

use crate::pace::Pacer;
use crate::session::{DriveSession, DriveStats, EventSink, Shared, Timeline, NEVER};
use crate::timing::Op;

/// Why [`Daemon::run_until`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// The time asked for was reached.
    Reached,
    /// The cancellation fired first.
    Cancelled,
    /// Every drive is Down or stopped.
    AllStopped,
}

/// One drive's line of a [`Summary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveSummary {
    /// The drive.
    pub name: String,
    /// Its last status.
    pub status: DriveStatus,
    /// Why it is Down.
    pub down_reason: Option<String>,
    /// What it did.
    pub stats: DriveStats,
}

/// What the daemon's drives did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Per drive, in the configuration's order.
    pub drives: Vec<DriveSummary>,
}

impl Summary {
    /// The totals over every drive.
    pub fn total(&self) -> DriveStats {
        let mut t = DriveStats::default();
        for d in &self.drives {
            let s = &d.stats;
            t.mounts += s.mounts;
            t.archived += s.archived;
            t.retrieved += s.retrieved;
            t.failed += s.failed;
            t.bytes += s.bytes;
            t.handed_back += s.handed_back;
            t.tapes_full += s.tapes_full;
            t.drive_errors += s.drive_errors;
        }
        t
    }

    /// The summary as text: one line per drive and a total.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let line = |name: &str, status: &str, s: &DriveStats, why: &str| {
            format!(
                "{name:<10} {status:<12} mounts {:>5} archived {:>8} retrieved {:>8} failed {:>6} bytes {:>16} handed back {:>6} full {:>3} errors {:>3}{why}\n",
                s.mounts, s.archived, s.retrieved, s.failed, s.bytes, s.handed_back, s.tapes_full, s.drive_errors
            )
        };
        for d in &self.drives {
            let why = d.down_reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default();
            out.push_str(&line(&d.name, d.status.as_str(), &d.stats, &why));
        }
        out.push_str(&line("total", "", &self.total(), ""));
        out
    }
}

/// The drives of one tape server and what they share.
pub struct Daemon {
    shared: Arc<Shared>,
    drives: Vec<DriveSession>,
    multi_file_steps: bool,
    /// When the daemon's next heartbeat is due (simulated and scaled time).
    next_beat_ms: i64,
    /// Faults to inject into the simulated library, each when its time (ms) is reached; the
    /// latest first (the next one is the last).
    faults: Vec<(i64, Fault)>,
}

/// What the daemon does next on a virtual timeline.
#[derive(Debug, Clone, Copy)]
enum Next {
    /// The step of the drive at this index.
    Drive(usize),
    /// The heartbeat of the process and every mount its drives hold.
    Beat,
}

impl Daemon {
    /// A daemon running `drives` (each starts by probing, now).
    pub fn new(shared: Shared, drives: &[String]) -> Daemon {
        let now = shared.timeline.now_ms();
        let drives = drives.iter().map(|d| DriveSession::new(d, now)).collect();
        let next_beat_ms = now.saturating_add(shared.heartbeat_ms.max(1) as i64);
        Daemon { shared: Arc::new(shared), drives, multi_file_steps: true, next_beat_ms, faults: Vec::new() }
    }

    /// Faults to inject into the simulated library (`[[library.faults]]`), each once its time
    /// (milliseconds since the epoch, on the library's clock) is reached: a drive error then
    /// fails that drive's next operation. Ignored on a library that is not simulated.
    pub fn schedule_faults(&mut self, mut faults: Vec<(i64, Fault)>) {
        faults.extend(std::mem::take(&mut self.faults));
        faults.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
        self.faults = faults;
    }

    /// Whether a transferring drive may move several files in one step of
    /// [`Daemon::run_until`] when nothing can happen in between (the default; see
    /// [`DriveSession::step_until`]). Off, every file is a step of its own: the same calls in the
    /// same order, only more steps (the tests compare both).
    pub fn set_multi_file_steps(&mut self, on: bool) {
        self.multi_file_steps = on;
    }

    /// What the drives share.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Sends one line per event (mounts, ends, failures, drives going Down) to `f`. Call it before
    /// running the daemon (it has no effect once the drives' state is shared with tasks).
    pub fn set_on_event(&mut self, f: EventSink) {
        if let Some(s) = Arc::get_mut(&mut self.shared) {
            s.on_event = Some(f);
        }
    }

    /// The drive sessions.
    pub fn drives(&self) -> &[DriveSession] {
        &self.drives
    }

    /// What the drives did so far.
    pub fn summary(&self) -> Summary {
        let drives = self
            .drives
            .iter()
            .map(|d| DriveSummary {
                name: d.name().to_string(),
                status: d.status(),
                down_reason: d.down_reason().map(str::to_string),
                stats: d.stats().clone(),
            })
            .collect();
        Summary { drives }
    }

    fn earliest(&self) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, d) in self.drives.iter().enumerate() {
            if d.next_at_ms() == NEVER {
                continue;
            }
            if best.is_none_or(|b| d.next_at_ms() < self.drives[b].next_at_ms()) {
                best = Some(i);
            }
        }
        best
    }

    /// The next thing to do and when: the earliest drive step, or the heartbeat when it is due
    /// by then (first at a tie). Nothing once every drive has stopped.
    fn next(&self) -> Option<(Next, i64)> {
        let i = self.earliest()?;
        let at = self.drives[i].next_at_ms();
        Some(if self.next_beat_ms <= at { (Next::Beat, self.next_beat_ms) } else { (Next::Drive(i), at) })
    }

    /// The daemon's heartbeat ([`Shared::beat`]); the next one is due `heartbeat_ms` later.
    /// A failed heartbeat is due again `heartbeat_ms` later too (the error is returned).
    async fn beat(&mut self) -> Result<()> {
        let r = self.shared.beat().await;
        self.next_beat_ms = self.shared.timeline.now_ms().saturating_add(self.shared.heartbeat_ms.max(1) as i64);
        r
    }

    /// Does `next` at the timeline's now: a drive's step (until `horizon_ms`, see
    /// [`DriveSession::step_until`]) or the heartbeat.
    async fn act(&mut self, next: Next, horizon_ms: i64) -> Result<()> {
        match next {
            Next::Beat => self.beat().await,
            Next::Drive(i) => self.step(i, horizon_ms).await,
        }
    }

    /// [`Daemon::act`] for the runs that go on after an error (scaled time): a failed step or
    /// heartbeat is said (`... step failed: ...`, `heartbeat failed: ...`) and is otherwise done
    /// with: the drive has already recovered ([`DriveSession::step_until`]), the heartbeat is due
    /// again at its next time.
    async fn act_and_go_on(&mut self, next: Next, horizon_ms: i64) {
        if let Err(e) = self.act(next, horizon_ms).await {
            let line = match next {
                Next::Beat => format!("heartbeat failed: {e}"),
                Next::Drive(i) => format!("{} step failed: {e}", self.drives[i].name()),
            };
            self.shared.say(line);
        }
    }

    fn sim_clock_to(&mut self, t_ms: i64) {
        if let Timeline::Sim(lib) = &self.shared.timeline {
            lib.clock().advance_to_ms(t_ms);
            while self.faults.last().is_some_and(|(at, _)| *at <= t_ms) {
                let (_, fault) = self.faults.pop().expect("a fault");
                let what = format!("{fault:?}");
                if let Err(e) = lib.inject(fault) {
                    self.shared.say(format!("fault {what} not injected: {e}"));
                }
            }
        }
    }

    /// The latest a multi-file step may reach: before the next fault is injected.
    fn horizon(&self, until_ms: i64) -> i64 {
        match self.faults.last() {
            Some((at, _)) => until_ms.min(at - 1),
            None => until_ms,
        }
    }

    /// Runs drive `i`'s next step (going on with files due by `horizon_ms`, see
    /// [`DriveSession::step_until`]), timed as one [`Op::Step`].
    async fn step(&mut self, i: usize, horizon_ms: i64) -> Result<()> {
        let t0 = std::time::Instant::now();
        let r = self.drives[i].step_until(&self.shared, horizon_ms).await;
        self.shared.times.add(Op::Step, t0.elapsed().as_nanos() as u64);
        r
    }

    /// Simulated time: runs every drive step due at or before `until_ms`, in time order, then
    /// moves the clock to `until_ms`. Stops early, between two steps, when `cancel` turns true.
    pub async fn run_until(&mut self, until_ms: i64, cancel: Option<&watch::Receiver<bool>>) -> Result<RunEnd> {
        loop {
            if cancel.is_some_and(|c| *c.borrow()) {
                return Ok(RunEnd::Cancelled);
            }
            let Some((next, at)) = self.next() else { return Ok(RunEnd::AllStopped) };
            if at > until_ms {
                break;
            }
            self.sim_clock_to(at);
            let horizon = if self.multi_file_steps { self.horizon(until_ms) } else { i64::MIN };
            self.act(next, horizon).await?;
        }
        self.sim_clock_to(until_ms);
        Ok(RunEnd::Reached)
    }

    /// Drains every drive (finish the file in flight, report, hand the rest back, unload, stop)
    /// and runs until each has stopped or is Down.
    pub async fn drain(&mut self) -> Result<()> {
        let now = self.shared.timeline.now_ms();
        for d in &mut self.drives {
            d.drain(now);
        }
        while let Some((next, at)) = self.next() {
            self.sim_clock_to(at);
            self.act(next, i64::MIN).await?;
        }
        Ok(())
    }

    /// Scaled time: runs each drive's steps when `pacer`'s time reaches them (see the module
    /// documentation), until `cancel` turns true (a wait in progress is cancelled) or every drive
    /// has stopped. A failed step or heartbeat is said and the run goes on (see the module
    /// documentation); nothing ends it but the cancellation or every drive stopping.
    pub async fn run_paced(&mut self, pacer: &dyn Pacer, cancel: &mut watch::Receiver<bool>) -> RunEnd {
        loop {
            if *cancel.borrow() {
                return RunEnd::Cancelled;
            }
            let Some((next, at)) = self.next() else { return RunEnd::AllStopped };
            if pacer.now_ms() < at {
                let stop = async {
                    // A dropped sender never cancels: wait for the step instead.
                    if cancel.changed().await.is_err() {
                        std::future::pending::<()>().await
                    }
                };
                tokio::select! {
                    _ = pacer.wait_until_ms(at) => {}
                    _ = stop => continue,
                }
            }
            self.sim_clock_to(pacer.now_ms().max(at));
            self.act_and_go_on(next, i64::MIN).await;
        }
    }

    /// [`Daemon::drain`] on scaled time: every drive drains, each step waiting for its time on
    /// `pacer`, until each has stopped or is Down. A failed step or heartbeat is said and the
    /// drain goes on, as in [`Daemon::run_paced`] (a drive that failed probes again, finds that
    /// it drains, and stops).
    pub async fn drain_paced(&mut self, pacer: &dyn Pacer) {
        let now = pacer.now_ms().max(self.shared.timeline.now_ms());
        self.sim_clock_to(now);
        for d in &mut self.drives {
            d.drain(now);
        }
        while let Some((next, at)) = self.next() {
            pacer.wait_until_ms(at).await;
            self.sim_clock_to(pacer.now_ms().max(at));
            self.act_and_go_on(next, i64::MIN).await;
        }
    }

    /// Real time: each drive in a task of its own, waiting for its next step on the wall clock,
    /// until `cancel` turns true; then every drive drains. A step that fails (a backend that
    /// cannot be reached) is said through the event lines; the drive hands its mount to the
    /// collector and probes again after the idle pause ([`DriveSession::step_until`]).
    pub async fn run_realtime(self, cancel: watch::Receiver<bool>) -> Summary {
        // The heartbeat, until every drive has drained (a drain takes real time too).
        let beats = {
            let shared = self.shared.clone();
            let every = std::time::Duration::from_millis(shared.heartbeat_ms.max(1));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if let Err(e) = shared.beat().await {
                        if let Some(f) = &shared.on_event {
                            f(&format!("heartbeat failed: {e}"));
                        }
                    }
                }
            })
        };
        let mut tasks = Vec::new();
        for mut drive in self.drives {
            let shared = self.shared.clone();
            let mut cancel = cancel.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    if *cancel.borrow() {
                        drive.drain(shared.timeline.now_ms());
                    }
                    if drive.finished() {
                        break;
                    }
                    let wait = drive.next_at_ms() - shared.timeline.now_ms();
                    if wait > 0 && !*cancel.borrow() {
                        let pause = std::time::Duration::from_millis(wait as u64);
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = cancel.changed() => continue,
                        }
                    }
                    if let Err(e) = drive.step(&shared).await {
                        if let Some(f) = &shared.on_event {
                            f(&format!("{} step failed: {e}", drive.name()));
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(shared.idle_ms)).await;
                    }
                }
                drive
            }));
        }
        let mut drives = Vec::new();
        for t in tasks {
            if let Ok(d) = t.await {
                drives.push(d);
            }
        }
        beats.abort();
        Daemon {
            shared: self.shared,
            drives,
            multi_file_steps: true,
            next_beat_ms: self.next_beat_ms,
            faults: Vec::new(),
        }
        .summary()
    }
}
