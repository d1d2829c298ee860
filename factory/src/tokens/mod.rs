//! The token seam implemented over `keymgr` (the only crate that calls PKCS#11 or the TPM):
//!
//! * [`KeymgrStationHsm`]: the CA key inside the station's HSM (`[ca] key`, a `pkcs11:` URI;
//!   a PEM file for development), the CA certificate next to it (`[ca] cert`: a `pkcs11:` URI
//!   of a certificate object, or a PEM file).
//! * [`KeymgrDeviceTokens`]: device tokens by address. A `pkcs11:` URI opens a PKCS#11 token
//!   ([`Pkcs11DeviceToken`]: SoftHSM, an HSM, or a TPM through tpm2-pkcs11 for RSA keys); a
//!   `tpm2:` spec opens a TPM for a TPM-native ECDH key at a persistent handle
//!   ([`TpmDeviceToken`]; tpm2-pkcs11 cannot do ECDH).
//!
//! Tokens of one PKCS#11 module are found through one [`keymgr::TokenIndex`] per process, so a
//! station with a SoftHSM token per device does not scan every token for every device.

mod pkcs11;
mod station;
mod tpm;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use keymgr::{KeySpec, Pkcs11Uri, TokenIndex};

use crate::config::{StationConfig, TpmConfig};
use crate::provision::{DeviceToken, DeviceTokens, TokenError};

pub use pkcs11::Pkcs11DeviceToken;
pub use station::KeymgrStationHsm;
pub use tpm::TpmDeviceToken;

/// Sets `pin-source` from the configuration when the URI says nothing about the PIN.
pub(crate) fn with_pin_source(mut uri: Pkcs11Uri, pin_source: Option<&str>) -> Pkcs11Uri {
    if uri.pin_source.is_none() && uri.pin_value.is_none() {
        uri.pin_source = pin_source.map(str::to_string);
    }
    uri
}

/// A plain-text token error.
pub(crate) fn token_error(message: impl Into<String>) -> TokenError {
    message.into().into()
}

/// Most candidates a "no such token" error lists (a station may see a thousand tokens).
const MAX_CANDIDATES: usize = 5;

/// Shortens keymgr's "no token matches" error to a few candidates.
fn short_candidates(e: TokenError) -> TokenError {
    match e.downcast::<keymgr::Error>() {
        Ok(err) => match *err {
            keymgr::Error::TokenNotFound { uri, candidates }
                if candidates.0.len() > MAX_CANDIDATES =>
            {
                let n = candidates.0.len();
                let mut shown = candidates.0;
                shown.truncate(MAX_CANDIDATES);
                token_error(format!(
                    "no PKCS#11 token matches {uri} ({n} tokens present; `keymgr tokens` lists \
                     them all), e.g.:{}",
                    keymgr::error::Candidates(shown)
                ))
            }
            other => Box::new(other),
        },
        Err(other) => other,
    }
}

/// Device tokens reached through `keymgr` (see the module documentation).
#[derive(Debug)]
pub struct KeymgrDeviceTokens {
    module: Option<PathBuf>,
    pin_source: Option<String>,
    tpm: TpmConfig,
    config_path: PathBuf,
    indexes: Mutex<HashMap<PathBuf, Arc<TokenIndex>>>,
    ek_certificates: Mutex<HashMap<String, Option<Vec<u8>>>>,
}

impl KeymgrDeviceTokens {
    /// Device tokens per `[device-token]` and `[tpm]`.
    pub fn new(config: &StationConfig) -> Self {
        Self {
            module: config.device_token.module.clone(),
            pin_source: config.device_token.pin_source.clone(),
            tpm: config.tpm.clone(),
            config_path: config.path.clone(),
            indexes: Mutex::new(HashMap::new()),
            ek_certificates: Mutex::new(HashMap::new()),
        }
    }

    /// The token index of the module a URI selects (created on first use).
    fn index(&self, module: PathBuf) -> Result<Arc<TokenIndex>, TokenError> {
        let mut indexes = self.indexes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(index) = indexes.get(&module) {
            return Ok(index.clone());
        }
        let index = Arc::new(TokenIndex::new(&module)?);
        indexes.insert(module, index.clone());
        Ok(index)
    }

    /// The EK certificate of the TPM at `tcti`, read once per process and TCTI.
    ///
    /// swtpm (like a TPM without resource manager) serves one connection at a time, and
    /// tpm2-pkcs11 keeps its connection open once loaded: the certificate is read before the
    /// module is initialized and then served from here.
    fn ek_certificate(&self, tcti: &str) -> Result<Option<Vec<u8>>, TokenError> {
        let mut cache = self
            .ek_certificates
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(der) = cache.get(tcti) {
            return Ok(der.clone());
        }
        let der = keymgr::tpm::read_ek_certificate(tcti)?.map(|c| c.der);
        cache.insert(tcti.to_string(), der.clone());
        Ok(der)
    }

    fn open_pkcs11(&self, given: Pkcs11Uri) -> Result<Pkcs11DeviceToken, TokenError> {
        let login_uri = with_pin_source(given.clone(), self.pin_source.as_deref());
        let module = keymgr::module::resolve_module(Some(&login_uri), self.module.as_deref())?;
        let is_tpm = module
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains("tpm2_pkcs11"));
        let ek = if is_tpm && self.tpm.record_ek_certificate {
            let tcti = std::env::var("TPM2_PKCS11_TCTI")
                .ok()
                .filter(|t| !t.is_empty())
                .or_else(|| self.tpm.tcti.clone())
                .ok_or_else(|| {
                    token_error(format!(
                        "cannot read the EK certificate of the tpm2-pkcs11 token: no TCTI (set \
                         TPM2_PKCS11_TCTI or [tpm] tcti in {}, or record-ek-certificate = false)",
                        self.config_path.display()
                    ))
                })?;
            Some(self.ek_certificate(&tcti)?)
        } else {
            None
        };
        let index = self.index(module)?;
        Pkcs11DeviceToken::open(&index, &given, &login_uri, ek).map_err(short_candidates)
    }

    fn open_tpm(&self, spec: &str) -> Result<TpmDeviceToken, TokenError> {
        if !self.tpm.enabled {
            return Err(token_error(format!(
                "'{spec}' is a TPM device token, but TPM device tokens are disabled: set [tpm] \
                 enabled = true and tcti in {}",
                self.config_path.display()
            )));
        }
        let spec = tpm::with_default_handle(spec, self.tpm.ec_key_handle)?;
        TpmDeviceToken::open(&spec, self.tpm.tcti.as_deref())
    }
}

impl DeviceTokens for KeymgrDeviceTokens {
    fn open(&self, uri: &str) -> Result<Box<dyn DeviceToken + Send>, TokenError> {
        match KeySpec::parse(uri)? {
            KeySpec::Pkcs11(given) => Ok(Box::new(self.open_pkcs11(given)?)),
            KeySpec::Tpm(spec) => Ok(Box::new(self.open_tpm(&spec)?)),
            KeySpec::File(_) => Err(token_error(format!(
                "'{uri}' is not a device token: use a pkcs11: URI or a tpm2: key spec"
            ))),
        }
    }
}
