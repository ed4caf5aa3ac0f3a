//! Error type shared by the scheduler, the catalogue and every backend.
//!
//! Errors carry an [`ErrorKind`] that maps one to one onto the error kinds of the scenario
//! contract, so a backend failure, a catalogue refusal and bad user input are told apart the same
//! way everywhere.

use std::fmt;

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
    /// An operation this build does not implement yet (repack).
    Unsupported,
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
            ErrorKind::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with its kind and a message naming what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Error {
    /// The kind of failure.
    pub kind: ErrorKind,
    /// Human-readable detail naming the offending value.
    pub message: String,
}

impl Error {
    /// Builds an error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into() }
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
