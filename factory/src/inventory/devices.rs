//! Device rows: lookup, listing, revocation, retirement, recipient selection and import.

use rusqlite::{OptionalExtension, params};
use serde_json::json;

use super::row::{DEVICE_COLUMNS, Parsed, device_from_row, tags_to_sql};
use super::{Inventory, Tx, audit};
use crate::cert::{CertFacts, key_type_of_spki};
use crate::error::{FactoryError, Result};
use crate::types::{DeviceSerial, DeviceStatus, KeyId, KeyType, RevocationReason, UnixTime};

/// Most conflicts an import reports before giving up.
const MAX_REPORTED_CONFLICTS: usize = 20;

/// When and why a device's certificate was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    /// Why.
    pub reason: RevocationReason,
    /// When.
    pub at: UnixTime,
}

/// One device as the inventory records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Device serial (unique).
    pub serial: DeviceSerial,
    /// Fleet group, if any.
    pub group: Option<String>,
    /// Free tags.
    pub tags: Vec<String>,
    /// Life-cycle status.
    pub status: DeviceStatus,
    /// Device key type.
    pub key_type: KeyType,
    /// The device certificate (DER).
    pub certificate: Vec<u8>,
    /// Issuer name of the certificate.
    pub issuer: String,
    /// Certificate serial, upper-case hex.
    pub cert_serial: String,
    /// subjectKeyIdentifier, lower-case hex.
    pub ski: String,
    /// SHA-256 of the SubjectPublicKeyInfo, lower-case hex.
    pub spki_sha256: String,
    /// Certificate notBefore.
    pub not_before: UnixTime,
    /// Certificate notAfter.
    pub not_after: UnixTime,
    /// The device token's URI.
    pub token_uri: String,
    /// Human description of the token (model, serial).
    pub token_description: String,
    /// `CKA_ID` of the key pair and certificate in the token.
    pub key_id: KeyId,
    /// `CKA_LABEL` of the key pair and certificate.
    pub key_label: String,
    /// SHA-256 fingerprint of the TPM's EK certificate, if recorded.
    pub ek_cert_sha256: Option<String>,
    /// Revocation, if revoked (kept when a revoked device is retired).
    pub revocation: Option<Revocation>,
    /// When the device was retired.
    pub retired_at: Option<UnixTime>,
    /// When the row was created.
    pub created_at: UnixTime,
    /// When the row last changed.
    pub updated_at: UnixTime,
}

/// Where a device's key lives and how it is grouped: everything of a device row that does not
/// come from its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceOrigin {
    /// Fleet group.
    pub group: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Token URI.
    pub token_uri: String,
    /// Token description.
    pub token_description: String,
    /// `CKA_ID`.
    pub key_id: KeyId,
    /// `CKA_LABEL`.
    pub key_label: String,
    /// EK certificate fingerprint.
    pub ek_cert_sha256: Option<String>,
}

impl DeviceRecord {
    /// A new active device row for a certificate; the certificate facts (issuer, serial, SKI,
    /// SPKI hash, validity, key type) are read from the certificate itself.
    pub fn new_active(
        serial: DeviceSerial,
        certificate: Vec<u8>,
        origin: DeviceOrigin,
        now: UnixTime,
    ) -> Result<Self> {
        let facts =
            CertFacts::from_der(&certificate, &format!("certificate of device '{serial}'"))?;
        Ok(Self {
            key_type: key_type_of_spki(&facts.spki_der)?,
            issuer: facts.issuer.clone(),
            cert_serial: facts.serial_hex.clone(),
            ski: facts.ski_hex(),
            spki_sha256: facts.spki_sha256_hex(),
            not_before: facts.not_before,
            not_after: facts.not_after,
            serial,
            group: origin.group,
            tags: origin.tags,
            status: DeviceStatus::Active,
            certificate,
            token_uri: origin.token_uri,
            token_description: origin.token_description,
            key_id: origin.key_id,
            key_label: origin.key_label,
            ek_cert_sha256: origin.ek_cert_sha256,
            revocation: None,
            retired_at: None,
            created_at: now,
            updated_at: now,
        })
    }
}

/// Which devices to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    /// Only this group.
    pub group: Option<String>,
    /// Only this status.
    pub status: Option<DeviceStatus>,
}

/// One record of an import, with its input line for messages.
#[derive(Debug, Clone)]
pub struct ImportItem {
    /// 1-based input line.
    pub line: u64,
    /// The device.
    pub record: DeviceRecord,
}

impl Inventory {
    /// The device with `serial`, if recorded.
    pub fn device(&self, serial: &DeviceSerial) -> Result<Option<DeviceRecord>> {
        let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE serial = ?1");
        self.conn
            .query_row(&sql, [serial], device_from_row)
            .optional()
            .map_err(self.sql(&format!("reading device '{serial}'")))
    }

