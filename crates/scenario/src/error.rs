//! Errors of the scenario crate: files that cannot be used and backends that cannot be had.
//!
//! Every one of them makes `tapesched scenario run` exit with status 2. Failures of the ops a
//! scenario plays are not errors here: they are results, recorded in the trace.

use std::path::PathBuf;

/// Why a scenario could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not YAML.
    #[error("{path}: not valid YAML: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The file does not validate against the schema; one message per failing field.
    #[error("{path}: {}", errors.join(&format!("\n{}: ", path.display())))]
    Schema {
        /// The file.
        path: PathBuf,
        /// `field/path: what is wrong`, one per failure.
        errors: Vec<String>,
    },
    /// The file validates but cannot be used (catalogue references, time going backwards...).
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The backend name is unknown, or its server cannot be reached.
    #[error("{0}")]
    BackendUnavailable(String),
    /// A path given on the command line is neither a file nor a directory.
    #[error("{path}: no such file or directory")]
    NotFound {
        /// The path.
        path: PathBuf,
    },
}

impl ScenarioError {
    /// True for errors about a file's content (as opposed to backends and paths).
    pub fn is_invalid_file(&self) -> bool {
        matches!(self, ScenarioError::Yaml { .. } | ScenarioError::Schema { .. } | ScenarioError::Invalid { .. })
    }
}
