//! CRL numbering and history: the next number, the revoked entries and the signed CRL are
//! taken and recorded in one transaction, so numbers never repeat across processes.

use rusqlite::params;
use serde_json::json;

use super::row::Parsed;
use super::{Inventory, Tx, audit};
use crate::ca::RevokedEntry;
use crate::error::Result;
use crate::types::{RevocationReason, UnixTime};

/// A CRL the station issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlRecord {
    /// cRLNumber.
    pub number: u64,
    /// thisUpdate.
    pub this_update: UnixTime,
    /// nextUpdate.
    pub next_update: UnixTime,
    /// Number of revoked certificates listed.
    pub entries: u64,
    /// The DER CRL.
    pub der: Vec<u8>,
}

impl Inventory {
    /// Issues the next CRL of `issuer`: `sign(number, entries)` gets the next CRL number and
    /// every revoked certificate of that issuer (by serial), and returns the signed DER CRL,
    /// which is recorded with an audit entry. The write lock is held while `sign` runs.
    pub fn issue_crl(
        &mut self,
        issuer: &str,
        this_update: UnixTime,
        next_update: UnixTime,
        sign: impl FnOnce(u64, &[RevokedEntry]) -> Result<Vec<u8>>,
    ) -> Result<CrlRecord> {
        self.write("issuing a CRL", |tx| {
            let number = tx.bump_counter("crl_number")?;
            let entries = tx.revoked_entries(issuer)?;
            let der = sign(number, &entries)?;
            tx.tx
                .execute(
                    "INSERT INTO crls (number, issuer, this_update, next_update, entries, der) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![number as i64, issuer, this_update, next_update, entries.len() as i64, der],
                )
                .map_err(tx.sql("recording the CRL"))?;
            let detail = json!({"number": number, "entries": entries.len(), "next_update": crate::types::rfc3339(next_update)});
            audit::append(tx, this_update, "crl", None, &detail)?;
            Ok(CrlRecord {
                number,
                this_update,
                next_update,
                entries: entries.len() as u64,
                der,
            })
        })
    }

    /// The last CRL number issued (0 if none).
    pub fn crl_number(&self) -> Result<u64> {
        self.conn
            .query_row(
                "SELECT value FROM counters WHERE name = 'crl_number'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|v| v.max(0) as u64)
            .map_err(self.sql("reading the CRL number"))
    }
}

impl Tx<'_> {
    /// Increments a counter and returns the new value.
    fn bump_counter(&self, name: &str) -> Result<u64> {
        self.tx
            .query_row(
                "UPDATE counters SET value = value + 1 WHERE name = ?1 RETURNING value",
                [name],
                |r| r.get::<_, i64>(0),
            )
            .map(|v| v as u64)
            .map_err(self.sql(&format!("incrementing counter '{name}'")))
    }

    /// Raises a counter to at least `value`.
    pub(crate) fn raise_counter(&self, name: &str, value: u64) -> Result<()> {
        self.tx
            .execute(
                "UPDATE counters SET value = max(value, ?2) WHERE name = ?1",
                params![name, value as i64],
            )
            .map_err(self.sql(&format!("raising counter '{name}'")))?;
        Ok(())
    }

    fn revoked_entries(&self, issuer: &str) -> Result<Vec<RevokedEntry>> {
        let err = || self.sql("selecting revoked certificates");
        let mut stmt = self
            .tx
            .prepare(
                "SELECT cert_serial, revoked_at, revocation_reason FROM devices \
                 WHERE issuer = ?1 AND revoked_at IS NOT NULL ORDER BY cert_serial",
            )
            .map_err(err())?;
        let rows = stmt
            .query_map([issuer], |r| {
                Ok(RevokedEntry {
                    serial_hex: r.get(0)?,
                    revoked_at: r.get(1)?,
                    reason: r.get::<_, Parsed<RevocationReason>>(2)?.0,
                })
            })
            .map_err(err())?;
        rows.collect::<rusqlite::Result<_>>().map_err(err())
    }
}
