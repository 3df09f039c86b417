//! The crate's one error type and its mapping to process exit codes.
//!
//! Exit codes are a contract with CodeDeploy and with people: 0 done, 1 failed,
//! 2 usage or configuration error, 3 another nonstop run holds the lock.

use std::fmt::Display;

/// Everything that can go wrong in nonstop, classified by what the caller should do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad flags or arguments (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The configuration file is missing, malformed or unsafe (exit 2).
    #[error("{0}")]
    Config(String),
    /// The operation was attempted and failed, or was refused (exit 1).
    #[error("{0}")]
    Failed(String),
    /// Another nonstop run holds the state lock (exit 3).
    #[error("{0}")]
    LockHeld(String),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Failed(_) => 1,
            Error::Usage(_) | Error::Config(_) => 2,
            Error::LockHeld(_) => 3,
        }
    }
}

/// Shorthand for a [`Error::Failed`] with a message.
pub fn failed(msg: impl Into<String>) -> Error {
    Error::Failed(msg.into())
}

/// Crate-wide result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach "what we were doing" to low-level errors, turning them into [`Error::Failed`].
pub trait Context<T> {
    /// Map the error to `Failed("{what}: {err}")`.
    fn context(self, what: impl Display) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Display) -> Result<T> {
        self.map_err(|e| Error::Failed(format!("{what}: {e}")))
    }
}
