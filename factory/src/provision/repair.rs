//! Executes the reconciliation [`Action`]s decided by [`super::plan::assess`] against the
//! inventory and one device token.

use serde_json::json;

use super::plan::{Action, Finding, TokenView, assess, device_view, intent_view, is_debris};
use super::seam::{DeviceToken, ObjectSelection};
use crate::error::{FactoryError, Result};
use crate::inventory::{DeviceRecord, Intent, Inventory};
use crate::process::Liveness;
use crate::types::{DeviceSerial, KeyId, now};

/// What reconciliation found and did for one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// The device.
    pub serial: DeviceSerial,
    /// What was found.
    pub finding: Finding,
    /// What was (or would be) done.
    pub action: Action,
    /// True if the action was carried out.
    pub applied: bool,
    /// The device row after a completed intent.
    pub device: Option<DeviceRecord>,
    /// Objects in the token under other key ids (not recorded by the station; never deleted).
    pub unrecorded_objects: usize,
}

fn token_err(
    serial: &DeviceSerial,
    step: &'static str,
) -> impl FnOnce(super::TokenError) -> FactoryError + use<> {
    let serial = serial.clone();
    move |source| FactoryError::Token {
        serial,
        step,
        source,
    }
}

/// Lists the token and counts the objects neither under `id` nor debris.
fn observe(
    token: &mut dyn DeviceToken,
    serial: &DeviceSerial,
    id: &KeyId,
    label: &str,
) -> Result<(TokenView, usize)> {
    let objects = token
        .list_objects()
        .map_err(token_err(serial, "listing the token objects"))?;
    let unrecorded = objects
        .iter()
        .filter(|o| &o.id != id && !is_debris(o, label))
        .count();
    Ok((TokenView::of(&objects, id, label), unrecorded))
}

/// Deletes the debris of an object creation cut short, if the view saw any.
fn remove_debris(
    token: &mut dyn DeviceToken,
    serial: &DeviceSerial,
    view: &TokenView,
    label: &str,
) -> Result<()> {
    if view.debris {
        let n = token
            .delete_debris(label)
            .map_err(token_err(serial, "deleting objects without CKA_ID"))?;
        tracing::warn!(%serial, deleted = n, "removed the debris of an interrupted object creation");
    }
    Ok(())
}

/// Reconciles a pending intent with its token; applies the action if `apply`.
pub fn reconcile_intent(
    inventory: &mut Inventory,
    token: &mut dyn DeviceToken,
    intent: &Intent,
    liveness: Liveness,
    takeover: bool,
    apply: bool,
) -> Result<Repair> {
    let serial = &intent.new.serial;
    let id = &intent.new.origin.key_id;
    let label = &intent.new.origin.key_label;
    let (view, unrecorded) = observe(token, serial, id, label)?;
    let (finding, action) = assess(&intent_view(intent, liveness), &view, takeover);
    let mut repair = Repair {
        serial: serial.clone(),
        finding,
        action,
        applied: false,
        device: None,
        unrecorded_objects: unrecorded,
    };
    if !apply || !action.is_repair() {
        return Ok(repair);
    }
    tracing::warn!(%serial, %finding, ?action, "repairing an interrupted provisioning");
    let outcome = format!("{finding}; repaired by {}", crate::process::actor());
    remove_debris(token, serial, &view, label)?;
    match action {
        Action::DropIntent => inventory.abort_provisioning(intent.id, &outcome, false, now())?,
        Action::RollBack => {
            token
                .delete_objects(id, ObjectSelection::All)
                .map_err(token_err(serial, "deleting the interrupted run's objects"))?;
            inventory.abort_provisioning(intent.id, &outcome, true, now())?;
        }
        Action::WriteCertificateAndComplete | Action::Complete => {
            if action == Action::WriteCertificateAndComplete {
                let cert = intent.certificate.as_deref().unwrap_or_default();
                replace_certificate(token, serial, id, &intent.new.origin.key_label, cert)?;
            }
            repair.device = Some(inventory.complete_provisioning(intent.id, now())?);
        }
        _ => unreachable!("no intent rule yields {action:?}"),
    }
    repair.applied = true;
    Ok(repair)
}

/// Reconciles a device row with its token; applies the action if `apply`.
pub fn reconcile_device(
    inventory: &mut Inventory,
    token: &mut dyn DeviceToken,
    device: &DeviceRecord,
    apply: bool,
) -> Result<Repair> {
    let serial = &device.serial;
    let (view, unrecorded) = observe(token, serial, &device.key_id, &device.key_label)?;
    let (finding, action) = assess(&device_view(device), &view, false);
    let mut repair = Repair {
        serial: serial.clone(),
        finding,
        action,
        applied: false,
        device: None,
        unrecorded_objects: unrecorded,
    };
    if apply && matches!(action, Action::RewriteCertificate | Action::RemoveDebris) {
        remove_debris(token, serial, &view, &device.key_label)?;
        if action == Action::RewriteCertificate {
            replace_certificate(
                token,
                serial,
                &device.key_id,
                &device.key_label,
                &device.certificate,
            )?;
        }
        let detail = json!({"finding": finding.to_string(), "cert_serial": device.cert_serial});
        let event = match action {
            Action::RewriteCertificate => "repair-certificate",
            _ => "repair-debris",
        };
        inventory.record_event(event, Some(serial), detail, now())?;
        repair.applied = true;
    }
    Ok(repair)
}

fn replace_certificate(
    token: &mut dyn DeviceToken,
    serial: &DeviceSerial,
    id: &KeyId,
    label: &str,
    der: &[u8],
) -> Result<()> {
    token
        .delete_objects(id, ObjectSelection::Certificates)
        .map_err(token_err(serial, "deleting stale certificates"))?;
    token
        .write_certificate(id, label, der)
        .map_err(token_err(serial, "writing the certificate to the token"))
}
