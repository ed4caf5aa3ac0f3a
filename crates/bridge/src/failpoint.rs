//! The bridge's failpoint (the mechanism: [`tapesched_scheduler::failpoint`]):
//! [`AFTER_AUTHORITY_WRITE`] (`bridge.after_authority_write`), in every mirrored write (writes in
//! dual-write through rampdown, a mount recorded on the other side, popped jobs claimed there),
//! after the authoritative side's write has returned and before the other side's has started.
//! While it is armed, the two sides' writes of a mirrored write run one after the other instead
//! of concurrently, so that the point is well defined.

pub use tapesched_scheduler::failpoint::{armed, fire, hit, ENV};

/// After the authoritative side's write of a mirrored write, before the other side's.
pub const AFTER_AUTHORITY_WRITE: &str = "bridge.after_authority_write";
