//! Error type shared by the scheduler, the catalogue and every backend.
//!
//! Errors carry an [`ErrorKind`] that maps one to one onto the error kinds of the scenario
//! contract, so a backend failure, a catalogue refusal and bad user input are told apart the same
//! way everywhere.
//!
//! An error may keep the error it came from (a database, store, I/O or decoding error) as its
//! [`source`](std::error::Error::source), so a caller can print the whole chain. Errors are not
//! compared as a whole: two backends answer the same [`ErrorKind`] for the same cause, with
//! messages (and sources) of their own; compare `kind`.

use std::fmt;
use std::sync::Arc;

/// What kind of failure an [`Error`] is; the names are those of the scenario contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Malformed or contradictory input: zero size, unknown storage class or mount policy, bad name.
    InvalidArgument,
    /// An unknown file, tape, drive, request, pool, library or VO.
    NotFound,
    /// No copy of a file can be recalled now.
    NoTapeAvailable,
    /// A tape state change that the workflow forbids.
    StateTransitionRefused,
    /// A duplicate identity, or a concurrent modification that lost.
    Conflict,
    /// A backend could not be reached.
    Unavailable,
    /// A broken invariant inside tapesched or corrupted stored data.
    Internal,
}

impl ErrorKind {
    /// The contract's spelling of the kind (`invalid_argument`, `not_found`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::NotFound => "not_found",
            ErrorKind::NoTapeAvailable => "no_tape_available",
            ErrorKind::StateTransitionRefused => "state_transition_refused",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with its kind, a message naming what is wrong and, optionally, the error it came from.
#[derive(Debug, Clone)]
pub struct Error {
    /// The kind of failure.
    pub kind: ErrorKind,
    /// Human-readable detail naming the offending value.
    pub message: String,
    /// The underlying error (shared, so that `Error` stays `Clone`).
    cause: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// The source is the underlying error itself (not the `Arc` holding it), so callers can
/// downcast it to the library's error type.
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl Error {
    /// Builds an error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), cause: None }
    }
    /// Builds an error of the given kind caused by `source` (kept as the error's source; the
    /// message need not repeat it).
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error { kind, message: message.into(), cause: Some(Arc::new(source)) }
    }
    /// This error with `source` as its cause (replacing any it had).
    pub fn caused_by(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.cause = Some(Arc::new(source));
        self
    }
    /// The same error with another kind and message, keeping its source.
    pub fn rephrased(self, kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), cause: self.cause }
    }
    /// The underlying error, if any (the same as [`std::error::Error::source`]).
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.cause.as_deref()
    }
    /// An [`ErrorKind::InvalidArgument`] error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
    /// An [`ErrorKind::NotFound`] error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    /// An [`ErrorKind::Conflict`] error.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }
    /// An [`ErrorKind::StateTransitionRefused`] error.
    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::StateTransitionRefused, message)
    }
    /// An [`ErrorKind::NoTapeAvailable`] error.
    pub fn no_tape(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NoTapeAvailable, message)
    }
    /// An [`ErrorKind::Unavailable`] error.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
    /// An [`ErrorKind::Internal`] error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}

/// Result alias used throughout tapesched.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn the_source_is_kept_through_clones() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Error::with_source(ErrorKind::Unavailable, "store unreachable", io);
        assert_eq!(e.to_string(), "unavailable: store unreachable");
        let copy = e.clone();
        assert_eq!(copy.source().map(|s| s.to_string()).as_deref(), Some("refused"));
        assert!(copy.source().is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some()), "the cause itself");
        assert!(Error::internal("x").source().is_none());
        let wrapped = Error::invalid("bad").caused_by(std::fmt::Error);
        assert_eq!(
            wrapped.cause().map(|s| s.to_string()).as_deref(),
            Some("an error occurred when formatting an argument")
        );
    }
}
