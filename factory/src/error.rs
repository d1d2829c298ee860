//! The station's error type: one enum, each variant with the context an operator needs
//! (which file, which device, which step) and a hint what to do.

use std::path::PathBuf;

use bundle::keys::KeyError;

use crate::types::{DeviceSerial, DeviceStatus};

/// Everything that can go wrong in the `factory` library.
#[derive(Debug, thiserror::Error)]
pub enum FactoryError {
    /// Writing an output file failed (see `bundle::atomic`).
    #[error(transparent)]
    Output(#[from] bundle::Error),
    /// The configuration file could not be read.
    #[error("failed to read station configuration {}: {source}", path.display())]
    ConfigRead {
        /// The configuration file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration is not valid TOML or has unknown or mistyped keys.
    #[error("invalid station configuration {}: {message}", path.display())]
    ConfigSyntax {
        /// The configuration file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A configuration value is missing or not acceptable.
    #[error("invalid station configuration {}: key '{key}': {message}", path.display())]
    ConfigValue {
        /// The configuration file.
        path: PathBuf,
        /// The dotted key, e.g. `profiles.default.subject`.
        key: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// A serial, group, tag or key id has characters or a length the station does not accept.
    #[error("invalid {what} '{value}': {reason}")]
    InvalidName {
        /// What kind of name.
        what: &'static str,
        /// The rejected value.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A name is not one of the known values.
    #[error("unknown {what} '{value}' (expected one of: {expected})")]
    UnknownName {
        /// What kind of name.
        what: &'static str,
        /// The rejected value.
        value: String,
        /// The accepted values.
        expected: &'static str,
    },
    /// File I/O failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "failed to write".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An SQLite operation on the inventory failed.
    #[error("inventory {}: {what} failed: {source}", path.display())]
    Sqlite {
        /// The inventory database.
        path: PathBuf,
        /// The operation, e.g. "recording the provisioning intent".
        what: String,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The inventory was written by a newer station version.
    #[error(
        "inventory {} has schema version {found}, this station supports up to {supported}; \
         upgrade the factory tool",
        path.display()
    )]
    SchemaTooNew {
        /// The inventory database.
        path: PathBuf,
        /// The version found in the database.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// The device is not in the inventory.
    #[error("device '{serial}' is not in the inventory; check the serial with `factory list`")]
    UnknownDevice {
        /// The serial asked for.
        serial: DeviceSerial,
    },
    /// The device is already in the inventory.
    #[error("device '{serial}' is already in the inventory (status {status})")]
    DuplicateDevice {
        /// The serial.
        serial: DeviceSerial,
        /// Its current status.
        status: DeviceStatus,
    },
    /// A status change that the device's current state does not allow.
    #[error("cannot {action} device '{serial}': it is {status}")]
    InvalidTransition {
        /// The device.
        serial: DeviceSerial,
        /// Its current status.
        status: DeviceStatus,
        /// The refused action (`revoke`, `retire`).
        action: &'static str,
    },
    /// Another process holds an open provisioning intent for the device.
    #[error(
        "device '{serial}' is being provisioned by {owner} since {since}; wait for it, or run \
         `factory verify --repair` on that host if the process is gone"
    )]
    ProvisioningBusy {
        /// The device.
        serial: DeviceSerial,
        /// The owning process (`host[pid]`).
        owner: String,
        /// When the intent was recorded (RFC 3339).
        since: String,
    },
    /// A certificate, CSR or CRL could not be parsed or does not have the expected content.
    #[error("{what}: {message}")]
    Certificate {
        /// Which object, e.g. "CA certificate".
        what: String,
        /// What is wrong.
        message: String,
    },
    /// The CA key cannot be used with this station.
    #[error("CA key: {message}")]
    CaKey {
        /// What is wrong and what to do.
        message: String,
    },
    /// A private-key operation (CA or device token key) failed.
    #[error("{what}: {source}")]
    Signing {
        /// Which operation.
        what: String,
        /// The key implementation's error.
        source: KeyError,
    },
    /// rcgen refused to build a certificate, CSR or CRL.
    #[error("{what}: {source}")]
    Rcgen {
        /// Which object.
        what: String,
        /// rcgen's error.
        source: rcgen::Error,
    },
    /// An OpenSSL operation failed.
    #[error("{what}: {source}")]
    Openssl {
        /// Which operation.
        what: String,
        /// OpenSSL's error stack.
        source: openssl::error::ErrorStack,
    },
    /// A device or station token operation failed.
    #[error("device '{serial}': {step} failed: {source}")]
    Token {
        /// The device.
        serial: DeviceSerial,
        /// The provisioning step, e.g. "generating the key pair in the token".
        step: &'static str,
        /// The token implementation's error.
        source: KeyError,
    },
    /// A station HSM operation failed.
    #[error("station HSM: {step} failed: {source}")]
    Station {
        /// The operation.
        step: &'static str,
        /// The HSM implementation's error.
        source: KeyError,
    },
    /// An export/import or batch input line is malformed.
    #[error("{}:{line}: {message}", path.display())]
    Input {
        /// The input file (`-` for standard input).
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// An import would overwrite existing devices or certificates; nothing was imported.
    #[error("import refused, nothing was imported: {}", conflicts.join("; "))]
    ImportConflicts {
        /// One message per conflict (capped).
        conflicts: Vec<String>,
    },
    /// A provisioning step failed; `cleanup` says what was undone or what is left to repair.
    #[error("provisioning of device '{serial}' failed: {source} ({cleanup})")]
    ProvisioningFailed {
        /// The device.
        serial: DeviceSerial,
        /// The failure.
        source: Box<FactoryError>,
        /// What the station did about it.
        cleanup: String,
    },
    /// A provisioning intent is not in the state an operation needs.
    #[error("provisioning intent {id}: {message}")]
    IntentState {
        /// The intent's row id.
        id: i64,
        /// What is wrong.
        message: String,
    },
    /// The audit log's hash chain is broken.
    #[error(
        "audit log hash chain broken at entry {seq}: the audit table was modified outside the station"
    )]
    AuditChain {
        /// The first entry whose hash does not match.
        seq: i64,
    },
}

impl FactoryError {
    /// Builds an [`FactoryError::Openssl`] with context.
    pub(crate) fn openssl(what: impl Into<String>, source: openssl::error::ErrorStack) -> Self {
        FactoryError::Openssl {
            what: what.into(),
            source,
        }
    }

    /// Builds a [`FactoryError::Certificate`] with context.
    pub(crate) fn cert(what: impl Into<String>, message: impl Into<String>) -> Self {
        FactoryError::Certificate {
            what: what.into(),
            message: message.into(),
        }
    }

    /// Builds a [`FactoryError::Io`].
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FactoryError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

/// Result alias for the station library.
pub type Result<T, E = FactoryError> = std::result::Result<T, E>;
