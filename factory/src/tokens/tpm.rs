//! A device's TPM with a TPM-native ECDH key at a persistent handle (tpm2-pkcs11 cannot do
//! ECDH, so EC device keys in a TPM are made through tss-esapi by `keymgr::tpm`).
//!
//! The token is addressed by a `tpm2:` spec, `tpm2:handle=0x81010002;tcti=…;cert=<file>`: the
//! key lives at `handle`; the station writes the device certificate to `cert`; the same spec is
//! what the device decrypts with (`--key tpm2:…`). Objects as reconciliation sees them: the key
//! (id = the handle as 4 big-endian bytes) and the certificate file under the same id.

use std::path::{Path, PathBuf};

use bundle::keys::{ContentSigner, EcCurve};
use keymgr::tpm::{TpmEcdhKey, TpmError, TpmKeySpec};

use super::token_error;
use crate::provision::{
    DeviceKeySpec, DeviceToken, ObjectClass, ObjectSelection, TokenError, TokenObject,
};
use crate::types::{KeyId, KeyType};

/// Inserts `handle=` from `[tpm] ec-key-handle` into a `tpm2:` spec that has none.
pub(crate) fn with_default_handle(spec: &str, default: Option<u32>) -> Result<String, TokenError> {
    let body = spec.strip_prefix(keymgr::tpm::SCHEME).unwrap_or(spec);
    if body
        .split(';')
        .any(|p| p.trim_start().starts_with("handle="))
    {
        return Ok(spec.to_string());
    }
    match default {
        Some(h) => Ok(format!("{}handle={h:#010x};{body}", keymgr::tpm::SCHEME)),
        None => Err(token_error(format!(
            "'{spec}' names no persistent handle: add handle=0x81…… or set [tpm] ec-key-handle"
        ))),
    }
}

/// A device TPM holding (or about to hold) a TPM-native ECDH key.
#[derive(Debug)]
pub struct TpmDeviceToken {
    spec: TpmKeySpec,
    tcti: String,
    cert: PathBuf,
}

impl TpmDeviceToken {
    /// Parses the spec; `default_tcti` (`[tpm] tcti`) applies when it names none.
    pub(crate) fn open(spec: &str, default_tcti: Option<&str>) -> Result<Self, TokenError> {
        let mut spec: TpmKeySpec = spec.parse()?;
        if spec.tcti.is_none() {
            spec.tcti = default_tcti.map(str::to_string);
        }
        let cert = spec.cert.clone().ok_or_else(|| {
            token_error(format!(
                "'{spec}' names no certificate file: add ;cert=<file> (the station writes the \
                 device certificate there; the device decrypts with this tpm2: spec)"
            ))
        })?;
        Ok(Self {
            tcti: spec.resolved_tcti(),
            spec,
            cert,
        })
    }

    fn id(&self) -> KeyId {
        KeyId::from_bytes(self.spec.handle.to_be_bytes().to_vec())
    }

    /// The spec without the certificate (which may not exist yet), with the resolved TCTI.
    fn bare_spec(&self) -> TpmKeySpec {
        TpmKeySpec {
            cert: None,
            tcti: Some(self.tcti.clone()),
            ..self.spec.clone()
        }
    }

