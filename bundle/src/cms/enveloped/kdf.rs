//! The software half of KeyAgreeRecipientInfo: ECC-CMS-SharedInfo, the ANSI X9.63 KDF and
//! AES key wrap (RFC 3394), as in `rauc-format.md` §5.3.

use std::sync::OnceLock;

use openssl::cipher::{Cipher, CipherRef};
use openssl::cipher_ctx::CipherCtx;
use openssl::error::ErrorStack;
use openssl::hash::{Hasher, MessageDigest};
use zeroize::Zeroizing;

use super::tlv::{put_header, put_tlv, tag, tlv_len};

/// The hash of a `dhSinglePass-stdDH-sha*kdf-scheme`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KdfHash {
    /// SHA-1 (what OpenSSL and rauc use).
    Sha1,
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl KdfHash {
    fn digest(self) -> MessageDigest {
        match self {
            KdfHash::Sha1 => MessageDigest::sha1(),
            KdfHash::Sha224 => MessageDigest::sha224(),
            KdfHash::Sha256 => MessageDigest::sha256(),
            KdfHash::Sha384 => MessageDigest::sha384(),
            KdfHash::Sha512 => MessageDigest::sha512(),
        }
    }
}

/// An AES key-wrap algorithm (`id-aes*-wrap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WrapAlg {
    /// `id-aes128-wrap`.
    Aes128,
    /// `id-aes192-wrap`.
    Aes192,
    /// `id-aes256-wrap`.
    Aes256,
}

impl WrapAlg {
    /// KEK length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            WrapAlg::Aes128 => 16,
            WrapAlg::Aes192 => 24,
            WrapAlg::Aes256 => 32,
        }
    }

    fn cipher(self) -> &'static CipherRef {
        static CIPHERS: [OnceLock<Option<Cipher>>; 3] =
            [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        let (i, name) = match self {
            WrapAlg::Aes128 => (0, "AES-128-WRAP"),
            WrapAlg::Aes192 => (1, "AES-192-WRAP"),
            WrapAlg::Aes256 => (2, "AES-256-WRAP"),
        };
        CIPHERS[i]
            .get_or_init(|| Cipher::fetch(None, name, None).ok())
            .as_deref()
            .expect("OpenSSL 3 provides the AES key-wrap ciphers")
    }
}

/// DER `ECC-CMS-SharedInfo` (RFC 5753): `keyInfo` is the wrap AlgorithmIdentifier exactly as it
/// appears in the KARI, `entityUInfo` the optional ukm, `suppPubInfo` the KEK length in bits.
pub(crate) fn shared_info(wrap_alg_tlv: &[u8], ukm: Option<&[u8]>, kek_len: usize) -> Vec<u8> {
    let bits = u32::try_from(kek_len * 8).unwrap_or(u32::MAX).to_be_bytes();
    let ukm_len = ukm.map_or(0, |u| tlv_len(tlv_len(u.len())));
    let content_len = wrap_alg_tlv.len() + ukm_len + tlv_len(tlv_len(4));
    let mut out = Vec::with_capacity(tlv_len(content_len));
    put_header(&mut out, tag::SEQUENCE, content_len);
    out.extend_from_slice(wrap_alg_tlv);
    if let Some(ukm) = ukm {
        put_header(&mut out, tag::CTX0_C, tlv_len(ukm.len()));
        put_tlv(&mut out, tag::OCTET_STRING, ukm);
    }
    put_header(&mut out, tag::CTX2_C, tlv_len(4));
    put_tlv(&mut out, tag::OCTET_STRING, &bits);
    out
}

/// ANSI X9.63 KDF: `H(Z ‖ counter ‖ SharedInfo)` for counter = 1, 2, … (u32 BE), truncated.
pub(crate) fn x963_kdf(
    hash: KdfHash,
    z: &[u8],
    shared_info: &[u8],
    out_len: usize,
) -> Result<Zeroizing<Vec<u8>>, ErrorStack> {
    let mut out = Zeroizing::new(Vec::with_capacity(out_len + 64));
    let mut counter: u32 = 1;
    while out.len() < out_len {
        if hash == KdfHash::Sha1 {
            // The low-level SHA-1 avoids OpenSSL 3's per-call provider fetch.
            let mut h = openssl::sha::Sha1::new();
            h.update(z);
            h.update(&counter.to_be_bytes());
            h.update(shared_info);
            out.extend_from_slice(&h.finish());
            counter += 1;
            continue;
        }
        let mut h = Hasher::new(hash.digest())?;
        h.update(z)?;
        h.update(&counter.to_be_bytes())?;
        h.update(shared_info)?;
        let block = h.finish()?;
        out.extend_from_slice(&block);
        counter += 1;
    }
    out.truncate(out_len);
    Ok(out)
}

