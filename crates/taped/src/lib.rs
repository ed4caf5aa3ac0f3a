//! The tape daemon of a tape server (`tapesched taped`): per drive a session loop that asks the
//! scheduler for a mount, mounts the tape through a [`tapesched_library::Library`], moves the data
//! of its jobs in batches, reports them, and unloads — on the simulated library in virtual time,
//! or on mhVTL's devices in real time.
//!
//! * [`config`]: the TOML configuration of one tape server and its checks;
//! * [`setup`]: from a configuration to a [`daemon::Daemon`] (catalogue, backend, library) and
//!   `config check`;
//! * [`session`]: one drive's session loop, a state machine stepped by the daemon;
//! * [`daemon`]: the drives and their driver (a discrete-event loop on the simulated clock, or one
//!   task per drive on the wall clock), draining, the summary;
//! * [`data`]: the data path (sizes only, or `file://` files with adler32 checksums);
//! * [`pace`]: [`pace::Pacer`], waiting on a scaled clock (the processes mode of the end-to-end
//!   harness);
//! * [`replay`]: a producer's arrivals (queue archives and retrieves, tape state changes) as
//!   JSON lines, replayed on a [`pace::Pacer`] (`tapesched produce`);
//! * [`outcome`]: the measures of a finished processes-mode run (mounts per hour, files per
//!   mount, queue latency percentiles, requests done exactly once) from its output lines;
//! * [`simday`]: a simulated day of a large tape server, as a measurement (the bench test and
//!   `cargo xtask bench --taped`);
//! * [`timing`]: where the daemon's time goes (calls and wall time per kind of call);
//! * [`maintenance`]: the maintenance daemon (`tapesched maintenance`): report delivery,
//!   garbage collection, queue cleanup and repack loops.

#![warn(missing_docs)]

pub mod config;
pub mod daemon;
pub mod data;
pub mod maintenance;
pub mod outcome;
pub mod pace;
pub mod replay;
pub mod session;
pub mod setup;
pub mod simday;
pub mod timing;
pub mod workload;

pub use config::Config;
pub use daemon::{Daemon, RunEnd, Summary};
pub use setup::{build, check, Built, SetupError};
