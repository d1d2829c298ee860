//! Small value types shared by the station: device serials, key types, device status,
//! revocation reasons, key ids and timestamps.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::FactoryError;

/// Longest accepted device serial, group name or tag.
pub const MAX_NAME_LEN: usize = 64;

/// Checks a name used in serials, groups and tags: 1–64 characters of `[A-Za-z0-9._-]`, not
/// starting with `-` or `.`. The restriction keeps serials safe inside `pkcs11:` URIs,
/// subject names, file names and CSV files.
fn check_name(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("it is empty");
    }
    if value.len() > MAX_NAME_LEN {
        return Err("it is longer than 64 characters");
    }
    if value.starts_with(['-', '.']) {
        return Err("it starts with '-' or '.'");
    }
    let ok = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err("only letters, digits, '.', '_' and '-' are allowed")
    }
}

/// A device serial number: the inventory's primary name for a device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceSerial(String);

impl DeviceSerial {
    /// Validates `value` as a device serial (see [`MAX_NAME_LEN`] and the allowed characters).
    pub fn new(value: &str) -> Result<Self, FactoryError> {
        check_name(value).map_err(|reason| FactoryError::InvalidName {
            what: "device serial",
            value: value.to_string(),
            reason,
        })?;
        Ok(Self(value.to_string()))
    }

    /// The serial as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceSerial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DeviceSerial {
    type Err = FactoryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for DeviceSerial {
    type Error = FactoryError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<DeviceSerial> for String {
    fn from(s: DeviceSerial) -> String {
        s.0
    }
}

/// Validates a group name or tag (same rules as a device serial).
pub fn check_label(what: &'static str, value: &str) -> Result<(), FactoryError> {
    check_name(value).map_err(|reason| FactoryError::InvalidName {
        what,
        value: value.to_string(),
        reason,
    })
}

/// The key types a device (or the CA) can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyType {
    /// EC on NIST P-256 (the default).
    #[serde(rename = "ec-p256")]
    EcP256,
    /// EC on NIST P-384.
    #[serde(rename = "ec-p384")]
    EcP384,
    /// RSA with a 3072-bit modulus.
    #[serde(rename = "rsa-3072")]
    Rsa3072,
}

impl KeyType {
    /// All key types, in the order they are documented.
    pub const ALL: [KeyType; 3] = [KeyType::EcP256, KeyType::EcP384, KeyType::Rsa3072];

    /// The configuration and inventory name (`ec-p256`, `ec-p384`, `rsa-3072`).
    pub fn name(self) -> &'static str {
        match self {
            KeyType::EcP256 => "ec-p256",
            KeyType::EcP384 => "ec-p384",
            KeyType::Rsa3072 => "rsa-3072",
        }
    }

    /// True for the EC key types.
    pub fn is_ec(self) -> bool {
        matches!(self, KeyType::EcP256 | KeyType::EcP384)
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyType {
    type Err = FactoryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyType::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| FactoryError::UnknownName {
                what: "key type",
                value: s.to_string(),
                expected: "ec-p256, ec-p384, rsa-3072",
            })
    }
}

/// The life-cycle state of a provisioned device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceStatus {
    /// In service: its certificate is on recipient lists.
    Active,
    /// Its certificate is revoked (listed on the CRL).
    Revoked,
    /// Taken out of service; a revoked device keeps its CRL entry when retired.
    Retired,
}

impl DeviceStatus {
    /// The inventory name (`active`, `revoked`, `retired`).
    pub fn name(self) -> &'static str {
        match self {
            DeviceStatus::Active => "active",
            DeviceStatus::Revoked => "revoked",
            DeviceStatus::Retired => "retired",
        }
    }
}

impl fmt::Display for DeviceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DeviceStatus {
    type Err = FactoryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(DeviceStatus::Active),
            "revoked" => Ok(DeviceStatus::Revoked),
            "retired" => Ok(DeviceStatus::Retired),
            _ => Err(FactoryError::UnknownName {
                what: "device status",
                value: s.to_string(),
                expected: "active, revoked, retired",
            }),
        }
    }
}

/// Why a device certificate was revoked (the RFC 5280 `CRLReason` values a station uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationReason {
    /// `unspecified` (0).
    Unspecified,
    /// `keyCompromise` (1).
    KeyCompromise,
    /// `cACompromise` (2).
    CaCompromise,
    /// `affiliationChanged` (3).
    AffiliationChanged,
    /// `superseded` (4).
    Superseded,
    /// `cessationOfOperation` (5).
    CessationOfOperation,
    /// `privilegeWithdrawn` (9).
    PrivilegeWithdrawn,
}

