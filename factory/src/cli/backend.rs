//! Where the token implementations plug in: the station HSM (CA key) and the device tokens,
//! both over `keymgr` ([`factory::tokens`]).

use factory::config::StationConfig;
use factory::provision::{DeviceTokens, StationHsm};
use factory::tokens::{KeymgrDeviceTokens, KeymgrStationHsm};

/// Opens the station HSM named by `[ca] key` / `[ca] cert`.
pub fn station_hsm(config: &StationConfig) -> anyhow::Result<Box<dyn StationHsm>> {
    let hsm = KeymgrStationHsm::new(config).map_err(hsm_err("reading [ca] key and cert"))?;
    Ok(Box::new(hsm))
}

/// Opens device tokens per `[device-token]` and `[tpm]`.
pub fn device_tokens(config: &StationConfig) -> anyhow::Result<Box<dyn DeviceTokens>> {
    Ok(Box::new(KeymgrDeviceTokens::new(config)))
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
