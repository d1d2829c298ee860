//! The append-only audit log. Triggers reject UPDATE and DELETE; each entry also carries
//! `hash = SHA-256(prev_hash ‖ fields)`, so edits made with the triggers dropped are detected by
//! [`Inventory::check_audit_chain`].

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Inventory, Tx};
use crate::error::{FactoryError, Result};
use crate::types::{DeviceSerial, UnixTime};

/// The `prev_hash` of the first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Sequence number (1, 2, …).
    pub seq: i64,
    /// When.
    pub at: UnixTime,
    /// Who (`user@host[pid]`).
    pub actor: String,
    /// What (`provision`, `revoke`, `retire`, `import`, `crl`, `ca-init`, …).
    pub action: String,
    /// Which device, if any.
    pub serial: Option<String>,
    /// Details (JSON object).
    pub detail: serde_json::Value,
}

fn chain_hash(
    prev: &str,
    seq: i64,
    at: UnixTime,
    actor: &str,
    action: &str,
    serial: Option<&str>,
    detail: &str,
) -> String {
    let text = format!(
        "{prev}\n{seq}\n{at}\n{actor}\n{action}\n{}\n{detail}",
        serial.unwrap_or("")
    );
    hex::encode(openssl::sha::sha256(text.as_bytes()))
}

/// Appends an entry inside the caller's transaction.
pub(crate) fn append(
    tx: &Tx<'_>,
    at: UnixTime,
    action: &str,
    serial: Option<&DeviceSerial>,
    detail: &serde_json::Value,
) -> Result<i64> {
    let last: Option<(i64, String)> = tx
        .tx
        .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .map_err(tx.sql("reading the last audit entry"))?;
    let (seq, prev) = match last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_string()),
    };
    let detail = detail.to_string();
    let serial = serial.map(DeviceSerial::as_str);
    let hash = chain_hash(&prev, seq, at, tx.actor, action, serial, &detail);
    tx.tx
        .prepare_cached(
            "INSERT INTO audit (seq, at, actor, action, serial, detail, prev_hash, hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .and_then(|mut s| {
            s.execute(params![
                seq, at, tx.actor, action, serial, detail, prev, hash
            ])
        })
        .map_err(tx.sql("appending to the audit log"))?;
    Ok(seq)
}

impl Inventory {
    /// Records a station event (e.g. `ca-init`) as its own transaction.
    pub fn record_event(
        &mut self,
        action: &str,
        serial: Option<&DeviceSerial>,
        detail: serde_json::Value,
        at: UnixTime,
    ) -> Result<i64> {
        self.write(&format!("recording the '{action}' event"), |tx| {
            append(tx, at, action, serial, &detail)
        })
    }

    /// The audit log, oldest first; only the entries of `serial` if given.
    pub fn audit_log(&self, serial: Option<&DeviceSerial>) -> Result<Vec<AuditEntry>> {
        let err = || self.sql("reading the audit log");
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, at, actor, action, serial, detail FROM audit \
                 WHERE ?1 IS NULL OR serial = ?1 ORDER BY seq",
            )
            .map_err(err())?;
        let rows = stmt
            .query_map([serial.map(DeviceSerial::as_str)], |r| {
                let detail: String = r.get(5)?;
                Ok(AuditEntry {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    serial: r.get(4)?,
                    detail: serde_json::from_str(&detail)
                        .unwrap_or(serde_json::Value::String(detail)),
                })
            })
            .map_err(err())?;
        rows.collect::<rusqlite::Result<_>>().map_err(err())
    }

    /// Recomputes the hash chain; returns the number of entries or the first broken one.
    pub fn check_audit_chain(&self) -> Result<u64> {
        let err = || self.sql("checking the audit log");
        let mut stmt = self
            .conn
            .prepare("SELECT seq, at, actor, action, serial, detail, prev_hash, hash FROM audit ORDER BY seq")
            .map_err(err())?;
        let mut rows = stmt.query([]).map_err(err())?;
        let mut prev = GENESIS.to_string();
        let mut expected_seq = 1;
        while let Some(r) = rows.next().map_err(err())? {
            let seq: i64 = r.get(0).map_err(err())?;
            let get = |i| r.get::<_, String>(i).map_err(err());
            let serial: Option<String> = r.get(4).map_err(err())?;
            let hash = chain_hash(
                &prev,
                seq,
                r.get(1).map_err(err())?,
                &get(2)?,
                &get(3)?,
                serial.as_deref(),
                &get(5)?,
            );
            if seq != expected_seq || get(6)? != prev || get(7)? != hash {
                return Err(FactoryError::AuditChain { seq });
            }
            prev = hash;
            expected_seq += 1;
        }
        Ok((expected_seq - 1) as u64)
    }
}