impl RevocationReason {
    /// All reasons, in `CRLReason` order.
    pub const ALL: [RevocationReason; 7] = [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::CaCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
        RevocationReason::PrivilegeWithdrawn,
    ];

    /// The command-line and inventory name (`key-compromise`, …).
    pub fn name(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "key-compromise",
            RevocationReason::CaCompromise => "ca-compromise",
            RevocationReason::AffiliationChanged => "affiliation-changed",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessation-of-operation",
            RevocationReason::PrivilegeWithdrawn => "privilege-withdrawn",
        }
    }

    /// The matching rcgen reason code for the CRL entry.
    pub fn to_rcgen(self) -> rcgen::RevocationReason {
        use rcgen::RevocationReason as R;
        match self {
            RevocationReason::Unspecified => R::Unspecified,
            RevocationReason::KeyCompromise => R::KeyCompromise,
            RevocationReason::CaCompromise => R::CaCompromise,
            RevocationReason::AffiliationChanged => R::AffiliationChanged,
            RevocationReason::Superseded => R::Superseded,
            RevocationReason::CessationOfOperation => R::CessationOfOperation,
            RevocationReason::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
        }
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RevocationReason {
    type Err = FactoryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RevocationReason::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| FactoryError::UnknownName {
                what: "revocation reason",
                value: s.to_string(),
                expected: "unspecified, key-compromise, ca-compromise, affiliation-changed, \
                           superseded, cessation-of-operation, privilege-withdrawn",
            })
    }
}

/// A PKCS#11 `CKA_ID`: the bytes that tie a device's private key, public key and certificate
/// together inside its token.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(Vec<u8>);

impl KeyId {
    /// Length of the ids the station draws for new keys.
    pub const RANDOM_LEN: usize = 16;

    /// Wraps existing id bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Draws a fresh random id (16 bytes from the OpenSSL RNG).
    pub fn random() -> Result<Self, FactoryError> {
        let mut id = vec![0u8; Self::RANDOM_LEN];
        openssl::rand::rand_bytes(&mut id).map_err(|source| FactoryError::Openssl {
            what: "drawing a random key id".into(),
            source,
        })?;
        Ok(Self(id))
    }

    /// Parses lower- or upper-case hex.
    pub fn from_hex(value: &str) -> Result<Self, FactoryError> {
        hex::decode(value)
            .ok()
            .filter(|b| !b.is_empty())
            .map(Self)
            .ok_or_else(|| FactoryError::InvalidName {
                what: "key id",
                value: value.to_string(),
                reason: "expected non-empty hex",
            })
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.to_hex())
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Seconds since the Unix epoch, UTC: how the inventory stores every time.
pub type UnixTime = i64;

/// The current time as [`UnixTime`].
pub fn now() -> UnixTime {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Formats a [`UnixTime`] as RFC 3339 (`2026-01-31T12:00:00Z`).
pub fn rfc3339(t: UnixTime) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{t}"))
}

/// Parses an RFC 3339 time into [`UnixTime`].
pub fn parse_rfc3339(value: &str) -> Option<UnixTime> {
    OffsetDateTime::parse(value, &Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Converts a [`UnixTime`] into an `OffsetDateTime` (clamped into the representable range).
pub fn to_datetime(t: UnixTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials() {
        for ok in ["A", "dev-0001", "x.y_z", &"a".repeat(64)] {
            assert!(DeviceSerial::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", ".a", "a b", "a/b", "a;b", "ä", &"a".repeat(65)] {
            assert!(DeviceSerial::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_round_trip() {
        for k in KeyType::ALL {
            assert_eq!(k.name().parse::<KeyType>().unwrap(), k);
        }
        for r in RevocationReason::ALL {
            assert_eq!(r.name().parse::<RevocationReason>().unwrap(), r);
        }
        for s in [
            DeviceStatus::Active,
            DeviceStatus::Revoked,
            DeviceStatus::Retired,
        ] {
            assert_eq!(s.name().parse::<DeviceStatus>().unwrap(), s);
        }
        assert!("ec-p521".parse::<KeyType>().is_err());
    }

    #[test]
    fn key_ids_and_times() {
        let id = KeyId::random().unwrap();
        assert_eq!(id.as_bytes().len(), 16);
        assert_eq!(KeyId::from_hex(&id.to_hex()).unwrap(), id);
        assert!(KeyId::from_hex("zz").is_err());
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("1970-01-01T00:00:10Z"), Some(10));
    }
}
