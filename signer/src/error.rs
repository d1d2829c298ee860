//! The error type of the `signer` crate.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong on the build host. Messages say what failed and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on a file failed.
    #[error("{action} '{path}': {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An external tool failed or could not be started.
    #[error("{tool} failed: {detail}")]
    Tool {
        /// The tool, e.g. `mksquashfs`.
        tool: &'static str,
        /// Its exit status and stderr, or why it could not start.
        detail: String,
    },
    /// The squashfs inside a bundle could not be read.
    #[error("{0}")]
    Squashfs(String),
    /// Invalid arguments.
    #[error("{0}")]
    Usage(String),
    /// The request is refused as unsafe or unsupported; the message says how to proceed.
    #[error("{0}")]
    Refused(String),
    /// A bundle format error (manifest, container, CMS, verity, crypt).
    #[error(transparent)]
    Bundle(#[from] bundle::Error),
    /// A key or token error.
    #[error(transparent)]
    Key(#[from] keymgr::Error),
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
