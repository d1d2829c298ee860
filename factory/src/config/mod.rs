//! Station configuration (TOML), parsed in two stages: [`raw`] mirrors the file with every key
//! optional and unknown keys rejected; [`StationConfig::load`] applies the defaults (all in
//! [`defaults`]) and validates every value. `factory/station.example.toml` documents each key.

mod raw;
pub mod subject;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{FactoryError, Result};
use crate::types::{DeviceSerial, KeyType};

pub use subject::{SubjectName, SubjectTemplate, Template};

/// Every default value of the configuration, in one place.
pub mod defaults {
    use crate::types::KeyType;

    /// `default-profile`.
    pub const PROFILE_NAME: &str = "default";
    /// `[profiles.*] key-type` and `[ca] key-type`.
    pub const KEY_TYPE: KeyType = KeyType::EcP256;
    /// `[profiles.*] validity-days`.
    pub const DEVICE_VALIDITY_DAYS: u32 = 3650;
    /// `[profiles.*] subject`.
    pub const DEVICE_SUBJECT: &str = "/CN={serial}";
    /// `[ca] subject`.
    pub const CA_SUBJECT: &str = "/CN=Device CA";
    /// `[ca] validity-days`.
    pub const CA_VALIDITY_DAYS: u32 = 7300;
    /// `[ca] crl-next-update-days`.
    pub const CRL_NEXT_UPDATE_DAYS: u32 = 30;
    /// `[device-token] key-label`.
    pub const KEY_LABEL: &str = "device-{serial}";
    /// `[profiles.*] usage`.
    pub const PROFILE_USAGE: &str = "device";
    /// `[profiles.*] extended-key-usage` of signer profiles: accepted both by rauc's default
    /// purpose (S/MIME signing) and by `check-purpose=codesign`.
    pub const SIGNER_EKU: [&str; 2] = ["code-signing", "email-protection"];
    /// `[tpm] record-ek-certificate`.
    pub const RECORD_EK_CERTIFICATE: bool = true;
    /// Longest accepted validity (100 years), against typos.
    pub const MAX_VALIDITY_DAYS: u32 = 36500;
}

/// The resolved station configuration.
#[derive(Debug, Clone)]
pub struct StationConfig {
    /// The file it was loaded from (for messages).
    pub path: PathBuf,
    /// SQLite inventory path (relative paths resolved against the config directory).
    pub inventory: PathBuf,
    /// The station CA.
    pub ca: CaConfig,
    /// Certificate profiles by name.
    pub profiles: BTreeMap<String, Profile>,
    /// The profile `provision` uses without `--profile`.
    pub default_profile: String,
    /// How device tokens are reached.
    pub device_token: DeviceTokenConfig,
    /// TPM options.
    pub tpm: TpmConfig,
}

/// `[ca]`: the CA key and certificate in the station HSM.
#[derive(Debug, Clone)]
pub struct CaConfig {
    /// Key spec of the CA private key (a `pkcs11:` URI in production).
    pub key: String,
    /// Spec of the CA certificate (a `pkcs11:` URI or a PEM file).
    pub cert: String,
    /// PKCS#11 module of the station HSM when the URIs name none (`module-path=`).
    pub module: Option<PathBuf>,
    /// Where the token backend gets the station HSM PIN (a `pin-source`: file path or
    /// `file:` URI), when the key URI has none.
    pub pin_source: Option<String>,
    /// Key type for `ca init` (ec-p256 or rsa-3072).
    pub key_type: KeyType,
    /// Subject of the CA certificate / CSR made by `ca init`.
    pub subject: SubjectName,
    /// Validity of a self-signed CA certificate, in days.
    pub validity_days: u32,
    /// Default `nextUpdate` distance of CRLs, in days.
    pub crl_next_update_days: u32,
}

/// What the certificates of a profile are for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileUsage {
    /// Device decryption keys (`provision`): keyAgreement for EC, keyEncipherment for RSA.
    Device,
    /// Release-signing keys (`ca issue`): digitalSignature plus these extended key usages.
    Signer(Vec<ExtendedKeyUsage>),
}

/// An extended key usage a signer profile can grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtendedKeyUsage {
    /// `code-signing` (id-kp-codeSigning): what rauc's `check-purpose=codesign` requires.
    CodeSigning,
    /// `email-protection` (id-kp-emailProtection): what OpenSSL's S/MIME signing purpose,
    /// rauc's default, requires when an EKU is present.
    EmailProtection,
}

