//! Fleet operations that combine the CA and the inventory: CRL issuing and the CA bootstrap
//! records. (Recipient lists are in [`crate::recipients`], export/import in
//! [`crate::transfer`].)

use std::path::Path;

use serde_json::json;

use crate::ca::CertificateAuthority;
use crate::cert::{CertFacts, to_pem};
use crate::error::Result;
use crate::inventory::{CrlRecord, Inventory};
use crate::types::UnixTime;

/// Issues the next CRL: every revoked certificate of the CA, number from the inventory,
/// `nextUpdate` = `now` + `next_update_days`. Recorded with an audit entry.
pub fn issue_crl(
    inventory: &mut Inventory,
    ca: &CertificateAuthority<'_>,
    now: UnixTime,
    next_update_days: u32,
) -> Result<CrlRecord> {
    let next_update = now + i64::from(next_update_days) * 86_400;
    let issuer = ca.facts().subject.clone();
    inventory.issue_crl(&issuer, now, next_update, |number, entries| {
        ca.sign_crl(number, now, next_update, entries)
    })
}

/// Writes a CRL as PEM, atomically.
pub fn write_crl_pem(crl: &CrlRecord, dest: &Path) -> Result<()> {
    Ok(bundle::atomic::write_file(
        dest,
        to_pem("X509 CRL", &crl.der).as_bytes(),
        bundle::atomic::Existing::Replace,
    )?)
}

/// Records a CA certificate stored by `ca init` or `ca import-cert` in the audit log.
pub fn record_ca_certificate(
    inventory: &mut Inventory,
    action: &str,
    facts: &CertFacts,
    now: UnixTime,
) -> Result<i64> {
    let detail = json!({
        "subject": facts.subject, "issuer": facts.issuer, "cert_serial": facts.serial_hex,
        "spki_sha256": facts.spki_sha256_hex(), "not_after": crate::types::rfc3339(facts.not_after),
    });
    inventory.record_event(action, None, detail, now)
}
