//! Encryption: the content once, then the content-encryption key for every recipient in
//! parallel, then the DER-sorted RecipientInfos around it.

use std::sync::OnceLock;

use openssl::bn::BigNumContext;
use openssl::derive::Deriver;
use openssl::ec::{EcGroup, EcKey, PointConversionForm};
use openssl::encrypt::Encrypter;
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private, Public};
use openssl::rsa::Padding;
use openssl::symm::Cipher;
use rayon::prelude::*;
use zeroize::Zeroizing;

use super::encode::{self, Rid};
use super::kdf::{KdfHash, WrapAlg, aes_wrap, shared_info, x963_kdf};
use super::recipient::{Recipient, RecipientPublicKey, reject_duplicates};
use super::{EncryptOptions, RecipientIdKind, RecipientLayout, oids};
use crate::keys::{EcCurve, RsaPadding};
use crate::{Error, Result};

/// Content-encryption key length (AES-256).
const CEK_LEN: usize = 32;

/// Encrypts `signed_data_der` (the bundle's DER SignedData) to every recipient and returns the
/// DER `ContentInfo(EnvelopedData)`.
///
/// The content is encrypted with AES-256-CBC under a fresh random key and IV (PKCS#7 padding).
/// RSA recipients get a KeyTransRecipientInfo (`options.rsa_padding`); EC recipients get
/// KeyAgreeRecipientInfos per `options.layout` (dhSinglePass-stdDH-sha1kdf-scheme, AES-256
/// key wrap). The per-recipient work runs on all cores. Fails without recipients, on
/// duplicate recipient ids and, for [`RecipientIdKind::SubjectKeyId`], on a certificate without
/// subjectKeyIdentifier.
pub fn encrypt(
    signed_data_der: &[u8],
    recipients: &[Recipient],
    options: &EncryptOptions,
) -> Result<Vec<u8>> {
    check_recipients(recipients, options.recipient_id)?;
    let mut cek = Zeroizing::new([0u8; CEK_LEN]);
    let mut iv = [0u8; encode::IV_LEN];
    openssl::rand::rand_bytes(cek.as_mut()).map_err(crypto("failed to draw the content key"))?;
    openssl::rand::rand_bytes(&mut iv).map_err(crypto("failed to draw the content IV"))?;
    let ct = openssl::symm::encrypt(
        Cipher::aes_256_cbc(),
        cek.as_ref(),
        Some(&iv),
        signed_data_der,
    )
    .map_err(crypto("failed to encrypt the content"))?;
    let mut infos = recipient_infos(recipients, cek.as_ref(), options)?;
    infos.par_sort_unstable();
    let all_v0 = options.recipient_id == RecipientIdKind::IssuerAndSerial
        && recipients
            .iter()
            .all(|r| matches!(r.public_key(), RecipientPublicKey::Rsa { .. }));
    let version = if all_v0 { 0 } else { 2 };
    let der = encode::content_info(version, &infos, &iv, &ct);
    tracing::debug!(
        recipients = recipients.len(),
        recipient_infos = infos.len(),
        layout = %options.layout,
        bytes = der.len(),
        "encrypted CMS EnvelopedData"
    );
    Ok(der)
}

/// Rejects an empty recipient list, missing subjectKeyIdentifiers and duplicate ids.
pub(crate) fn check_recipients(recipients: &[Recipient], id: RecipientIdKind) -> Result<()> {
    if recipients.is_empty() {
        return Err(Error::NoRecipients);
    }
    reject_duplicates(
        recipients,
        |r| Some(r.issuer_and_serial_der()),
        "same issuer and serial number",
    )?;
    if id == RecipientIdKind::SubjectKeyId {
        if let Some(r) = recipients
            .iter()
            .find(|r| r.subject_key_identifier().is_none())
        {
            return Err(Error::RecipientWithoutSki {
                origin: r.origin().to_owned(),
                subject: r.subject().to_owned(),
            });
        }
        reject_duplicates(
            recipients,
            Recipient::subject_key_identifier,
            "same subjectKeyIdentifier",
        )?;
    }
    Ok(())
}

pub(crate) fn crypto(action: &'static str) -> impl FnOnce(ErrorStack) -> Error {
    move |source| Error::Crypto { action, source }
}

/// The recipient id of `r` for `kind` (the SKI was checked to exist).
pub(crate) fn rid(r: &Recipient, kind: RecipientIdKind) -> Rid<'_> {
    match (kind, r.subject_key_identifier()) {
        (RecipientIdKind::SubjectKeyId, Some(ski)) => Rid::Ski(ski),
        _ => Rid::IssuerSerial(r.issuer_and_serial_der()),
    }
}

fn recipient_infos(
    recipients: &[Recipient],
    cek: &[u8],
    options: &EncryptOptions,
) -> Result<Vec<Vec<u8>>> {
    let id = options.recipient_id;
    match options.layout {
        RecipientLayout::Default => recipients
            .par_iter()
            .map(|r| match r.public_key() {
                RecipientPublicKey::Rsa { key, .. } => ktri(r, key, cek, options),
                RecipientPublicKey::Ec { curve, key } => {
                    let eph = Ephemeral::generate(*curve)?;
                    let wrapped = wrap_for(&eph.key, key, cek)?;
                    let mut rek = Vec::with_capacity(encode::rek_len(rid(r, id)));
                    encode::put_rek(&mut rek, rid(r, id), &wrapped);
                    Ok(encode::kari(&eph.point, &rek))
                }
            })
            .collect(),
        RecipientLayout::Compact => {
            let mut infos: Vec<Vec<u8>> = recipients
                .par_iter()
                .filter_map(|r| match r.public_key() {
                    RecipientPublicKey::Rsa { key, .. } => Some(ktri(r, key, cek, options)),
                    RecipientPublicKey::Ec { .. } => None,
                })
                .collect::<Result<_>>()?;
            for curve in [EcCurve::P256, EcCurve::P384] {
                let group: Vec<&Recipient> = recipients
                    .iter()
                    .filter(|r| r.kind() == crate::keys::KeyKind::Ec(curve))
                    .collect();
                if !group.is_empty() {
                    infos.push(shared_kari(curve, &group, cek, id)?);
                }
            }
            Ok(infos)
        }
    }
}

