//! Four station processes write one inventory at once (from a fresh file, so they also race on
//! creation and migration) and lose nothing.
//!
//! The writers are real processes: this test binary re-executed with `--exact child_writer`
//! and the `FACTORY_TEST_CHILD` environment variable set; without it `child_writer` does
//! nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{FileKey, Station};
use factory::ca::CertificateAuthority;
use factory::config::StationConfig;
use factory::inventory::{DeviceOrigin, Inventory, NewIntent};
use factory::process::ProcessId;
use factory::types::{DeviceSerial, DeviceStatus, KeyId, KeyType, RevocationReason, now};

const WORKERS: usize = 4;
const PER_WORKER: usize = 50;

#[test]
fn four_processes_lose_nothing() {
    let st = Station::new();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..WORKERS)
        .map(|w| {
            Command::new(&exe)
                .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
                .env("FACTORY_TEST_CHILD", "1")
                .env("FACTORY_TEST_DIR", st.dir.path())
                .env("FACTORY_TEST_WORKER", w.to_string())
                .spawn()
                .unwrap()
        })
        .collect();
    std::fs::write(st.path("go"), b"").unwrap();
    for mut child in children {
        let status = child.wait().unwrap();
        assert!(status.success(), "a writer failed: {status}");
    }
    let inv = st.inventory();
    let all = inv.devices(&Default::default()).unwrap();
    assert_eq!(all.len(), WORKERS * PER_WORKER, "every device row is there");
    for w in 0..WORKERS {
        for i in 0..PER_WORKER {
            let serial = DeviceSerial::new(&format!("w{w}-{i:03}")).unwrap();
            let d = inv
                .device(&serial)
                .unwrap()
                .unwrap_or_else(|| panic!("{serial} lost"));
            let want = if i % 10 == 0 {
                DeviceStatus::Revoked
            } else {
                DeviceStatus::Active
            };
            assert_eq!(d.status, want, "{serial}");
        }
    }
    let revoked = WORKERS * PER_WORKER / 10;
    assert_eq!(
        inv.check_audit_chain().unwrap() as usize,
        WORKERS * PER_WORKER + revoked,
        "every audit entry, chain intact"
    );
    assert!(inv.pending_intents().unwrap().is_empty());
}

/// One writer process (does nothing unless started by `four_processes_lose_nothing`).
#[test]
fn child_writer() {
    if std::env::var_os("FACTORY_TEST_CHILD").is_none() {
        return;
    }
    let dir = PathBuf::from(std::env::var_os("FACTORY_TEST_DIR").unwrap());
    let worker: usize = std::env::var("FACTORY_TEST_WORKER")
        .unwrap()
        .parse()
        .unwrap();
    let config = StationConfig::load(&dir.join("station.toml")).unwrap();
    let ca_key = FileKey::from_pem(&std::fs::read(dir.join("ca.key")).unwrap());
    let ca_cert = factory::cert::certificate_der_from_bytes(
        &std::fs::read(dir.join("ca.pem")).unwrap(),
        "CA",
    )
    .unwrap();
    let ca = CertificateAuthority::new(ca_cert, ca_key.boxed()).unwrap();
    let profile = config.profile(None).unwrap();
    // Certificates first, so the database writes of all workers overlap.
    let work: Vec<(DeviceSerial, Vec<u8>)> = (0..PER_WORKER)
        .map(|i| {
            let serial = DeviceSerial::new(&format!("w{worker}-{i:03}")).unwrap();
            let key = FileKey::generate(KeyType::EcP256);
            let cert = ca
                .issue_for_key(&serial, profile, &key.spki(), now())
                .unwrap();
            (serial, cert.der)
        })
        .collect();
    wait_for(&dir.join("go"));
    let mut inv = Inventory::open(&config.inventory).unwrap();
    let me = ProcessId::current();
    for (i, (serial, cert)) in work.iter().enumerate() {
        let intent = NewIntent {
            serial: serial.clone(),
            profile: profile.name.clone(),
            key_type: profile.key_type,
            origin: DeviceOrigin {
                group: Some(format!("worker-{worker}")),
                tags: vec![],
                token_uri: config.device_token_uri(serial),
                token_description: "concurrency test".into(),
                key_id: KeyId::random().unwrap(),
                key_label: config.device_token.key_label.render(serial),
                ek_cert_sha256: None,
            },
        };
        let id = inv.begin_provisioning(&intent, &me, now()).unwrap();
        inv.record_issued_certificate(id, cert, now()).unwrap();
        inv.complete_provisioning(id, now()).unwrap();
        if i % 10 == 0 {
            inv.revoke(serial, RevocationReason::Superseded, now())
                .unwrap();
        }
    }
}

fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no start signal"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
