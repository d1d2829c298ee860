//! Where the token implementations plug in: the station HSM (CA key) and the device tokens.
//!
//! This build has no token backend yet: the PKCS#11/TPM implementations of
//! [`StationHsm`] and [`DeviceTokens`] come from `keymgr`, which this binary does not link yet.
//! Commands that need a token (`ca`, `provision`, `crl`, `verify`) stop here with a clear
//! error; inventory commands work without one.

use anyhow::bail;
use factory::config::StationConfig;
use factory::provision::{DeviceTokens, StationHsm};

/// Opens the station HSM named by `[ca] key` / `[ca] cert`.
pub fn station_hsm(config: &StationConfig) -> anyhow::Result<Box<dyn StationHsm>> {
    bail!(
        "cannot open the station CA key '{}': this build of factory has no PKCS#11/TPM token \
         backend (the keymgr integration is not linked yet); inventory commands (list, show, \
         revoke, retire, recipients, export, import) work without it",
        config.ca.key
    )
}

/// Opens device tokens per `[device-token]`.
pub fn device_tokens(config: &StationConfig) -> anyhow::Result<Box<dyn DeviceTokens>> {
    bail!(
        "cannot open device tokens ('{}'): this build of factory has no PKCS#11/TPM token \
         backend (the keymgr integration is not linked yet)",
        config.device_token.uri.source()
    )
}

/// Wraps a station-HSM error with the step that failed.
pub fn hsm_err(
    step: &'static str,
) -> impl FnOnce(factory::provision::TokenError) -> factory::FactoryError {
    move |source| factory::FactoryError::Station { step, source }
}

/// The station CA: the CA certificate from the HSM and a new signer session for its key.
pub fn open_ca(hsm: &dyn StationHsm) -> anyhow::Result<factory::ca::CertificateAuthority<'static>> {
    let cert = hsm
        .ca_certificate()
        .map_err(hsm_err("reading the CA certificate"))?
        .ok_or_else(|| anyhow::anyhow!("the station has no CA certificate: run `factory ca init` or `factory ca import-cert`"))?;
    let signer = hsm
        .open_ca_signer()
        .map_err(hsm_err("opening the CA key"))?;
    Ok(factory::ca::CertificateAuthority::new(cert, signer)?)
}