    /// Calls `f` for every device matching `filter`, ordered by serial; returns the count.
    pub fn for_each_device(
        &self,
        filter: &DeviceFilter,
        mut f: impl FnMut(DeviceRecord) -> Result<()>,
    ) -> Result<u64> {
        let sql = format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE (?1 IS NULL OR grp = ?1) \
             AND (?2 IS NULL OR status = ?2) ORDER BY serial"
        );
        let err = || self.sql("listing devices");
        let mut stmt = self.conn.prepare(&sql).map_err(err())?;
        let mut rows = stmt
            .query(params![filter.group, filter.status])
            .map_err(err())?;
        let mut n = 0;
        while let Some(row) = rows.next().map_err(err())? {
            f(device_from_row(row).map_err(err())?)?;
            n += 1;
        }
        Ok(n)
    }

    /// All devices matching `filter`, ordered by serial.
    pub fn devices(&self, filter: &DeviceFilter) -> Result<Vec<DeviceRecord>> {
        let mut out = Vec::new();
        self.for_each_device(filter, |d| {
            out.push(d);
            Ok(())
        })?;
        Ok(out)
    }

    /// Number of devices per status: (active, revoked, retired).
    pub fn status_counts(&self) -> Result<(u64, u64, u64)> {
        let mut stmt = self
            .conn
            .prepare("SELECT status, count(*) FROM devices GROUP BY status")
            .map_err(self.sql("counting devices"))?;
        let mut counts = (0, 0, 0);
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Parsed<DeviceStatus>>(0)?.0,
                    r.get::<_, i64>(1)? as u64,
                ))
            })
            .map_err(self.sql("counting devices"))?;
        for row in rows {
            match row.map_err(self.sql("counting devices"))? {
                (DeviceStatus::Active, n) => counts.0 = n,
                (DeviceStatus::Revoked, n) => counts.1 = n,
                (DeviceStatus::Retired, n) => counts.2 = n,
            }
        }
        Ok(counts)
    }

    /// Calls `f` with the DER certificate of every active device whose certificate is still
    /// valid at `now` (in `group`, if given), in stable order (by serial); returns the count.
    pub fn for_each_recipient(
        &self,
        group: Option<&str>,
        now: UnixTime,
        mut f: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<u64> {
        let err = || self.sql("selecting recipient certificates");
        let sql = match group {
            Some(_) => {
                "SELECT certificate FROM devices \
                        WHERE status = 'active' AND grp = ?1 AND not_after > ?2 ORDER BY serial"
            }
            None => {
                "SELECT certificate FROM devices WHERE status = 'active' AND ?1 IS NULL \
                     AND not_after > ?2 ORDER BY serial"
            }
        };
        let mut stmt = self.conn.prepare(sql).map_err(err())?;
        let mut rows = stmt.query(params![group, now]).map_err(err())?;
        let mut n = 0;
        while let Some(row) = rows.next().map_err(err())? {
            let der = row
                .get_ref(0)
                .and_then(|v| Ok(v.as_blob()?))
                .map_err(err())?;
            f(der)?;
            n += 1;
        }
        Ok(n)
    }

    /// Revokes an active device's certificate (it goes on the next CRL and off recipient lists).
    pub fn revoke(
        &mut self,
        serial: &DeviceSerial,
        reason: RevocationReason,
        at: UnixTime,
    ) -> Result<DeviceRecord> {
        self.write(&format!("revoking device '{serial}'"), |tx| {
            let d = tx.device(serial)?;
            if d.status != DeviceStatus::Active {
                return Err(FactoryError::InvalidTransition {
                    serial: serial.clone(),
                    status: d.status,
                    action: "revoke",
                });
            }
            tx.tx
                .execute(
                    "UPDATE devices SET status = 'revoked', revocation_reason = ?2, revoked_at = ?3, \
                     updated_at = ?3 WHERE serial = ?1",
                    params![serial, reason, at],
                )
                .map_err(tx.sql("updating the device row"))?;
            let detail = json!({"reason": reason.name(), "cert_serial": d.cert_serial, "issuer": d.issuer});
            audit::append(tx, at, "revoke", Some(serial), &detail)?;
            tx.device(serial)
        })
    }

    /// Retires an active or revoked device (a revoked device keeps its CRL entry).
    pub fn retire(&mut self, serial: &DeviceSerial, at: UnixTime) -> Result<DeviceRecord> {
        self.write(&format!("retiring device '{serial}'"), |tx| {
            let d = tx.device(serial)?;
            if d.status == DeviceStatus::Retired {
                return Err(FactoryError::InvalidTransition {
                    serial: serial.clone(),
                    status: d.status,
                    action: "retire",
                });
            }
            tx.tx
                .execute(
                    "UPDATE devices SET status = 'retired', retired_at = ?2, updated_at = ?2 WHERE serial = ?1",
                    params![serial, at],
                )
                .map_err(tx.sql("updating the device row"))?;
            let detail = json!({"previous_status": d.status.name(), "cert_serial": d.cert_serial});
            audit::append(tx, at, "retire", Some(serial), &detail)?;
            tx.device(serial)
        })
    }

    /// Imports devices in one transaction. Any malformed item aborts the import; devices that
    /// already exist (same serial, or same issuer and certificate serial) are collected and
    /// reported together, and then nothing is imported. `crl_number` raises the CRL counter so
    /// CRL numbers keep increasing after a move. Returns the number imported.
    pub fn import_devices(
        &mut self,
        items: impl IntoIterator<Item = Result<ImportItem>>,
        crl_number: u64,
        at: UnixTime,
    ) -> Result<u64> {
        self.write("importing devices", |tx| {
            let mut conflicts = Vec::new();
            let mut n = 0u64;
            for item in items {
                let item = item?;
                if let Some(c) = tx.conflict(&item)? {
                    conflicts.push(c);
                    if conflicts.len() >= MAX_REPORTED_CONFLICTS {
                        break;
                    }
                    continue;
                }
                tx.insert_device(&item.record)?;
                let detail = json!({"line": item.line, "cert_serial": item.record.cert_serial, "status": item.record.status.name()});
                audit::append(tx, at, "import", Some(&item.record.serial), &detail)?;
                n += 1;
            }
            if !conflicts.is_empty() {
                return Err(FactoryError::ImportConflicts { conflicts });
            }
            tx.raise_counter("crl_number", crl_number)?;
            Ok(n)
        })
    }
}

