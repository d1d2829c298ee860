//! Reading an EnvelopedData: a borrowed view of its parts, and of each RecipientInfo, without
//! copying or re-encoding anything (a compact envelope may name 100,000 recipients).

use std::borrow::Cow;

use super::kdf::{KdfHash, WrapAlg};
use super::oids;
use super::tlv::{DerError, Reader, Tlv, read_tlv, small_uint, tag};
use crate::{Error, Result};

/// The content cipher of the EncryptedContentInfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContentCipher {
    /// `aes-128-cbc`.
    Aes128,
    /// `aes-192-cbc`.
    Aes192,
    /// `aes-256-cbc`.
    Aes256,
}

impl ContentCipher {
    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            ContentCipher::Aes128 => 16,
            ContentCipher::Aes192 => 24,
            ContentCipher::Aes256 => 32,
        }
    }
}

/// The parts of a `ContentInfo(EnvelopedData)`.
#[derive(Debug)]
pub(crate) struct Envelope<'a> {
    /// The RecipientInfo elements, in SET order.
    pub recipient_infos: Vec<Tlv<'a>>,
    /// The content cipher.
    pub cipher: ContentCipher,
    /// The content IV.
    pub iv: &'a [u8],
    /// The encrypted content.
    pub ciphertext: &'a [u8],
}

fn tampered(e: DerError) -> Error {
    Error::EnvelopeTampered {
        reason: format!("malformed EnvelopedData: {}", e.0),
    }
}

/// Returns DER for `der`: itself if it is DER, else OpenSSL's re-encoding of a BER CMS (as
/// `openssl cms -stream` writes it).
pub(crate) fn normalize(der: &[u8]) -> Result<Cow<'_, [u8]>> {
    if parse_envelope(der).is_ok() {
        return Ok(Cow::Borrowed(der));
    }
    match openssl::cms::CmsContentInfo::from_der(der).and_then(|c| c.to_der()) {
        Ok(re) if re != der => Ok(Cow::Owned(re)),
        _ => Ok(Cow::Borrowed(der)),
    }
}

/// Splits a DER `ContentInfo(EnvelopedData)` into its parts.
pub(crate) fn parse_envelope(der: &[u8]) -> Result<Envelope<'_>> {
    let (ci, rest) = read_tlv(der).map_err(tampered)?;
    if ci.tag != tag::SEQUENCE || !rest.is_empty() {
        return Err(tampered(DerError("ContentInfo is not one SEQUENCE")));
    }
    let mut r = Reader::new(ci.content);
    let ct = r
        .expect(tag::OID, "ContentInfo without contentType")
        .map_err(tampered)?;
    if ct.content != oids::ENVELOPED_DATA.as_bytes() {
        let name = if ct.content == oids::SIGNED_DATA.as_bytes() {
            "pkcs7-signedData".to_owned()
        } else {
            oids::openssl_long_name(ct.content)
        };
        return Err(Error::NotEnvelopedData { content_type: name });
    }
    let explicit = r
        .expect(tag::CTX0_C, "ContentInfo without content")
        .map_err(tampered)?;
    r.finish("trailing data in ContentInfo").map_err(tampered)?;
    let (ed, rest) = read_tlv(explicit.content).map_err(tampered)?;
    if ed.tag != tag::SEQUENCE || !rest.is_empty() {
        return Err(tampered(DerError("EnvelopedData is not a SEQUENCE")));
    }
    parse_enveloped_data(ed.content)
}

fn parse_enveloped_data(content: &[u8]) -> Result<Envelope<'_>> {
    let mut r = Reader::new(content);
    let version = r
        .expect(tag::INTEGER, "EnvelopedData without version")
        .map_err(tampered)?;
    small_uint(&version).map_err(tampered)?;
    r.optional(tag::CTX0_C).map_err(tampered)?; // originatorInfo: not needed
    let set = r
        .expect(tag::SET, "EnvelopedData without RecipientInfos")
        .map_err(tampered)?;
    let mut recipient_infos = Vec::new();
    let mut ris = Reader::new(set.content);
    while !ris.is_empty() {
        recipient_infos.push(ris.any().map_err(tampered)?);
    }
    if recipient_infos.is_empty() {
        return Err(tampered(DerError(
            "EnvelopedData without any RecipientInfo",
        )));
    }
    let eci = r
        .expect(tag::SEQUENCE, "EnvelopedData without EncryptedContentInfo")
        .map_err(tampered)?;
    r.optional(tag::CTX1_C).map_err(tampered)?; // unprotectedAttrs: ignored
    r.finish("trailing data in EnvelopedData")
        .map_err(tampered)?;
    let (cipher, iv, ciphertext) = parse_eci(eci.content)?;
    Ok(Envelope {
        recipient_infos,
        cipher,
        iv,
        ciphertext,
    })
}

