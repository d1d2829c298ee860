//! The error type of the `bundle` crate.
//!
//! Messages use RAUC's wording where RAUC has one (so that logs and tests read the same as with
//! `rauc`), and otherwise say what failed and what to do. Secrets (crypt keys, CEKs) never appear
//! in an error.

use std::path::PathBuf;

use crate::keyfile::KeyFileError;
use crate::keys::KeyError;

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

    /// `system.conf` violates the GKeyFile syntax or RAUC's strictness.
    #[error("{path}: {source}")]
    ConfigFile {
        /// The file being read.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: KeyFileError,
    },
    /// `system.conf` is syntactically fine but its content is invalid (RAUC's wording).
    #[error("{path}: {message}")]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong, e.g. "Unsupported slot type 'foo' for slot rootfs.0 selected in system config".
        message: String,
    },
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

    /// A manifest parses but violates one of RAUC's manifest rules (the message is RAUC's).
    #[error("{message}")]
    Manifest {
        /// RAUC's message, e.g. "Missing key for crypt bundle".
        message: String,
    },

    /// The manifest uses a feature the selected writer vocabulary (e.g. rauc 1.8) would reject.
    #[error(
        "manifest uses {feature}, which rauc 1.8 rejects; remove it or write with Vocabulary::Latest"
    )]
    Vocabulary {
        /// The offending key or group, e.g. "'type' in group '[image.rootfs]'".
        feature: String,
    },

    /// The bundle is shorter than the 8-byte signature-size trailer.
    #[error("Bundle too small ({size} bytes): no room for the signature size")]
    BundleTooSmall {
        /// The bundle size in bytes.
        size: u64,
    },

    /// The trailer says the CMS has zero bytes.
    #[error("Signature size is 0")]
    SignatureSizeZero,

    /// The trailer points before the start of the file.
    #[error("Signature size ({size}) exceeds bundle size")]
    SignatureExceedsBundle {
        /// The CMS size from the trailer.
        size: u64,
    },

    /// The CMS is larger than the configured maximum (rauc 1.8: fixed 64 KiB).
    #[error("Signature size ({size}) exceeds {}", limit_text(*limit))]
    SignatureTooLarge {
        /// The CMS size.
        size: u64,
        /// The configured limit in bytes.
        limit: u64,
    },

    /// A payload, data area or hash tree does not have the size the format requires.
    #[error("{what}")]
    Size {
        /// What is wrong, e.g. "data size 5000 is not a multiple of 4096".
        what: String,
    },

    /// The dm-verity hash tree does not match the data.
    #[error("verity check failed: {what}")]
    Verity {
        /// Which block or level mismatched.
        what: String,
    },

    /// An OpenSSL primitive (hash, cipher) failed.
    #[error("{context}: {source}")]
    Crypto {
        /// What was being done.
        context: &'static str,
        /// OpenSSL's error queue.
        #[source]
        source: openssl::error::ErrorStack,
    },

    /// The CMS cannot be decoded or has a structure bundles never have.
    #[error("invalid CMS: {reason}")]
    Cms {
        /// What is wrong with it.
        reason: String,
    },

    /// The CMS could not be encoded (should not happen with valid certificates).
    #[error("failed to encode CMS: {reason}")]
    CmsEncode {
        /// The encoder's complaint.
        reason: String,
    },

    /// The signing key failed to sign.
    #[error("failed to sign with the signing key: {source}")]
    Sign {
        /// The key implementation's error.
        #[source]
        source: KeyError,
    },

    /// A certificate or private key passed in does not fit (wrong type, not parseable, mismatch).
    #[error("{what}")]
    Certificate {
        /// What is wrong.
        what: String,
    },

    /// Signature or chain verification failed (RAUC's wording, with OpenSSL's reason).
    #[error("signature verification failed: {reason}")]
    SignatureVerification {
        /// OpenSSL's verify error, e.g. "Verify error: certificate revoked".
        reason: String,
    },

    /// The CMS has not exactly one signer.
    #[error("Unsupported number of signers: {count}")]
    UnsupportedSigners {
        /// How many SignerInfos the CMS has.
        count: usize,
    },

    /// The keyring could not be loaded.
    #[error("failed to load keyring '{path}': {reason}")]
    Keyring {
        /// The keyring file or directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// No keyring file or directory was configured.
    #[error("No keyring file or directory provided")]
    NoKeyring,

    /// An encrypted bundle was opened without a decryption key.
    #[error("Encrypted bundle detected, but no decryption key given")]
    NoDecryptionKey,

    /// The CMS EnvelopedData could not be decrypted.
    #[error("Failed to decrypt CMS EnvelopedData: {reason}")]
    Decrypt {
        /// Why (never contains key material).
        reason: String,
    },

    /// The bundle format is not acceptable here (RAUC's message).
    #[error("{message}")]
    Format {
        /// e.g. "Bundle format 'plain' not allowed for external manifest".
        message: String,
    },
}

fn limit_text(limit: u64) -> String {
    if limit == 65536 {
        "64KiB".to_string()
    } else {
        format!("the maximum of {limit} bytes")
    }
}

impl Error {
    /// A `system.conf` content error.
    pub fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Config {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Wraps an I/O error with what was being done and to which file.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// A manifest rule violation with RAUC's message.
    pub fn manifest(message: impl Into<String>) -> Self {
        Error::Manifest {
            message: message.into(),
        }
    }

    /// A size/alignment error.
    pub fn size(what: impl Into<String>) -> Self {
        Error::Size { what: what.into() }
    }

    /// A malformed CMS.
    pub fn cms(reason: impl Into<String>) -> Self {
        Error::Cms {
            reason: reason.into(),
        }
    }

    /// An OpenSSL failure with context.
    pub fn crypto(context: &'static str, source: openssl::error::ErrorStack) -> Self {
        Error::Crypto { context, source }
    }
}
