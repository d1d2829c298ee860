//! Encryption: the content once, then the content-encryption key for every recipient in
//! parallel, then the DER-sorted RecipientInfos around it.

use std::sync::OnceLock;

use openssl::bn::BigNumContextRef;
use openssl::encrypt::Encrypter;
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Public};
use openssl::rsa::{Padding, Rsa};
use openssl::symm::Cipher;
use rayon::prelude::*;
use zeroize::Zeroizing;

use super::ecdh::{Ephemeral, thread_ctx};
use super::encode::{self, Rid};
use super::kdf::{KdfHash, WrapAlg, aes_wrap, shared_info, x963_kdf};
use super::pubkey::RecipientPublicKey;
use super::recipient::{Recipient, reject_duplicates};
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
    move |source| Error::crypto(action, source)
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
    match options.layout {
        RecipientLayout::Default => recipients
            .par_iter()
            .map_init(thread_ctx, |ctx, r| {
                let ctx = ctx
                    .as_mut()
                    .map_err(|e| crypto("out of memory")(e.clone()))?;
                match r.public_key() {
                    RecipientPublicKey::Rsa { key, .. } => ktri(r, key, cek, options),
                    RecipientPublicKey::Ec { curve, point } => {
                        let eph = Ephemeral::generate(*curve, ctx)
                            .map_err(crypto("failed to generate an ephemeral EC key"))?;
                        let rek = rek(r, &eph, point, cek, options.recipient_id, ctx)?;
                        Ok(encode::kari(&eph.point, &rek))
                    }
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
                    infos.push(shared_kari(curve, &group, cek, options.recipient_id)?);
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
    let mut ctx = thread_ctx().map_err(crypto("out of memory"))?;
    let eph = Ephemeral::generate(curve, &mut ctx)
        .map_err(crypto("failed to generate an ephemeral EC key"))?;
    let reks: Vec<Vec<u8>> = group
        .par_iter()
        .map_init(thread_ctx, |ctx, r| {
            let ctx = ctx
                .as_mut()
                .map_err(|e| crypto("out of memory")(e.clone()))?;
            let RecipientPublicKey::Ec { point, .. } = r.public_key() else {
                unreachable!("group holds EC recipients only")
            };
            rek(r, &eph, point, cek, id, ctx)
        })
        .collect::<Result<_>>()?;
    Ok(encode::kari(&eph.point, &reks.concat()))
}

/// ECDH with the recipient key, X9.63 SHA-1 KDF, AES-256 key wrap of the CEK: one encoded
/// RecipientEncryptedKey.
fn rek(
    r: &Recipient,
    eph: &Ephemeral,
    peer: &[u8],
    cek: &[u8],
    id: RecipientIdKind,
    ctx: &mut BigNumContextRef,
) -> Result<Vec<u8>> {
    let run = |ctx: &mut BigNumContextRef| -> Result<Vec<u8>, ErrorStack> {
        let z = eph.shared_x(peer, ctx)?;
        let kek = x963_kdf(KdfHash::Sha1, &z, aes256_shared_info(), 32)?;
        aes_wrap(WrapAlg::Aes256, &kek, cek)
    };
    let wrapped = run(ctx).map_err(crypto("ECDH key agreement failed"))?;
    let mut out = Vec::with_capacity(encode::rek_len(rid(r, id)));
    encode::put_rek(&mut out, rid(r, id), &wrapped);
    Ok(out)
}

fn ktri(r: &Recipient, key: &Rsa<Public>, cek: &[u8], options: &EncryptOptions) -> Result<Vec<u8>> {
    let (encrypted, alg) = match options.rsa_padding {
        RsaPadding::Pkcs1v15 => {
            let mut out = vec![0u8; key.size() as usize];
            let n = key
                .public_encrypt(cek, &mut out, Padding::PKCS1)
                .map_err(crypto("RSA key transport failed"))?;
            out.truncate(n);
            (out, oids::ALG_RSA_ENCRYPTION)
        }
        RsaPadding::OaepSha256 => (
            rsa_oaep_sha256(key, cek).map_err(crypto("RSA-OAEP key transport failed"))?,
            oids::ALG_RSAES_OAEP_SHA256,
        ),
    };
    Ok(encode::ktri(rid(r, options.recipient_id), alg, &encrypted))
}

fn rsa_oaep_sha256(key: &Rsa<Public>, cek: &[u8]) -> Result<Vec<u8>, ErrorStack> {
    let pkey = PKey::from_rsa(key.clone())?;
    let mut enc = Encrypter::new(&pkey)?;
    enc.set_rsa_padding(Padding::PKCS1_OAEP)?;
    enc.set_rsa_oaep_md(MessageDigest::sha256())?;
    enc.set_rsa_mgf1_md(MessageDigest::sha256())?;
    let mut out = vec![0u8; enc.encrypt_len(cek)?];
    let n = enc.encrypt(cek, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// The SharedInfo for AES-256 wrap without ukm (always the same 23 bytes).
fn aes256_shared_info() -> &'static [u8] {
    static SI: OnceLock<Vec<u8>> = OnceLock::new();
    SI.get_or_init(|| shared_info(&oids::ALG_STD_DH_SHA1_AES256_WRAP[13..], None, 32))
}
