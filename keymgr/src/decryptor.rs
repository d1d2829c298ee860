//! Decryption with a token key: exactly one private-key operation per call.
//!
//! * EC: `C_DeriveKey(CKM_ECDH1_DERIVE, CKD_NULL, peer point)` into a temporary, extractable
//!   session secret; its `CKA_VALUE` is Z; the object is destroyed right away. The peer point
//!   goes DER-wrapped (an OCTET STRING, as SoftHSM wants); a token that refuses that gets the raw
//!   point.
//! * RSA: `C_Decrypt` with `CKM_RSA_PKCS` or `CKM_RSA_PKCS_OAEP` (SHA-256, MGF1-SHA-256). A
//!   token that refuses OAEP with SHA-256 at `C_DecryptInit` (SoftHSM 2.6 knows only SHA-1)
//!   decrypts with `CKM_RSA_X_509` and the OAEP decoding runs in software ([`crate::oaep`]).

use bundle::keys::{KeyError, KeyKind, RecipientKey, RsaPadding};
use cryptoki::error::RvError;
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::key::Decryptor;
use crate::keydata;
use crate::oaep;
use crate::object;
use crate::token_key::TokenKey;

/// Return values after which the raw (not DER-wrapped) peer point is worth a try.
fn point_format_refused(rv: Option<RvError>) -> bool {
    matches!(
        rv,
        Some(
            RvError::MechanismParamInvalid
                | RvError::ArgumentsBad
                | RvError::DomainParamsInvalid
                | RvError::DataInvalid
                | RvError::DataLenRange
        )
    )
}

impl TokenKey {
    fn derive(&self, point: &[u8], field_bytes: usize) -> Result<Zeroizing<Vec<u8>>> {
        let ts = self.session();
        let s = ts.session();
        let params = Ecdh1DeriveParams::new(EcKdf::null(), point);
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::ValueLen((field_bytes as u64).into()),
        ];
        let secret = s
            .derive_key(&Mechanism::Ecdh1Derive(params), self.handle, &template)
            .map_err(|e| {
                let err = Error::pkcs11(e, format!("ECDH with {}", self.uri().redacted()));
                match err.rv() {
                    Some(RvError::KeyFunctionNotPermitted | RvError::KeyTypeInconsistent) => err
                        .with_hint(
                            "the key is not allowed to derive (no CKA_DERIVE); imported EC keys need \
                             derive usage (keymgr import, or pkcs11-tool --usage-derive)",
                        ),
                    Some(RvError::FunctionNotSupported | RvError::MechanismInvalid) => err
                        .with_hint("this token cannot do ECDH (tpm2-pkcs11 cannot); use a tpm2: key"),
                    _ => err,
                }
            })?;
        let value = object::get(s, secret, &[AttributeType::Value]);
        if let Err(e) = s.destroy_object(secret) {
            tracing::warn!("C_DestroyObject of the temporary ECDH secret failed: {e}");
        }
        let z = Zeroizing::new(object::bytes(&value?, AttributeType::Value).ok_or_else(|| {
            Error::key(
                self.uri().redacted(),
                "the derived ECDH secret has no readable CKA_VALUE",
            )
        })?);
        if z.len() != field_bytes {
            return Err(Error::key(
                self.uri().redacted(),
                format!("ECDH returned {} bytes, expected {field_bytes}", z.len()),
            ));
        }
        Ok(z)
    }

    fn ecdh_z(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let KeyKind::Ec(curve) = self.kind else {
            return Err(Error::key(
                self.uri().redacted(),
                "ECDH needs an EC key; this is RSA",
            ));
        };
        let fb = curve.field_bytes();
        if peer_point.len() != 1 + 2 * fb || peer_point[0] != 0x04 {
            return Err(Error::Invalid(format!(
                "the peer EC point must be uncompressed (04 ‖ X ‖ Y, {} bytes), got {} bytes",
                1 + 2 * fb,
                peer_point.len()
            )));
        }
        if !self.can_derive {
            return Err(Error::key(
                self.uri().redacted(),
                "the key has no CKA_DERIVE, so the token refuses ECDH (C_DeriveKey); imported EC \
                 keys need derive usage (keymgr import, or pkcs11-tool --usage-derive)",
            ));
        }
        match self.derive(&keydata::der_octet_string(peer_point), fb) {
            Err(e) if point_format_refused(e.rv()) => {
                tracing::debug!("DER-wrapped ECDH point refused ({e}); trying the raw point");
                self.derive(peer_point, fb)
            }
            other => other,
        }
    }

    fn c_decrypt(&self, mechanism: &Mechanism, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let ts = self.session();
        let plain = ts
            .session()
            .decrypt(mechanism, self.handle, ciphertext)
            .map_err(|e| {
                let err =
                    Error::pkcs11(e, format!("RSA decryption with {}", self.uri().redacted()));
                if err.rv() == Some(RvError::KeyFunctionNotPermitted) {
                    err.with_hint(
                        "the key has no CKA_DECRYPT; generate or import it with decrypt usage",
                    )
                } else {
                    err
                }
            })?;
        Ok(Zeroizing::new(plain))
    }

    fn decrypt_rsa(&self, ciphertext: &[u8], padding: RsaPadding) -> Result<Zeroizing<Vec<u8>>> {
        let KeyKind::Rsa { bits } = self.kind else {
            return Err(Error::key(
                self.uri().redacted(),
                "RSA decryption needs an RSA key; this is EC",
            ));
        };
        if padding == RsaPadding::Pkcs1v15 {
            return self.c_decrypt(&Mechanism::RsaPkcs, ciphertext);
        }
        let params = PkcsOaepParams::new(
            MechanismType::SHA256,
            PkcsMgfType::MGF1_SHA256,
            PkcsOaepSource::empty(),
        );
        match self.c_decrypt(&Mechanism::RsaPkcsOaep(params), ciphertext) {
            Err(e) if oaep_params_refused(e.rv()) => {
                // SoftHSM 2.6 takes only SHA-1 OAEP: decrypt raw, decode OAEP in software.
                tracing::debug!(
                    "CKM_RSA_PKCS_OAEP with SHA-256 refused ({e}); using CKM_RSA_X_509"
                );
                let em = self.c_decrypt(&Mechanism::RsaX509, ciphertext)?;
                oaep::decode_sha256(&em, bits.div_ceil(8) as usize)
            }
            other => other,
        }
    }
}

/// `C_DecryptInit` refusals of OAEP-SHA-256 parameters (nothing was decrypted).
fn oaep_params_refused(rv: Option<RvError>) -> bool {
    matches!(
        rv,
        Some(RvError::ArgumentsBad | RvError::MechanismParamInvalid | RvError::MechanismInvalid)
    )
}

impl RecipientKey for TokenKey {
    fn kind(&self) -> KeyKind {
        self.kind
    }

    fn certificate_der(&self) -> Option<Vec<u8>> {
        TokenKey::certificate_der(self).map(<[u8]>::to_vec)
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

impl Decryptor for TokenKey {}
