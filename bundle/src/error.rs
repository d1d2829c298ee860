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
    /// An output file or directory already exists and may not be replaced (like `rauc bundle`,
    /// which never overwrites).
    #[error("output '{path}' already exists; remove it or choose another name")]
    OutputExists {
        /// The existing output.
        path: PathBuf,
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
    #[error("manifest uses {feature}, which rauc 1.8 rejects; remove it (newer RAUC accepts it)")]
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

    // ---- cms::enveloped: recipients, encryption, decryption ----
    /// A recipient file holds no certificate (RAUC latest: "Expecting: CERTIFICATE").
    #[error(
        "no certificate found in recipient file '{path}' (Expecting: CERTIFICATE); \
         give one or more PEM certificates"
    )]
    NoRecipientCertificate {
        /// The recipient file.
        path: PathBuf,
    },

    /// A recipient file holds a private key; recipients are certificates only.
    #[error(
        "recipient file '{path}' contains a private key ('{label}' PEM block), not a \
         certificate; give the device certificates and keep private keys out of recipient lists"
    )]
    PrivateKeyAsRecipient {
        /// The recipient file.
        path: PathBuf,
        /// The PEM label found, e.g. `PRIVATE KEY`.
        label: String,
    },

    /// A recipient file holds a PEM block that is neither a certificate nor a key.
    #[error(
        "recipient file '{path}' contains a '{label}' PEM block; only CERTIFICATE blocks are allowed"
    )]
    UnexpectedPemBlock {
        /// The recipient file.
        path: PathBuf,
        /// The PEM label found.
        label: String,
    },

    /// A recipient certificate cannot be parsed.
    #[error("invalid recipient certificate ({origin}): {reason}")]
    InvalidRecipientCertificate {
        /// Where the certificate came from (file and position).
        origin: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A recipient certificate is not valid yet.
    #[error("recipient certificate '{subject}' ({origin}) is not valid before {not_before}")]
    RecipientNotYetValid {
        /// Where the certificate came from.
        origin: String,
        /// Its subject.
        subject: String,
        /// Its notBefore time.
        not_before: String,
    },

    /// A recipient certificate has expired.
    #[error("recipient certificate '{subject}' ({origin}) expired at {not_after}")]
    RecipientExpired {
        /// Where the certificate came from.
        origin: String,
        /// Its subject.
        subject: String,
        /// Its notAfter time.
        not_after: String,
    },

    /// Two recipient certificates would get the same recipient identifier.
    #[error(
        "recipient '{subject}' is given twice ({first} and {second}: {reason}); \
         remove the duplicate"
    )]
    DuplicateRecipient {
        /// Subject of the duplicated certificate.
        subject: String,
        /// Where the first copy came from.
        first: String,
        /// Where the second copy came from.
        second: String,
        /// What they share.
        reason: &'static str,
    },

    /// A recipient certificate carries a key type or curve we cannot encrypt to.
    #[error(
        "recipient certificate '{subject}' ({origin}) has an unsupported key ({key}); \
         supported are RSA with at least 2048 bits and EC on P-256 or P-384"
    )]
    UnsupportedRecipientKey {
        /// Where the certificate came from.
        origin: String,
        /// Its subject.
        subject: String,
        /// The key found.
        key: String,
    },

    /// Subject-key-identifier recipient ids were requested but a certificate has none.
    #[error(
        "recipient certificate '{subject}' ({origin}) has no subjectKeyIdentifier extension, \
         which subject-key-identifier recipient ids need; use issuer-and-serial ids or reissue \
         the certificate with a subjectKeyIdentifier"
    )]
    RecipientWithoutSki {
        /// Where the certificate came from.
        origin: String,
        /// Its subject.
        subject: String,
    },

    /// Encryption was asked for without any recipient.
    #[error("no recipients given: refusing to write an EnvelopedData that nobody can decrypt")]
    NoRecipients,

    /// The CMS to decrypt or list is not an EnvelopedData.
    #[error(
        "the CMS is not an EnvelopedData (content type {content_type}); the bundle is not encrypted"
    )]
    NotEnvelopedData {
        /// The content type found (name or dotted OID).
        content_type: String,
    },

    /// The key does not belong to any recipient of the envelope.
    #[error(
        "failed to decrypt CMS EnvelopedData: the key is not a recipient of this bundle ({detail})"
    )]
    NotARecipient {
        /// What was compared (certificate, key type, number of candidates).
        detail: String,
    },

    /// The envelope is malformed or fails an integrity check.
    #[error(
        "failed to decrypt CMS EnvelopedData: bad decrypt ({reason}); the bundle is damaged or \
         was tampered with"
    )]
    EnvelopeTampered {
        /// What failed: structure, key unwrap integrity, content padding.
        reason: String,
    },

    /// The private-key operation itself failed (token error, wrong key type).
    #[error(
        "failed to decrypt CMS EnvelopedData: {operation} with the recipient key failed: {source}"
    )]
    KeyOperation {
        /// The operation, e.g. "ECDH".
        operation: &'static str,
        /// The key's error.
        #[source]
        source: crate::keys::KeyError,
    },

    /// The envelope uses an algorithm we do not implement.
    #[error("failed to decrypt CMS EnvelopedData: unsupported {what} '{name}'")]
    UnsupportedEnvelopeAlgorithm {
        /// Which algorithm slot, e.g. "content cipher".
        what: &'static str,
        /// The algorithm's name or OID.
        name: String,
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

/// An error and its causes on one line, `outer: cause: …`, leaving out every cause whose text
/// the line already contains (our messages usually include their source). Every binary of the
/// suite prints errors with it.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !text.contains(&c) {
            text = format!("{text}: {c}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod chain_tests {
    use super::*;

    #[test]
    fn causes_already_in_the_message_are_left_out() {
        let io = std::io::Error::other("disk on fire");
        let e = Error::io("failed to open bundle", "/b.raucb", io);
        assert_eq!(
            error_chain(&e),
            "failed to open bundle '/b.raucb': disk on fire"
        );
        let e = Error::OutputExists { path: "/x".into() };
        assert_eq!(
            error_chain(&e),
            "output '/x' already exists; remove it or choose another name"
        );
    }
}