/// One KARI with a single ephemeral key for every recipient in `group` (same curve).
fn shared_kari(
    curve: EcCurve,
    group: &[&Recipient],
    cek: &[u8],
    id: RecipientIdKind,
) -> Result<Vec<u8>> {
    let eph = Ephemeral::generate(curve)?;
    let reks: Vec<Vec<u8>> = group
        .par_iter()
        .map(|r| {
            let RecipientPublicKey::Ec { key, .. } = r.public_key() else {
                unreachable!("group holds EC recipients only")
            };
            let wrapped = wrap_for(&eph.key, key, cek)?;
            let mut rek = Vec::with_capacity(encode::rek_len(rid(r, id)));
            encode::put_rek(&mut rek, rid(r, id), &wrapped);
            Ok(rek)
        })
        .collect::<Result<_>>()?;
    Ok(encode::kari(&eph.point, &reks.concat()))
}

fn ktri(
    r: &Recipient,
    key: &PKey<Public>,
    cek: &[u8],
    options: &EncryptOptions,
) -> Result<Vec<u8>> {
    let (padding, alg) = match options.rsa_padding {
        RsaPadding::Pkcs1v15 => (Padding::PKCS1, oids::ALG_RSA_ENCRYPTION),
        RsaPadding::OaepSha256 => (Padding::PKCS1_OAEP, oids::ALG_RSAES_OAEP_SHA256),
    };
    let encrypted = rsa_encrypt(key, padding, cek).map_err(crypto("RSA key transport failed"))?;
    Ok(encode::ktri(rid(r, options.recipient_id), alg, &encrypted))
}

fn rsa_encrypt(key: &PKey<Public>, padding: Padding, cek: &[u8]) -> Result<Vec<u8>, ErrorStack> {
    let mut enc = Encrypter::new(key)?;
    enc.set_rsa_padding(padding)?;
    if padding == Padding::PKCS1_OAEP {
        enc.set_rsa_oaep_md(MessageDigest::sha256())?;
        enc.set_rsa_mgf1_md(MessageDigest::sha256())?;
    }
    let mut out = vec![0u8; enc.encrypt_len(cek)?];
    let n = enc.encrypt(cek, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// An ephemeral EC key and its uncompressed public point.
struct Ephemeral {
    key: PKey<Private>,
    point: Vec<u8>,
}

impl Ephemeral {
    fn generate(curve: EcCurve) -> Result<Self> {
        let group = group(curve)?;
        let make = || -> Result<Self, ErrorStack> {
            let ec = EcKey::generate(group)?;
            let mut ctx = BigNumContext::new()?;
            let point =
                ec.public_key()
                    .to_bytes(group, PointConversionForm::UNCOMPRESSED, &mut ctx)?;
            Ok(Ephemeral {
                key: PKey::from_ec_key(ec)?,
                point,
            })
        };
        make().map_err(crypto("failed to generate an ephemeral EC key"))
    }
}

/// The (cached) OpenSSL group of a curve.
pub(crate) fn group(curve: EcCurve) -> Result<&'static EcGroup> {
    static GROUPS: [OnceLock<Option<EcGroup>>; 2] = [OnceLock::new(), OnceLock::new()];
    let (i, nid) = match curve {
        EcCurve::P256 => (0, Nid::X9_62_PRIME256V1),
        EcCurve::P384 => (1, Nid::SECP384R1),
    };
    GROUPS[i]
        .get_or_init(|| EcGroup::from_curve_name(nid).ok())
        .as_ref()
        .ok_or_else(|| Error::Crypto {
            action: "failed to load an EC curve",
            source: ErrorStack::get(),
        })
}

/// ECDH with the recipient key, X9.63 SHA-1 KDF, AES-256 key wrap of the CEK.
fn wrap_for(eph: &PKey<Private>, peer: &PKey<Public>, cek: &[u8]) -> Result<Vec<u8>> {
    let run = || -> Result<Vec<u8>, ErrorStack> {
        let mut deriver = Deriver::new(eph)?;
        deriver.set_peer(peer)?;
        let z = Zeroizing::new(deriver.derive_to_vec()?);
        let kek = x963_kdf(KdfHash::Sha1, &z, aes256_shared_info(), 32)?;
        aes_wrap(WrapAlg::Aes256, &kek, cek)
    };
    run().map_err(crypto("ECDH key agreement failed"))
}

/// The SharedInfo for AES-256 wrap without ukm (always the same 23 bytes).
fn aes256_shared_info() -> &'static [u8] {
    static SI: OnceLock<Vec<u8>> = OnceLock::new();
    SI.get_or_init(|| shared_info(&oids::ALG_STD_DH_SHA1_AES256_WRAP[13..], None, 32))
}