    /// The key at the handle, or `None` if the handle is empty.
    fn key(&self) -> Result<Option<TpmEcdhKey>, TokenError> {
        match TpmEcdhKey::open_spec(&self.bare_spec()) {
            Ok(key) => Ok(Some(key)),
            Err(TpmError::NoKeyAtHandle { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn certificate(&self) -> Result<Option<Vec<u8>>, TokenError> {
        match std::fs::read(&self.cert) {
            Ok(bytes) => Ok(Some(crate::cert::certificate_der_from_bytes(
                &bytes,
                &format!("device certificate {}", self.cert.display()),
            )?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(crate::error::FactoryError::io("failed to read", &self.cert, e).into()),
        }
    }

    fn remove_certificate(&self) -> Result<usize, TokenError> {
        remove_file(&self.cert)
    }
}

fn remove_file(path: &Path) -> Result<usize, TokenError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(1),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(crate::error::FactoryError::io("failed to remove", path, e).into()),
    }
}

impl DeviceToken for TpmDeviceToken {
    fn description(&self) -> String {
        format!(
            "TPM at {}, ECDH key at persistent handle {:#010x}, certificate {}",
            self.tcti,
            self.spec.handle,
            self.cert.display()
        )
    }

    fn uri(&self) -> String {
        self.spec.to_string()
    }

    /// The handle; refused if it already holds an object (a rollback must never evict a key
    /// this station did not make).
    fn allocate_key_id(&mut self) -> Result<KeyId, TokenError> {
        match TpmEcdhKey::open_spec(&self.bare_spec()) {
            Err(TpmError::NoKeyAtHandle { .. }) => Ok(self.id()),
            Ok(_) | Err(TpmError::NotAnEcdhKey { .. }) => Err(token_error(format!(
                "persistent handle {:#010x} of the TPM at {} is taken; this TPM looks \
                 provisioned already (check `factory list`), or evict the handle \
                 (tpm2_evictcontrol) first",
                self.spec.handle, self.tcti
            ))),
            Err(e) => Err(e.into()),
        }
    }

    fn generate_key_pair(&mut self, spec: &DeviceKeySpec) -> Result<Vec<u8>, TokenError> {
        if spec.id != self.id() {
            return Err(token_error(
                "the key id of a TPM key is its persistent handle",
            ));
        }
        let curve = match spec.key_type {
            KeyType::EcP256 => EcCurve::P256,
            KeyType::EcP384 => EcCurve::P384,
            KeyType::Rsa3072 => {
                return Err(token_error(
                    "RSA device keys in a TPM are made through tpm2-pkcs11: give the device a \
                     pkcs11: token URI (module-path=…libtpm2_pkcs11.so) instead of a tpm2: spec",
                ));
            }
        };
        Ok(keymgr::tpm::create_persistent_ecdh_key(
            &self.tcti,
            curve,
            self.spec.handle,
        )?)
    }

    fn csr_signer(&self, _id: &KeyId) -> Result<Option<Box<dyn ContentSigner + '_>>, TokenError> {
        Ok(None)
    }

    fn write_certificate(
        &mut self,
        id: &KeyId,
        _label: &str,
        der: &[u8],
    ) -> Result<(), TokenError> {
        if *id != self.id() {
            return Err(token_error(
                "the key id of a TPM key is its persistent handle",
            ));
        }
        let pem = crate::cert::to_pem("CERTIFICATE", der);
        Ok(bundle::atomic::write_file(
            &self.cert,
            pem.as_bytes(),
            bundle::atomic::Existing::Replace,
        )?)
    }

    fn list_objects(&mut self) -> Result<Vec<TokenObject>, TokenError> {
        let mut objects = Vec::new();
        let label = format!("tpm2 handle {:#010x}", self.spec.handle);
        if let Some(key) = self.key()? {
            objects.push(TokenObject {
                class: ObjectClass::PrivateKey,
                id: self.id(),
                label: label.clone(),
                spki_sha256: Some(openssl::sha::sha256(key.public_key_spki())),
                certificate: None,
            });
        }
        if let Some(der) = self.certificate()? {
            objects.push(TokenObject {
                class: ObjectClass::Certificate,
                id: self.id(),
                label,
                spki_sha256: None,
                certificate: Some(der),
            });
        }
        Ok(objects)
    }

    fn delete_objects(&mut self, id: &KeyId, which: ObjectSelection) -> Result<usize, TokenError> {
        if *id != self.id() {
            return Ok(0);
        }
        let mut deleted = self.remove_certificate()?;
        if which == ObjectSelection::All && self.key()?.is_some() {
            keymgr::tpm::evict_persistent_key(&self.tcti, self.spec.handle)?;
            deleted += 1;
        }
        Ok(deleted)
    }

    fn ek_certificate(&mut self) -> Result<Option<Vec<u8>>, TokenError> {
        Ok(keymgr::tpm::read_ek_certificate(&self.tcti)?.map(|c| c.der))
    }
}
