//! Stage one of the configuration: the TOML file as written, every key optional, unknown keys
//! rejected by serde. Stage two (`super`) applies defaults and validates.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawConfig {
    pub inventory: Option<String>,
    pub default_profile: Option<String>,
    pub ca: Option<RawCa>,
    #[serde(default)]
    pub profiles: BTreeMap<String, RawProfile>,
    pub device_token: Option<RawDeviceToken>,
    pub tpm: Option<RawTpm>,
}

/// `[ca]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawCa {
    pub key: Option<String>,
    pub cert: Option<String>,
    pub module: Option<String>,
    pub pin_source: Option<String>,
    pub key_type: Option<String>,
    pub subject: Option<String>,
    pub validity_days: Option<u32>,
    pub crl_next_update_days: Option<u32>,
}

/// `[profiles.<name>]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawProfile {
    pub usage: Option<String>,
    pub extended_key_usage: Option<Vec<String>>,
    pub key_type: Option<String>,
    pub validity_days: Option<u32>,
    pub subject: Option<String>,
}

/// `[device-token]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawDeviceToken {
    pub uri: Option<String>,
    pub key_label: Option<String>,
    pub module: Option<String>,
    pub pin_source: Option<String>,
}

/// `[tpm]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawTpm {
    pub enabled: Option<bool>,
    pub tcti: Option<String>,
    pub ec_key_handle: Option<String>,
    pub record_ek_certificate: Option<bool>,
}
