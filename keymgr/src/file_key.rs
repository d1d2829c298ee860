//! PEM file keys (for development): the same [`Signer`]/[`Decryptor`] behaviour as token keys,
//! computed by OpenSSL. Encrypted PEM files take their passphrase from `RAUC_KEY_PASSPHRASE`.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use bundle::keys::{ContentSigner, KeyError, KeyKind, RecipientKey, RsaPadding, SignatureScheme};
use openssl::bn::BigNumContext;
use openssl::derive::Deriver;
use openssl::ec::{EcKey, EcPoint};
use openssl::encrypt::Decrypter;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Padding;
use openssl::sign::RsaPssSaltlen;
use openssl::x509::X509;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::key::{Decryptor, KeyInfo, RsaSignaturePadding, Signer};
use crate::keydata;
use crate::signer::scheme_for;

/// Environment variable with the passphrase of encrypted PEM keys (as rauc uses it).
pub const PASSPHRASE_ENV: &str = "RAUC_KEY_PASSPHRASE";

/// A private key from a PEM file.
#[derive(Debug)]
pub struct FileKey {
    path: PathBuf,
    pkey: PKey<Private>,
    kind: KeyKind,
    padding: RsaSignaturePadding,
    certificate: Option<Vec<u8>>,
}

impl FileKey {
    /// Reads a PEM private key (PKCS#8 or traditional, optionally encrypted). A certificate for
    /// the key in the same file is picked up as its certificate.
    pub fn open(path: &Path, padding: RsaSignaturePadding) -> Result<FileKey> {
        let pem = Zeroizing::new(std::fs::read(path).map_err(|source| Error::Io {
            action: "read the key file",
            path: path.to_path_buf(),
            source,
        })?);
        let pkey = load_private_pem(&pem, &path.display().to_string())?;
        let kind = keydata::kind_of_pkey(&pkey)
            .map_err(|e| Error::key(path.display().to_string(), e.to_string()))?;
        let certificate = X509::stack_from_pem(&pem)
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.public_key().is_ok_and(|k| k.public_eq(&pkey)))
            .and_then(|c| c.to_der().ok());
        Ok(FileKey {
            path: path.to_path_buf(),
            pkey,
            kind,
            padding,
            certificate,
        })
    }

    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn sign_data(&self, data: &[u8]) -> Result<Vec<u8>> {
        let ssl = |e| Error::openssl(format!("signing with {}", self.path.display()), e);
        let mut signer =
            openssl::sign::Signer::new(MessageDigest::sha256(), &self.pkey).map_err(ssl)?;
        if matches!(self.kind, KeyKind::Rsa { .. }) && self.padding == RsaSignaturePadding::Pss {
            signer.set_rsa_padding(Padding::PKCS1_PSS).map_err(ssl)?;
            signer
                .set_rsa_mgf1_md(MessageDigest::sha256())
                .map_err(ssl)?;
            signer
                .set_rsa_pss_saltlen(RsaPssSaltlen::custom(32))
                .map_err(ssl)?;
        }
        signer.update(data).map_err(ssl)?;
        signer.sign_to_vec().map_err(ssl)
    }

    fn ecdh_z(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let ec = self
            .pkey
            .ec_key()
            .map_err(|_| Error::key(self.name(), "ECDH needs an EC key; this is RSA"))?;
        let ssl = |e| Error::openssl(format!("ECDH with {}", self.path.display()), e);
        let mut ctx = BigNumContext::new().map_err(ssl)?;
        let point = EcPoint::from_bytes(ec.group(), peer_point, &mut ctx).map_err(ssl)?;
        let peer = PKey::from_ec_key(EcKey::from_public_key(ec.group(), &point).map_err(ssl)?)
            .map_err(ssl)?;
        let mut deriver = Deriver::new(&self.pkey).map_err(ssl)?;
        deriver.set_peer(&peer).map_err(ssl)?;
        Ok(Zeroizing::new(deriver.derive_to_vec().map_err(ssl)?))
    }

    fn decrypt_rsa(&self, ciphertext: &[u8], padding: RsaPadding) -> Result<Zeroizing<Vec<u8>>> {
        if !matches!(self.kind, KeyKind::Rsa { .. }) {
            return Err(Error::key(
                self.name(),
                "RSA decryption needs an RSA key; this is EC",
            ));
        }
        let ssl = |e| Error::openssl(format!("RSA decryption with {}", self.path.display()), e);
        let mut d = Decrypter::new(&self.pkey).map_err(ssl)?;
        match padding {
            RsaPadding::Pkcs1v15 => d.set_rsa_padding(Padding::PKCS1).map_err(ssl)?,
            RsaPadding::OaepSha256 => {
                d.set_rsa_padding(Padding::PKCS1_OAEP).map_err(ssl)?;
                d.set_rsa_oaep_md(MessageDigest::sha256()).map_err(ssl)?;
                d.set_rsa_mgf1_md(MessageDigest::sha256()).map_err(ssl)?;
            }
        }
        let len = d.decrypt_len(ciphertext).map_err(ssl)?;
        let mut out = Zeroizing::new(vec![0u8; len]);
        let n = d.decrypt(ciphertext, &mut out).map_err(ssl)?;
        out.truncate(n);
        Ok(out)
    }
}

