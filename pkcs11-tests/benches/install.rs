//! Benchmark (not a test): installing a 256 MiB image in a QEMU guest with ours and with rauc 1.8,
//! same bundle, same slots, same client.
//!
//! The bundle is a crypt bundle built with `signer bundle` and encrypted with `signer encrypt`
//! to two recipients: the SoftHSM token key our `system.conf` names (`[encryption]
//! key=pkcs11:…`) and a PEM key for rauc 1.8, which cannot take a `pkcs11:` URI there. Both
//! services run on the same private system bus in the same boot, one after the other, and the
//! real `rauc install` client drives each; the page cache is dropped before every install. Runs
//! alternate (ours, rauc, ours, rauc, …) and the best time of each is compared.
//!
//! `cargo bench -p pkcs11-tests --bench install`; `OTA_BENCH_MIB` (default 256) sets the image
//! size, `OTA_BENCH_RUNS` (default 3) the runs per side, `OTA_VM_CPU` a QEMU `-cpu` model,
//! `OTA_BENCH_VERBOSE=1` prints both services' logs, `OTA_BENCH_CONSOLE=<file>` keeps the console.

use std::path::Path;
use std::time::Duration;

use pkcs11_tests::vm::device::guest::{DEVICE_KEY_URI, add_dbus_and_rauc};
use pkcs11_tests::vm::device::{DeviceSpec, TestDevice};
use pkcs11_tests::vm::{Kernel, Vm};

const SIGNER: &str = env!("CARGO_BIN_EXE_signer-cli");
const OTA: &str = env!("CARGO_BIN_EXE_ota-cli");

/// The custom bootloader backend both services use (state files on the data disk).
const BOOTLOADER: &str = r#"#!/bin/sh
D=/data/bootstate
mkdir -p $D
case "$1" in
  get-primary) cat $D/primary 2>/dev/null || echo A ;;
  set-primary) echo "$2" > $D/primary && sync ;;
  get-state) cat $D/state.$2 2>/dev/null || echo good ;;
  set-state) echo "$3" > $D/state.$2 && sync ;;
  get-current) echo A ;;
  *) exit 1 ;;
esac
"#;

fn script(runs: usize) -> String {
    format!(
        r#"
. /etc/ota-vm/prelude.sh
start_bus
now() {{ cut -d' ' -f1 /proc/uptime; }}
bench() {{
  who=$1; shift
  "$@" > /tmp/$who.log 2>&1 &
  SVC=$!
  wait_service || {{ cat /tmp/$who.log; exit 94; }}
  sync; echo 3 > /proc/sys/vm/drop_caches
  t0=$(now)
  rauc install /bundles/bench.raucb > /tmp/$who.install 2>&1
  rc=$?
  t1=$(now)
  echo "BENCH $who $rc $t0 $t1"
  [ $rc = 0 ] || {{ cat /tmp/$who.install /tmp/$who.log; }}
  kill $SVC; wait $SVC
  sed "s/^/LOG $who| /" /tmp/$who.log
}}
for i in $(seq {runs}); do
  bench ours ota --conf=/etc/rauc/system.conf service
  bench rauc rauc --conf=/etc/rauc/rauc.conf service
done
leftovers bench
finish
"#
    )
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let mib: usize = env_or("OTA_BENCH_MIB", 256);
    let runs: usize = env_or("OTA_BENCH_RUNS", 3);
    let kernel = Kernel::obtain().expect("kernel");
    let work = tempfile::tempdir().expect("tempdir");
    let spec = DeviceSpec {
        rootfs_image: mib << 20,
        rootfs_slot: ((mib + 4) as u64) << 20,
        appfs_image: 1 << 20,
    };
    eprintln!("building a {mib} MiB crypt bundle with signer bundle + signer encrypt ...");
    let dev = TestDevice::create(work.path(), spec).expect("device");
    let signer = Path::new(SIGNER);
    let crypt = dev.signed_bundle(signer, "crypt", "crypt").expect("bundle");
    let (pem_key, pem_cert) = dev.pem_recipient.clone();
    let bench = dev
        .encrypt(signer, &crypt, "bench", &[&dev.device_cert, &pem_cert])
        .expect("encrypt");
    let disks = dev.disks(&[&bench]).expect("disks");

    let mut image = dev.initramfs(&kernel, Path::new(OTA)).expect("initramfs");
    add_dbus_and_rauc(&mut image).expect("dbus and rauc");
    let boot = "bootloader=custom\n";
    let handlers = "[handlers]\nbootloader-custom-backend=/etc/rauc/bootloader.sh\n";
    let ours = format!("[encryption]\nkey={DEVICE_KEY_URI}\ncert=/etc/rauc/device.cert.pem\n");
    let theirs = "[encryption]\nkey=/etc/rauc/pem.key.pem\n";
    image.file(
        "/etc/rauc/system.conf",
        dev.conf(boot, &ours, handlers),
        0o644,
    );
    image.file(
        "/etc/rauc/rauc.conf",
        dev.conf(boot, theirs, handlers),
        0o644,
    );
    image.file("/etc/rauc/bootloader.sh", BOOTLOADER, 0o755);
    image
        .host_file("/etc/rauc/pem.key.pem", &pem_key, 0o600)
        .expect("pem key");

    let mut vm = Vm::new(&kernel, image);
    disks.attach(&mut vm);
    vm.kernel_arg("rauc.slot=A")
        .memory_mib(1024)
        .timeout(Duration::from_secs(3600))
        .script(&script(runs));
    if let Ok(cpu) = std::env::var("OTA_VM_CPU") {
        vm.cpu(&cpu);
    }
    eprintln!("booting the guest ({runs} runs per side) ...");
    let outcome = vm.run(work.path()).expect("vm");
    if let Ok(path) = std::env::var("OTA_BENCH_CONSOLE") {
        std::fs::write(&path, outcome.console()).expect("write the console log");
    }
    if let Err(e) = outcome.expect_success() {
        panic!("benchmark guest failed: {e}");
    }
    if std::env::var("OTA_BENCH_VERBOSE").is_ok_and(|v| v == "1") {
        for line in outcome.lines().iter().filter(|l| l.starts_with("LOG ")) {
            eprintln!("{line}");
        }
    }
    let mut best: [Option<f64>; 2] = [None, None];
    for line in outcome.lines() {
        let Some(rest) = line.strip_prefix("BENCH ") else {
            continue;
        };
        let f: Vec<&str> = rest.split(' ').collect();
        assert_eq!(f[1], "0", "{line}\n{}", outcome.tail(80));
        let t = f[3].parse::<f64>().unwrap() - f[2].parse::<f64>().unwrap();
        let side = usize::from(f[0] == "rauc");
        println!("{:<5} {t:8.2} s", f[0]);
        best[side] = Some(best[side].map_or(t, |b: f64| b.min(t)));
    }
    assert!(
        outcome.contains("LEFTOVERS bench dm=0 loops=[] mounts=0 dirs=[]"),
        "{}",
        outcome.tail(40)
    );
    let (ours, rauc) = (best[0].expect("ours ran"), best[1].expect("rauc ran"));
    println!();
    println!(
        "install of a {mib} MiB image (crypt, encrypted CMS), guest under QEMU TCG, best of {runs}:"
    );
    println!("  ours (ota service, token key)  {ours:8.2} s");
    println!("  rauc 1.8 (rauc service, PEM)   {rauc:8.2} s");
    println!("  ratio ours/rauc                {:8.3}", ours / rauc);
}
