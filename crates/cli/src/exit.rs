//! Exit statuses and error printing, the same for every command.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | done (for `scenario run`: every step passed) |
//! | 1 | the command ran and failed: a scenario expectation failed, backends diverged, the database refused an operation |
//! | 2 | invalid input or usage (arguments, files, backend names, a drive or schema that does not exist), or a backend that cannot be reached |
//! | 130 | interrupted by SIGINT or SIGTERM (the namespaces of the run are removed first) |
//!
//! `scenario run` and `compare` keep the statuses of the scenario contract (`SCENARIOS.md`: 0, 1,
//! and 2 for an invalid file or an unreachable backend), which this table extends to the other
//! commands.

use tapesched_scheduler::ErrorKind;

/// The command ran and failed.
pub const EXIT_FAILED: u8 = 1;
/// Invalid input or usage, or an unreachable backend.
pub const EXIT_INVALID: u8 = 2;
/// Stopped by SIGINT or SIGTERM.
pub const EXIT_INTERRUPTED: u8 = 130;

/// The longest line of an error message printed: quoted input beyond it is cut.
const MAX_LINE_BYTES: usize = 1000;

/// The status for a scheduler error: refused input (invalid, or naming something that does not
/// exist) and unreachable backends are 2, anything else (a conflict, corrupted data, a broken
/// invariant, an unsupported operation) is 1.
pub fn code_of(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::InvalidArgument | ErrorKind::NotFound | ErrorKind::Unavailable => EXIT_INVALID,
        _ => EXIT_FAILED,
    }
}

/// Prints `error: ` and the error with its causes (`{:#}`), each line cut to a few hundred
/// bytes, and returns `code`.
pub fn fail(code: u8, e: anyhow::Error) -> u8 {
    let text = format!("{e:#}");
    for line in text.lines() {
        eprintln!("error: {}", tapesched_backends::clip(line, MAX_LINE_BYTES));
    }
    code
}

/// Waits for SIGINT or SIGTERM, registered when this is called (not when first polled), and
/// says which came.
pub fn interrupted() -> anyhow::Result<impl std::future::Future<Output = &'static str>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_onto_the_table() {
        assert_eq!(code_of(ErrorKind::Unavailable), 2);
        assert_eq!(code_of(ErrorKind::InvalidArgument), 2);
        assert_eq!(code_of(ErrorKind::NotFound), 2);
        assert_eq!(code_of(ErrorKind::Internal), 1);
        assert_eq!(code_of(ErrorKind::Conflict), 1);
    }
}
