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
/// invariant) is 1.
pub fn code_of(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::InvalidArgument | ErrorKind::NotFound | ErrorKind::Unavailable => EXIT_INVALID,
        _ => EXIT_FAILED,
    }
}

/// Prints `error: ` and the error with its causes (`error: context: cause`), each line cut to a
/// few hundred bytes, and returns `code`. A cause whose text the message already says (scheduler
/// errors quote their cause) is not repeated.
pub fn fail(code: u8, e: anyhow::Error) -> u8 {
    let text = chain_text(&e);
    for line in text.lines() {
        eprintln!("error: {}", tapesched_backends::clip(line, MAX_LINE_BYTES));
    }
    code
}

/// The error and each cause not already said, joined with `: `.
fn chain_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for link in e.chain() {
        let said = link.to_string();
        let said = without_server_line(&said);
        // A cause that only wraps what is already said ("error returned from database: X").
        let wraps_said = said.rsplit_once(": ").is_some_and(|(_, tail)| tail.len() >= 8 && text.contains(tail));
        if said.is_empty() || text.contains(said) || wraps_said {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(said);
    }
    text
}

/// A database error's text without the server's own source position (` at line N`), which
/// names a line of PostgreSQL's C code and means nothing to an operator.
fn without_server_line(text: &str) -> &str {
    match text.rfind(" at line ") {
        Some(i) if text[i + 9..].bytes().all(|b| b.is_ascii_digit()) && text.len() > i + 9 => &text[..i],
        _ => text,
    }
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

/// A flag that turns true at SIGINT or SIGTERM (registered when this is called); with `said`,
/// the daemon says `<signal>: <said>` then. Must be called inside the runtime.
pub fn stop_flag(said: Option<&'static str>) -> anyhow::Result<tokio::sync::watch::Receiver<bool>> {
    let signal = interrupted().map_err(|e| e.context("cannot listen for signals"))?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let name = signal.await;
        if let Some(said) = said {
            crate::worker::say(format!("{name}: {said}"));
        }
        let _ = tx.send(true);
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_already_said_are_not_repeated() {
        #[derive(Debug)]
        struct Server;
        impl std::fmt::Display for Server {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("error returned from database: role \"x\" does not exist at line 768")
            }
        }
        impl std::error::Error for Server {}
        let e = tapesched_scheduler::Error::with_source(
            ErrorKind::InvalidArgument,
            "cannot connect: role \"x\" does not exist",
            Server,
        );
        let e = anyhow::Error::new(e).context("db migrate");
        assert_eq!(chain_text(&e), "db migrate: invalid_argument: cannot connect: role \"x\" does not exist");
        let e = anyhow::anyhow!("reading a.yaml").context("scenario run");
        assert_eq!(chain_text(&e), "scenario run: reading a.yaml");
        assert_eq!(without_server_line("boom at line 12"), "boom");
        assert_eq!(without_server_line("boom at line twelve"), "boom at line twelve");
    }

    #[test]
    fn kinds_map_onto_the_table() {
        assert_eq!(code_of(ErrorKind::Unavailable), 2);
        assert_eq!(code_of(ErrorKind::InvalidArgument), 2);
        assert_eq!(code_of(ErrorKind::NotFound), 2);
        assert_eq!(code_of(ErrorKind::Internal), 1);
        assert_eq!(code_of(ErrorKind::Conflict), 1);
    }
}
