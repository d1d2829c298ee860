//! CMS SignedData creation with a [`crate::keys::ContentSigner`], exactly as RAUC/OpenSSL emit it
//! (`rauc-format.md` §3.1, §3.6): version 1, SHA-256, `id-data` content inline (verity/crypt) or
//! detached (plain), certificates = signer + intermediates, one SignerInfo v1 with
//! issuerAndSerialNumber, DER-sorted signed attributes contentType + signingTime +
//! messageDigest, no SMIMECapabilities, no unsigned attributes.

use std::io::Read;
use std::time::SystemTime;

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Encode, Tag};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;

use super::{encode_time, oid};
use crate::keys::{ContentSigner, SignatureScheme};
use crate::{Error, Result};

/// What the signature covers.
#[derive(Debug, Clone, Copy)]
pub enum Content<'a> {
    /// Inline content (the external manifest of verity/crypt bundles), embedded as `eContent`.
    Inline(&'a [u8]),
    /// Detached content (the whole payload of plain bundles), given as its SHA-256.
    Detached {
        /// SHA-256 of the content.
        sha256: [u8; 32],
    },
}

/// The signer's certificate chain as it goes into the CMS.
#[derive(Debug, Clone, Copy)]
pub struct SignerCerts<'a> {
    /// The signer certificate (DER).
    pub certificate: &'a [u8],
    /// Intermediate certificates to embed (DER), as `--intermediate`.
    pub intermediates: &'a [Vec<u8>],
}

fn parse_cert(der: &[u8], what: &str) -> Result<Certificate> {
    Certificate::from_der(der).map_err(|e| Error::Certificate {
        what: format!("failed to parse {what} certificate: {e}"),
    })
}

fn sha256_alg() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: oid::SHA256,
        parameters: None,
    }
}

fn der_err(e: der::Error) -> Error {
    Error::CmsEncode {
        reason: e.to_string(),
    }
}

/// RSASSA-PSS-params { sha256, MGF1(sha256), saltLength 32 } as OpenSSL writes them (hash
/// AlgorithmIdentifiers without parameters, default trailer omitted).
const PSS_SHA256_PARAMS: &[u8] = &[
    0x30, 0x30, 0xa0, 0x0d, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
    0x01, 0xa1, 0x1a, 0x30, 0x18, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08,
    0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0xa2, 0x03, 0x02,
    0x01, 0x20,
];

/// The `signatureAlgorithm` of the SignerInfo for a scheme.
pub fn signature_algorithm(scheme: SignatureScheme) -> Result<AlgorithmIdentifierOwned> {
    Ok(match scheme {
        SignatureScheme::EcdsaSha256 => AlgorithmIdentifierOwned {
            oid: oid::ECDSA_WITH_SHA256,
            parameters: None,
        },
        SignatureScheme::RsaPkcs1Sha256 => AlgorithmIdentifierOwned {
            oid: oid::RSA_ENCRYPTION,
            parameters: Some(Any::new(Tag::Null, Vec::new()).map_err(der_err)?),
        },
        SignatureScheme::RsaPssSha256 => AlgorithmIdentifierOwned {
            oid: oid::RSASSA_PSS,
            parameters: Some(Any::from_der(PSS_SHA256_PARAMS).map_err(der_err)?),
        },
    })
}

fn attribute(oid: const_oid::ObjectIdentifier, value: Any) -> Result<Attribute> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value]).map_err(der_err)?,
    })
}

/// The signed attributes: contentType, signingTime, messageDigest (a DER SET, hence sorted).
fn signed_attributes(digest: &[u8; 32], time: SystemTime) -> Result<SetOfVec<Attribute>> {
    let content_type = attribute(
        oid::CONTENT_TYPE,
        Any::encode_from(&oid::DATA).map_err(der_err)?,
    )?;
    let signing_time = attribute(
        oid::SIGNING_TIME,
        Any::encode_from(&encode_time(time)?).map_err(der_err)?,
    )?;
    let message_digest = attribute(
        oid::MESSAGE_DIGEST,
        Any::new(Tag::OctetString, digest.to_vec()).map_err(der_err)?,
    )?;
    SetOfVec::try_from(vec![content_type, signing_time, message_digest]).map_err(der_err)
}

