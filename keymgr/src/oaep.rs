//! OAEP (SHA-256, MGF1-SHA-256, empty label) decoding in software, for tokens that decrypt raw
//! RSA (`CKM_RSA_X_509`) but refuse `CKM_RSA_PKCS_OAEP` with SHA-256 — SoftHSM 2.6.1 accepts
//! only SHA-1 there (`C_DecryptInit` → `CKR_ARGUMENTS_BAD`). The check is OpenSSL's
//! constant-time `RSA_padding_check_PKCS1_OAEP_mgf1`.

use std::os::raw::c_int;

use openssl::hash::MessageDigest;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

unsafe extern "C" {
    // libcrypto (linked through openssl-sys); deprecated in OpenSSL 3 but exported.
    fn RSA_padding_check_PKCS1_OAEP_mgf1(
        to: *mut u8,
        tlen: c_int,
        from: *const u8,
        flen: c_int,
        num: c_int,
        param: *const u8,
        plen: c_int,
        md: *const openssl_sys::EVP_MD,
        mgf1md: *const openssl_sys::EVP_MD,
    ) -> c_int;
}

/// Decodes the OAEP-SHA-256 encoded message `em` (the raw RSA decryption result) of a key with
/// `modulus_len` bytes. A shorter `em` (a token that dropped leading zeros) is left-padded.
pub fn decode_sha256(em: &[u8], modulus_len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let bad =
        || Error::Invalid("RSA-OAEP decoding failed (wrong key or corrupted ciphertext)".into());
    if em.len() > modulus_len || modulus_len > 2048 {
        return Err(bad());
    }
    let mut block = Zeroizing::new(vec![0u8; modulus_len]);
    block[modulus_len - em.len()..].copy_from_slice(em);
    let mut out = Zeroizing::new(vec![0u8; modulus_len]);
    let md = MessageDigest::sha256().as_ptr();
    let n = modulus_len as c_int;
    // SAFETY: `out` and `block` are valid for `n` bytes; the label is empty (null, length 0);
    // `md` is a static OpenSSL digest. The function writes at most `tlen` bytes into `to`.
    let len = unsafe {
        RSA_padding_check_PKCS1_OAEP_mgf1(
            out.as_mut_ptr(),
            n,
            block.as_ptr(),
            n,
            n,
            std::ptr::null(),
            0,
            md,
            md,
        )
    };
    if len < 0 {
        return Err(bad());
    }
    out.truncate(len as usize);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::encrypt::Encrypter;
    use openssl::pkey::PKey;
    use openssl::rsa::{Padding, Rsa};

    #[test]
    fn decodes_openssl_oaep_sha256() {
        let rsa = Rsa::generate(2048).unwrap();
        let key = PKey::from_rsa(rsa.clone()).unwrap();
        let mut enc = Encrypter::new(&key).unwrap();
        enc.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
        enc.set_rsa_oaep_md(MessageDigest::sha256()).unwrap();
        enc.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
        let mut ct = vec![0u8; enc.encrypt_len(b"cek").unwrap()];
        let n = enc.encrypt(b"cek", &mut ct).unwrap();
        ct.truncate(n);
        // Raw RSA, as CKM_RSA_X_509 returns it.
        let mut em = vec![0u8; 256];
        let m = rsa.private_decrypt(&ct, &mut em, Padding::NONE).unwrap();
        assert_eq!(m, 256);
        assert_eq!(decode_sha256(&em, 256).unwrap().as_slice(), b"cek");
        assert_eq!(decode_sha256(&em[1..], 256).unwrap().as_slice(), b"cek");
        em[100] ^= 1;
        assert!(decode_sha256(&em, 256).is_err());
    }
}
