//! CMS (RFC 5652) structures of a bundle: SignedData ([`signed`], [`verify`]) and EnvelopedData
//! ([`enveloped`]).
//!
//! This module holds what every CMS user needs: the object identifiers and a structural
//! inspection ([`inspect`]) that classifies a CMS and reads what can be read without keys (signer
//! count, detached or inline, signing time, embedded certificates). Structures are RustCrypto
//! `cms` 0.2 types; BER input (e.g. from `openssl cms -stream`) is normalized to DER by OpenSSL
//! first, as RAUC's `d2i_CMS_bio` accepts BER.

pub mod enveloped;
pub mod names;
pub mod signed;
pub mod verify;

use std::time::{Duration, SystemTime};

use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerInfo};
use const_oid::ObjectIdentifier;
use der::{Decode, Encode};

use crate::{Error, Result};

/// Object identifiers used by bundles.
pub mod oid {
    use const_oid::ObjectIdentifier as Oid;

    /// `id-data` (1.2.840.113549.1.7.1).
    pub const DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
    /// `id-signedData` (1.2.840.113549.1.7.2).
    pub const SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
    /// `id-envelopedData` (1.2.840.113549.1.7.3).
    pub const ENVELOPED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.3");
    /// `id-sha256`.
    pub const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
    /// `id-contentType` signed attribute.
    pub const CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
    /// `id-messageDigest` signed attribute.
    pub const MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
    /// `id-signingTime` signed attribute.
    pub const SIGNING_TIME: Oid = Oid::new_unwrap("1.2.840.113549.1.9.5");
    /// `ecdsa-with-SHA256`.
    pub const ECDSA_WITH_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
    /// `rsaEncryption` (PKCS#1 v1.5 signatures as OpenSSL's CMS writes them).
    pub const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
    /// `id-RSASSA-PSS`.
    pub const RSASSA_PSS: Oid = Oid::new_unwrap("1.2.840.113549.1.1.10");
    /// `id-mgf1`.
    pub const MGF1: Oid = Oid::new_unwrap("1.2.840.113549.1.1.8");
}

/// What kind of CMS a bundle carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmsKind {
    /// SignedData (inline for verity/crypt, detached for plain).
    Signed,
    /// EnvelopedData (`rauc encrypt`): the encrypted content is a complete SignedData.
    Enveloped,
}

/// What can be read from a SignedData without verifying it. `Debug` omits the content (a crypt
/// bundle's manifest holds the crypt key), which is zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedDataInfo {
    /// Whether the content is absent (detached signature: plain bundles).
    pub detached: bool,
    /// The encapsulated content type.
    pub econtent_type: ObjectIdentifier,
    /// The inline content (the external manifest), if any. Unauthenticated until verified.
    pub econtent: Option<zeroize::Zeroizing<Vec<u8>>>,
    /// Number of SignerInfos.
    pub signer_count: usize,
    /// The first signer's `signingTime` attribute, if present.
    pub signing_time: Option<SystemTime>,
    /// The embedded certificates (DER), in stored order.
    pub certificates: Vec<Vec<u8>>,
}

impl std::fmt::Debug for SignedDataInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedDataInfo")
            .field("detached", &self.detached)
            .field("econtent_type", &self.econtent_type)
            .field(
                "econtent",
                &self
                    .econtent
                    .as_ref()
                    .map(|c| format!("<{} bytes>", c.len())),
            )
            .field("signer_count", &self.signer_count)
            .field("signing_time", &self.signing_time)
            .field("certificates", &self.certificates.len())
            .finish()
    }
}