/// Builds a DER CMS SignedData over `content`, signed by `signer` at `signing_time`.
///
/// The signature is checked against the signer certificate's public key before returning, so a
/// certificate that does not belong to the key fails here ("key values mismatch", as OpenSSL).
pub fn sign(
    content: Content<'_>,
    signer: &dyn ContentSigner,
    certs: SignerCerts<'_>,
    signing_time: SystemTime,
) -> Result<Vec<u8>> {
    let cert = parse_cert(certs.certificate, "signer")?;
    let digest = match content {
        Content::Inline(bytes) => openssl::sha::sha256(bytes),
        Content::Detached { sha256 } => sha256,
    };
    let attrs = signed_attributes(&digest, signing_time)?;
    let to_be_signed = attrs.to_der().map_err(der_err)?;
    let signature = signer
        .sign(&to_be_signed)
        .map_err(|source| Error::Sign { source })?;
    check_signature(
        certs.certificate,
        signer.scheme(),
        &to_be_signed,
        &signature,
    )?;
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: sha256_alg(),
        signed_attrs: Some(attrs),
        signature_algorithm: signature_algorithm(signer.scheme())?,
        signature: OctetString::new(signature).map_err(der_err)?,
        unsigned_attrs: None,
    };
    let econtent = match content {
        Content::Inline(bytes) => {
            Some(Any::new(Tag::OctetString, bytes.to_vec()).map_err(der_err)?)
        }
        Content::Detached { .. } => None,
    };
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![sha256_alg()]).map_err(der_err)?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oid::DATA,
            econtent,
        },
        certificates: Some(certificate_set(cert, certs.intermediates)?),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info]).map_err(der_err)?),
    };
    let content_info = ContentInfo {
        content_type: oid::SIGNED_DATA,
        content: Any::encode_from(&signed_data).map_err(der_err)?,
    };
    content_info.to_der().map_err(der_err)
}

fn certificate_set(signer: Certificate, intermediates: &[Vec<u8>]) -> Result<CertificateSet> {
    let mut certs = vec![signer];
    for der in intermediates {
        let c = parse_cert(der, "intermediate")?;
        if !certs.contains(&c) {
            certs.push(c);
        }
    }
    let choices = certs
        .into_iter()
        .map(CertificateChoices::Certificate)
        .collect::<Vec<_>>();
    Ok(CertificateSet(
        SetOfVec::try_from(choices).map_err(der_err)?,
    ))
}

/// Verifies `signature` over `data` with the certificate's public key.
fn check_signature(
    cert_der: &[u8],
    scheme: SignatureScheme,
    data: &[u8],
    signature: &[u8],
) -> Result<()> {
    let mismatch = |detail: String| Error::Certificate {
        what: format!("failed to create signature: key values mismatch ({detail})"),
    };
    let x509 = openssl::x509::X509::from_der(cert_der)
        .map_err(|e| mismatch(format!("certificate: {e}")))?;
    let key = x509.public_key().map_err(|e| mismatch(e.to_string()))?;
    let mut verifier = openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &key)
        .map_err(|e| mismatch(e.to_string()))?;
    if scheme == SignatureScheme::RsaPssSha256 {
        verifier
            .set_rsa_padding(openssl::rsa::Padding::PKCS1_PSS)
            .and_then(|_| verifier.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::custom(32)))
            .and_then(|_| verifier.set_rsa_mgf1_md(openssl::hash::MessageDigest::sha256()))
            .map_err(|e| mismatch(e.to_string()))?;
    }
    match verifier.verify_oneshot(signature, data) {
        Ok(true) => Ok(()),
        Ok(false) => Err(mismatch(
            "signature does not verify with the certificate".into(),
        )),
        Err(e) => Err(mismatch(e.to_string())),
    }
}

/// SHA-256 of the first `len` bytes of `reader` (the payload of a plain bundle), streaming.
pub fn sha256_reader<R: Read>(reader: R, len: u64) -> Result<[u8; 32]> {
    let mut hasher = openssl::sha::Sha256::new();
    let mut limited = reader.take(len);
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = limited
            .read(&mut buf)
            .map_err(|e| Error::io("failed to read payload", "<bundle>", e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    if total != len {
        return Err(Error::size(format!(
            "payload ended after {total} of {len} bytes"
        )));
    }
    Ok(hasher.finish())
}
