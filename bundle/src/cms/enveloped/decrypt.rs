//! Decryption: find the recipient without the key, then exactly one private-key operation.

use openssl::cipher_ctx::CipherCtx;
use zeroize::Zeroizing;

use super::envelope::{
    ContentCipher, Envelope, KariView, KeyTransAlg, KtriView, RecipientInfoView, normalize,
    parse_envelope, view,
};
use super::kdf::{aes_unwrap, shared_info, x963_kdf};
use super::recipient::{CertIds, cert_ids_from_der};
use crate::cms::names::name_oneline;
use crate::keys::{KeyKind, RecipientKey, RsaPadding};
use crate::{Error, Result};

/// Decrypts a DER `ContentInfo(EnvelopedData)` with `key` and returns the content (the bundle's
/// DER SignedData).
///
/// With the key's certificate, the matching RecipientInfo is found by issuerAndSerialNumber or
/// subjectKeyIdentifier before the key is used, and exactly one private-key operation follows:
/// RSA decryption of the KTRI's key, or ECDH with the KARI's ephemeral key (then the X9.63 KDF
/// and AES key unwrap in software). A failed RSA decryption continues with a random key and
/// fails at the content step with the same error as a wrong key (Bleichenbacher
/// countermeasure). Without a certificate only RecipientInfos of the key's type and size are
/// tried, stopping at the first success (one ECDH covers every key of a compact KARI).
pub fn decrypt(envelope_der: &[u8], key: &dyn RecipientKey) -> Result<Zeroizing<Vec<u8>>> {
    let der = normalize(envelope_der)?;
    let env = parse_envelope(&der)?;
    match key.certificate_der() {
        Some(cert) => decrypt_with_certificate(&env, key, &cert),
        None => decrypt_by_trial(&env, key),
    }
}

/// The RecipientInfo (and, for a KARI, the RecipientEncryptedKey) meant for a certificate.
enum Target<'a> {
    Ktri(KtriView<'a>),
    Kari(KariView<'a>, usize),
}

fn decrypt_with_certificate(
    env: &Envelope<'_>,
    key: &dyn RecipientKey,
    cert: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let ids = cert_ids_from_der(cert).map_err(|reason| Error::InvalidRecipientCertificate {
        origin: "the decryption key's certificate".to_owned(),
        reason,
    })?;
    let Some(target) = find_target(env, &ids)? else {
        return Err(Error::NotARecipient {
            detail: format!(
                "no RecipientInfo names the certificate of issuer '{}' and its serial or key \
                 identifier; {} RecipientInfos checked",
                describe_issuer(&ids),
                env.recipient_infos.len()
            ),
        });
    };
    match target {
        Target::Ktri(ktri) => decrypt_ktri(env, key, &ktri),
        Target::Kari(kari, index) => {
            let kek = agree(key, &kari)?;
            let (_, wrapped) = kari.reks[index];
            let cek =
                aes_unwrap(kek.1, &kek.0, wrapped).ok_or_else(|| Error::EnvelopeTampered {
                    reason:
                        "AES key unwrap integrity check failed; the certificate may not belong \
                         to the key"
                            .to_owned(),
                })?;
            decrypt_content(env, &cek)
        }
    }
}

fn describe_issuer(ids: &CertIds) -> String {
    // IssuerAndSerialNumber ::= SEQUENCE { issuer Name, … }: print the Name.
    super::tlv::read_tlv(&ids.issuer_serial)
        .ok()
        .and_then(|(seq, _)| super::tlv::read_tlv(seq.content).ok())
        .and_then(|(name, _)| name_oneline(name.raw))
        .unwrap_or_else(|| "?".to_owned())
}

/// Scans the RecipientInfos for the certificate's ids; no key operation.
fn find_target<'a>(env: &Envelope<'a>, ids: &CertIds) -> Result<Option<Target<'a>>> {
    let ski = ids.ski.as_deref();
    for ri in &env.recipient_infos {
        match view(*ri)? {
            RecipientInfoView::Ktri(k) if k.rid.matches(&ids.issuer_serial, ski) => {
                return Ok(Some(Target::Ktri(k)));
            }
            RecipientInfoView::Kari(k) => {
                if let Some(i) = k
                    .reks
                    .iter()
                    .position(|(rid, _)| rid.matches(&ids.issuer_serial, ski))
                {
                    return Ok(Some(Target::Kari(k, i)));
                }
            }
            _ => {}
        }
    }
    Ok(None)
}