/// Re-encodes BER as DER through OpenSSL (which accepts both); DER passes through unchanged.
pub fn normalize_der(cms: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>> {
    if ContentInfo::from_der(cms).is_ok() {
        return Ok(std::borrow::Cow::Borrowed(cms));
    }
    let parsed = openssl::cms::CmsContentInfo::from_der(cms)
        .map_err(|e| Error::cms(format!("failed to parse signature: {e}")))?;
    let der = parsed
        .to_der()
        .map_err(|e| Error::cms(format!("failed to re-encode signature: {e}")))?;
    Ok(std::borrow::Cow::Owned(der))
}

/// Decodes the outer ContentInfo (BER accepted).
pub fn content_info(cms: &[u8]) -> Result<ContentInfo> {
    let der = normalize_der(cms)?;
    ContentInfo::from_der(&der).map_err(|e| Error::cms(format!("failed to parse signature: {e}")))
}

/// Classifies a CMS as SignedData or EnvelopedData; anything else is an error with RAUC's
/// wording.
pub fn classify(cms: &[u8]) -> Result<CmsKind> {
    kind_of(&content_info(cms)?)
}

fn kind_of(ci: &ContentInfo) -> Result<CmsKind> {
    match ci.content_type {
        oid::SIGNED_DATA => Ok(CmsKind::Signed),
        oid::ENVELOPED_DATA => Ok(CmsKind::Enveloped),
        other => Err(Error::cms(format!(
            "Expected CMS of type 'pkcs7-signedData' but got '{other}'"
        ))),
    }
}

/// Decodes a SignedData (BER accepted).
pub fn signed_data(cms: &[u8]) -> Result<SignedData> {
    let ci = content_info(cms)?;
    if kind_of(&ci)? != CmsKind::Signed {
        return Err(Error::cms(
            "Expected CMS of type 'pkcs7-signedData' but got 'pkcs7-envelopedData'",
        ));
    }
    ci.content
        .decode_as::<SignedData>()
        .map_err(|e| Error::cms(format!("failed to parse SignedData: {e}")))
}

/// Reads what a SignedData says about itself, without verifying anything.
pub fn inspect(cms: &[u8]) -> Result<SignedDataInfo> {
    let sd = signed_data(cms)?;
    let econtent = match &sd.encap_content_info.econtent {
        None => None,
        Some(any) => Some(zeroize::Zeroizing::new(
            any.decode_as::<der::asn1::OctetString>()
                .map_err(|e| Error::cms(format!("eContent is not an OCTET STRING: {e}")))?
                .into_bytes(),
        )),
    };
    let signers: Vec<&SignerInfo> = sd.signer_infos.0.iter().collect();
    let signing_time = match signers.first() {
        Some(si) => signing_time(si)?,
        None => None,
    };
    let mut certificates = Vec::new();
    for choice in sd.certificates.iter().flat_map(|c| c.0.iter()) {
        if let cms::cert::CertificateChoices::Certificate(cert) = choice {
            certificates.push(cert.to_der().map_err(|e| Error::cms(e.to_string()))?);
        }
    }
    Ok(SignedDataInfo {
        detached: econtent.is_none(),
        econtent_type: sd.encap_content_info.econtent_type,
        econtent,
        signer_count: signers.len(),
        signing_time,
        certificates,
    })
}

/// The `signingTime` signed attribute of a SignerInfo (UTCTime or GeneralizedTime).
pub fn signing_time(si: &SignerInfo) -> Result<Option<SystemTime>> {
    let Some(attrs) = &si.signed_attrs else {
        return Ok(None);
    };
    let Some(attr) = attrs.iter().find(|a| a.oid == oid::SIGNING_TIME) else {
        return Ok(None);
    };
    let value = attr
        .values
        .get(0)
        .ok_or_else(|| Error::cms("Failed to obtain bundle signing time value"))?;
    let der = value.to_der().map_err(|e| Error::cms(e.to_string()))?;
    let time = x509_cert::time::Time::from_der(&der)
        .map_err(|_| Error::cms("Bundle signing time attribute is not a time"))?;
    Ok(Some(SystemTime::UNIX_EPOCH + time.to_unix_duration()))
}

/// Encodes a time for the `signingTime` attribute as OpenSSL does: UTCTime before 2050,
/// GeneralizedTime from then on.
pub(crate) fn encode_time(time: SystemTime) -> Result<x509_cert::time::Time> {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| Error::cms("signing time before 1970"))?;
    let since = Duration::from_secs(since.as_secs());
    if let Ok(utc) = der::asn1::UtcTime::from_unix_duration(since) {
        return Ok(x509_cert::time::Time::UtcTime(utc));
    }
    der::asn1::GeneralizedTime::from_unix_duration(since)
        .map(x509_cert::time::Time::GeneralTime)
        .map_err(|e| Error::cms(format!("signing time out of range: {e}")))
}
