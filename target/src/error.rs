//! The error type of the `target` crate.
//!
//! Messages follow RAUC's wording where RAUC has one, so that logs, `LastError` and the D-Bus
//! error replies read the same as with `rauc`.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong on the device side.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bundle format or `system.conf` error.
    #[error(transparent)]
    Format(#[from] bundle::Error),
    /// An I/O operation on a file failed.
    #[error("{action} '{path}': {source}")]
    Io {
        /// What was being done, e.g. "failed to open slot device".
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Determining slot states or looking a slot up failed (e.g. "Did not find booted slot").
    #[error("{0}")]
    Slot(String),
    /// The install plan could not be made (e.g. "No target slot for class rootfs of image x found").
    #[error("{0}")]
    Plan(String),
    /// The installation failed; the message says at which step.
    #[error("{0}")]
    Install(String),
    /// An image did not match its manifest checksum or size while it was written.
    #[error(
        "Failed updating slot {slot}: image '{image}' does not match the manifest: expected \
         sha256 {expected} ({expected_size} bytes), got {actual} ({actual_size} bytes); the slot was left marked bad"
    )]
    ChecksumMismatch {
        /// The slot written to.
        slot: String,
        /// The image file in the bundle.
        image: PathBuf,
        /// Digest from the manifest.
        expected: String,
        /// Digest of the bytes read.
        actual: String,
        /// Size from the manifest.
        expected_size: u64,
        /// Bytes read.
        actual_size: u64,
    },
    /// A bootloader backend failed (RAUC's bootchooser wording).
    #[error("{0}")]
    Bootloader(String),
    /// A handler or hook script failed to start or exited non-zero.
    #[error("{what} '{path}' {reason}")]
    Script {
        /// Which script, e.g. "pre-install handler" or "slot hook".
        what: &'static str,
        /// The script.
        path: PathBuf,
        /// "failed to start: …" or "exited with code N".
        reason: String,
    },
    /// Opening, verifying or mounting a bundle failed (the [`crate::source::BundleOpener`] seam).
    #[error("{0}")]
    Bundle(String),
    /// The decryption key of `[encryption] key` (or `--key`) could not be opened or used.
    #[error(
        "Failed to decrypt bundle: cannot use the decryption key {spec} ({origin}): {source}; \
         check the key and its token, PIN and module"
    )]
    DecryptionKey {
        /// The key as configured (a `pkcs11:` URI with any PIN redacted, or a path).
        spec: String,
        /// Where it was configured, e.g. "[encryption] key in /etc/rauc/system.conf".
        origin: String,
        /// What keymgr reported.
        #[source]
        source: Box<keymgr::Error>,
    },
    /// Setting up or tearing down the bundle mount stack (loop, dm-verity, dm-crypt, squashfs).
    #[error("Failed mounting bundle: {0}")]
    Mount(#[from] crate::mount::MountError),
    /// Another operation (install, mark) is already running in this process.
    #[error("Already processing a different method")]
    Busy,
    /// A D-Bus operation failed.
    #[error("D-Bus: {0}")]
    DBus(#[from] zbus::Error),
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