fn parse_eci(content: &[u8]) -> Result<(ContentCipher, &[u8], &[u8])> {
    let mut r = Reader::new(content);
    r.expect(tag::OID, "EncryptedContentInfo without contentType")
        .map_err(tampered)?;
    let alg = r
        .expect(tag::SEQUENCE, "missing content-encryption algorithm")
        .map_err(tampered)?;
    let mut a = Reader::new(alg.content);
    let oid = a
        .expect(tag::OID, "content-encryption algorithm without OID")
        .map_err(tampered)?;
    let cipher = match oid.content {
        c if c == oids::AES256_CBC.as_bytes() => ContentCipher::Aes256,
        c if c == oids::AES192_CBC.as_bytes() => ContentCipher::Aes192,
        c if c == oids::AES128_CBC.as_bytes() => ContentCipher::Aes128,
        other => {
            return Err(Error::UnsupportedEnvelopeAlgorithm {
                what: "content cipher",
                name: oids::openssl_long_name(other),
            });
        }
    };
    let iv = a
        .expect(tag::OCTET_STRING, "content cipher without IV")
        .map_err(tampered)?;
    if iv.content.len() != 16 {
        return Err(tampered(DerError("content IV is not 16 bytes")));
    }
    let ct = r
        .expect(tag::CTX0, "EnvelopedData without encrypted content")
        .map_err(tampered)?;
    if ct.content.is_empty() || !ct.content.len().is_multiple_of(16) {
        return Err(tampered(DerError(
            "encrypted content is not whole AES blocks",
        )));
    }
    Ok((cipher, iv.content, ct.content))
}

/// How a RecipientInfo names its certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RidView<'a> {
    /// `IssuerAndSerialNumber`: the whole TLV, the issuer `Name` TLV and the serial's content.
    IssuerSerial {
        raw: &'a [u8],
        issuer: &'a [u8],
        serial: &'a [u8],
    },
    /// A subjectKeyIdentifier.
    KeyId(&'a [u8]),
}

impl RidView<'_> {
    /// True if this id names the certificate with these identifiers.
    pub fn matches(&self, issuer_serial: &[u8], ski: Option<&[u8]>) -> bool {
        match self {
            RidView::IssuerSerial { raw, .. } => *raw == issuer_serial,
            RidView::KeyId(k) => ski == Some(*k),
        }
    }
}

fn issuer_serial(tlv: Tlv<'_>) -> std::result::Result<RidView<'_>, DerError> {
    let mut r = Reader::new(tlv.content);
    let issuer = r.expect(tag::SEQUENCE, "IssuerAndSerialNumber without issuer")?;
    let serial = r.expect(tag::INTEGER, "IssuerAndSerialNumber without serial")?;
    r.finish("trailing data in IssuerAndSerialNumber")?;
    Ok(RidView::IssuerSerial {
        raw: tlv.raw,
        issuer: issuer.raw,
        serial: serial.content,
    })
}

/// The key-transport algorithm of a KTRI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyTransAlg {
    /// `rsaEncryption`.
    RsaPkcs1,
    /// `id-RSAES-OAEP` with SHA-256 and MGF1-SHA-256.
    RsaOaepSha256,
    /// Anything else (OAEP with other hashes, unknown OIDs).
    Unsupported,
}

/// A KeyTransRecipientInfo.
#[derive(Debug, Clone)]
pub(crate) struct KtriView<'a> {
    pub rid: RidView<'a>,
    pub alg: KeyTransAlg,
    pub alg_oid: &'a [u8],
    pub encrypted_key: &'a [u8],
}

