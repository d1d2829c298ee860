//! The two doors through which private keys enter the format code.
//!
//! `bundle` never touches a key itself: CMS signing goes through [`ContentSigner`] and CMS
//! decryption through [`RecipientKey`]. `keymgr` implements both for token keys (PKCS#11, TPM)
//! and PEM file keys, so nothing in the format code knows where a key lives.

use zeroize::Zeroizing;

/// Error returned by a key implementation; `bundle` wraps it with context.
pub type KeyError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How a [`ContentSigner`] signs. The message digest is always SHA-256, as RAUC/OpenSSL use for
/// RSA, P-256 and P-384 keys (`rauc-format.md` §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureScheme {
    /// ECDSA with SHA-256 (`ecdsa-with-SHA256`); the signature is DER `ECDSA-Sig-Value`.
    EcdsaSha256,
    /// RSA PKCS#1 v1.5 with SHA-256 (`rsaEncryption`, as RAUC writes it).
    RsaPkcs1Sha256,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt (`id-RSASSA-PSS`).
    RsaPssSha256,
}

/// A private key that can sign CMS signed attributes.
pub trait ContentSigner {
    /// The signature scheme this key produces.
    fn scheme(&self) -> SignatureScheme;

    /// Hashes `data` with SHA-256 and signs the digest. ECDSA signatures are returned as DER.
    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, KeyError>;
}

/// Named elliptic curves supported for recipients and signers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EcCurve {
    /// NIST P-256 (prime256v1, secp256r1).
    P256,
    /// NIST P-384 (secp384r1).
    P384,
}

impl EcCurve {
    /// Size of a field element (and of the ECDH shared secret Z) in bytes.
    pub fn field_bytes(self) -> usize {
        match self {
            EcCurve::P256 => 32,
            EcCurve::P384 => 48,
        }
    }
}

/// The type of a private key, as far as CMS recipient matching cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// An RSA key of the given modulus size.
    Rsa {
        /// Modulus length in bits.
        bits: u32,
    },
    /// An EC key on a named curve.
    Ec(EcCurve),
}

/// RSA decryption padding for key transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RsaPadding {
    /// PKCS#1 v1.5 (`rsaEncryption`), what RAUC/OpenSSL write by default.
    Pkcs1v15,
    /// OAEP with SHA-256 and MGF1-SHA-256 (`id-RSAES-OAEP`).
    OaepSha256,
}

/// A private key that can recover a CMS content-encryption key: one ECDH or one RSA decryption.
pub trait RecipientKey {
    /// The key type; recipients of other types are never tried.
    fn kind(&self) -> KeyKind;

    /// The DER certificate that belongs to this key, if known. With it, the matching recipient is
    /// found without any private-key operation.
    fn certificate_der(&self) -> Option<Vec<u8>>;

    /// ECDH with the peer's uncompressed point (`04 ‖ X ‖ Y`); returns the raw shared secret Z
    /// (the x-coordinate, [`EcCurve::field_bytes`] long). RSA keys return an error.
    fn ecdh(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError>;

    /// RSA decryption of a key-transport ciphertext. EC keys return an error.
    fn rsa_decrypt(
        &self,
        ciphertext: &[u8],
        padding: RsaPadding,
    ) -> Result<Zeroizing<Vec<u8>>, KeyError>;
}
