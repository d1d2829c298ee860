//! The station HSM: the CA key and certificate through `keymgr`.

use std::path::PathBuf;

use bundle::keys::ContentSigner;
use keymgr::{Access, KeySpec, ObjectType, OpenOptions, Pkcs11Uri, TokenKey, TokenSession};

use super::pkcs11::keymgr_key_type;
use super::{token_error, with_pin_source};
use crate::config::StationConfig;
use crate::provision::{StationHsm, TokenError};
use crate::types::KeyType;

/// Where the CA key lives.
#[derive(Debug, Clone)]
enum CaKey {
    /// In a token (production): the key URI with the PIN source to log in.
    Token(Box<Pkcs11Uri>),
    /// A PEM file (development only; `ca init` cannot make one).
    File(PathBuf),
}

/// Where the CA certificate is kept.
#[derive(Debug, Clone)]
enum CaCert {
    /// A certificate object next to the key.
    Token(Box<Pkcs11Uri>),
    /// A PEM file.
    File(PathBuf),
}

/// The station HSM of `[ca]`, over `keymgr`.
#[derive(Debug)]
pub struct KeymgrStationHsm {
    key: CaKey,
    cert: CaCert,
    options: OpenOptions,
}

impl KeymgrStationHsm {
    /// The station HSM named by `[ca] key` and `[ca] cert` (relative file paths are relative
    /// to the configuration file).
    pub fn new(config: &StationConfig) -> Result<Self, TokenError> {
        let ca = &config.ca;
        let base = config.path.parent().map(PathBuf::from).unwrap_or_default();
        let pin = ca.pin_source.as_deref();
        let key = match KeySpec::parse(&ca.key)? {
            KeySpec::Pkcs11(uri) => CaKey::Token(Box::new(with_pin_source(uri, pin))),
            KeySpec::File(path) => CaKey::File(base.join(path)),
            KeySpec::Tpm(_) => {
                return Err(token_error(
                    "[ca] key: a tpm2: key cannot sign; use a pkcs11: URI of the station HSM",
                ));
            }
        };
        let cert = match KeySpec::parse(&ca.cert)? {
            KeySpec::Pkcs11(uri) => CaCert::Token(Box::new(with_pin_source(uri, pin))),
            KeySpec::File(path) => CaCert::File(base.join(path)),
            KeySpec::Tpm(_) => {
                return Err(token_error(
                    "[ca] cert: use a pkcs11: URI of a certificate object or a PEM file",
                ));
            }
        };
        let options = OpenOptions {
            module: ca.module.clone(),
            ..OpenOptions::default()
        };
        Ok(Self { key, cert, options })
    }

    fn session(&self, uri: &Pkcs11Uri, access: Access) -> Result<TokenSession, TokenError> {
        let mut ts = TokenSession::open(uri, self.options.module.as_deref(), access)?;
        ts.login(uri)?;
        Ok(ts)
    }

    fn key_uri(&self, action: &str) -> Result<&Pkcs11Uri, TokenError> {
        match &self.key {
            CaKey::Token(uri) => Ok(uri),
            CaKey::File(path) => Err(token_error(format!(
                "cannot {action}: [ca] key is the file {} (development only); use a pkcs11: URI",
                path.display()
            ))),
        }
    }
}

impl StationHsm for KeymgrStationHsm {
    fn generate_ca_key(&self, key_type: KeyType) -> Result<Vec<u8>, TokenError> {
        let uri = self.key_uri("generate the CA key")?;
        let label = uri.object.as_deref().ok_or_else(|| {
            token_error(format!(
                "[ca] key {uri} names no object=: the CA key needs a label to be found again"
            ))
        })?;
        let ts = self.session(uri, Access::ReadWrite)?;
        let key = ts.generate_key_pair(keymgr_key_type(key_type), label, uri.id.as_deref())?;
        Ok(key.public_key_der)
    }

    fn ca_public_key(&self) -> Result<Vec<u8>, TokenError> {
        match &self.key {
            CaKey::Token(uri) => Ok(self
                .session(uri, Access::ReadOnly)?
                .export_public_key(uri)?),
            CaKey::File(_) => Ok(self.open_key()?.public_key_der()?),
        }
    }

