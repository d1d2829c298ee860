//! The error type of the TPM backend.

use std::path::PathBuf;

/// Everything that can go wrong with a TPM-native key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TpmError {
    /// The key spec string is malformed.
    #[error(
        "invalid TPM key spec '{spec}': {reason} (expected e.g. 'tpm2:handle=0x81000100;tcti=swtpm:host=127.0.0.1,port=2321')"
    )]
    Spec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The TCTI string cannot be used.
    #[error("cannot use TCTI '{tcti}': {source}; set tcti= in the key spec or TPM2TOOLS_TCTI/TCTI")]
    Tcti {
        /// The TCTI configuration string.
        tcti: String,
        /// The tss-esapi error.
        #[source]
        source: tss_esapi::Error,
    },

    /// A TPM command failed.
    #[error("TPM command {command} failed: {source}")]
    Command {
        /// The TPM2 command, e.g. "TPM2_ECDH_ZGen".
        command: &'static str,
        /// The tss-esapi error (TPM response code or wrapper error).
        #[source]
        source: tss_esapi::Error,
    },

    /// Nothing is persisted at the handle.
    #[error(
        "no key at persistent handle {handle:#010x}; provision one first (factory) or check the handle"
    )]
    NoKeyAtHandle {
        /// The persistent handle.
        handle: u32,
    },

    /// The persistent handle is already taken.
    #[error(
        "persistent handle {handle:#010x} is already in use; evict it first or choose another handle"
    )]
    HandleInUse {
        /// The persistent handle.
        handle: u32,
    },

    /// The object at the handle is not an unrestricted EC decryption key on P-256/P-384.
    #[error("the object at {handle:#010x} is not a usable ECDH key: {reason}")]
    NotAnEcdhKey {
        /// The persistent handle.
        handle: u32,
        /// What is wrong with it.
        reason: String,
    },

    /// A peer point for ECDH is malformed or on the wrong curve.
    #[error("invalid peer point for ECDH: {reason}")]
    BadPeerPoint {
        /// What is wrong with it.
        reason: String,
    },

    /// The operation is not supported by a TPM EC key (RSA decryption).
    #[error("{operation} is not supported by a TPM ECDH key")]
    Unsupported {
        /// The operation asked for.
        operation: &'static str,
    },

    /// A certificate file cannot be read.
    #[error("cannot read certificate '{path}': {reason}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },

    /// An OpenSSL operation on a public key failed.
    #[error("{action}: {source}")]
    Crypto {
        /// What was being done.
        action: &'static str,
        /// OpenSSL's error queue.
        #[source]
        source: openssl::error::ErrorStack,
    },
}

impl TpmError {
    pub(crate) fn command(command: &'static str) -> impl FnOnce(tss_esapi::Error) -> TpmError {
        move |source| TpmError::Command { command, source }
    }
}

/// Errors of the session plumbing around a command (starting or flushing the HMAC session).
impl From<tss_esapi::Error> for TpmError {
    fn from(source: tss_esapi::Error) -> Self {
        TpmError::Command {
            command: "TPM2_StartAuthSession/TPM2_FlushContext",
            source,
        }
    }
}
