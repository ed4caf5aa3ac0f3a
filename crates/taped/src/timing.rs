//! Where the daemon's time goes: a count and the wall time of each kind of call a drive session
//! makes (scheduler calls, library operations with the data path, catalogue edits) and of whole
//! steps, so that a run can say how its time splits ("where the time goes").
//!
//! The wall clock is read only to measure; nothing the daemon decides depends on it. The counters
//! are atomics shared by every drive of a daemon ([`crate::session::Shared::times`]); reading them
//! ([`OpTimes::split`]) while drives run gives a consistent-enough picture for a report.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

/// The kinds of call measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `Scheduler::next_mount` of an idle drive (with the heartbeat before it).
    NextMount,
    /// `Scheduler::pop_jobs` (with the mount heartbeat before it).
    PopJobs,
    /// `Scheduler::complete_job_ids`: a batch's successes and failures reported.
    Complete,
    /// `Scheduler::end_mount`.
    EndMount,
    /// `Scheduler::report_drive_status` and the catalogue edits of a session (a tape marked full).
    DriveStatus,
    /// Mount heartbeats inside a batch.
    Heartbeat,
    /// Library operations and the data path: mount, transfers, dismount, status.
    Library,
    /// Whole drive steps, everything included.
    Step,
}

impl Op {
    /// Every kind, in report order.
    pub const ALL: [Op; 8] =
        [Op::NextMount, Op::PopJobs, Op::Complete, Op::EndMount, Op::DriveStatus, Op::Heartbeat, Op::Library, Op::Step];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Op::NextMount => "next_mount",
            Op::PopJobs => "pop_jobs",
            Op::Complete => "complete",
            Op::EndMount => "end_mount",
            Op::DriveStatus => "drive_status",
            Op::Heartbeat => "heartbeat",
            Op::Library => "library",
            Op::Step => "step",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counts and wall time per [`Op`].
#[derive(Debug, Default)]
pub struct OpTimes {
    calls: [AtomicU64; 8],
    nanos: [AtomicU64; 8],
}

/// One line of a time split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpSplit {
    /// The kind of call ([`Op::name`]; `other` is the steps' time outside every measured call).
    pub op: String,
    /// How many calls.
    pub calls: u64,
    /// Their wall time, seconds.
    pub seconds: f64,
}

impl OpTimes {
    /// Adds one call of `op` that took `nanos`.
    pub fn add(&self, op: Op, nanos: u64) {
        self.calls[op.index()].fetch_add(1, Ordering::Relaxed);
        self.nanos[op.index()].fetch_add(nanos, Ordering::Relaxed);
    }

    /// Runs `f` and counts its wall time as one call of `op`.
    pub async fn time<T>(&self, op: Op, f: impl Future<Output = T>) -> T {
        let t0 = Instant::now();
        let v = f.await;
        self.add(op, t0.elapsed().as_nanos() as u64);
        v
    }

    /// Calls and seconds of `op`.
    pub fn get(&self, op: Op) -> (u64, f64) {
        let i = op.index();
        (self.calls[i].load(Ordering::Relaxed), self.nanos[i].load(Ordering::Relaxed) as f64 / 1e9)
    }

    /// The split: one line per measured kind (steps last), then `other`: the steps' time outside
    /// the measured calls (the session's own work and the event loop's choice of drive).
    pub fn split(&self) -> Vec<OpSplit> {
        let mut out: Vec<OpSplit> = Op::ALL
            .iter()
            .map(|op| {
                let (calls, seconds) = self.get(*op);
                OpSplit { op: op.name().to_string(), calls, seconds }
            })
            .collect();
        let (steps, step_s) = self.get(Op::Step);
        let inside: f64 = Op::ALL.iter().filter(|o| **o != Op::Step).map(|o| self.get(*o).1).sum();
        out.push(OpSplit { op: "other".into(), calls: steps, seconds: (step_s - inside).max(0.0) });
        out
    }

    /// The split as text, one `name calls seconds us/call` line each.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for l in self.split() {
            let per = if l.calls > 0 { l.seconds * 1e6 / l.calls as f64 } else { 0.0 };
            s.push_str(&format!("{:<13} {:>10} calls {:>9.2} s {:>9.1} us/call\n", l.op, l.calls, l.seconds, per));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_calls_and_splits_the_rest_of_the_steps() {
        let t = OpTimes::default();
        let v = t.time(Op::PopJobs, async { 7 }).await;
        assert_eq!(v, 7);
        t.add(Op::PopJobs, 2_000_000_000);
        t.add(Op::Step, 5_000_000_000);
        let (calls, secs) = t.get(Op::PopJobs);
        assert_eq!(calls, 2);
        assert!((2.0..2.1).contains(&secs), "{secs}");
        let split = t.split();
        assert_eq!(split.len(), Op::ALL.len() + 1);
        let other = split.last().unwrap();
        assert_eq!((other.op.as_str(), other.calls), ("other", 1));
        assert!((2.9..=3.0).contains(&other.seconds), "{}", other.seconds);
        assert!(t.render().contains("pop_jobs"));
    }
}
