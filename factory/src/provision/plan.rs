//! Pure reconciliation decisions: what the inventory says about a device × what its token
//! holds → what is wrong ([`Finding`]) and what to do ([`Action`]).
//!
//! The rules follow the order of provisioning (intent recorded → key generated → certificate
//! recorded → certificate written → device row): a stale intent at stage `recorded` is rolled
//! back (any key under its id was made by the interrupted run and never certified); at stage
//! `cert-issued` it is rolled forward when the token still holds the certified key. A recorded
//! device is never deleted: problems the station cannot fix are reported. Debris of an object
//! creation cut short (objects without `CKA_ID`, see [`is_debris`]) is removed with any repair.

use std::fmt;

use crate::inventory::{DeviceRecord, Intent, IntentStage};
use crate::process::Liveness;
use crate::types::{DeviceStatus, KeyId};

use super::seam::{ObjectClass, TokenObject};

/// SHA-256 digest.
pub type Digest = [u8; 32];

/// What the inventory says about a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InventoryView {
    /// Neither a device row nor a pending intent.
    Absent,
    /// A pending provisioning intent.
    Pending {
        /// How far the run got.
        stage: IntentStage,
        /// Whether its process still runs.
        owner: Liveness,
        /// For `cert-issued`: SPKI SHA-256 and DER SHA-256 of the issued certificate.
        cert: Option<(Digest, Digest)>,
    },
    /// A device row.
    Recorded {
        /// Its status.
        status: DeviceStatus,
        /// SPKI SHA-256 of its certificate.
        spki: Digest,
        /// SHA-256 of its certificate.
        cert: Digest,
    },
}

/// What the token holds under the recorded key id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenView {
    /// A private key is present.
    pub private_key: bool,
    /// Any key object (private or public) is present.
    pub any_object: bool,
    /// SPKI SHA-256 of the key pair, if the token exposes it.
    pub key_spki: Option<Digest>,
    /// SHA-256 of each certificate under the id.
    pub certificates: Vec<Digest>,
    /// Debris of an object creation that was cut short (see [`is_debris`]).
    pub debris: bool,
}

/// True for an object left by an object creation that was cut short: a key or certificate
/// without `CKA_ID` whose label is empty or the device's key label. (SoftHSM writes a new
/// object's file before its attributes; a SIGKILL in between leaves such an object. The station
/// never creates objects without an id.)
pub fn is_debris(object: &TokenObject, label: &str) -> bool {
    object.class != ObjectClass::Other
        && object.id.as_bytes().is_empty()
        && (object.label.is_empty() || object.label == label)
}

impl TokenView {
    /// Summarizes the objects under `id` and the debris labelled `label` (or unlabelled).
    pub fn of(objects: &[TokenObject], id: &KeyId, label: &str) -> Self {
        let mut view = TokenView {
            debris: objects.iter().any(|o| is_debris(o, label)),
            ..TokenView::default()
        };
        for o in objects.iter().filter(|o| &o.id == id) {
            view.any_object = true;
            match o.class {
                ObjectClass::PrivateKey | ObjectClass::PublicKey => {
                    view.private_key |= o.class == ObjectClass::PrivateKey;
                    view.key_spki = view.key_spki.or(o.spki_sha256);
                }
                ObjectClass::Certificate => {
                    if let Some(der) = &o.certificate {
                        view.certificates.push(openssl::sha::sha256(der));
                    }
                }
                ObjectClass::Other => {}
            }
        }
        view
    }
}

/// What is the matter with a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// Inventory and token agree.
    Consistent,
    /// A revoked or retired device; its token is not checked.
    Inactive(DeviceStatus),
    /// A provisioning run of a live process (or of another host) is in progress.
    InProgress,
    /// A run died before any object reached the token.
    InterruptedBeforeKey,
    /// A run died after key generation but before its certificate was recorded.
    InterruptedAfterKey,
    /// A run died after the certificate was recorded; the token holds the certified key.
    InterruptedAfterCertificate,
    /// A run died after the certificate was recorded, and the certified key is not in the token.
    CertifiedKeyLost,
    /// The recorded device's key is missing from its token.
    KeyMissing,
    /// The token's key under the recorded id is not the certified key.
    KeyMismatch,
    /// The token does not expose the public key, so the key cannot be matched.
    KeyUnverifiable,
    /// The recorded certificate is missing from the token.
    CertificateMissing,
    /// The token holds other certificates under the key id.
    CertificateMismatch,
    /// Nothing recorded for this device.
    NotRecorded,
    /// Everything agrees, but an object creation cut short left debris in the token.
    Debris,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Finding::Consistent => "inventory and token agree",
            Finding::Inactive(DeviceStatus::Revoked) => "revoked (token not checked)",
            Finding::Inactive(_) => "retired (token not checked)",
            Finding::InProgress => "provisioning in progress in another process",
            Finding::InterruptedBeforeKey => "provisioning interrupted before key generation",
            Finding::InterruptedAfterKey => {
                "provisioning interrupted after key generation, before certification"
            }
            Finding::InterruptedAfterCertificate => "provisioning interrupted after certification",
            Finding::CertifiedKeyLost => {
                "provisioning interrupted and the certified key is not in the token"
            }
            Finding::KeyMissing => "the device key is missing from its token",
            Finding::KeyMismatch => "the token's key is not the certified key",
            Finding::KeyUnverifiable => "the token does not expose the public key; cannot match it",
            Finding::CertificateMissing => "the certificate is missing from the token",
            Finding::CertificateMismatch => "the token holds a different certificate",
            Finding::NotRecorded => "not in the inventory",
            Finding::Debris => {
                "inventory and token agree, but an interrupted object creation left objects \
                 without CKA_ID"
            }
        };
        f.write_str(s)
    }
}

