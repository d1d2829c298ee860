//! The provisioning executor: one device at a time, over the token seam.
//!
//! Order of effects (each line is durable before the next starts):
//!
//! | step | inventory                          | token                       |
//! |------|------------------------------------|-----------------------------|
//! | 0    |                                    | open + login (wrong PIN stops here) |
//! | 1    | intent `pending`/`recorded`        |                             |
//! | 2    |                                    | key pair generated (id, label) |
//! | 3    |                                    | CSR signed by the new key   |
//! | 4    | (CA signs in the station HSM)      |                             |
//! | 5    | intent `cert-issued` + certificate |                             |
//! | 6    |                                    | certificate written (same id, label) |
//! | 7    | device row + audit, intent removed |                             |
//!
//! A failure in steps 2–6 is rolled back at once (objects under the id deleted, intent aborted;
//! an intent with nothing in the token disappears). A failure in step 7, or a failed rollback,
//! leaves the intent pending for `verify --repair` or the next run.

use super::plan::{Action, InventoryView, ProvisionStep, device_view, intent_view, provision_step};
use super::repair::reconcile_intent;
use super::seam::{DeviceKeySpec, DeviceToken, DeviceTokens, ObjectSelection};
use super::{ProvisionOutcome, ProvisionRequest};
use crate::ca::CertificateAuthority;
use crate::config::{ProfileUsage, StationConfig};
use crate::csr::build_csr;
use crate::error::{FactoryError, Result};
use crate::inventory::{DeviceOrigin, DeviceRecord, Intent, IntentId, Inventory, NewIntent};
use crate::process::{Liveness, ProcessId};
use crate::types::{DeviceSerial, check_label, now, rfc3339};

/// Provisions devices with one inventory connection and one CA signer session (one per worker).
pub struct Provisioner<'a> {
    config: &'a StationConfig,
    inventory: Inventory,
    ca: CertificateAuthority<'a>,
    tokens: &'a dyn DeviceTokens,
    owner: ProcessId,
}

impl std::fmt::Debug for Provisioner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioner")
            .field("inventory", &self.inventory)
            .finish_non_exhaustive()
    }
}

/// Where a failed run got to, for its cleanup.
enum Failure {
    /// Before the certificate was recorded: roll back.
    BeforeCertificate(FactoryError),
    /// The certificate is recorded but not (completely) in the token: roll back.
    CertificateNotWritten(FactoryError),
    /// The token is complete but the inventory could not record it: leave for repair.
    Recording(FactoryError),
}

impl<'a> Provisioner<'a> {
    /// A provisioner over an open inventory and CA.
    pub fn new(
        config: &'a StationConfig,
        inventory: Inventory,
        ca: CertificateAuthority<'a>,
        tokens: &'a dyn DeviceTokens,
    ) -> Self {
        Self {
            config,
            inventory,
            ca,
            tokens,
            owner: ProcessId::current(),
        }
    }

    /// The inventory connection.
    pub fn inventory(&mut self) -> &mut Inventory {
        &mut self.inventory
    }

    /// Provisions one device. A recorded device is reported unchanged; an interrupted run of
    /// the device is repaired first (see [`provision_step`]).
    pub fn provision(&mut self, req: &ProvisionRequest) -> Result<ProvisionOutcome> {
        self.check_request(req)?;
        let device = self.inventory.device(&req.serial)?;
        let intent = match device {
            Some(_) => None,
            None => self.inventory.pending_intent(&req.serial)?,
        };
        let liveness = intent.as_ref().map(|i| i.owner.liveness());
        let view = match (&device, &intent, liveness) {
            (Some(d), _, _) => device_view(d),
            (None, Some(i), Some(l)) => intent_view(i, l),
            _ => InventoryView::Absent,
        };
        match (provision_step(&view), device, intent) {
            (ProvisionStep::Report, Some(device), _) => {
                Ok(ProvisionOutcome::AlreadyProvisioned(device))
            }
            (ProvisionStep::Busy, _, Some(i)) => Err(FactoryError::ProvisioningBusy {
                serial: req.serial.clone(),
                owner: i.owner.to_string(),
                since: rfc3339(i.started_at),
            }),
            (ProvisionStep::RepairFirst, _, Some(i)) => match self.repair(&i)? {
                Some(device) => Ok(ProvisionOutcome::Resumed(device)),
                None => self.fresh(req).map(ProvisionOutcome::Provisioned),
            },
            _ => self.fresh(req).map(ProvisionOutcome::Provisioned),
        }
    }

    fn check_request(&self, req: &ProvisionRequest) -> Result<()> {
        if let Some(g) = &req.group {
            check_label("group", g)?;
        }
        req.tags.iter().try_for_each(|t| check_label("tag", t))?;
        self.config.profile(req.profile.as_deref()).map(|_| ())
    }

    /// Reconciles a dead run's intent; returns the device if it was rolled forward.
    fn repair(&mut self, intent: &Intent) -> Result<Option<DeviceRecord>> {
        let serial = &intent.new.serial;
        let mut token = self.open_token(serial, &intent.new.origin.token_uri)?;
        let repair = reconcile_intent(
            &mut self.inventory,
            token.as_mut(),
            intent,
            Liveness::Dead,
            false,
            true,
        )?;
        tracing::info!(%serial, finding = %repair.finding, action = ?repair.action, "repaired an interrupted run");
        match repair.action {
            Action::Complete | Action::WriteCertificateAndComplete => Ok(repair.device),
            _ => Ok(None),
        }
    }

    fn open_token(&self, serial: &DeviceSerial, uri: &str) -> Result<Box<dyn DeviceToken + Send>> {
        self.tokens.open(uri).map_err(|source| FactoryError::Token {
            serial: serial.clone(),
            step: "opening the device token",
            source,
        })
    }

