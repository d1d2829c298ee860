//! The error type of the `bundle` crate.

use std::path::PathBuf;

use crate::keyfile::KeyFileError;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading, writing or checking a bundle.
///
/// Every variant says what failed and carries the context (path, key, offset) needed to act on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key file (manifest, system.conf, status file) is malformed or fails RAUC's strictness rules.
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),

    /// An I/O operation on a file failed.
    #[error("{action} '{path}': {source}")]
    Io {
        /// What was being done, e.g. "failed to open bundle".
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with what was being done and to which file.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