    fn open_ca_signer(&self) -> Result<Box<dyn ContentSigner + Send>, TokenError> {
        Ok(self.open_key()?)
    }

    fn ca_certificate(&self) -> Result<Option<Vec<u8>>, TokenError> {
        match &self.cert {
            CaCert::Token(uri) => {
                // A public object: no login (SoftHSM rewrites its token file on every login).
                let ts = TokenSession::open(uri, self.options.module.as_deref(), Access::ReadOnly)?;
                match ts.export_certificate(uri) {
                    Ok(der) => Ok(Some(der)),
                    Err(keymgr::Error::ObjectNotFound { .. }) => Ok(None),
                    Err(e) => Err(e.into()),
                }
            }
            CaCert::File(path) => match std::fs::read(path) {
                Ok(bytes) => Ok(Some(crate::cert::certificate_der_from_bytes(
                    &bytes,
                    "CA certificate",
                )?)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(crate::error::FactoryError::io("failed to read", path, e).into()),
            },
        }
    }

    fn store_ca_certificate(&self, der: &[u8]) -> Result<(), TokenError> {
        match &self.cert {
            CaCert::Token(uri) => {
                let ts = self.session(uri, Access::ReadWrite)?;
                let key_uri = self.key_uri("store the CA certificate in the token")?;
                let label = uri
                    .object
                    .clone()
                    .or_else(|| key_uri.object.clone())
                    .unwrap_or_else(|| "station-ca".into());
                let id = match &uri.id {
                    Some(id) => id.clone(),
                    None => ts
                        .pairing_id(&key_uri.clone().with_type(ObjectType::Private))?
                        .unwrap_or_default(),
                };
                ts.write_certificate(der, &label, &id)?;
                Ok(())
            }
            CaCert::File(path) => {
                let pem = crate::cert::to_pem("CERTIFICATE", der);
                Ok(bundle::atomic::write_file(
                    path,
                    pem.as_bytes(),
                    bundle::atomic::Existing::Replace,
                )?)
            }
        }
    }
}

impl KeymgrStationHsm {
    /// Opens another key of the station HSM (a release-signing key for `ca issue`): a
    /// `pkcs11:` URI (with `[ca] module` and `pin-source` as defaults) or a PEM file.
    pub fn open_station_key(&self, spec: &str) -> Result<Box<dyn keymgr::Signer>, TokenError> {
        match KeySpec::parse(spec)? {
            KeySpec::Pkcs11(uri) => {
                let uri = with_pin_source(uri, self.pin_source());
                Ok(Box::new(TokenKey::open(&uri, &self.options)?))
            }
            _ => Ok(keymgr::open_signer(spec, &self.options)?),
        }
    }

    /// Stores a certificate next to the station key `spec` names (same `CKA_ID` and label).
    pub fn store_next_to_key(&self, spec: &str, der: &[u8]) -> Result<String, TokenError> {
        let KeySpec::Pkcs11(uri) = KeySpec::parse(spec)? else {
            return Err(token_error(format!(
                "'{spec}' is not a token key; only token keys get their certificate stored"
            )));
        };
        let uri = with_pin_source(uri, self.pin_source());
        let ts = self.session(&uri, Access::ReadWrite)?;
        let key_uri = uri.clone().with_type(ObjectType::Private);
        let id = ts.pairing_id(&key_uri)?.unwrap_or_default();
        let label = match &uri.object {
            Some(label) => label.clone(),
            None => ts
                .list_objects(&key_uri)?
                .first()
                .map(|o| o.label.clone())
                .unwrap_or_default(),
        };
        Ok(ts.write_certificate(der, &label, &id)?.to_string())
    }

    fn pin_source(&self) -> Option<&str> {
        match &self.key {
            CaKey::Token(uri) => uri.pin_source.as_deref(),
            CaKey::File(_) => None,
        }
    }

    /// A new signer (own session) for the CA key.
    fn open_key(&self) -> Result<Box<dyn keymgr::Signer>, TokenError> {
        match &self.key {
            CaKey::Token(uri) => Ok(Box::new(TokenKey::open(uri, &self.options)?)),
            CaKey::File(path) => Ok(keymgr::open_signer(
                &path.display().to_string(),
                &self.options,
            )?),
        }
    }
}
