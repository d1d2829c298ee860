//! PKCS#10 certificate signing requests signed by any [`ContentSigner`] (a device token key or
//! the station CA key), and their verification.
//!
//! The request is built with the `x509-cert` types rather than rcgen because a
//! [`ContentSigner`] always hashes with SHA-256, which rcgen cannot pair with P-384 keys.

use bundle::keys::{ContentSigner, SignatureScheme};
use der::asn1::{Any, BitString, ObjectIdentifier, SetOfVec};
use der::{Decode, Encode};
use openssl::x509::X509Req;
use x509_cert::request::{CertReq, CertReqInfo, Version};
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use crate::cert::key_type_of_spki;
use crate::config::SubjectName;
use crate::error::{FactoryError, Result};

const ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";
const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
const RSASSA_PSS: &str = "1.2.840.113549.1.1.10";

/// RSASSA-PSS-params: SHA-256, MGF1 with SHA-256, salt length 32, trailer field 1 (default).
const PSS_SHA256_PARAMS: [u8; 54] = [
    0x30, 0x34, 0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
    0x01, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
    0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0xa2, 0x03, 0x02, 0x01, 0x20,
];

fn der_err(what: &str, e: der::Error) -> FactoryError {
    FactoryError::cert(what, format!("DER encoding failed: {e}"))
}

/// The X.509 signature AlgorithmIdentifier for a signature scheme.
pub fn signature_algorithm(scheme: SignatureScheme) -> Result<AlgorithmIdentifierOwned> {
    let what = "signature algorithm";
    let (oid, parameters) = match scheme {
        SignatureScheme::EcdsaSha256 => (ECDSA_WITH_SHA256, None),
        SignatureScheme::RsaPkcs1Sha256 => (SHA256_WITH_RSA, Some(Any::null())),
        SignatureScheme::RsaPssSha256 => (
            RSASSA_PSS,
            Some(Any::from_der(&PSS_SHA256_PARAMS).map_err(|e| der_err(what, e))?),
        ),
    };
    Ok(AlgorithmIdentifierOwned {
        oid: ObjectIdentifier::new(oid).map_err(|e| FactoryError::cert(what, e.to_string()))?,
        parameters,
    })
}

/// Builds and signs a CSR for `spki_der` with `subject`. The signer must hold the private key
/// of `spki_der`; the result is verified before it is returned.
pub fn build_csr(
    subject: &SubjectName,
    spki_der: &[u8],
    signer: &dyn ContentSigner,
) -> Result<Vec<u8>> {
    let what = "certificate signing request";
    let key_type = key_type_of_spki(spki_der)?;
    let scheme = signer.scheme();
    let ec_scheme = scheme == SignatureScheme::EcdsaSha256;
    if key_type.is_ec() != ec_scheme {
        return Err(FactoryError::cert(
            what,
            format!("a {key_type} key cannot sign with {scheme:?}"),
        ));
    }
    let info = CertReqInfo {
        version: Version::V1,
        subject: subject
            .to_x509_name()
            .map_err(|m| FactoryError::cert(what, m))?,
        public_key: SubjectPublicKeyInfoOwned::from_der(spki_der).map_err(|e| der_err(what, e))?,
        attributes: SetOfVec::new(),
    };
    let tbs = info.to_der().map_err(|e| der_err(what, e))?;
    let signature = signer.sign(&tbs).map_err(|source| FactoryError::Signing {
        what: "signing the certificate signing request".into(),
        source,
    })?;
    let req = CertReq {
        info,
        algorithm: signature_algorithm(scheme)?,
        signature: BitString::from_bytes(&signature).map_err(|e| der_err(what, e))?,
    };
    let der = req.to_der().map_err(|e| der_err(what, e))?;
    let checked = verify_csr(&der)?;
    if checked.spki_der != spki_der {
        return Err(FactoryError::cert(
            what,
            "the signed request carries a different public key",
        ));
    }
    Ok(der)
}

/// A CSR whose self-signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCsr {
    /// The requested public key (DER SubjectPublicKeyInfo).
    pub spki_der: Vec<u8>,
}

/// Parses a DER CSR and verifies its signature with the public key it contains (proof of
/// possession). The subject and requested extensions are ignored: profiles decide those.
pub fn verify_csr(der: &[u8]) -> Result<VerifiedCsr> {
    let what = "certificate signing request";
    let req = X509Req::from_der(der)
        .map_err(|e| FactoryError::openssl(format!("parsing the {what}"), e))?;
    let key = req
        .public_key()
        .map_err(|e| FactoryError::openssl(format!("reading the {what}'s public key"), e))?;
    let ok = req
        .verify(&key)
        .map_err(|e| FactoryError::openssl(format!("verifying the {what}"), e))?;
    if !ok {
        return Err(FactoryError::cert(
            what,
            "its signature does not verify with its public key (the key did not sign it)",
        ));
    }
    let spki_der = key
        .public_key_to_der()
        .map_err(|e| FactoryError::openssl("encoding the requested public key", e))?;
    Ok(VerifiedCsr { spki_der })
}

/// Reads a CSR from PEM or DER bytes.
pub fn csr_der_from_bytes(bytes: &[u8]) -> Result<Vec<u8>> {
    if bytes.windows(10).any(|w| w == b"-----BEGIN") {
        let req = X509Req::from_pem(bytes).map_err(|e| {
            FactoryError::openssl("parsing the certificate signing request (PEM)", e)
        })?;
        return req
            .to_der()
            .map_err(|e| FactoryError::openssl("encoding the certificate signing request", e));
    }
    Ok(bytes.to_vec())
}
