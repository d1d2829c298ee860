//! Signing with a token key.
//!
//! * ECDSA (P-256, P-384): `CKM_ECDSA` over a SHA-256 digest computed in software; the token's
//!   `r ‖ s` is converted to DER.
//! * RSA PKCS#1 v1.5: `CKM_RSA_PKCS` over the SHA-256 DigestInfo, as rauc does; tokens that
//!   refuse the raw mechanism get `CKM_SHA256_RSA_PKCS` over the data.
//! * RSA-PSS: `CKM_SHA256_RSA_PKCS_PSS` (MGF1-SHA-256, 32-byte salt); tokens that refuse it get
//!   `CKM_RSA_PKCS_PSS` over the digest.

use bundle::keys::{ContentSigner, KeyError, KeyKind, SignatureScheme};
use cryptoki::error::RvError;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};

use crate::error::{Error, Result};
use crate::key::{RsaSignaturePadding, Signer};
use crate::keydata;
use crate::token_key::TokenKey;

/// The PSS parameters rauc-compatible signatures use: SHA-256, MGF1-SHA-256, salt 32.
fn pss_params() -> PkcsPssParams {
    PkcsPssParams {
        hash_alg: MechanismType::SHA256,
        mgf: PkcsMgfType::MGF1_SHA256,
        s_len: 32.into(),
    }
}

/// Mechanism refusals after which another mechanism is worth a try (nothing was signed).
fn refused(e: &Error) -> bool {
    matches!(
        e.rv(),
        Some(
            RvError::MechanismInvalid
                | RvError::MechanismParamInvalid
                | RvError::FunctionNotSupported
        )
    )
}

impl TokenKey {
    fn c_sign(&self, mechanism: &Mechanism, data: &[u8], name: &str) -> Result<Vec<u8>> {
        let ts = self.session();
        ts.session()
            .sign(mechanism, self.handle, data)
            .map_err(|e| {
                let err = Error::pkcs11(
                    e,
                    format!("signing with {} ({name})", self.uri().redacted()),
                );
                match err.rv() {
                    Some(RvError::KeyFunctionNotPermitted) => err.with_hint(
                        "the key has no CKA_SIGN; generate or import it with sign usage",
                    ),
                    Some(RvError::UserNotLoggedIn) => {
                        err.with_hint("the session lost its login; open the key again")
                    }
                    _ => err,
                }
            })
    }

    fn sign_digest(&self, data: &[u8]) -> Result<Vec<u8>> {
        let digest = openssl::sha::sha256(data);
        match (self.kind, self.padding) {
            (KeyKind::Ec(_), _) => {
                let raw = self.c_sign(&Mechanism::Ecdsa, &digest, "CKM_ECDSA")?;
                keydata::ecdsa_raw_to_der(&raw)
            }
            (KeyKind::Rsa { .. }, RsaSignaturePadding::Pkcs1v15) => {
                let info = keydata::sha256_digest_info(&digest);
                match self.c_sign(&Mechanism::RsaPkcs, &info, "CKM_RSA_PKCS") {
                    Err(e) if refused(&e) => {
                        tracing::debug!("CKM_RSA_PKCS refused ({e}); trying CKM_SHA256_RSA_PKCS");
                        self.c_sign(&Mechanism::Sha256RsaPkcs, data, "CKM_SHA256_RSA_PKCS")
                    }
                    other => other,
                }
            }
            (KeyKind::Rsa { .. }, RsaSignaturePadding::Pss) => {
                let params = pss_params();
                let name = "CKM_SHA256_RSA_PKCS_PSS";
                match self.c_sign(&Mechanism::Sha256RsaPkcsPss(params), data, name) {
                    Err(e) if refused(&e) => {
                        tracing::debug!("{name} refused ({e}); trying CKM_RSA_PKCS_PSS");
                        self.c_sign(&Mechanism::RsaPkcsPss(params), &digest, "CKM_RSA_PKCS_PSS")
                    }
                    other => other,
                }
            }
        }
    }
}

/// The scheme a key of `kind` signs with, given the RSA padding choice.
pub(crate) fn scheme_for(kind: KeyKind, padding: RsaSignaturePadding) -> SignatureScheme {
    match (kind, padding) {
        (KeyKind::Ec(_), _) => SignatureScheme::EcdsaSha256,
        (KeyKind::Rsa { .. }, RsaSignaturePadding::Pkcs1v15) => SignatureScheme::RsaPkcs1Sha256,
        (KeyKind::Rsa { .. }, RsaSignaturePadding::Pss) => SignatureScheme::RsaPssSha256,
    }
}

impl ContentSigner for TokenKey {
    fn scheme(&self) -> SignatureScheme {
        scheme_for(self.kind, self.padding)
    }

    fn sign(&self, data: &[u8]) -> std::result::Result<Vec<u8>, KeyError> {
        Ok(self.sign_digest(data)?)
    }
}

impl Signer for TokenKey {
    fn certificate(&self) -> Option<Vec<u8>> {
        self.certificate_der().map(<[u8]>::to_vec)
    }
}