/// A KeyAgreeRecipientInfo.
#[derive(Debug, Clone)]
pub(crate) struct KariView<'a> {
    /// The ephemeral point, if the originator is an `originatorKey`.
    pub originator_point: Option<&'a [u8]>,
    pub ukm: Option<&'a [u8]>,
    pub alg_oid: &'a [u8],
    /// The KDF hash and wrap algorithm, if supported, with the wrap AlgorithmIdentifier TLV.
    pub scheme: Option<(KdfHash, WrapAlg, &'a [u8])>,
    pub reks: Vec<(RidView<'a>, &'a [u8])>,
}

/// One RecipientInfo.
#[derive(Debug, Clone)]
pub(crate) enum RecipientInfoView<'a> {
    Ktri(KtriView<'a>),
    Kari(KariView<'a>),
    /// KEKRecipientInfo, PasswordRecipientInfo, OtherRecipientInfo.
    Other,
}

/// Decodes one RecipientInfo element.
pub(crate) fn view(tlv: Tlv<'_>) -> Result<RecipientInfoView<'_>> {
    match tlv.tag {
        tag::SEQUENCE => parse_ktri(tlv.content).map(RecipientInfoView::Ktri),
        tag::CTX1_C => parse_kari(tlv.content).map(RecipientInfoView::Kari),
        _ => Ok(RecipientInfoView::Other),
    }
    .map_err(tampered)
}

fn parse_ktri(content: &[u8]) -> std::result::Result<KtriView<'_>, DerError> {
    let mut r = Reader::new(content);
    r.expect(tag::INTEGER, "KeyTransRecipientInfo without version")?;
    let rid = r.any()?;
    let rid = match rid.tag {
        tag::SEQUENCE => issuer_serial(rid)?,
        tag::CTX0 => RidView::KeyId(rid.content),
        _ => return Err(DerError("KeyTransRecipientInfo with an unknown rid")),
    };
    let alg = r.expect(tag::SEQUENCE, "KeyTransRecipientInfo without algorithm")?;
    let mut a = Reader::new(alg.content);
    let oid = a.expect(tag::OID, "key-transport algorithm without OID")?;
    let kind = if oid.content == oids::RSA_ENCRYPTION.as_bytes() {
        KeyTransAlg::RsaPkcs1
    } else if oid.content == oids::RSAES_OAEP.as_bytes() && oaep_is_sha256(&mut a) {
        KeyTransAlg::RsaOaepSha256
    } else {
        KeyTransAlg::Unsupported
    };
    let ek = r.expect(
        tag::OCTET_STRING,
        "KeyTransRecipientInfo without encryptedKey",
    )?;
    r.finish("trailing data in KeyTransRecipientInfo")?;
    Ok(KtriView {
        rid,
        alg: kind,
        alg_oid: oid.content,
        encrypted_key: ek.content,
    })
}

/// True for RSAES-OAEP-params `{ [0] sha256, [1] mgf1(sha256) }` (hash parameters absent or
/// NULL, no label).
fn oaep_is_sha256(params: &mut Reader<'_>) -> bool {
    let Ok(seq) = params.expect(tag::SEQUENCE, "OAEP parameters") else {
        return false;
    };
    let first_oid = |content: &[u8]| -> Option<Vec<u8>> {
        let (alg, _) = read_tlv(content).ok()?;
        let (oid, rest) = read_tlv(alg.content).ok()?;
        let rest_ok = rest.is_empty() || rest == [tag::NULL, 0];
        (oid.tag == tag::OID && rest_ok).then(|| oid.content.to_vec())
    };
    let mut r = Reader::new(seq.content);
    let sha256 = oids::SHA256.as_bytes();
    let Ok(Some(hash)) = r.optional(tag::CTX0_C) else {
        return false;
    };
    let Ok(Some(mgf)) = r.optional(tag::CTX1_C) else {
        return false;
    };
    let mgf_ok = read_tlv(mgf.content).ok().is_some_and(|(alg, _)| {
        let mut m = Reader::new(alg.content);
        m.expect(tag::OID, "mgf")
            .is_ok_and(|o| o.content == oids::MGF1.as_bytes())
            && m.any()
                .is_ok_and(|inner| first_oid(inner.raw).as_deref() == Some(sha256))
    });
    first_oid(hash.content).as_deref() == Some(sha256) && mgf_ok && r.is_empty()
}

fn parse_kari(content: &[u8]) -> std::result::Result<KariView<'_>, DerError> {
    let mut r = Reader::new(content);
    r.expect(tag::INTEGER, "KeyAgreeRecipientInfo without version")?;
    let orig = r.expect(tag::CTX0_C, "KeyAgreeRecipientInfo without originator")?;
    let originator_point = originator_point(orig.content)?;
    let ukm = match r.optional(tag::CTX1_C)? {
        Some(u) => Some(
            Reader::new(u.content)
                .expect(tag::OCTET_STRING, "bad ukm")?
                .content,
        ),
        None => None,
    };
    let alg = r.expect(tag::SEQUENCE, "KeyAgreeRecipientInfo without algorithm")?;
    let mut a = Reader::new(alg.content);
    let oid = a.expect(tag::OID, "key-agreement algorithm without OID")?;
    let wrap = a.optional(tag::SEQUENCE)?;
    let scheme = kdf_hash(oid.content)
        .zip(wrap.and_then(wrap_alg))
        .map(|(h, (w, t))| (h, w, t));
    let seq = r.expect(
        tag::SEQUENCE,
        "KeyAgreeRecipientInfo without RecipientEncryptedKeys",
    )?;
    r.finish("trailing data in KeyAgreeRecipientInfo")?;
    let mut reks = Vec::new();
    let mut rr = Reader::new(seq.content);
    while !rr.is_empty() {
        let rek = rr.expect(tag::SEQUENCE, "bad RecipientEncryptedKey")?;
        let mut k = Reader::new(rek.content);
        let rid = k.any()?;
        let rid = match rid.tag {
            tag::SEQUENCE => issuer_serial(rid)?,
            tag::CTX0_C => {
                let ski = Reader::new(rid.content).expect(tag::OCTET_STRING, "bad rKeyId")?;
                RidView::KeyId(ski.content)
            }
            _ => return Err(DerError("RecipientEncryptedKey with an unknown rid")),
        };
        let ek = k.expect(
            tag::OCTET_STRING,
            "RecipientEncryptedKey without encryptedKey",
        )?;
        k.finish("trailing data in RecipientEncryptedKey")?;
        reks.push((rid, ek.content));
    }
    Ok(KariView {
        originator_point,
        ukm,
        alg_oid: oid.content,
        scheme,
        reks,
    })
}

