//! The SQLite inventory: migrations, WAL, the append-only audit log, transactions that roll
//! back on error, the provisioning-intent life cycle, revocation and retirement.

mod common;

use common::Station;
use factory::FactoryError;
use factory::inventory::{DeviceOrigin, ImportItem, IntentStage, Inventory, NewIntent};
use factory::process::ProcessId;
use factory::types::{DeviceSerial, DeviceStatus, KeyId, KeyType, RevocationReason, now};
use rusqlite::Connection;

fn counts(path: &std::path::Path) -> (i64, i64, i64) {
    let c = Connection::open(path).unwrap();
    let q = |sql: &str| c.query_row(sql, [], |r| r.get(0)).unwrap();
    (
        q("SELECT count(*) FROM devices"),
        q("SELECT count(*) FROM audit"),
        q("SELECT count(*) FROM provisioning_intents"),
    )
}

fn intent(serial: &DeviceSerial) -> NewIntent {
    NewIntent {
        serial: serial.clone(),
        profile: "default".into(),
        key_type: KeyType::EcP256,
        origin: DeviceOrigin {
            group: Some("line-1".into()),
            tags: vec![],
            token_uri: format!("pkcs11:token=dev-{serial}"),
            token_description: "test".into(),
            key_id: KeyId::random().unwrap(),
            key_label: format!("device-{serial}"),
            ek_cert_sha256: None,
        },
    }
}

#[test]
fn opens_in_wal_mode_at_the_latest_schema_and_reopens() {
    let st = Station::new();
    let inv = st.inventory();
    assert_eq!(inv.journal_mode().unwrap(), "wal");
    assert_eq!(
        inv.schema_version().unwrap(),
        Inventory::latest_schema_version()
    );
    drop(inv);
    let inv = st.inventory();
    assert_eq!(
        inv.schema_version().unwrap(),
        Inventory::latest_schema_version()
    );
    assert_eq!(inv.check_audit_chain().unwrap(), 0);
}

#[test]
fn newer_schema_is_refused_and_left_alone() {
    let st = Station::new();
    drop(st.inventory());
    Connection::open(&st.config.inventory)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = Inventory::open(&st.config.inventory).unwrap_err();
    assert!(
        matches!(err, FactoryError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("upgrade the factory tool"),
        "{err}"
    );
}

#[test]
fn audit_log_is_append_only_and_hash_chained() {
    let st = Station::new();
    let mut inv = st.inventory();
    let (_, d) = st.device("dev-1", "default", None, now());
    st.record(&mut inv, std::slice::from_ref(&d));
    inv.revoke(&d.serial, RevocationReason::KeyCompromise, now())
        .unwrap();
    assert_eq!(inv.check_audit_chain().unwrap(), 2);
    let raw = Connection::open(&st.config.inventory).unwrap();
    let err = raw
        .execute("UPDATE audit SET action = 'nothing'", [])
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = raw.execute("DELETE FROM audit", []).unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    // Someone who drops the trigger to edit history is caught by the hash chain.
    raw.execute_batch(
        "DROP TRIGGER audit_no_update; UPDATE audit SET detail = '{}' WHERE seq = 1;",
    )
    .unwrap();
    let err = inv.check_audit_chain().unwrap_err();
    assert!(matches!(err, FactoryError::AuditChain { seq: 1 }), "{err}");
}

#[test]
fn failed_changes_roll_back_completely() {
    let st = Station::new();
    let mut inv = st.inventory();
    let devices: Vec<_> = (1..=3)
        .map(|i| st.device(&format!("dev-{i}"), "default", None, now()).1)
        .collect();
    st.record(&mut inv, &devices[..1]);
    let before = counts(&st.config.inventory);
    // Unknown device, invalid transitions: errors, nothing written.
    let ghost = DeviceSerial::new("ghost").unwrap();
    assert!(matches!(
        inv.revoke(&ghost, RevocationReason::Unspecified, now()),
        Err(FactoryError::UnknownDevice { .. })
    ));
    inv.retire(&devices[0].serial, now()).unwrap();
    let after_retire = counts(&st.config.inventory);
    let err = inv
        .revoke(&devices[0].serial, RevocationReason::Unspecified, now())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot revoke device 'dev-1': it is retired"),
        "{err}"
    );
    assert!(inv.retire(&devices[0].serial, now()).is_err());
    assert_eq!(counts(&st.config.inventory), after_retire);
    assert_eq!(after_retire.0, before.0);
    // An import whose second item conflicts writes neither the first item nor any audit row.
    let items = vec![
        Ok(ImportItem {
            line: 1,
            record: devices[1].clone(),
        }),
        Ok(ImportItem {
            line: 2,
            record: devices[0].clone(),
        }),
        Ok(ImportItem {
            line: 3,
            record: devices[2].clone(),
        }),
    ];
    let err = inv.import_devices(items, 0, now()).unwrap_err();
    assert!(
        err.to_string()
            .contains("line 2: device 'dev-1' already exists (retired)"),
        "{err}"
    );
    // An import that fails on a malformed item half-way also leaves nothing.
    let items = vec![
        Ok(ImportItem {
            line: 1,
            record: devices[1].clone(),
        }),
        Err(FactoryError::Input {
            path: "x".into(),
            line: 2,
            message: "broken".into(),
        }),
    ];
    assert!(inv.import_devices(items, 0, now()).is_err());
    assert_eq!(counts(&st.config.inventory), after_retire);
    assert!(inv.device(&devices[1].serial).unwrap().is_none());
}

