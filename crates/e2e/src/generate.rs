//! From a [`Workload`] and the library's [`Plan`] to the run's timed events: every request of
//! every flow and every incident, at millisecond offsets from the start, in time order. Seeded:
//! the same workload gives the same events on every machine (each flow draws from its own
//! generator, so adding a flow does not change the others).

use crate::catalogue::Plan;
use crate::workload::{Arrival, FlowKind, IncidentKind, SizeDist, Workload};

/// The workloads' generator: splitmix64, the same sequence for a seed on every machine.
pub use tapesched_testkit::SeededRng as Rng;

/// What happens at an instant.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// An archive request of flow `flow` (index in the workload) of `size` bytes.
    Archive {
        /// The flow.
        flow: usize,
        /// Bytes.
        size: u64,
    },
    /// A retrieve request of flow `flow` for a prefilled file.
    Retrieve {
        /// The flow.
        flow: usize,
        /// The file.
        archive_file_id: u64,
    },
    /// An incident.
    Incident(IncidentKind),
}

/// An event at `t_ms` milliseconds after the start.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Offset from the start, ms.
    pub t_ms: i64,
    /// What.
    pub kind: EventKind,
}

/// Every event of the workload, in time order (ties: incidents first, then flows in the
/// workload's order, then draw order).
pub fn events(w: &Workload, plan: &Plan) -> Vec<Event> {
    let tick = (w.arrival_tick * 1000) as i64;
    let round = |t_ms: f64| -> i64 {
        let t = t_ms.ceil() as i64;
        (t + tick - 1) / tick * tick
    };
    let mut out: Vec<(i64, usize, Event)> = Vec::new();
    for inc in &w.incidents {
        let t = (inc.at * 1000) as i64;
        if let Some(what) = inc.what() {
            out.push((t, 0, Event { t_ms: t, kind: EventKind::Incident(what) }));
        }
    }
    let duration_ms = (w.duration * 1000) as f64;
    for (fi, f) in w.flows.iter().enumerate() {
        let mut rng = Rng(w.seed ^ (fi as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
        let mut times: Vec<f64> = Vec::new();
        match &f.arrival {
            Arrival::Steady { per_hour, from, until } => {
                let mean_ms = 3_600_000.0 / per_hour;
                let end = until.map_or(duration_ms, |u| (u * 1000) as f64).min(duration_ms);
                let mut t = (from.unwrap_or(0) * 1000) as f64;
                loop {
                    t += -rng.unit().ln() * mean_ms;
                    if t >= end {
                        break;
                    }
                    times.push(t);
                }
            }
            Arrival::Bursts { every, count, spread, first } => {
                let mut b = (*first * 1000) as f64;
                while b < duration_ms {
                    for _ in 0..*count {
                        times.push(b + rng.unit() * (*spread * 1000) as f64);
                    }
                    b += (*every * 1000) as f64;
                }
            }
            Arrival::Campaign { at, count, over } => {
                for _ in 0..*count {
                    times.push((*at * 1000) as f64 + rng.unit() * (*over * 1000) as f64);
                }
            }
        }
        times.sort_by(f64::total_cmp);
        let files = f.tape_pool.as_ref().map(|p| plan.files_of_pool(p)).unwrap_or_default();
        for t in times {
            let kind = match f.kind {
                FlowKind::Archive => {
                    let size = f.size.as_ref().map_or(1, |s| draw_size(s, &mut rng));
                    EventKind::Archive { flow: fi, size }
                }
                FlowKind::Retrieve => {
                    let n = files.iter().map(|r| r.end - r.start).sum::<u64>();
                    let mut k = rng.below(n.max(1));
                    let mut id = 0;
                    for r in &files {
                        let len = r.end - r.start;
                        if k < len {
                            id = r.start + k;
                            break;
                        }
                        k -= len;
                    }
                    EventKind::Retrieve { flow: fi, archive_file_id: id }
                }
            };
            let t = round(t);
            out.push((t, fi + 1, Event { t_ms: t, kind }));
        }
    }
    // Stable: equal times keep incidents, then flows in order, each in draw order.
    out.sort_by_key(|(t, f, _)| (*t, *f));
    out.into_iter().map(|(_, _, e)| e).collect()
}

fn draw_size(s: &SizeDist, rng: &mut Rng) -> u64 {
    match s {
        SizeDist::Fixed(n) => *n,
        SizeDist::Uniform { min, max } => min + rng.below(max - min + 1),
        SizeDist::Lognormal { median, sigma, min, max } => {
            let v = (*median as f64) * (sigma * rng.normal()).exp();
            (v.round() as u64).clamp(*min, *max)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_their_distribution() {
        let mut rng = Rng(3);
        let d = SizeDist::Lognormal { median: 1000, sigma: 1.0, min: 10, max: 100_000 };
        let mut v: Vec<u64> = (0..10_001).map(|_| draw_size(&d, &mut rng)).collect();
        v.sort_unstable();
        let median = v[5000];
        assert!((800..1250).contains(&median), "median {median}");
        assert!(v[0] >= 10 && v[10_000] <= 100_000);
        let u = SizeDist::Uniform { min: 5, max: 7 };
        let mut seen = [false; 3];
        for _ in 0..100 {
            seen[(draw_size(&u, &mut rng) - 5) as usize] = true;
        }
        assert_eq!(seen, [true; 3]);
    }
}
