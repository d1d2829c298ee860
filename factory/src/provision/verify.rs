//! `factory verify`: reconciliation of inventory rows with what the device tokens report.
//!
//! Always checked: the audit log's hash chain and every pending provisioning intent (the
//! crash-recovery case). Recorded devices are checked when named, or all with `all` (device
//! tokens are usually reachable only while a device is on the line). With `repair`, the
//! actions of [`super::plan`] are carried out; otherwise they are only reported.

use serde::Serialize;

use super::plan::{Action, Finding};
use super::repair::{Repair, reconcile_device, reconcile_intent};
use super::seam::DeviceTokens;
use crate::error::{FactoryError, Result};
use crate::inventory::{DeviceFilter, Inventory};
use crate::types::DeviceSerial;

/// What `verify` checks and whether it repairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Recorded devices to check.
    pub devices: Vec<DeviceSerial>,
    /// Check every recorded device.
    pub all: bool,
    /// Carry out the repairs.
    pub repair: bool,
    /// Treat intents of other hosts as stale.
    pub takeover: bool,
}

/// The result for one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyItem {
    /// Device serial.
    pub serial: String,
    /// `intent` or `device`.
    pub kind: &'static str,
    /// What was found (absent if the token could not be checked).
    pub finding: Option<String>,
    /// What is (or was) done.
    pub action: Option<String>,
    /// Whether the action was carried out.
    pub applied: bool,
    /// Token objects under other ids (never deleted).
    pub unrecorded_objects: usize,
    /// Why the device could not be checked or repaired.
    pub error: Option<String>,
    /// True if an operator must look at it.
    pub needs_attention: bool,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Number of audit entries whose hash chain verified.
    pub audit_entries: u64,
    /// Per-device results.
    pub items: Vec<VerifyItem>,
}

impl VerifyReport {
    /// True if anything needs an operator (or a repair that was not applied).
    pub fn needs_attention(&self) -> bool {
        self.items.iter().any(|i| i.needs_attention)
    }
}

fn item(kind: &'static str, serial: &DeviceSerial, result: Result<Repair>) -> VerifyItem {
    match result {
        Ok(r) => {
            let pending_repair = r.action.is_repair() && !r.applied;
            let problem = !matches!(
                r.finding,
                Finding::Consistent | Finding::Inactive(_) | Finding::InProgress
            );
            VerifyItem {
                serial: serial.to_string(),
                kind,
                finding: Some(r.finding.to_string()),
                action: Some(action_name(r.action).to_string()),
                applied: r.applied,
                unrecorded_objects: r.unrecorded_objects,
                error: None,
                needs_attention: pending_repair
                    || r.action == Action::Report
                    || (problem && !r.applied),
            }
        }
        Err(e) => VerifyItem {
            serial: serial.to_string(),
            kind,
            finding: None,
            action: None,
            applied: false,
            unrecorded_objects: 0,
            error: Some(e.to_string()),
            needs_attention: true,
        },
    }
}

/// Command-line name of an action.
pub fn action_name(action: Action) -> &'static str {
    match action {
        Action::Nothing => "none",
        Action::Wait => "wait",
        Action::DropIntent => "drop-intent",
        Action::RollBack => "roll-back",
        Action::WriteCertificateAndComplete => "write-certificate-and-complete",
        Action::Complete => "complete",
        Action::RewriteCertificate => "rewrite-certificate",
        Action::RemoveDebris => "remove-debris",
        Action::Report => "report",
    }
}

/// Runs the reconciliation. Token failures are reported per device, not as errors.
pub fn verify(
    inventory: &mut Inventory,
    tokens: &dyn DeviceTokens,
    options: &VerifyOptions,
) -> Result<VerifyReport> {
    let audit_entries = inventory.check_audit_chain()?;
    let mut items = Vec::new();
    for intent in inventory.pending_intents()? {
        let serial = intent.new.serial.clone();
        let result = tokens
            .open(&intent.new.origin.token_uri)
            .map_err(|source| FactoryError::Token {
                serial: serial.clone(),
                step: "opening the device token",
                source,
            })
            .and_then(|mut token| {
                let liveness = intent.owner.liveness();
                reconcile_intent(
                    inventory,
                    token.as_mut(),
                    &intent,
                    liveness,
                    options.takeover,
                    options.repair,
                )
            });
        items.push(item("intent", &serial, result));
    }
    let devices = if options.all {
        inventory.devices(&DeviceFilter::default())?
    } else {
        let mut v = Vec::new();
        for serial in &options.devices {
            v.push(
                inventory
                    .device(serial)?
                    .ok_or_else(|| FactoryError::UnknownDevice {
                        serial: serial.clone(),
                    })?,
            );
        }
        v
    };
    for device in devices {
        if device.status != crate::types::DeviceStatus::Active {
            let repair = Repair {
                serial: device.serial.clone(),
                finding: Finding::Inactive(device.status),
                action: Action::Nothing,
                applied: false,
                device: None,
                unrecorded_objects: 0,
            };
            items.push(item("device", &device.serial, Ok(repair)));
            continue;
        }
        let result = tokens
            .open(&device.token_uri)
            .map_err(|source| FactoryError::Token {
                serial: device.serial.clone(),
                step: "opening the device token",
                source,
            })
            .and_then(|mut token| {
                reconcile_device(inventory, token.as_mut(), &device, options.repair)
            });
        items.push(item("device", &device.serial, result));
    }
    Ok(VerifyReport {
        audit_entries,
        items,
    })
}