#[test]
fn intent_life_cycle() {
    let st = Station::new();
    let mut inv = st.inventory();
    let me = ProcessId::current();
    let serial = DeviceSerial::new("dev-i").unwrap();
    let new = intent(&serial);
    // Recorded, then a second run for the same device is refused while it is pending.
    let id = inv.begin_provisioning(&new, &me, now()).unwrap();
    let err = inv.begin_provisioning(&new, &me, now()).unwrap_err();
    assert!(
        matches!(err, FactoryError::ProvisioningBusy { .. }),
        "{err}"
    );
    let pending = inv.pending_intent(&serial).unwrap().unwrap();
    assert_eq!(
        (pending.stage, pending.owner.clone()),
        (IntentStage::Recorded, me.clone())
    );
    // Completing before a certificate is recorded is refused.
    assert!(matches!(
        inv.complete_provisioning(id, now()),
        Err(FactoryError::IntentState { .. })
    ));
    // Abort without token effects: gone without a trace.
    inv.abort_provisioning(id, "keygen failed", false, now())
        .unwrap();
    assert_eq!(counts(&st.config.inventory), (0, 0, 0));
    // Full run: certificate recorded, then completed into a device row + one audit entry.
    let id = inv.begin_provisioning(&new, &me, now()).unwrap();
    let (_, d) = st.device("dev-i", "default", None, now());
    inv.record_issued_certificate(id, &d.certificate, now())
        .unwrap();
    assert_eq!(
        inv.pending_intent(&serial).unwrap().unwrap().stage,
        IntentStage::CertIssued
    );
    let device = inv.complete_provisioning(id, now()).unwrap();
    assert_eq!(
        (device.status, device.group.as_deref()),
        (DeviceStatus::Active, Some("line-1"))
    );
    assert_eq!(device.key_id, new.origin.key_id);
    assert_eq!(device.cert_serial, d.cert_serial);
    assert_eq!(counts(&st.config.inventory), (1, 1, 0));
    assert_eq!(inv.audit_log(Some(&serial)).unwrap()[0].action, "provision");
    // A recorded device cannot get a second intent.
    let err = inv.begin_provisioning(&new, &me, now()).unwrap_err();
    assert!(matches!(err, FactoryError::DuplicateDevice { .. }), "{err}");
    // Aborting after token effects keeps the intent as aborted, with an audit entry.
    let other = DeviceSerial::new("dev-j").unwrap();
    let id = inv.begin_provisioning(&intent(&other), &me, now()).unwrap();
    inv.abort_provisioning(id, "token full", true, now())
        .unwrap();
    assert!(inv.pending_intent(&other).unwrap().is_none());
    assert_eq!(
        inv.audit_log(Some(&other)).unwrap()[0].action,
        "provision-aborted"
    );
    assert_eq!(inv.check_audit_chain().unwrap(), 2);
}

#[test]
fn completion_that_violates_a_constraint_changes_nothing() {
    let st = Station::new();
    let mut inv = st.inventory();
    let me = ProcessId::current();
    let (_, d) = st.device("dev-a", "default", None, now());
    st.record(&mut inv, std::slice::from_ref(&d));
    // A second device whose intent carries the same certificate (same issuer and serial).
    let serial = DeviceSerial::new("dev-b").unwrap();
    let id = inv
        .begin_provisioning(&intent(&serial), &me, now())
        .unwrap();
    inv.record_issued_certificate(id, &d.certificate, now())
        .unwrap();
    let before = counts(&st.config.inventory);
    assert!(inv.complete_provisioning(id, now()).is_err());
    assert_eq!(
        counts(&st.config.inventory),
        before,
        "no device row, no audit row"
    );
    assert_eq!(
        inv.pending_intent(&serial).unwrap().unwrap().stage,
        IntentStage::CertIssued,
        "intent kept for repair"
    );
}

#[test]
fn revoke_and_retire_transitions() {
    let st = Station::new();
    let mut inv = st.inventory();
    let (_, d) = st.device("dev-r", "default", Some("g"), now());
    st.record(&mut inv, std::slice::from_ref(&d));
    let revoked = inv
        .revoke(&d.serial, RevocationReason::CessationOfOperation, 1000)
        .unwrap();
    assert_eq!(revoked.status, DeviceStatus::Revoked);
    assert_eq!(
        revoked.revocation.map(|r| (r.reason, r.at)),
        Some((RevocationReason::CessationOfOperation, 1000))
    );
    let err = inv
        .revoke(&d.serial, RevocationReason::Unspecified, now())
        .unwrap_err();
    assert!(err.to_string().contains("it is revoked"), "{err}");
    let retired = inv.retire(&d.serial, 2000).unwrap();
    assert_eq!(
        (retired.status, retired.retired_at),
        (DeviceStatus::Retired, Some(2000))
    );
    assert!(
        retired.revocation.is_some(),
        "a retired revoked device keeps its revocation"
    );
    assert_eq!(inv.status_counts().unwrap(), (0, 0, 1));
    let actions: Vec<_> = inv
        .audit_log(Some(&d.serial))
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["import", "revoke", "retire"]);
}