impl ExtendedKeyUsage {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "code-signing" => Some(Self::CodeSigning),
            "email-protection" => Some(Self::EmailProtection),
            _ => None,
        }
    }
}

/// `[profiles.<name>]`: how device (or release-signer) certificates are issued.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The profile name.
    pub name: String,
    /// Device keys (the default) or release signers.
    pub usage: ProfileUsage,
    /// Key type. For device profiles the key usage follows from it: keyAgreement for EC,
    /// keyEncipherment for RSA.
    pub key_type: KeyType,
    /// Certificate validity in days.
    pub validity_days: u32,
    /// Subject template (contains `{serial}`).
    pub subject: SubjectTemplate,
}

/// `[device-token]`: how a device's token is addressed.
#[derive(Debug, Clone)]
pub struct DeviceTokenConfig {
    /// Token URI template with `{serial}`.
    pub uri: Template,
    /// Label (`CKA_LABEL`) template for the key pair and certificate.
    pub key_label: Template,
    /// PKCS#11 module of device tokens when the URI names none (`module-path=`).
    pub module: Option<PathBuf>,
    /// Where the token backend gets a device token's PIN (a `pin-source`), when the URI has
    /// none.
    pub pin_source: Option<String>,
}

/// `[tpm]`: options for TPM-backed device keys (the TPM device-token backend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmConfig {
    /// Whether device tokens are TPMs.
    pub enabled: bool,
    /// TCTI string of the TPM (e.g. `swtpm:host=127.0.0.1,port=2321`).
    pub tcti: Option<String>,
    /// Persistent handle for a TPM-native EC key (tpm2-pkcs11 has no ECDH).
    pub ec_key_handle: Option<u32>,
    /// Record the SHA-256 fingerprint of the TPM's EK certificate in the inventory.
    pub record_ek_certificate: bool,
}

impl StationConfig {
    /// Reads and resolves a configuration file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| FactoryError::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Resolves configuration text; `path` names the file in messages and is the base for
    /// relative paths.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| FactoryError::ConfigSyntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        Resolver { path }.resolve(raw)
    }

    /// The profile named `name`, or the default profile.
    pub fn profile(&self, name: Option<&str>) -> Result<&Profile> {
        let name = name.unwrap_or(&self.default_profile);
        self.profiles
            .get(name)
            .ok_or_else(|| FactoryError::ConfigValue {
                path: self.path.clone(),
                key: format!("profiles.{name}"),
                message: format!(
                    "no such profile (configured: {})",
                    self.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            })
    }

    /// The token URI of a device per `[device-token] uri`.
    pub fn device_token_uri(&self, serial: &DeviceSerial) -> String {
        self.device_token.uri.render(serial)
    }
}

/// Stage two: defaults and validation, with the config path for messages.
struct Resolver<'a> {
    path: &'a Path,
}

