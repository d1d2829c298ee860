//! Provisioning: a device's key pair generated inside its token, a CSR signed inside the token,
//! the certificate issued by the station CA and written back under the same `CKA_ID` and label,
//! and the device row plus its audit entry recorded in one transaction.
//!
//! Crash safety is designed in (see [`crate::inventory`] for the intent records and [`plan`] for
//! the rules): an intent is recorded before the key is generated and the certificate before it
//! is written to the token, so whatever point the process dies at, [`verify`] (or the next
//! `provision` of the device) finds the intent and rolls it back or forward. A device key never
//! exists without a record that names its token and id, and a device row never exists before
//! the token holds its key and certificate.
//!
//! The tokens are reached through the [`seam`] traits, implemented by `keymgr`.

mod batch;
mod execute;
pub mod plan;
mod repair;
pub mod seam;
mod verify;

use crate::inventory::DeviceRecord;
use crate::types::DeviceSerial;

pub use batch::{BatchEntry, BatchItem, BatchResult, BatchSummary, read_batch_csv, run_batch};
pub use execute::Provisioner;
pub use repair::Repair;
pub use seam::{
    DeviceKeySpec, DeviceToken, DeviceTokens, ObjectClass, ObjectSelection, StationHsm, TokenError,
    TokenObject,
};
pub use verify::{VerifyItem, VerifyOptions, VerifyReport, verify};

/// What to provision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionRequest {
    /// The device.
    pub serial: DeviceSerial,
    /// Fleet group.
    pub group: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Token URI; default from `[device-token] uri`.
    pub token_uri: Option<String>,
    /// Certificate profile; default `default-profile`.
    pub profile: Option<String>,
}

impl ProvisionRequest {
    /// A request with defaults for everything but the serial.
    pub fn new(serial: DeviceSerial) -> Self {
        Self {
            serial,
            group: None,
            tags: Vec::new(),
            token_uri: None,
            profile: None,
        }
    }
}

/// What `provision` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProvisionOutcome {
    /// Newly provisioned.
    Provisioned(DeviceRecord),
    /// An interrupted run of this device was completed.
    Resumed(DeviceRecord),
    /// The device was already recorded; nothing was changed.
    AlreadyProvisioned(DeviceRecord),
}

impl ProvisionOutcome {
    /// The device row.
    pub fn device(&self) -> &DeviceRecord {
        match self {
            ProvisionOutcome::Provisioned(d)
            | ProvisionOutcome::Resumed(d)
            | ProvisionOutcome::AlreadyProvisioned(d) => d,
        }
    }
}