/// Parses a PEM private key; an encrypted one is decrypted with `RAUC_KEY_PASSPHRASE`.
pub(crate) fn load_private_pem(pem: &[u8], name: &str) -> Result<PKey<Private>> {
    let passphrase = std::env::var(PASSPHRASE_ENV).ok().map(Zeroizing::new);
    let asked = Cell::new(false);
    let result = PKey::private_key_from_pem_callback(pem, |buf| {
        asked.set(true);
        let Some(p) = passphrase.as_ref() else {
            return Err(openssl::error::ErrorStack::get());
        };
        let n = p.len().min(buf.len());
        buf[..n].copy_from_slice(&p.as_bytes()[..n]);
        Ok(n)
    });
    result.map_err(|e| match (asked.get(), passphrase.is_some()) {
        (true, false) => Error::key(
            name,
            format!("the key file is encrypted: set {PASSPHRASE_ENV} to its passphrase"),
        ),
        (true, true) => Error::openssl(
            format!("cannot decrypt the key file {name} (wrong {PASSPHRASE_ENV}?)"),
            e,
        ),
        _ => Error::openssl(format!("cannot read a PEM private key from {name}"), e),
    })
}

impl KeyInfo for FileKey {
    fn description(&self) -> String {
        self.name()
    }

    fn key_kind(&self) -> KeyKind {
        self.kind
    }

    fn public_key_der(&self) -> Result<Vec<u8>> {
        self.pkey
            .public_key_to_der()
            .map_err(|e| Error::openssl("encoding the public key", e))
    }
}

impl ContentSigner for FileKey {
    fn scheme(&self) -> SignatureScheme {
        scheme_for(self.kind, self.padding)
    }

    fn sign(&self, data: &[u8]) -> std::result::Result<Vec<u8>, KeyError> {
        Ok(self.sign_data(data)?)
    }
}

impl Signer for FileKey {
    fn certificate(&self) -> Option<Vec<u8>> {
        self.certificate.clone()
    }
}

impl RecipientKey for FileKey {
    fn kind(&self) -> KeyKind {
        self.kind
    }

    fn certificate_der(&self) -> Option<Vec<u8>> {
        self.certificate.clone()
    }

    fn ecdh(&self, peer_point: &[u8]) -> std::result::Result<Zeroizing<Vec<u8>>, KeyError> {
        Ok(self.ecdh_z(peer_point)?)
    }

    fn rsa_decrypt(
        &self,
        ciphertext: &[u8],
        padding: RsaPadding,
    ) -> std::result::Result<Zeroizing<Vec<u8>>, KeyError> {
        Ok(self.decrypt_rsa(ciphertext, padding)?)
    }
}

impl Decryptor for FileKey {}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::encrypt::Encrypter;

    #[test]
    fn rsa_file_key_decrypts_pkcs1_and_oaep() {
        let dir = tempfile::tempdir().unwrap();
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let path = dir.path().join("k.pem");
        std::fs::write(&path, rsa.private_key_to_pem().unwrap()).unwrap();
        let key = FileKey::open(&path, RsaSignaturePadding::Pkcs1v15).unwrap();
        assert_eq!(key.key_kind(), KeyKind::Rsa { bits: 2048 });
        let public = PKey::public_key_from_der(&key.public_key_der().unwrap()).unwrap();
        for padding in [RsaPadding::Pkcs1v15, RsaPadding::OaepSha256] {
            let mut enc = Encrypter::new(&public).unwrap();
            if padding == RsaPadding::OaepSha256 {
                enc.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
                enc.set_rsa_oaep_md(MessageDigest::sha256()).unwrap();
                enc.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
            }
            let mut ct = vec![0u8; enc.encrypt_len(b"cek").unwrap()];
            let n = enc.encrypt(b"cek", &mut ct).unwrap();
            ct.truncate(n);
            assert_eq!(key.rsa_decrypt(&ct, padding).unwrap().as_slice(), b"cek");
        }
        assert!(key.ecdh(&[4; 65]).is_err());
    }
}
