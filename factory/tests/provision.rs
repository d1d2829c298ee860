//! Provisioning plumbing that needs no token: batch CSV parsing, re-running for recorded
//! devices (reported, nothing changed), failures that do not stop a batch and leave the
//! inventory unchanged, busy and stale intents, and `verify` reporting.
//!
//! The device tokens here are unreachable (`UnreachableTokens`: every open fails, as for a
//! device that is not on the line). Provisioning into real tokens is tested with SoftHSM in
//! the phase-2 integration tests.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::Station;
use factory::FactoryError;
use factory::inventory::{DeviceOrigin, NewIntent};
use factory::process::ProcessId;
use factory::provision::{
    BatchResult, DeviceToken, DeviceTokens, ProvisionOutcome, ProvisionRequest, Provisioner,
    TokenError, VerifyOptions, read_batch_csv, run_batch, verify,
};
use factory::types::{DeviceSerial, DeviceStatus, KeyId, KeyType, RevocationReason, now};

/// Device tokens that cannot be reached; counts the attempts.
#[derive(Default)]
struct UnreachableTokens {
    opened: AtomicUsize,
}

impl DeviceTokens for UnreachableTokens {
    fn open(&self, uri: &str) -> Result<Box<dyn DeviceToken + Send>, TokenError> {
        self.opened.fetch_add(1, Ordering::SeqCst);
        Err(format!("no token matches '{uri}'").into())
    }
}

fn state(st: &Station) -> String {
    let inv = st.inventory();
    format!(
        "{:?}{:?}{:?}",
        inv.devices(&Default::default()).unwrap(),
        inv.pending_intents().unwrap(),
        inv.audit_log(None).unwrap()
    )
}

#[test]
fn batch_csv_is_validated() {
    let st = Station::new();
    let write = |text: &str| {
        let p = st.path("devices.csv");
        std::fs::write(&p, text).unwrap();
        p
    };
    let entries = read_batch_csv(&write(
        "serial,group,tags,token,profile\n# a comment\ndev-1,line-a,x;y,,\ndev-2,,,pkcs11:token=t2,rsa\n",
    ))
    .unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].request.group.as_deref(), Some("line-a"));
    assert_eq!(entries[0].request.tags, ["x", "y"]);
    assert_eq!(entries[0].request.token_uri, None);
    assert_eq!(
        entries[1].request.token_uri.as_deref(),
        Some("pkcs11:token=t2")
    );
    assert_eq!(entries[1].request.profile.as_deref(), Some("rsa"));
    assert_eq!((entries[0].line, entries[1].line), (3, 4));
    for (text, expected) in [
        (
            "serial\ndev-1\ndev-1\n",
            "device 'dev-1' is listed twice (first on line 2)",
        ),
        ("serial,colour\ndev-1,red\n", "unknown column 'colour'"),
        ("group\nline-a\n", "no 'serial' column"),
        ("serial\nbad serial\n", "invalid device serial 'bad serial'"),
        (
            "serial,group\ndev-1,bad group\n",
            "invalid group or tag 'bad group'",
        ),
        ("serial,group\ndev-1\n", "found record with 1 fields"),
    ] {
        let err = read_batch_csv(&write(text)).unwrap_err().to_string();
        assert!(err.contains("devices.csv:"), "{err}");
        assert!(err.contains(expected), "expected '{expected}' in {err}");
    }
}

