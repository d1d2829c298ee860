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

    /// An OpenSSL primitive failed.
    #[error("{action}: {source}")]
    Crypto {
        /// What was being done, e.g. "failed to encrypt the content".
        action: &'static str,
        /// OpenSSL's error queue.
        #[source]
        source: openssl::error::ErrorStack,
    },

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
