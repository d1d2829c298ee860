//! Provisioning intents: the crash-safety record of a provisioning run.
//!
//! 1. [`Inventory::begin_provisioning`] records a `pending` intent (stage `recorded`) with the
//!    key id and label BEFORE the key is generated, so a key in a token is never without a record.
//! 2. [`Inventory::record_issued_certificate`] stores the certificate (stage `cert-issued`)
//!    BEFORE it is written to the token.
//! 3. [`Inventory::complete_provisioning`] turns the intent into the device row and appends the
//!    audit entry, in one transaction; the intent row is removed.
//!
//! [`Inventory::abort_provisioning`] closes an intent that could not complete: removed without a
//! trace if nothing reached the token, kept as `aborted` with an audit entry otherwise.

use rusqlite::{OptionalExtension, Row, params};
use serde_json::json;

use super::devices::{DeviceOrigin, DeviceRecord};
use super::row::{Parsed, tags_from_sql, tags_to_sql};
use super::{Inventory, Tx, audit};
use crate::error::{FactoryError, Result};
use crate::process::ProcessId;
use crate::types::{DeviceSerial, KeyType, UnixTime, rfc3339};

/// Row id of an intent.
pub type IntentId = i64;

/// How far a pending intent got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentStage {
    /// Recorded; the key may or may not have been generated.
    Recorded,
    /// The certificate is issued and stored in the intent; it may or may not be in the token.
    CertIssued,
}

impl IntentStage {
    fn name(self) -> &'static str {
        match self {
            IntentStage::Recorded => "recorded",
            IntentStage::CertIssued => "cert-issued",
        }
    }
}

/// What a new intent records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIntent {
    /// The device.
    pub serial: DeviceSerial,
    /// Certificate profile.
    pub profile: String,
    /// Key type to generate.
    pub key_type: KeyType,
    /// Where the key goes and how the device is grouped.
    pub origin: DeviceOrigin,
}

/// A pending (or aborted) provisioning intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// Row id.
    pub id: IntentId,
    /// What was recorded.
    pub new: NewIntent,
    /// How far it got.
    pub stage: IntentStage,
    /// The issued certificate (stage `cert-issued`).
    pub certificate: Option<Vec<u8>>,
    /// The process that owns it.
    pub owner: ProcessId,
    /// When it was recorded.
    pub started_at: UnixTime,
}

const INTENT_COLUMNS: &str = "id, serial, stage, profile, key_type, grp, tags, token_uri, token_description, \
     key_id, key_label, ek_cert_sha256, certificate, owner_host, owner_pid, owner_start, started_at";

fn intent_from_row(r: &Row<'_>) -> rusqlite::Result<Intent> {
    let stage: String = r.get(2)?;
    Ok(Intent {
        id: r.get(0)?,
        new: NewIntent {
            serial: r.get::<_, Parsed<DeviceSerial>>(1)?.0,
            profile: r.get(3)?,
            key_type: r.get::<_, Parsed<KeyType>>(4)?.0,
            origin: DeviceOrigin {
                group: r.get(5)?,
                tags: tags_from_sql(&r.get::<_, String>(6)?)?,
                token_uri: r.get(7)?,
                token_description: r.get(8)?,
                key_id: r.get(9)?,
                key_label: r.get(10)?,
                ek_cert_sha256: r.get(11)?,
            },
        },
        stage: if stage == "cert-issued" {
            IntentStage::CertIssued
        } else {
            IntentStage::Recorded
        },
        certificate: r.get(12)?,
        owner: ProcessId {
            host: r.get(13)?,
            pid: r.get(14)?,
            start: r.get::<_, i64>(15)? as u64,
        },
        started_at: r.get(16)?,
    })
}

impl Inventory {
    /// Records a pending intent for a device that is neither recorded nor being provisioned.
    pub fn begin_provisioning(
        &mut self,
        intent: &NewIntent,
        owner: &ProcessId,
        at: UnixTime,
    ) -> Result<IntentId> {
        let serial = &intent.serial;
        self.write(&format!("recording the provisioning intent of '{serial}'"), |tx| {
            if let Some(status) = tx.device_status(serial)? {
                return Err(FactoryError::DuplicateDevice { serial: serial.clone(), status });
            }
            if let Some(other) = tx.pending_intent(serial)? {
                return Err(FactoryError::ProvisioningBusy {
                    serial: serial.clone(),
                    owner: other.owner.to_string(),
                    since: rfc3339(other.started_at),
                });
            }
            let o = &intent.origin;
            tx.tx
                .execute(
                    "INSERT INTO provisioning_intents (serial, state, stage, profile, key_type, grp, tags, \
                     token_uri, token_description, key_id, key_label, ek_cert_sha256, owner_host, owner_pid, \
                     owner_start, started_at, updated_at) \
                     VALUES (?1, 'pending', 'recorded', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14)",
                    params![
                        serial, intent.profile, intent.key_type, o.group, tags_to_sql(&o.tags), o.token_uri,
                        o.token_description, o.key_id, o.key_label, o.ek_cert_sha256, owner.host, owner.pid,
                        owner.start as i64, at
                    ],
                )
                .map_err(tx.sql("inserting the intent"))?;
            Ok(tx.tx.last_insert_rowid())
        })
    }