#[test]
fn batch_reports_recorded_devices_and_goes_on_after_failures() {
    let st = Station::new();
    let mut inv = st.inventory();
    let (_, a) = st.device("dev-a", "default", None, now());
    let (_, b) = st.device("dev-b", "default", None, now());
    st.record(&mut inv, &[a, b.clone()]);
    inv.revoke(&b.serial, RevocationReason::Superseded, now())
        .unwrap();
    std::fs::write(st.path("batch.csv"), "serial\nnew-1\ndev-a\nnew-2\ndev-b\n").unwrap();
    let entries = read_batch_csv(&st.path("batch.csv")).unwrap();
    let before = state(&st);
    let tokens = UnreachableTokens::default();
    let worker = || {
        Ok(Provisioner::new(
            &st.config,
            st.inventory(),
            st.ca(),
            &tokens,
        ))
    };
    let seen = AtomicUsize::new(0);
    let summary = run_batch(&entries, 2, &worker, &|_| {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(seen.load(Ordering::SeqCst), 4, "progress for every entry");
    assert_eq!((summary.provisioned, summary.already), (0, 2));
    let failed: Vec<_> = summary
        .failed
        .iter()
        .map(|i| (i.line, i.serial.to_string()))
        .collect();
    assert_eq!(failed, [(2, "new-1".to_string()), (4, "new-2".to_string())]);
    for item in &summary.failed {
        let BatchResult::Failed(msg) = &item.result else {
            panic!()
        };
        assert!(
            msg.contains(
                "opening the device token failed: no token matches 'pkcs11:token=dev-new-"
            ),
            "{msg}"
        );
    }
    assert_eq!(
        tokens.opened.load(Ordering::SeqCst),
        2,
        "recorded devices never touch their token"
    );
    assert_eq!(state(&st), before, "nothing changed");
    // A single re-run reports the state.
    let mut p = Provisioner::new(&st.config, st.inventory(), st.ca(), &tokens);
    let outcome = p
        .provision(&ProvisionRequest::new(b.serial.clone()))
        .unwrap();
    assert!(
        matches!(&outcome, ProvisionOutcome::AlreadyProvisioned(d) if d.status == DeviceStatus::Revoked)
    );
}

#[test]
fn a_worker_that_cannot_start_fails_its_entries_not_the_batch() {
    let st = Station::new();
    std::fs::write(st.path("batch.csv"), "serial\nx-1\nx-2\nx-3\n").unwrap();
    let entries = read_batch_csv(&st.path("batch.csv")).unwrap();
    let worker = || -> factory::Result<Provisioner<'_>> {
        Err(FactoryError::CaKey {
            message: "station HSM offline".into(),
        })
    };
    let summary = run_batch(&entries, 3, &worker, &|_| {});
    assert_eq!(summary.failed.len(), 3);
    let BatchResult::Failed(msg) = &summary.failed[0].result else {
        panic!()
    };
    assert!(
        msg.contains("no worker could start: CA key: station HSM offline"),
        "{msg}"
    );
    assert_eq!(summary.worker_errors, ["CA key: station HSM offline"]);
}

#[test]
fn intents_of_live_and_dead_processes() {
    let st = Station::new();
    let mut inv = st.inventory();
    let tokens = UnreachableTokens::default();
    let serial = DeviceSerial::new("dev-i").unwrap();
    let intent = NewIntent {
        serial: serial.clone(),
        profile: "default".into(),
        key_type: KeyType::EcP256,
        origin: DeviceOrigin {
            group: None,
            tags: vec![],
            token_uri: "pkcs11:token=dev-i".into(),
            token_description: "t".into(),
            key_id: KeyId::random().unwrap(),
            key_label: "device-dev-i".into(),
            ek_cert_sha256: None,
        },
    };
    // A live owner (this process): provision refuses, verify leaves it alone.
    let me = ProcessId::current();
    let id = inv.begin_provisioning(&intent, &me, now()).unwrap();
    let mut p = Provisioner::new(&st.config, st.inventory(), st.ca(), &tokens);
    let err = p
        .provision(&ProvisionRequest::new(serial.clone()))
        .unwrap_err();
    assert!(
        matches!(err, FactoryError::ProvisioningBusy { .. }),
        "{err}"
    );
    assert_eq!(tokens.opened.load(Ordering::SeqCst), 0);
    // A dead owner: provision tries to reconcile, which needs the token; the intent stays.
    inv.abort_provisioning(id, "test", false, now()).unwrap();
    let dead = ProcessId {
        start: me.start + 1,
        ..me
    };
    inv.begin_provisioning(&intent, &dead, now()).unwrap();
    let err = p
        .provision(&ProvisionRequest::new(serial.clone()))
        .unwrap_err();
    assert!(
        err.to_string().contains("opening the device token failed"),
        "{err}"
    );
    assert!(
        inv.pending_intent(&serial).unwrap().is_some(),
        "kept for the next run or verify"
    );
    // verify reports it as needing attention and checks the audit chain.
    let report = verify(&mut inv, &tokens, &VerifyOptions::default()).unwrap();
    assert!(report.needs_attention());
    assert_eq!(report.items.len(), 1);
    assert_eq!(report.items[0].kind, "intent");
    assert!(
        report.items[0]
            .error
            .as_deref()
            .unwrap()
            .contains("opening the device token")
    );
}

#[test]
fn verify_skips_inactive_devices_and_names_unknown_ones() {
    let st = Station::new();
    let mut inv = st.inventory();
    let (_, d) = st.device("dev-v", "default", None, now());
    st.record(&mut inv, std::slice::from_ref(&d));
    inv.retire(&d.serial, now()).unwrap();
    let tokens = UnreachableTokens::default();
    let options = VerifyOptions {
        all: true,
        ..Default::default()
    };
    let report = verify(&mut inv, &tokens, &options).unwrap();
    assert_eq!(report.audit_entries, 2);
    assert_eq!(
        report.items[0].finding.as_deref(),
        Some("retired (token not checked)")
    );
    assert!(!report.needs_attention());
    assert_eq!(tokens.opened.load(Ordering::SeqCst), 0);
    let options = VerifyOptions {
        devices: vec![DeviceSerial::new("ghost").unwrap()],
        ..Default::default()
    };
    let err = verify(&mut inv, &tokens, &options).unwrap_err();
    assert!(matches!(err, FactoryError::UnknownDevice { .. }), "{err}");
}
