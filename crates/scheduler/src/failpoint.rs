//! Failpoints: named places where a process can be made to die on purpose, for tests of what a
//! process killed at that point leaves behind.
//!
//! A failpoint is armed by naming it in the environment variable [`ENV`]
//! (`TAPESCHED_FAILPOINT`) of the process; the process then kills itself with `SIGKILL` (no
//! unwinding, no flush, nothing written after: exactly as if it had been killed from outside)
//! the first time it reaches that place, after saying so on stderr. Unset (the normal case) a
//! failpoint costs one read of a value initialised once per process.
//!
//! The failpoints (each named where it is defined, with what it leaves behind):
//! - `bridge.after_authority_write` (`tapesched_bridge::failpoint`): in a mirrored write of the
//!   migration bridge, after the authoritative side's write and before the other side's;
//! - `taped.after_file_written` (`tapesched_taped::session`): in a tape daemon's drive session,
//!   once a file is on tape and before it is reported.

use std::sync::OnceLock;

/// The environment variable naming the armed failpoint.
pub const ENV: &str = "TAPESCHED_FAILPOINT";

/// The failpoint armed in this process, read once.
fn armed_name() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED.get_or_init(|| std::env::var(ENV).ok().filter(|v| !v.is_empty())).as_deref()
}

/// Whether the failpoint `name` is armed in this process.
pub fn armed(name: &str) -> bool {
    armed_name() == Some(name)
}

/// Kills this process with `SIGKILL` if the failpoint `name` is armed; otherwise nothing.
pub fn hit(name: &str) {
    if armed(name) {
        fire(name)
    }
}

/// Kills this process with `SIGKILL` at the failpoint `name`, saying so on stderr first.
pub fn fire(name: &str) -> ! {
    eprintln!("failpoint {name}: killing process {} (SIGKILL)", std::process::id());
    // SAFETY: kill(2) on this process's own id with a constant signal touches no memory.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    // SIGKILL cannot be caught; should the call have failed, abort rather than go on.
    std::process::abort()
}