/// RSA key transport: one `rsa_decrypt`. Any failure becomes a random CEK, so a padding error
/// cannot be told apart from a wrong key (both fail at the content step).
fn decrypt_ktri(
    env: &Envelope<'_>,
    key: &dyn RecipientKey,
    ktri: &KtriView<'_>,
) -> Result<Zeroizing<Vec<u8>>> {
    let padding = ktri_padding(key, ktri)?;
    let cek_len = env.cipher.key_len();
    let mut random = Zeroizing::new(vec![0u8; cek_len]);
    openssl::rand::rand_bytes(&mut random)
        .map_err(super::encrypt::crypto("failed to draw random bytes"))?;
    let (cek, genuine) = match key.rsa_decrypt(ktri.encrypted_key, padding) {
        Ok(k) if k.len() == cek_len => (k, true),
        _ => (random, false),
    };
    let content = decrypt_content(env, &cek);
    match content {
        Ok(c) if genuine => Ok(c),
        _ => Err(Error::EnvelopeTampered {
            reason: "content decryption failed (for an RSA recipient this is also how a failed \
                     RSA decryption by the key is reported)"
                .to_owned(),
        }),
    }
}

fn ktri_padding(key: &dyn RecipientKey, ktri: &KtriView<'_>) -> Result<RsaPadding> {
    if !matches!(key.kind(), KeyKind::Rsa { .. }) {
        return Err(Error::NotARecipient {
            detail: "the certificate names an RSA (key transport) recipient but the key is not RSA"
                .to_owned(),
        });
    }
    match ktri.alg {
        KeyTransAlg::RsaPkcs1 => Ok(RsaPadding::Pkcs1v15),
        KeyTransAlg::RsaOaepSha256 => Ok(RsaPadding::OaepSha256),
        KeyTransAlg::Unsupported => Err(Error::UnsupportedEnvelopeAlgorithm {
            what: "key-transport algorithm",
            name: super::oids::openssl_long_name(ktri.alg_oid),
        }),
    }
}

/// ECDH with the KARI's ephemeral key (the one key operation), then the KDF: returns the KEK.
fn agree(
    key: &dyn RecipientKey,
    kari: &KariView<'_>,
) -> Result<(Zeroizing<Vec<u8>>, super::kdf::WrapAlg)> {
    let KeyKind::Ec(curve) = key.kind() else {
        return Err(Error::NotARecipient {
            detail: "the certificate names an EC (key agreement) recipient but the key is not EC"
                .to_owned(),
        });
    };
    let Some((hash, wrap, wrap_tlv)) = kari.scheme else {
        return Err(Error::UnsupportedEnvelopeAlgorithm {
            what: "key-agreement algorithm",
            name: super::oids::openssl_long_name(kari.alg_oid),
        });
    };
    let point = kari
        .originator_point
        .ok_or_else(|| Error::UnsupportedEnvelopeAlgorithm {
            what: "originator",
            name: "a static originator key (only ephemeral originatorKey is supported)".to_owned(),
        })?;
    if point.len() != 1 + 2 * curve.field_bytes() {
        return Err(Error::NotARecipient {
            detail: format!("the ephemeral key is not on the key's curve {curve:?}"),
        });
    }
    let z = key.ecdh(point).map_err(|source| Error::KeyOperation {
        operation: "ECDH",
        source,
    })?;
    if z.len() != curve.field_bytes() {
        return Err(Error::KeyOperation {
            operation: "ECDH",
            source: format!(
                "the key returned {} bytes instead of {}",
                z.len(),
                curve.field_bytes()
            )
            .into(),
        });
    }
    let si = shared_info(wrap_tlv, kari.ukm, wrap.key_len());
    let kek = x963_kdf(hash, &z, &si, wrap.key_len())
        .map_err(super::encrypt::crypto("key derivation failed"))?;
    Ok((kek, wrap))
}

