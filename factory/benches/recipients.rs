//! Benchmark (not a test): `factory recipients` over an inventory of 1,000,000 devices.
//! Target: under 3 s wall time and under 500 MB peak RSS.
//!
//! ```sh
//! cargo bench -p factory --bench recipients -- [--rows N] [--runs N]
//! ```
//!
//! The inventory is built once (real certificates issued by a test CA, imported in one
//! transaction) under `CARGO_TARGET_TMPDIR` and reused while it has the requested size. Each
//! run spawns the real `factory` binary and reads its peak RSS from `wait4`.
//!
//! Measured on the shared 2-core development VM (release build, 1,000,000 rows, 900,000
//! active; inventory 1.34 GB): 2.1–3.3 s per run (about 1 s of it is the final fsync and the
//! rename over the previous 593 MB file), peak RSS 18.5 MB; `--group` (100,000): 0.7 s, 14 MB.
//! Building the inventory takes about 4.5 minutes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use bundle::keys::{ContentSigner, KeyError, SignatureScheme};
use factory::ca::{CertificateAuthority, self_signed_ca_certificate};
use factory::config::StationConfig;
use factory::inventory::{DeviceOrigin, DeviceRecord, ImportItem, Inventory, Revocation};
use factory::types::{DeviceSerial, DeviceStatus, KeyId, RevocationReason, now};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use rayon::prelude::*;

/// The CA key of the benchmark station (an OpenSSL file key).
#[derive(Clone)]
struct FileKey(PKey<Private>);

impl ContentSigner for FileKey {
    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::EcdsaSha256
    }
    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut s = openssl::sign::Signer::new(MessageDigest::sha256(), &self.0)?;
        Ok(s.sign_oneshot_to_vec(data)?)
    }
}

fn p256() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn main() {
    let rows = arg("--rows", 1_000_000);
    let runs = arg("--runs", 3);
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("factory-bench-recipients-{rows}"));
    let config_path = dir.join("station.toml");
    if std::env::args().any(|a| a == "--build-only") {
        build(&dir, rows);
        return;
    }
    if !ready(&config_path, rows) {
        // Built in a child process: a spawned process starts as a vfork of its parent and the
        // kernel charges the parent's peak RSS to it, so this process must stay small.
        let status = Command::new(std::env::current_exe().unwrap())
            .args(["--rows", &rows.to_string(), "--build-only"])
            .status()
            .unwrap();
        assert!(status.success(), "building the inventory failed");
    }
    let out = dir.join("recipients.pem");
    println!("inventory: {rows} devices in {}", dir.display());
    for run in 1..=runs {
        let (secs, rss_kb, stdout) = measure(
            &config_path,
            &["recipients", "--out", out.to_str().unwrap()],
        );
        let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        println!(
            "run {run}: {secs:.2} s, peak RSS {:.1} MB, output {:.0} MB; factory said: {}",
            rss_kb as f64 / 1024.0,
            size as f64 / 1e6,
            stdout.trim()
        );
    }
    let (secs, rss_kb, stdout) = measure(
        &config_path,
        &[
            "recipients",
            "--group",
            "g3",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    println!(
        "--group g3: {secs:.2} s, peak RSS {:.1} MB; {}",
        rss_kb as f64 / 1024.0,
        stdout.trim()
    );
}

fn ready(config_path: &Path, rows: u64) -> bool {
    let Ok(config) = StationConfig::load(config_path) else {
        return false;
    };
    let Ok(inv) = Inventory::open(&config.inventory) else {
        return false;
    };
    inv.status_counts().is_ok_and(|(a, r, t)| a + r + t == rows)
}

fn build(dir: &Path, rows: u64) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let config_path = dir.join("station.toml");
    std::fs::write(
        &config_path,
        "inventory = \"inventory.sqlite\"\n[ca]\nkey = \"bench\"\ncert = \"bench\"\nsubject = \"/O=Bench/CN=Bench CA\"\n\
         [profiles.default]\nsubject = \"/O=Bench/OU=Devices/CN={serial}\"\n[device-token]\nuri = \"pkcs11:token=dev-{serial}\"\n",
    )
    .unwrap();
    let config = StationConfig::load(&config_path).unwrap();
    let ca_key = FileKey(p256());
    let spki = ca_key.0.public_key_to_der().unwrap();
    let ca_cert =
        self_signed_ca_certificate(Box::new(ca_key.clone()), &spki, &config.ca, now()).unwrap();
    let device_spki = p256().public_key_to_der().unwrap();
    let started = Instant::now();
    let chunk = 20_000u64;
    let items = (0..rows.div_ceil(chunk)).flat_map(|c| {
        let (from, to) = (c * chunk, ((c + 1) * chunk).min(rows));
        let records: Vec<_> = (from..to)
            .into_par_iter()
            .map_init(
                || CertificateAuthority::new(ca_cert.clone(), Box::new(ca_key.clone())).unwrap(),
                |ca, i| {
                    Ok(ImportItem {
                        line: i + 1,
                        record: record(ca, &config, &device_spki, i),
                    })
                },
            )
            .collect();
        eprint!(
            "\rbuilding inventory: {to}/{rows} ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
        records
    });
    let mut inv = Inventory::open(&config.inventory).unwrap();
    inv.import_devices(items, 0, now()).unwrap();
    eprintln!(
        "\rbuilt {rows} devices in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

/// Device `i`: 90 % active, 5 % revoked, 5 % retired, ten groups.
fn record(
    ca: &CertificateAuthority<'_>,
    config: &StationConfig,
    spki: &[u8],
    i: u64,
) -> DeviceRecord {
    let serial = DeviceSerial::new(&format!("dev-{i:07}")).unwrap();
    let cert = ca
        .issue_for_key(&serial, config.profile(None).unwrap(), spki, now())
        .unwrap();
    let origin = DeviceOrigin {
        group: Some(format!("g{}", i % 10)),
        tags: vec![],
        token_uri: config.device_token_uri(&serial),
        token_description: "bench".into(),
        key_id: KeyId::from_bytes(i.to_be_bytes().to_vec()),
        key_label: format!("device-{serial}"),
        ek_cert_sha256: None,
    };
    let mut d = DeviceRecord::new_active(serial, cert.der, origin, now()).unwrap();
    match i % 20 {
        0 => {
            d.status = DeviceStatus::Revoked;
            d.revocation = Some(Revocation {
                reason: RevocationReason::Superseded,
                at: now(),
            });
        }
        1 => {
            d.status = DeviceStatus::Retired;
            d.retired_at = Some(now());
        }
        _ => {}
    }
    d
}

/// Runs `factory --config … args`; returns wall seconds, peak RSS (KiB) and stdout.
fn measure(config: &Path, args: &[&str]) -> (f64, i64, String) {
    let stdout_path = config.with_file_name("stdout.txt");
    let stdout = std::fs::File::create(&stdout_path).unwrap();
    let started = Instant::now();
    // Reaped with wait4 below, which also yields the child's resource usage.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(env!("CARGO_BIN_EXE_factory"))
        .arg("--config")
        .arg(config)
        .args(args)
        .stdout(stdout)
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for the kernel to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; `status` and `usage` are valid for writes.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(pid, child.id() as libc::pid_t, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "factory failed: {status}"
    );
    (
        secs,
        usage.ru_maxrss,
        std::fs::read_to_string(&stdout_path).unwrap(),
    )
}
