//! The key traits: [`Signer`] and [`Decryptor`] extend the format crate's
//! [`ContentSigner`] and [`RecipientKey`] with what callers outside the format need.

use std::path::PathBuf;

use bundle::keys::{ContentSigner, KeyKind, RecipientKey};

use crate::error::Result;

/// What every key can tell about itself without a private-key operation.
pub trait KeyInfo {
    /// Where the key lives, for messages: a redacted `pkcs11:` URI or a file path.
    fn description(&self) -> String;

    /// The key type.
    fn key_kind(&self) -> KeyKind;

    /// The public key as SubjectPublicKeyInfo DER.
    fn public_key_der(&self) -> Result<Vec<u8>>;
}

/// A signing key: a token key (`pkcs11:`), a PEM file key or (after merge) a TPM key.
///
/// `Send + Sync`: a token key serializes its operations on its own PKCS#11 session. For
/// parallel signing open one signer per worker.
pub trait Signer: ContentSigner + KeyInfo + Send + Sync {
    /// The DER certificate stored with the key (a token's certificate object with the same
    /// `CKA_ID`), if there is one. File keys return `None`: give the certificate separately
    /// ([`crate::load_certificate`]).
    fn certificate(&self) -> Option<Vec<u8>>;
}

/// A decryption key for CMS recipients (ECDH or RSA key transport).
///
/// [`RecipientKey::certificate_der`] returns the token's certificate with the same `CKA_ID`,
/// found without any private-key operation.
pub trait Decryptor: RecipientKey + KeyInfo + Send + Sync {}

/// RSA signature padding for [`Signer`]s with RSA keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RsaSignaturePadding {
    /// PKCS#1 v1.5 with SHA-256, as rauc signs (`CKM_RSA_PKCS` over a DigestInfo).
    #[default]
    Pkcs1v15,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt.
    Pss,
}

/// Options for opening keys and certificates.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The PKCS#11 module to use when the URI names none (`--module`); see
    /// [`crate::module`] for the full order.
    pub module: Option<PathBuf>,
    /// RSA signature padding (ignored for EC keys).
    pub rsa_padding: RsaSignaturePadding,
}

impl OpenOptions {
    /// Options with a default module.
    pub fn with_module(module: impl Into<PathBuf>) -> OpenOptions {
        OpenOptions {
            module: Some(module.into()),
            ..OpenOptions::default()
        }
    }
}

/// A decryptor whose certificate is given explicitly (`[encryption] cert=` of system.conf)
/// rather than found next to the key: recipient matching then uses this certificate.
pub struct WithCertificate {
    key: Box<dyn Decryptor>,
    certificate: Vec<u8>,
}

impl WithCertificate {
    /// Wraps `key`; `certificate` (DER) must belong to it — checked against the public key.
    pub fn new(key: Box<dyn Decryptor>, certificate: Vec<u8>) -> Result<Self> {
        let cert_spki = openssl::x509::X509::from_der(&certificate)
            .and_then(|c| c.public_key())
            .and_then(|k| k.public_key_to_der())
            .map_err(|e| {
                crate::Error::Invalid(format!("cannot read the decryption certificate: {e}"))
            })?;
        if cert_spki != key.public_key_der()? {
            return Err(crate::Error::Invalid(format!(
                "the decryption certificate does not belong to the key {}",
                key.description()
            )));
        }
        Ok(WithCertificate { key, certificate })
    }
}

impl RecipientKey for WithCertificate {
    fn kind(&self) -> KeyKind {
        self.key.kind()
    }

    fn certificate_der(&self) -> Option<Vec<u8>> {
        Some(self.certificate.clone())
    }

    fn ecdh(
        &self,
        peer_point: &[u8],
    ) -> std::result::Result<zeroize::Zeroizing<Vec<u8>>, bundle::keys::KeyError> {
        self.key.ecdh(peer_point)
    }

    fn rsa_decrypt(
        &self,
        ciphertext: &[u8],
        padding: bundle::keys::RsaPadding,
    ) -> std::result::Result<zeroize::Zeroizing<Vec<u8>>, bundle::keys::KeyError> {
        self.key.rsa_decrypt(ciphertext, padding)
    }
}

impl KeyInfo for WithCertificate {
    fn description(&self) -> String {
        self.key.description()
    }

    fn key_kind(&self) -> KeyKind {
        self.key.key_kind()
    }

    fn public_key_der(&self) -> Result<Vec<u8>> {
        self.key.public_key_der()
    }
}

impl Decryptor for WithCertificate {}