    /// Stores the issued certificate in a pending intent (stage `cert-issued`).
    pub fn record_issued_certificate(
        &mut self,
        id: IntentId,
        certificate: &[u8],
        at: UnixTime,
    ) -> Result<()> {
        self.write("recording the issued certificate", |tx| {
            let n = tx
                .tx
                .execute(
                    "UPDATE provisioning_intents SET stage = 'cert-issued', certificate = ?2, updated_at = ?3 \
                     WHERE id = ?1 AND state = 'pending'",
                    params![id, certificate, at],
                )
                .map_err(tx.sql("updating the intent"))?;
            tx.expect_one(n, id)
        })
    }

    /// Completes a `cert-issued` intent: inserts the active device row and the `provision`
    /// audit entry and removes the intent, in one transaction.
    pub fn complete_provisioning(&mut self, id: IntentId, at: UnixTime) -> Result<DeviceRecord> {
        self.write("completing the provisioning", |tx| {
            let intent = tx.intent(id)?;
            let cert = match (intent.stage, intent.certificate) {
                (IntentStage::CertIssued, Some(cert)) => cert,
                _ => {
                    return Err(FactoryError::IntentState {
                        id,
                        message: "no certificate was issued yet".into(),
                    });
                }
            };
            let n = &intent.new;
            let device = DeviceRecord::new_active(n.serial.clone(), cert, n.origin.clone(), at)?;
            tx.insert_device(&device)?;
            tx.tx
                .execute("DELETE FROM provisioning_intents WHERE id = ?1", [id])
                .map_err(tx.sql("closing the intent"))?;
            let detail = json!({
                "profile": n.profile, "key_type": device.key_type.name(), "cert_serial": device.cert_serial,
                "issuer": device.issuer, "key_id": device.key_id.to_hex(), "token_uri": device.token_uri,
                "ek_cert_sha256": device.ek_cert_sha256,
            });
            audit::append(tx, at, "provision", Some(&n.serial), &detail)?;
            Ok(device)
        })
    }

    /// Closes a pending intent. If `token_touched` is false nothing reached the token and the
    /// intent disappears without a trace; otherwise it is kept as `aborted` with `outcome` and
    /// an audit entry.
    pub fn abort_provisioning(
        &mut self,
        id: IntentId,
        outcome: &str,
        token_touched: bool,
        at: UnixTime,
    ) -> Result<()> {
        self.write("aborting the provisioning intent", |tx| {
            let intent = tx.intent(id)?;
            if !token_touched {
                let n = tx
                    .tx
                    .execute("DELETE FROM provisioning_intents WHERE id = ?1", [id])
                    .map_err(tx.sql("removing the intent"))?;
                return tx.expect_one(n, id);
            }
            tx.tx
                .execute(
                    "UPDATE provisioning_intents SET state = 'aborted', outcome = ?2, updated_at = ?3 WHERE id = ?1",
                    params![id, outcome, at],
                )
                .map_err(tx.sql("aborting the intent"))?;
            let cert_serial = intent
                .certificate
                .as_deref()
                .and_then(|c| crate::cert::CertFacts::from_der(c, "intent certificate").ok())
                .map(|f| f.serial_hex);
            let detail = json!({
                "outcome": outcome, "stage": intent.stage.name(), "key_id": intent.new.origin.key_id.to_hex(),
                "token_uri": intent.new.origin.token_uri, "abandoned_cert_serial": cert_serial,
            });
            audit::append(tx, at, "provision-aborted", Some(&intent.new.serial), &detail)?;
            Ok(())
        })
    }

    /// The pending intent of a device, if any.
    pub fn pending_intent(&self, serial: &DeviceSerial) -> Result<Option<Intent>> {
        let sql = format!(
            "SELECT {INTENT_COLUMNS} FROM provisioning_intents WHERE serial = ?1 AND state = 'pending'"
        );
        self.conn
            .query_row(&sql, [serial], intent_from_row)
            .optional()
            .map_err(self.sql("reading the provisioning intent"))
    }

    /// All pending intents, oldest first.
    pub fn pending_intents(&self) -> Result<Vec<Intent>> {
        let sql = format!(
            "SELECT {INTENT_COLUMNS} FROM provisioning_intents WHERE state = 'pending' ORDER BY id"
        );
        let err = || self.sql("listing provisioning intents");
        let mut stmt = self.conn.prepare(&sql).map_err(err())?;
        let rows = stmt.query_map([], intent_from_row).map_err(err())?;
        rows.collect::<rusqlite::Result<_>>().map_err(err())
    }
}

impl Tx<'_> {
    fn pending_intent(&self, serial: &DeviceSerial) -> Result<Option<Intent>> {
        let sql = format!(
            "SELECT {INTENT_COLUMNS} FROM provisioning_intents WHERE serial = ?1 AND state = 'pending'"
        );
        self.tx
            .query_row(&sql, [serial], intent_from_row)
            .optional()
            .map_err(self.sql("reading the provisioning intent"))
    }

    fn intent(&self, id: IntentId) -> Result<Intent> {
        let sql = format!(
            "SELECT {INTENT_COLUMNS} FROM provisioning_intents WHERE id = ?1 AND state = 'pending'"
        );
        self.tx
            .query_row(&sql, [id], intent_from_row)
            .optional()
            .map_err(self.sql("reading the provisioning intent"))?
            .ok_or_else(|| not_pending(id))
    }

    fn expect_one(&self, changed: usize, id: IntentId) -> Result<()> {
        if changed == 1 {
            Ok(())
        } else {
            Err(not_pending(id))
        }
    }
}

fn not_pending(id: IntentId) -> FactoryError {
    FactoryError::IntentState {
        id,
        message: "is not pending (closed by another process?)".into(),
    }
}