impl Tx<'_> {
    /// The device row, or [`FactoryError::UnknownDevice`].
    pub(crate) fn device(&self, serial: &DeviceSerial) -> Result<DeviceRecord> {
        let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE serial = ?1");
        self.tx
            .query_row(&sql, [serial], device_from_row)
            .optional()
            .map_err(self.sql("reading the device row"))?
            .ok_or_else(|| FactoryError::UnknownDevice {
                serial: serial.clone(),
            })
    }

    /// The status of a recorded device, if any.
    pub(crate) fn device_status(&self, serial: &DeviceSerial) -> Result<Option<DeviceStatus>> {
        self.tx
            .query_row(
                "SELECT status FROM devices WHERE serial = ?1",
                [serial],
                |r| r.get::<_, Parsed<DeviceStatus>>(0),
            )
            .optional()
            .map(|s| s.map(|p| p.0))
            .map_err(self.sql("reading the device status"))
    }

    fn conflict(&self, item: &ImportItem) -> Result<Option<String>> {
        let r = &item.record;
        if let Some(status) = self.device_status(&r.serial)? {
            return Ok(Some(format!(
                "line {}: device '{}' already exists ({status})",
                item.line, r.serial
            )));
        }
        let other: Option<String> = self
            .tx
            .query_row(
                "SELECT serial FROM devices WHERE issuer = ?1 AND cert_serial = ?2",
                params![r.issuer, r.cert_serial],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.sql("checking certificate serials"))?;
        Ok(other.map(|o| {
            format!(
                "line {}: certificate {} of device '{}' is already recorded for device '{o}'",
                item.line, r.cert_serial, r.serial
            )
        }))
    }

    /// Inserts a device row.
    pub(crate) fn insert_device(&self, d: &DeviceRecord) -> Result<()> {
        let sql = format!(
            "INSERT INTO devices ({DEVICE_COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)"
        );
        let mut stmt = self
            .tx
            .prepare_cached(&sql)
            .map_err(self.sql("preparing the device insert"))?;
        stmt.execute(params![
            d.serial,
            d.group,
            tags_to_sql(&d.tags),
            d.status,
            d.key_type,
            d.certificate,
            d.issuer,
            d.cert_serial,
            d.ski,
            d.spki_sha256,
            d.not_before,
            d.not_after,
            d.token_uri,
            d.token_description,
            d.key_id,
            d.key_label,
            d.ek_cert_sha256,
            d.revocation.map(|r| r.reason),
            d.revocation.map(|r| r.at),
            d.retired_at,
            d.created_at,
            d.updated_at,
        ])
        .map_err(self.sql(&format!("inserting device '{}'", d.serial)))?;
        Ok(())
    }
}