/// What to do about a [`Finding`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing.
    Nothing,
    /// Leave it to the running process.
    Wait,
    /// Remove the intent without a trace (nothing reached the token).
    DropIntent,
    /// Delete every object under the intent's key id, then abort the intent (audited).
    RollBack,
    /// Replace the certificates under the key id with the intent's certificate, then complete.
    WriteCertificateAndComplete,
    /// Complete the intent (the token already holds key and certificate).
    Complete,
    /// Replace the certificates under the key id with the recorded certificate.
    RewriteCertificate,
    /// Delete the debris of an interrupted object creation.
    RemoveDebris,
    /// Report to the operator; the station does not change anything.
    Report,
}

impl Action {
    /// True if the action changes the token or the inventory.
    pub fn is_repair(self) -> bool {
        !matches!(self, Action::Nothing | Action::Wait | Action::Report)
    }
}

/// A finding and its action.
pub type Assessment = (Finding, Action);

/// Decides what to do about a device. `takeover` treats intents of other hosts as stale.
pub fn assess(inventory: &InventoryView, token: &TokenView, takeover: bool) -> Assessment {
    match inventory {
        InventoryView::Absent
            if token.any_object || !token.certificates.is_empty() || token.debris =>
        {
            (Finding::NotRecorded, Action::Report)
        }
        InventoryView::Absent => (Finding::NotRecorded, Action::Nothing),
        InventoryView::Pending { owner, .. }
            if *owner == Liveness::Alive || (*owner == Liveness::OtherHost && !takeover) =>
        {
            (Finding::InProgress, Action::Wait)
        }
        InventoryView::Pending {
            stage: IntentStage::Recorded,
            ..
        } => {
            if token.any_object || !token.certificates.is_empty() || token.debris {
                (Finding::InterruptedAfterKey, Action::RollBack)
            } else {
                (Finding::InterruptedBeforeKey, Action::DropIntent)
            }
        }
        InventoryView::Pending {
            cert: Some((spki, cert)),
            ..
        } => assess_certified_intent(token, spki, cert),
        InventoryView::Pending { cert: None, .. } => {
            (Finding::InterruptedAfterKey, Action::RollBack)
        }
        InventoryView::Recorded { status, .. } if *status != DeviceStatus::Active => {
            (Finding::Inactive(*status), Action::Nothing)
        }
        InventoryView::Recorded { spki, cert, .. } => match assess_active(token, spki, cert) {
            (Finding::Consistent, Action::Nothing) if token.debris => {
                (Finding::Debris, Action::RemoveDebris)
            }
            other => other,
        },
    }
}

fn assess_certified_intent(token: &TokenView, spki: &Digest, cert: &Digest) -> Assessment {
    if !token.private_key {
        return (Finding::CertifiedKeyLost, Action::RollBack);
    }
    match token.key_spki {
        None => (Finding::KeyUnverifiable, Action::RollBack),
        Some(k) if k != *spki => (Finding::KeyMismatch, Action::RollBack),
        Some(_) if token.certificates == [*cert] => {
            (Finding::InterruptedAfterCertificate, Action::Complete)
        }
        Some(_) => (
            Finding::InterruptedAfterCertificate,
            Action::WriteCertificateAndComplete,
        ),
    }
}

fn assess_active(token: &TokenView, spki: &Digest, cert: &Digest) -> Assessment {
    if !token.private_key {
        return (Finding::KeyMissing, Action::Report);
    }
    match token.key_spki {
        None => (Finding::KeyUnverifiable, Action::Report),
        Some(k) if k != *spki => (Finding::KeyMismatch, Action::Report),
        Some(_) if token.certificates == [*cert] => (Finding::Consistent, Action::Nothing),
        Some(_) if token.certificates.is_empty() => {
            (Finding::CertificateMissing, Action::RewriteCertificate)
        }
        Some(_) => (Finding::CertificateMismatch, Action::RewriteCertificate),
    }
}

/// What `provision` does for a device, decided from the inventory alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvisionStep {
    /// The device is recorded: report its state, change nothing (the token is not opened).
    Report,
    /// A live process (or another host) is provisioning it: refuse.
    Busy,
    /// A dead run left an intent: reconcile it first (roll back, or forward to completion).
    RepairFirst,
    /// Nothing recorded: provision from scratch.
    Start,
}

/// The first step of `provision` for a device.
pub fn provision_step(inventory: &InventoryView) -> ProvisionStep {
    match inventory {
        InventoryView::Recorded { .. } => ProvisionStep::Report,
        InventoryView::Pending {
            owner: Liveness::Dead,
            ..
        } => ProvisionStep::RepairFirst,
        InventoryView::Pending { .. } => ProvisionStep::Busy,
        InventoryView::Absent => ProvisionStep::Start,
    }
}

/// The inventory view of a pending intent.
pub fn intent_view(intent: &Intent, owner: Liveness) -> InventoryView {
    let cert = intent.certificate.as_deref().and_then(|der| {
        let facts = crate::cert::CertFacts::from_der(der, "intent certificate").ok()?;
        Some((facts.spki_sha256, openssl::sha::sha256(der)))
    });
    InventoryView::Pending {
        stage: intent.stage,
        owner,
        cert,
    }
}

/// The inventory view of a device row.
pub fn device_view(device: &DeviceRecord) -> InventoryView {
    let mut spki = [0u8; 32];
    if let Ok(bytes) = hex::decode(&device.spki_sha256)
        && bytes.len() == 32
    {
        spki.copy_from_slice(&bytes);
    }
    InventoryView::Recorded {
        status: device.status,
        spki,
        cert: openssl::sha::sha256(&device.certificate),
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