impl Resolver<'_> {
    fn err(&self, key: &str, message: impl Into<String>) -> FactoryError {
        FactoryError::ConfigValue {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn required(&self, key: &str, value: Option<String>) -> Result<String> {
        match value {
            Some(v) if !v.trim().is_empty() => Ok(v),
            Some(_) => Err(self.err(key, "must not be empty")),
            None => Err(self.err(key, "is required")),
        }
    }

    fn resolve(&self, raw: raw::RawConfig) -> Result<StationConfig> {
        let inventory = self.required("inventory", raw.inventory)?;
        let base = self.path.parent().unwrap_or(Path::new("."));
        let profiles = self.profiles(raw.profiles)?;
        let default_profile = raw
            .default_profile
            .unwrap_or_else(|| defaults::PROFILE_NAME.to_string());
        if !profiles.contains_key(&default_profile) {
            return Err(self.err(
                "default-profile",
                format!("no profile named '{default_profile}'"),
            ));
        }
        if profiles[&default_profile].usage != ProfileUsage::Device {
            return Err(self.err(
                "default-profile",
                format!("profile '{default_profile}' is not a device profile"),
            ));
        }
        Ok(StationConfig {
            path: self.path.to_path_buf(),
            inventory: base.join(inventory),
            ca: self.ca(raw.ca.unwrap_or_default(), base)?,
            profiles,
            default_profile,
            device_token: self.device_token(raw.device_token.unwrap_or_default(), base)?,
            tpm: self.tpm(raw.tpm.unwrap_or_default())?,
        })
    }

    fn key_type(&self, key: &str, value: Option<String>) -> Result<KeyType> {
        value.map_or(Ok(defaults::KEY_TYPE), |v| {
            v.parse()
                .map_err(|e: FactoryError| self.err(key, e.to_string()))
        })
    }

    fn days(&self, key: &str, value: Option<u32>, default: u32) -> Result<u32> {
        let days = value.unwrap_or(default);
        if days == 0 || days > defaults::MAX_VALIDITY_DAYS {
            return Err(self.err(
                key,
                format!("must be 1..={} days", defaults::MAX_VALIDITY_DAYS),
            ));
        }
        Ok(days)
    }

    fn ca(&self, raw: raw::RawCa, base: &Path) -> Result<CaConfig> {
        let key_type = self.key_type("ca.key-type", raw.key_type)?;
        if key_type == KeyType::EcP384 {
            return Err(self.err(
                "ca.key-type",
                "ec-p384 CA keys are not supported (certificates are signed with SHA-256, \
                 which rcgen pairs only with P-256 and RSA); use ec-p256 or rsa-3072",
            ));
        }
        let subject_src = raw.subject.unwrap_or_else(|| defaults::CA_SUBJECT.into());
        let subject = SubjectTemplate::parse(&subject_src)
            .map_err(|m| self.err("ca.subject", m))?
            .fixed()
            .ok_or_else(|| self.err("ca.subject", "the CA subject cannot contain {serial}"))?;
        subject.check().map_err(|m| self.err("ca.subject", m))?;
        Ok(CaConfig {
            key: self.required("ca.key", raw.key)?,
            cert: self.required("ca.cert", raw.cert)?,
            module: raw.module.map(|m| base.join(m)),
            pin_source: raw.pin_source,
            key_type,
            subject,
            validity_days: self.days(
                "ca.validity-days",
                raw.validity_days,
                defaults::CA_VALIDITY_DAYS,
            )?,
            crl_next_update_days: self.days(
                "ca.crl-next-update-days",
                raw.crl_next_update_days,
                defaults::CRL_NEXT_UPDATE_DAYS,
            )?,
        })
    }

    fn profiles(
        &self,
        raw: BTreeMap<String, raw::RawProfile>,
    ) -> Result<BTreeMap<String, Profile>> {
        let mut raw = raw;
        if raw.is_empty() {
            raw.insert(defaults::PROFILE_NAME.into(), raw::RawProfile::default());
        }
        raw.into_iter()
            .map(|(name, p)| Ok((name.clone(), self.profile(name, p)?)))
            .collect()
    }

    fn profile(&self, name: String, raw: raw::RawProfile) -> Result<Profile> {
        crate::types::check_label("profile name", &name)
            .map_err(|e| self.err("profiles", e.to_string()))?;
        let key = |k: &str| format!("profiles.{name}.{k}");
        let src = raw
            .subject
            .unwrap_or_else(|| defaults::DEVICE_SUBJECT.into());
        let subject = SubjectTemplate::parse(&src).map_err(|m| self.err(&key("subject"), m))?;
        if !subject.has_serial() {
            return Err(self.err(
                &key("subject"),
                "must contain {serial}, e.g. \"/CN={serial}\"",
            ));
        }
        let probe = DeviceSerial::new("probe-0").expect("valid probe serial");
        subject
            .render(&probe)
            .check()
            .map_err(|m| self.err(&key("subject"), m))?;
        let usage = self.usage(&key, raw.usage, raw.extended_key_usage)?;
        Ok(Profile {
            usage,
            key_type: self.key_type(&key("key-type"), raw.key_type)?,
            validity_days: self.days(
                &key("validity-days"),
                raw.validity_days,
                defaults::DEVICE_VALIDITY_DAYS,
            )?,
            subject,
            name,
        })
    }

    fn usage(
        &self,
        key: &dyn Fn(&str) -> String,
        usage: Option<String>,
        eku: Option<Vec<String>>,
    ) -> Result<ProfileUsage> {
        match usage.as_deref().unwrap_or(defaults::PROFILE_USAGE) {
            "device" if eku.is_some() => Err(self.err(
                &key("extended-key-usage"),
                "only signer profiles (usage = \"signer\") have extended key usages",
            )),
            "device" => Ok(ProfileUsage::Device),
            "signer" => {
                let names = eku.unwrap_or_else(|| {
                    defaults::SIGNER_EKU.iter().map(|s| s.to_string()).collect()
                });
                let ekus = names
                    .iter()
                    .map(|n| {
                        ExtendedKeyUsage::parse(n).ok_or_else(|| {
                            self.err(
                                &key("extended-key-usage"),
                                format!("unknown '{n}' (use code-signing, email-protection)"),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(ProfileUsage::Signer(ekus))
            }
            other => Err(self.err(
                &key("usage"),
                format!("unknown '{other}' (use \"device\" or \"signer\")"),
            )),
        }
    }

    fn device_token(&self, raw: raw::RawDeviceToken, base: &Path) -> Result<DeviceTokenConfig> {
        let uri_src = self.required("device-token.uri", raw.uri)?;
        let uri = Template::parse(&uri_src).map_err(|m| self.err("device-token.uri", m))?;
        if !uri.has_serial() {
            return Err(self.err(
                "device-token.uri",
                "must contain {serial} so each device reaches its own token, \
                 e.g. \"pkcs11:token=dev-{serial}\"",
            ));
        }
        let label_src = raw.key_label.unwrap_or_else(|| defaults::KEY_LABEL.into());
        let key_label =
            Template::parse(&label_src).map_err(|m| self.err("device-token.key-label", m))?;
        if label_src.trim().is_empty() {
            return Err(self.err("device-token.key-label", "must not be empty"));
        }
        Ok(DeviceTokenConfig {
            uri,
            key_label,
            module: raw.module.map(|m| base.join(m)),
            pin_source: raw.pin_source,
        })
    }

    fn tpm(&self, raw: raw::RawTpm) -> Result<TpmConfig> {
        let ec_key_handle = raw
            .ec_key_handle
            .map(|h| parse_persistent_handle(&h).map_err(|m| self.err("tpm.ec-key-handle", m)))
            .transpose()?;
        let enabled = raw.enabled.unwrap_or(false);
        if enabled && raw.tcti.is_none() {
            return Err(self.err("tpm.tcti", "is required when tpm.enabled = true"));
        }
        Ok(TpmConfig {
            enabled,
            tcti: raw.tcti,
            ec_key_handle,
            record_ek_certificate: raw
                .record_ek_certificate
                .unwrap_or(defaults::RECORD_EK_CERTIFICATE),
        })
    }
}

/// Parses a TPM persistent handle (`0x81000000`–`0x81FFFFFF`).
fn parse_persistent_handle(value: &str) -> std::result::Result<u32, String> {
    let hex = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
        .ok_or_else(|| format!("'{value}' is not a hex handle like 0x81010002"))?;
    let handle = u32::from_str_radix(hex, 16).map_err(|_| format!("'{value}' is not hex"))?;
    if handle >> 24 != 0x81 {
        return Err(format!(
            "{value} is not a persistent handle (0x81000000-0x81FFFFFF)"
        ));
    }
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
inventory = "inv.sqlite"
[ca]
key = "pkcs11:token=station;object=ca;type=private"
cert = "pkcs11:token=station;object=ca;type=cert"
[device-token]
uri = "pkcs11:token=dev-{serial}"
"#;

    #[test]
    fn minimal_gets_defaults() {
        let c = StationConfig::from_toml(MINIMAL, Path::new("/etc/factory/station.toml")).unwrap();
        assert_eq!(c.inventory, PathBuf::from("/etc/factory/inv.sqlite"));
        let p = c.profile(None).unwrap();
        assert_eq!(p.key_type, KeyType::EcP256);
        assert_eq!(p.validity_days, defaults::DEVICE_VALIDITY_DAYS);
        assert_eq!(c.ca.crl_next_update_days, 30);
        assert!(!c.tpm.enabled);
        let s = DeviceSerial::new("A1").unwrap();
        assert_eq!(c.device_token_uri(&s), "pkcs11:token=dev-A1");
        assert_eq!(c.device_token.key_label.render(&s), "device-A1");
    }

    #[test]
    fn handles() {
        assert_eq!(parse_persistent_handle("0x81010002").unwrap(), 0x8101_0002);
        assert!(parse_persistent_handle("0x01010002").is_err());
        assert!(parse_persistent_handle("81010002").is_err());
    }
}