/// AES key wrap (RFC 3394, default IV) of `key` under `kek`.
pub(crate) fn aes_wrap(wrap: WrapAlg, kek: &[u8], key: &[u8]) -> Result<Vec<u8>, ErrorStack> {
    let mut ctx = CipherCtx::new()?;
    ctx.encrypt_init(Some(wrap.cipher()), Some(kek), None)?;
    let mut out = vec![0u8; key.len() + 16];
    let n = ctx.cipher_update(key, Some(&mut out))?;
    let m = ctx.cipher_final(&mut out[n..])?;
    out.truncate(n + m);
    Ok(out)
}

/// AES key unwrap (RFC 3394); `None` when the integrity check fails (wrong KEK or tampering).
pub(crate) fn aes_unwrap(wrap: WrapAlg, kek: &[u8], wrapped: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if wrapped.len() < 24 || !wrapped.len().is_multiple_of(8) {
        return None;
    }
    let mut ctx = CipherCtx::new().ok()?;
    ctx.decrypt_init(Some(wrap.cipher()), Some(kek), None)
        .ok()?;
    let mut out = Zeroizing::new(vec![0u8; wrapped.len() + 16]);
    let result = ctx
        .cipher_update(wrapped, Some(&mut out))
        .and_then(|n| Ok(n + ctx.cipher_final(&mut out[n..])?));
    match result {
        Ok(n) => {
            out.truncate(n);
            Some(out)
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cms::enveloped::oids;

    const WRAP_ALG: &[u8] = &[
        0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2d,
    ];

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// `rauc-format.md` §5.3: the KARI vector of `good-crypt-bundle-encrypted.raucb`.
    #[test]
    fn rauc_fixture_kdf_and_unwrap_vector() {
        let z = h("790e66ded9b102ebaf6c96b3e5a73f05713b479fea46bcf08aef7fb0bb3455b6");
        let si = shared_info(WRAP_ALG, None, 32);
        assert_eq!(si, h("3015300b060960864801650304012da206040400000100"));
        let kek = x963_kdf(KdfHash::Sha1, &z, &si, 32).unwrap();
        assert_eq!(
            kek.as_slice(),
            h("5e720da100fd4446741d3b67d21ba9b8f3bad639e2771240da3f431b2addfb2b")
        );
        let wrapped =
            h("27b1bd508664915215964a4fd53c9634e1967130c21ab0bca29aa07ab983fa8cefca5aa0ad9a0274");
        let cek = aes_unwrap(WrapAlg::Aes256, &kek, &wrapped).unwrap();
        assert_eq!(
            cek.as_slice(),
            h("ed89c6b5f3813b9df2e5cd03f689853f2843c0a3a8c4c4a92f4195ccd328e0a5")
        );
        assert_eq!(aes_wrap(WrapAlg::Aes256, &kek, &cek).unwrap(), wrapped);
    }

    #[test]
    fn unwrap_detects_wrong_kek_and_tampering() {
        let kek = [7u8; 32];
        let wrapped = aes_wrap(WrapAlg::Aes256, &kek, &[1u8; 32]).unwrap();
        assert_eq!(wrapped.len(), 40);
        assert!(aes_unwrap(WrapAlg::Aes256, &[8u8; 32], &wrapped).is_none());
        let mut bad = wrapped.clone();
        bad[5] ^= 1;
        assert!(aes_unwrap(WrapAlg::Aes256, &kek, &bad).is_none());
        assert!(aes_unwrap(WrapAlg::Aes256, &kek, &wrapped[..39]).is_none());
    }

    #[test]
    fn shared_info_with_ukm_and_longer_kdf_output() {
        let si = shared_info(WRAP_ALG, Some(b"ukm"), 16);
        assert_eq!(si[0], 0x30);
        assert!(si.windows(5).any(|w| w == [0xa0, 0x05, 0x04, 0x03, b'u']));
        let out = x963_kdf(KdfHash::Sha256, b"z", &si, 80).unwrap();
        assert_eq!(out.len(), 80);
        let _ = oids::AES256_WRAP;
    }
}