/// Without a certificate: try RecipientInfos of the key's type (and size) until one works.
fn decrypt_by_trial(env: &Envelope<'_>, key: &dyn RecipientKey) -> Result<Zeroizing<Vec<u8>>> {
    let kind = key.kind();
    let mut candidates = Vec::new();
    for ri in &env.recipient_infos {
        match (view(*ri)?, kind) {
            (RecipientInfoView::Ktri(k), KeyKind::Rsa { bits })
                if k.encrypted_key.len() == (bits as usize).div_ceil(8)
                    && k.alg != KeyTransAlg::Unsupported =>
            {
                candidates.push(Target::Ktri(k));
            }
            (RecipientInfoView::Kari(k), KeyKind::Ec(curve))
                if k.originator_point
                    .is_some_and(|p| p.len() == 1 + 2 * curve.field_bytes())
                    && k.scheme.is_some() =>
            {
                candidates.push(Target::Kari(k, 0));
            }
            _ => {}
        }
    }
    tracing::info!(
        candidates = candidates.len(),
        recipient_infos = env.recipient_infos.len(),
        key = ?kind,
        "no certificate for the decryption key: trying the recipients of its type, one private-key \
         operation each, until one works"
    );
    let tried = candidates.len();
    for (n, target) in candidates.into_iter().enumerate() {
        if let Some(content) = try_candidate(env, key, target)? {
            tracing::info!(attempts = n + 1, "decrypted CMS EnvelopedData");
            return Ok(content);
        }
    }
    let kind = match kind {
        KeyKind::Rsa { bits } => format!("RSA-{bits}"),
        KeyKind::Ec(curve) => format!("EC {curve:?}"),
    };
    Err(Error::NotARecipient {
        detail: format!(
            "no certificate was given and none of the {tried} RecipientInfos of the key's type \
             ({kind}) could be decrypted with it; if the key is a recipient, the bundle is damaged \
             (give the key's certificate to tell the two apart)"
        ),
    })
}

fn try_candidate(
    env: &Envelope<'_>,
    key: &dyn RecipientKey,
    target: Target<'_>,
) -> Result<Option<Zeroizing<Vec<u8>>>> {
    match target {
        Target::Ktri(k) => {
            let padding = ktri_padding(key, &k)?;
            match key.rsa_decrypt(k.encrypted_key, padding) {
                Ok(cek) if cek.len() == env.cipher.key_len() => Ok(decrypt_content(env, &cek).ok()),
                _ => Ok(None),
            }
        }
        Target::Kari(k, _) => {
            let (kek, wrap) = agree(key, &k)?;
            // One ECDH covers every RecipientEncryptedKey of this KARI (compact layout).
            for (_, wrapped) in &k.reks {
                if let Some(cek) = aes_unwrap(wrap, &kek, wrapped) {
                    return decrypt_content(env, &cek).map(Some);
                }
            }
            Ok(None)
        }
    }
}

/// AES-CBC decryption of the content with PKCS#7 padding removal.
fn decrypt_content(env: &Envelope<'_>, cek: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let bad = || Error::EnvelopeTampered {
        reason: "content decryption failed (bad padding)".to_owned(),
    };
    if cek.len() != env.cipher.key_len() {
        return Err(Error::EnvelopeTampered {
            reason: "the unwrapped content key has the wrong length".to_owned(),
        });
    }
    let cipher = match env.cipher {
        ContentCipher::Aes128 => openssl::cipher::Cipher::aes_128_cbc(),
        ContentCipher::Aes192 => openssl::cipher::Cipher::aes_192_cbc(),
        ContentCipher::Aes256 => openssl::cipher::Cipher::aes_256_cbc(),
    };
    let mut ctx = CipherCtx::new().map_err(super::encrypt::crypto("failed to set up AES"))?;
    ctx.decrypt_init(Some(cipher), Some(cek), Some(env.iv))
        .map_err(super::encrypt::crypto("failed to set up AES"))?;
    let mut out = Zeroizing::new(vec![0u8; env.ciphertext.len() + 16]);
    let n = ctx
        .cipher_update(env.ciphertext, Some(&mut out))
        .map_err(|_| bad())?;
    let m = ctx.cipher_final(&mut out[n..]).map_err(|_| bad())?;
    out.truncate(n + m);
    Ok(out)
}
