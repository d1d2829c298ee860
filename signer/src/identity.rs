//! The signing identity: a key (token or file) with its certificate and intermediates.

use bundle::cms::signed::SignerCerts;

use crate::error::Result;

/// A signing key and the certificates that go into the CMS with it.
pub struct SigningIdentity {
    /// The key (a `pkcs11:` token key or a PEM file).
    pub key: Box<dyn keymgr::Signer>,
    /// The signer certificate (DER).
    pub certificate: Vec<u8>,
    /// Intermediate certificates to embed (DER).
    pub intermediates: Vec<Vec<u8>>,
}

impl SigningIdentity {
    /// Opens `--key`, loads `--cert` (first certificate of a PEM file, or a token certificate
    /// object) and every `--intermediate`.
    pub fn open(
        cert: &str,
        key: &str,
        intermediates: &[String],
        options: &keymgr::OpenOptions,
    ) -> Result<Self> {
        let key = keymgr::open_signer(key, options)?;
        let certificate = keymgr::load_certificate_with(cert, options)?;
        let intermediates = intermediates
            .iter()
            .map(|spec| keymgr::load_certificate_with(spec, options))
            .collect::<keymgr::Result<_>>()?;
        Ok(SigningIdentity {
            key,
            certificate,
            intermediates,
        })
    }

    /// The certificates as the CMS builder takes them.
    pub fn certs(&self) -> SignerCerts<'_> {
        SignerCerts {
            certificate: &self.certificate,
            intermediates: &self.intermediates,
        }
    }
}
