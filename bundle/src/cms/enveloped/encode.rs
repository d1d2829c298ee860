//! DER encoding of RecipientInfos and of the EnvelopedData around them, with an exact length
//! function next to every encoder (the size model uses the length functions only).

use super::oids;
use super::tlv::{put_header, put_tlv, tag, tlv_len};

/// Length of the wrapped 32-byte CEK (RFC 3394 adds 8 bytes).
pub(crate) const WRAPPED_CEK_LEN: usize = 40;
/// Content IV length (AES block).
pub(crate) const IV_LEN: usize = 16;

/// How a RecipientInfo names its certificate; the bytes are borrowed from the recipient.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rid<'a> {
    /// A DER `IssuerAndSerialNumber`.
    IssuerSerial(&'a [u8]),
    /// A subjectKeyIdentifier value.
    Ski(&'a [u8]),
}

/// KTRI `rid` length: `IssuerAndSerialNumber` or `[0] IMPLICIT SubjectKeyIdentifier`.
fn ktri_rid_len(rid: Rid<'_>) -> usize {
    match rid {
        Rid::IssuerSerial(d) => d.len(),
        Rid::Ski(s) => tlv_len(s.len()),
    }
}

/// KARI `rid` length: `IssuerAndSerialNumber` or `rKeyId [0] IMPLICIT RecipientKeyIdentifier`.
fn kari_rid_len(rid: Rid<'_>) -> usize {
    match rid {
        Rid::IssuerSerial(d) => d.len(),
        Rid::Ski(s) => tlv_len(tlv_len(s.len())),
    }
}

fn ktri_content_len(rid: Rid<'_>, alg: &[u8], ct_len: usize) -> usize {
    3 + ktri_rid_len(rid) + alg.len() + tlv_len(ct_len)
}

/// Encoded length of a KeyTransRecipientInfo.
pub(crate) fn ktri_len(rid: Rid<'_>, alg: &[u8], ct_len: usize) -> usize {
    tlv_len(ktri_content_len(rid, alg, ct_len))
}

/// Encodes a KeyTransRecipientInfo (version 0 with issuerAndSerialNumber, 2 with an SKI).
pub(crate) fn ktri(rid: Rid<'_>, alg: &[u8], encrypted_key: &[u8]) -> Vec<u8> {
    let content_len = ktri_content_len(rid, alg, encrypted_key.len());
    let mut out = Vec::with_capacity(tlv_len(content_len));
    put_header(&mut out, tag::SEQUENCE, content_len);
    match rid {
        Rid::IssuerSerial(d) => {
            put_tlv(&mut out, tag::INTEGER, &[0]);
            out.extend_from_slice(d);
        }
        Rid::Ski(s) => {
            put_tlv(&mut out, tag::INTEGER, &[2]);
            put_tlv(&mut out, tag::CTX0, s);
        }
    }
    out.extend_from_slice(alg);
    put_tlv(&mut out, tag::OCTET_STRING, encrypted_key);
    out
}

/// Encoded length of one RecipientEncryptedKey.
pub(crate) fn rek_len(rid: Rid<'_>) -> usize {
    tlv_len(kari_rid_len(rid) + tlv_len(WRAPPED_CEK_LEN))
}

/// Encodes one RecipientEncryptedKey and appends it to `out`.
pub(crate) fn put_rek(out: &mut Vec<u8>, rid: Rid<'_>, wrapped: &[u8]) {
    put_header(
        out,
        tag::SEQUENCE,
        kari_rid_len(rid) + tlv_len(wrapped.len()),
    );
    match rid {
        Rid::IssuerSerial(d) => out.extend_from_slice(d),
        Rid::Ski(s) => {
            put_header(out, tag::CTX0_C, tlv_len(s.len()));
            put_tlv(out, tag::OCTET_STRING, s);
        }
    }
    put_tlv(out, tag::OCTET_STRING, wrapped);
}

/// `[0] EXPLICIT originatorKey [1] { id-ecPublicKey, BIT STRING point }` length.
fn originator_len(point_len: usize) -> usize {
    let opk = oids::ALG_EC_PUBLIC_KEY_NO_PARAMS.len() + tlv_len(1 + point_len);
    tlv_len(tlv_len(opk))
}

fn kari_content_len(point_len: usize, reks_len: usize) -> usize {
    3 + originator_len(point_len) + oids::ALG_STD_DH_SHA1_AES256_WRAP.len() + tlv_len(reks_len)
}

/// Encoded length of a KeyAgreeRecipientInfo whose RecipientEncryptedKeys take `reks_len`
/// bytes together.
pub(crate) fn kari_len(point_len: usize, reks_len: usize) -> usize {
    tlv_len(kari_content_len(point_len, reks_len))
}

/// Encodes a KeyAgreeRecipientInfo `[1]` (version 3, originatorKey without parameters, no ukm,
/// stdDH-sha1kdf + aes256-wrap) around already encoded RecipientEncryptedKeys.
pub(crate) fn kari(point: &[u8], reks: &[u8]) -> Vec<u8> {
    let content_len = kari_content_len(point.len(), reks.len());
    let mut out = Vec::with_capacity(tlv_len(content_len));
    put_header(&mut out, tag::CTX1_C, content_len);
    put_tlv(&mut out, tag::INTEGER, &[3]);
    let opk = oids::ALG_EC_PUBLIC_KEY_NO_PARAMS.len() + tlv_len(1 + point.len());
    put_header(&mut out, tag::CTX0_C, tlv_len(opk));
    put_header(&mut out, tag::CTX1_C, opk);
    out.extend_from_slice(oids::ALG_EC_PUBLIC_KEY_NO_PARAMS);
    put_header(&mut out, tag::BIT_STRING, 1 + point.len());
    out.push(0);
    out.extend_from_slice(point);
    out.extend_from_slice(oids::ALG_STD_DH_SHA1_AES256_WRAP);
    put_tlv(&mut out, tag::SEQUENCE, reks);
    out
}

/// Length of the AES-256-CBC ciphertext (PKCS#7 padding always adds 1..=16 bytes).
pub(crate) fn ciphertext_len(content_len: usize) -> usize {
    (content_len / 16 + 1) * 16
}

fn eci_len(ct_len: usize) -> usize {
    let alg = tlv_len(oids::AES256_CBC.as_bytes().len()) + tlv_len(IV_LEN);
    tlv_len(tlv_len(oids::ID_DATA.as_bytes().len()) + tlv_len(alg) + tlv_len(ct_len))
}

fn enveloped_data_content_len(ris_len: usize, ct_len: usize) -> usize {
    3 + tlv_len(ris_len) + eci_len(ct_len)
}

fn enveloped_data_len(ris_len: usize, ct_len: usize) -> usize {
    tlv_len(enveloped_data_content_len(ris_len, ct_len))
}

/// Encoded length of the whole `ContentInfo(EnvelopedData)`.
pub(crate) fn content_info_len(ris_len: usize, ct_len: usize) -> usize {
    let oid = tlv_len(oids::ENVELOPED_DATA.as_bytes().len());
    tlv_len(oid + tlv_len(enveloped_data_len(ris_len, ct_len)))
}

/// Encodes `ContentInfo { envelopedData, [0] EnvelopedData }` around RecipientInfos that are
/// already DER-sorted.
pub(crate) fn content_info(version: u8, sorted_ris: &[Vec<u8>], iv: &[u8], ct: &[u8]) -> Vec<u8> {
    let ris_len: usize = sorted_ris.iter().map(Vec::len).sum();
    let total = content_info_len(ris_len, ct.len());
    let mut out = Vec::with_capacity(total);
    let oid = oids::ENVELOPED_DATA.as_bytes();
    let ed_len = enveloped_data_len(ris_len, ct.len());
    put_header(
        &mut out,
        tag::SEQUENCE,
        tlv_len(oid.len()) + tlv_len(ed_len),
    );
    put_tlv(&mut out, tag::OID, oid);
    put_header(&mut out, tag::CTX0_C, ed_len);
    put_header(
        &mut out,
        tag::SEQUENCE,
        enveloped_data_content_len(ris_len, ct.len()),
    );
    put_tlv(&mut out, tag::INTEGER, &[version]);
    put_header(&mut out, tag::SET, ris_len);
    for ri in sorted_ris {
        out.extend_from_slice(ri);
    }
    put_eci(&mut out, iv, ct);
    debug_assert_eq!(out.len(), total);
    out
}

fn put_eci(out: &mut Vec<u8>, iv: &[u8], ct: &[u8]) {
    let data = oids::ID_DATA.as_bytes();
    let cbc = oids::AES256_CBC.as_bytes();
    let alg = tlv_len(cbc.len()) + tlv_len(iv.len());
    put_header(
        out,
        tag::SEQUENCE,
        tlv_len(data.len()) + tlv_len(alg) + tlv_len(ct.len()),
    );
    put_tlv(out, tag::OID, data);
    put_header(out, tag::SEQUENCE, alg);
    put_tlv(out, tag::OID, cbc);
    put_tlv(out, tag::OCTET_STRING, iv);
    put_tlv(out, tag::CTX0, ct);
}
