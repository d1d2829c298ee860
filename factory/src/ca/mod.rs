//! The station CA: rcgen certificate/CRL building with a CA key that lives behind
//! [`ContentSigner`] (a token key in production, an OpenSSL file key in tests).
//!
//! [`CaSigningKey`] implements rcgen's `SigningKey` over a `ContentSigner` plus the public key;
//! [`CertificateAuthority`] pairs it with the CA certificate and checks every signature it
//! produces against the certificate's public key, so a CA key that does not belong to the CA
//! certificate is caught at the first issuance.

mod crl;
mod init;
mod issue;

use std::sync::Mutex;

use bundle::keys::{ContentSigner, KeyError, SignatureScheme};
use openssl::pkey::{Id, PKey, Public};
use rcgen::{Issuer, PublicKeyData, SignatureAlgorithm, SigningKey};

use crate::cert::{CertFacts, public_key, spki_key_bits};
use crate::error::{FactoryError, Result};

pub use crl::RevokedEntry;
pub use init::{ca_certificate_request, check_ca_certificate, self_signed_ca_certificate};
pub use issue::IssuedCertificate;

/// How far `notBefore` lies before the issuing time, for devices whose clocks lag a little.
pub const NOT_BEFORE_SKEW_SECS: i64 = 300;

/// An rcgen signing key backed by a [`ContentSigner`] and its DER SubjectPublicKeyInfo.
pub struct CaSigningKey<'k> {
    signer: Box<dyn ContentSigner + Send + 'k>,
    spki_der: Vec<u8>,
    key_bits: Vec<u8>,
    alg: &'static SignatureAlgorithm,
    failure: Mutex<Option<KeyError>>,
}

impl std::fmt::Debug for CaSigningKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaSigningKey")
            .field("scheme", &self.signer.scheme())
            .finish_non_exhaustive()
    }
}

impl<'k> CaSigningKey<'k> {
    /// Wraps `signer`, whose public key is `spki_der`. Supported: EC P-256 with ECDSA-SHA256
    /// and RSA with PKCS#1 v1.5 SHA-256.
    pub fn new(signer: Box<dyn ContentSigner + Send + 'k>, spki_der: &[u8]) -> Result<Self> {
        let alg = rcgen_algorithm(&public_key(spki_der)?, signer.scheme())?;
        Ok(Self {
            key_bits: spki_key_bits(spki_der)?,
            spki_der: spki_der.to_vec(),
            signer,
            alg,
            failure: Mutex::new(None),
        })
    }

    /// The DER SubjectPublicKeyInfo of the key.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Turns an rcgen error into a station error, surfacing the key's own error if signing
    /// failed.
    fn error(&self, what: &str, e: rcgen::Error) -> FactoryError {
        match self.failure.lock().map(|mut f| f.take()) {
            Ok(Some(source)) => FactoryError::Signing {
                what: format!("signing the {what} with the CA key"),
                source,
            },
            _ => FactoryError::Rcgen {
                what: format!("building the {what}"),
                source: e,
            },
        }
    }
}

fn rcgen_algorithm(
    key: &PKey<Public>,
    scheme: SignatureScheme,
) -> Result<&'static SignatureAlgorithm> {
    let curve = key.ec_key().ok().and_then(|k| k.group().curve_name());
    match (key.id(), scheme) {
        (Id::EC, SignatureScheme::EcdsaSha256)
            if curve == Some(openssl::nid::Nid::X9_62_PRIME256V1) =>
        {
            Ok(&rcgen::PKCS_ECDSA_P256_SHA256)
        }
        (Id::RSA, SignatureScheme::RsaPkcs1Sha256) => Ok(&rcgen::PKCS_RSA_SHA256),
        (id, scheme) => Err(FactoryError::CaKey {
            message: format!(
                "a {id:?} key ({curve:?}) signing with {scheme:?} cannot be a station CA key; \
                 use an EC P-256 key (ECDSA) or an RSA key (PKCS#1 v1.5)"
            ),
        }),
    }
}

impl PublicKeyData for CaSigningKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.key_bits
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

impl SigningKey for CaSigningKey<'_> {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        self.signer.sign(msg).map_err(|e| {
            if let Ok(mut slot) = self.failure.lock() {
                *slot = Some(e);
            }
            rcgen::Error::RemoteKeyError
        })
    }
}

/// The CA: its certificate and its key, ready to issue device certificates and CRLs.
pub struct CertificateAuthority<'k> {
    issuer: Issuer<'static, CaSigningKey<'k>>,
    cert_der: Vec<u8>,
    facts: CertFacts,
    public_key: PKey<Public>,
}

impl std::fmt::Debug for CertificateAuthority<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("subject", &self.facts.subject)
            .finish_non_exhaustive()
    }
}

impl<'k> CertificateAuthority<'k> {
    /// Pairs the CA certificate (DER) with the CA key's signer.
    pub fn new(cert_der: Vec<u8>, signer: Box<dyn ContentSigner + Send + 'k>) -> Result<Self> {
        let facts = CertFacts::from_der(&cert_der, "CA certificate")?;
        if !facts.is_ca {
            return Err(FactoryError::cert(
                "CA certificate",
                format!(
                    "'{}' is not a CA certificate (basicConstraints cA is not set)",
                    facts.subject
                ),
            ));
        }
        let key = CaSigningKey::new(signer, &facts.spki_der)?;
        let issuer =
            Issuer::from_ca_cert_der(&cert_der.as_slice().into(), key).map_err(|source| {
                FactoryError::Rcgen {
                    what: "reading the CA certificate".into(),
                    source,
                }
            })?;
        Ok(Self {
            public_key: public_key(&facts.spki_der)?,
            issuer,
            cert_der,
            facts,
        })
    }

    /// The CA certificate (DER).
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Facts of the CA certificate.
    pub fn facts(&self) -> &CertFacts {
        &self.facts
    }

    /// The key identifier this CA writes as authorityKeyIdentifier.
    fn key_identifier(&self) -> Result<Vec<u8>> {
        match &self.facts.ski {
            Some(ski) => Ok(ski.clone()),
            None => crate::cert::key_identifier(&self.facts.spki_der),
        }
    }

    fn mismatch(&self, what: &str) -> FactoryError {
        FactoryError::CaKey {
            message: format!(
                "the {what} signed with the CA key does not verify with the public key of the CA \
                 certificate '{}': the configured CA key and CA certificate do not belong together",
                self.facts.subject
            ),
        }
    }
}

/// A fresh random certificate serial: 16 bytes, positive, no leading zero byte.
pub(crate) fn random_serial() -> Result<rcgen::SerialNumber> {
    let mut bytes = [0u8; 16];
    openssl::rand::rand_bytes(&mut bytes)
        .map_err(|e| FactoryError::openssl("drawing a serial", e))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(rcgen::SerialNumber::from_slice(&bytes))
}