/// The uncompressed point of an `originatorKey`; `None` for other originator kinds.
fn originator_point(explicit: &[u8]) -> std::result::Result<Option<&[u8]>, DerError> {
    let (choice, rest) = read_tlv(explicit)?;
    if !rest.is_empty() {
        return Err(DerError("trailing data in originator"));
    }
    if choice.tag != tag::CTX1_C {
        return Ok(None);
    }
    let mut r = Reader::new(choice.content);
    let alg = r.expect(tag::SEQUENCE, "originatorKey without algorithm")?;
    let mut a = Reader::new(alg.content);
    let oid = a.expect(tag::OID, "originatorKey algorithm without OID")?;
    if oid.content != oids::EC_PUBLIC_KEY.as_bytes() {
        return Ok(None);
    }
    let bits = r.expect(tag::BIT_STRING, "originatorKey without public key")?;
    match bits.content.split_first() {
        Some((0, point)) if point.first() == Some(&4) => Ok(Some(point)),
        _ => Err(DerError("originatorKey is not an uncompressed EC point")),
    }
}

fn kdf_hash(oid: &[u8]) -> Option<KdfHash> {
    [
        (oids::STD_DH_SHA1_KDF, KdfHash::Sha1),
        (oids::STD_DH_SHA224_KDF, KdfHash::Sha224),
        (oids::STD_DH_SHA256_KDF, KdfHash::Sha256),
        (oids::STD_DH_SHA384_KDF, KdfHash::Sha384),
        (oids::STD_DH_SHA512_KDF, KdfHash::Sha512),
    ]
    .into_iter()
    .find(|(o, _)| o.as_bytes() == oid)
    .map(|(_, h)| h)
}

fn wrap_alg(alg: Tlv<'_>) -> Option<(WrapAlg, &[u8])> {
    let mut a = Reader::new(alg.content);
    let oid = a.expect(tag::OID, "wrap").ok()?;
    let w = [
        (oids::AES128_WRAP, WrapAlg::Aes128),
        (oids::AES192_WRAP, WrapAlg::Aes192),
        (oids::AES256_WRAP, WrapAlg::Aes256),
    ]
    .into_iter()
    .find(|(o, _)| o.as_bytes() == oid.content)?
    .1;
    Some((w, alg.raw))
}