    fn fresh(&mut self, req: &ProvisionRequest) -> Result<DeviceRecord> {
        let serial = &req.serial;
        let profile = self.config.profile(req.profile.as_deref())?;
        let token_uri = req
            .token_uri
            .clone()
            .unwrap_or_else(|| self.config.device_token_uri(serial));
        let mut token = self.open_token(serial, &token_uri)?;
        if profile.usage != ProfileUsage::Device {
            return Err(FactoryError::ConfigValue {
                path: self.config.path.clone(),
                key: format!("profiles.{}.usage", profile.name),
                message: "this profile issues release-signing certificates (`factory ca issue`); \
                          provision devices with a profile of usage \"device\""
                    .into(),
            });
        }
        let ek_cert_sha256 = if self.config.tpm.record_ek_certificate {
            let ek = token
                .ek_certificate()
                .map_err(|source| FactoryError::Token {
                    serial: serial.clone(),
                    step: "reading the EK certificate",
                    source,
                })?;
            ek.map(|der| hex::encode(openssl::sha::sha256(&der)))
        } else {
            None
        };
        let key_id = token
            .allocate_key_id()
            .map_err(|source| FactoryError::Token {
                serial: serial.clone(),
                step: "choosing the key id",
                source,
            })?;
        let intent = NewIntent {
            serial: serial.clone(),
            profile: profile.name.clone(),
            key_type: profile.key_type,
            origin: DeviceOrigin {
                group: req.group.clone(),
                tags: req.tags.clone(),
                token_uri: token.uri(),
                token_description: token.description(),
                key_id,
                key_label: self.config.device_token.key_label.render(serial),
                ek_cert_sha256,
            },
        };
        let id = self
            .inventory
            .begin_provisioning(&intent, &self.owner, now())?;
        match self.run(id, &intent, token.as_mut()) {
            Ok(device) => Ok(device),
            Err(failure) => Err(self.clean_up(id, &intent, token.as_mut(), failure)),
        }
    }

    fn run(
        &mut self,
        id: IntentId,
        intent: &NewIntent,
        token: &mut dyn DeviceToken,
    ) -> Result<DeviceRecord, Failure> {
        let serial = &intent.serial;
        let origin = &intent.origin;
        let token_err = |step| {
            move |source| FactoryError::Token {
                serial: serial.clone(),
                step,
                source,
            }
        };
        let spec = DeviceKeySpec {
            id: origin.key_id.clone(),
            label: origin.key_label.clone(),
            key_type: intent.key_type,
        };
        let spki = token
            .generate_key_pair(&spec)
            .map_err(token_err("generating the key pair in the token"))
            .map_err(Failure::BeforeCertificate)?;
        let profile = self
            .config
            .profile(Some(&intent.profile))
            .map_err(Failure::BeforeCertificate)?;
        let subject = profile.subject.render(serial);
        let issued = match token
            .csr_signer(&origin.key_id)
            .map_err(token_err("opening the device key for the CSR"))
            .map_err(Failure::BeforeCertificate)?
        {
            Some(signer) => {
                let csr = build_csr(&subject, &spki, signer.as_ref())
                    .map_err(Failure::BeforeCertificate)?;
                self.ca.issue_for_csr(serial, profile, &csr, now())
            }
            // A key that cannot sign: certify the public key the token just generated.
            None => self.ca.issue_for_key(serial, profile, &spki, now()),
        }
        .map_err(Failure::BeforeCertificate)?;
        self.inventory
            .record_issued_certificate(id, &issued.der, now())
            .map_err(Failure::BeforeCertificate)?;
        token
            .write_certificate(&origin.key_id, &origin.key_label, &issued.der)
            .map_err(token_err("writing the certificate to the token"))
            .map_err(Failure::CertificateNotWritten)?;
        self.inventory
            .complete_provisioning(id, now())
            .map_err(Failure::Recording)
    }

    /// Undoes a failed run where that is safe; returns the error to report.
    fn clean_up(
        &mut self,
        id: IntentId,
        intent: &NewIntent,
        token: &mut dyn DeviceToken,
        failure: Failure,
    ) -> FactoryError {
        let serial = intent.serial.clone();
        let (error, cleanup) = match failure {
            Failure::Recording(e) => (
                e,
                "the token holds key and certificate; the intent stays pending: run `factory verify --repair`".to_string(),
            ),
            Failure::BeforeCertificate(e) | Failure::CertificateNotWritten(e) => {
                let cleanup = self.roll_back(id, intent, token, &e);
                (e, cleanup)
            }
        };
        tracing::info!(%serial, %error, %cleanup, "provisioning failed");
        FactoryError::ProvisioningFailed {
            serial,
            source: Box::new(error),
            cleanup,
        }
    }

    fn roll_back(
        &mut self,
        id: IntentId,
        intent: &NewIntent,
        token: &mut dyn DeviceToken,
        error: &FactoryError,
    ) -> String {
        let deleted = match token.delete_objects(&intent.origin.key_id, ObjectSelection::All) {
            Ok(n) => n,
            Err(e) => {
                return format!(
                    "rollback failed: deleting the token objects: {e}; the intent stays pending: \
                     run `factory verify --repair` when the token is reachable"
                );
            }
        };
        match self
            .inventory
            .abort_provisioning(id, &error.to_string(), deleted > 0, now())
        {
            Ok(()) if deleted > 0 => {
                format!("rolled back: {deleted} token objects deleted, intent aborted")
            }
            Ok(()) => "nothing reached the token; the inventory is unchanged".to_string(),
            Err(e) => format!(
                "token objects deleted, but closing the intent failed: {e}; run `factory verify --repair`"
            ),
        }
    }
}
