//! `ota install` end to end in a QEMU guest: an A/B device with virtio disks as slots (raw rootfs,
//! ext4 appfs children), a GRUB environment and the central status file on an ext4 data disk,
//! and a `system.conf` whose `[encryption] key` is a `pkcs11:` URI of a SoftHSM token inside the
//! guest. Bundles are built on the host with the real `signer bundle` + `signer encrypt` (to the
//! token key's certificate).
//!
//! One boot runs, in this order (each step's effect is checked, the state before and after is
//! hashed in the guest, and the final state is read back from the disks on the host):
//! (b) a token whose key is not a recipient is refused before anything is touched;
//! (c) a bundle with a payload byte flipped after signing fails with a dm-verity read error,
//!     slot A untouched and B not bootable;
//! (a) the good bundle installs into slot B: slot B = the image, slot A untouched, status file
//!     keys, GRUB says B primary and good.
//! After every step no dm device, loop device or mount is left.

use std::collections::BTreeMap;
use std::path::Path;

use pkcs11_tests::vm::Kernel;
use pkcs11_tests::vm::Vm;
use pkcs11_tests::vm::device::guest::BootView;
use pkcs11_tests::vm::device::{DeviceSpec, TestDevice};

const SIGNER: &str = env!("CARGO_BIN_EXE_signer-cli");
const OTA: &str = env!("CARGO_BIN_EXE_ota-cli");

/// Flips the byte in the middle of the data area (inside `rootfs.img`, the largest file).
fn corrupt_copy(from: &Path, to: &Path) {
    let data = std::fs::read(from).unwrap();
    let cms_len = u64::from_be_bytes(data[data.len() - 8..].try_into().unwrap()) as usize;
    let payload = data.len() - 8 - cms_len;
    let mut bad = data.clone();
    bad[payload / 3] ^= 0x5a;
    std::fs::write(to, bad).unwrap();
}

const SCRIPT: &str = r#"
. /etc/ota-vm/prelude.sh
B=/bundles
run() { name=$1; shift; ota "$@" > /tmp/$name.out 2>&1; rc=$?; sed "s/^/$name| /" /tmp/$name.out; echo "RC $name $rc"; }
echo "STATE start $(state)"
run b --conf=/etc/rauc/other.conf install $B/good.raucb
echo "STATE after-b $(state)"
leftovers b
run c install $B/corrupt.raucb
echo "STATE after-c $(state)"
leftovers c
cp /data/grubenv $OTA_VM_RESULTS/grubenv-after-c
cp /data/central.raucs $OTA_VM_RESULTS/status-after-c
run a install $B/good.raucb
leftovers a
run status status --detailed --output-format=json
finish
"#;

fn lines_with<'a>(outcome: &'a pkcs11_tests::vm::VmOutcome, prefix: &str) -> Vec<&'a str> {
    outcome
        .lines()
        .iter()
        .filter_map(|l| l.strip_prefix(prefix))
        .collect()
}

fn rc(outcome: &pkcs11_tests::vm::VmOutcome, step: &str) -> Option<i32> {
    lines_with(outcome, &format!("RC {step} "))
        .first()
        .and_then(|v| v.trim().parse().ok())
}

fn keys(text: &str, group: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with('[') {
            inside = line == format!("[{group}]");
        } else if inside && let Some((k, v)) = line.split_once('=') {
            out.insert(k.to_string(), v.to_string());
        }
    }
    out
}

#[test]
fn vm_installs_an_encrypted_crypt_bundle_with_the_token_key() {
    let kernel = Kernel::obtain().unwrap();
    let work = tempfile::tempdir().unwrap();
    let dev = TestDevice::create(work.path(), DeviceSpec::default()).unwrap();
    let crypt = dev
        .signed_bundle(Path::new(SIGNER), "crypt", "crypt")
        .unwrap();
    let good = dev
        .encrypt(Path::new(SIGNER), &crypt, "good", &[&dev.device_cert])
        .unwrap();
    let corrupt = work.path().join("corrupt.raucb");
    corrupt_copy(&good, &corrupt);
    let disks = dev.disks(&[&good, &corrupt]).unwrap();

    let image = dev.initramfs(&kernel, Path::new(OTA)).unwrap();
    let mut vm = Vm::new(&kernel, image);
    disks.attach(&mut vm);
    vm.kernel_arg("rauc.slot=A")
        .collect_results()
        .script(SCRIPT);
    let outcome = vm.run(work.path()).unwrap();
    eprintln!(
        "boot to power-off: {:.1} s (guest: /init {:?} s, script done {:?} s)",
        outcome.elapsed.as_secs_f64(),
        outcome.uptime("init"),
        outcome.uptime("script-done")
    );
    outcome.expect_success().unwrap();
    let tail = outcome.tail(120);

    // (b) not a recipient: refused before anything was touched
    assert_eq!(rc(&outcome, "b"), Some(1), "{tail}");
    let b_out = lines_with(&outcome, "b| ").join("\n");
    assert!(
        b_out.contains("the key is not a recipient of this bundle"),
        "{b_out}"
    );
    let states: BTreeMap<&str, &str> = lines_with(&outcome, "STATE ")
        .into_iter()
        .filter_map(|l| l.split_once(' '))
        .collect();
    assert_eq!(
        states["start"], states["after-b"],
        "(b) changed the device state"
    );

    // (c) corrupted payload: dm-verity read error, A untouched, B not bootable
    assert_eq!(rc(&outcome, "c"), Some(1), "{tail}");
    let c_out = lines_with(&outcome, "c| ").join("\n");
    assert!(c_out.contains("Input/output error"), "{c_out}");
    assert!(
        outcome
            .lines()
            .iter()
            .any(|l| l.contains("device-mapper: verity") && l.contains("is corrupted")),
        "{tail}"
    );
    let slot_a_hash = |s: &str| s.split(' ').next().unwrap().to_string();
    assert_eq!(slot_a_hash(states["after-c"]), slot_a_hash(states["start"]));
    let env = target::bootloader::grub::GrubEnv::parse(&outcome.result("grubenv-after-c").unwrap())
        .unwrap();
    let view = BootView::of(&env);
    assert_eq!(view.primary.as_deref(), Some("A"), "{view:?}");
    assert!(view.a_good && !view.b_good, "{view:?}");
    let status_c = String::from_utf8(outcome.result("status-after-c").unwrap()).unwrap();
    assert_eq!(
        keys(&status_c, "slot.rootfs.1")
            .get("status")
            .map(String::as_str),
        Some("failed"),
        "{status_c}"
    );

    // (a) the good bundle, decrypted with the token key
    assert_eq!(rc(&outcome, "a"), Some(0), "{tail}");
    let a_out = lines_with(&outcome, "a| ").join("\n");
    assert!(
        a_out.contains("Decrypting bundle with pkcs11:") && a_out.contains(";token=device;"),
        "{a_out}"
    );
    for step in ["b", "c", "a"] {
        let line = format!("LEFTOVERS {step} dm=0 loops=[] mounts=0 dirs=[]");
        assert!(outcome.contains(&line), "missing '{line}'\n{tail}");
    }
    let rootfs = std::fs::read(&dev.rootfs_image).unwrap();
    let appfs = std::fs::read(&dev.appfs_image).unwrap();
    let slot_b = disks.slot(1).unwrap();
    assert_eq!(
        &slot_b[..rootfs.len()],
        &rootfs[..],
        "slot B does not hold the image"
    );
    assert_eq!(
        &slot_b[rootfs.len()..],
        &disks.initial(1).unwrap()[rootfs.len()..]
    );
    assert_eq!(
        disks.slot(0).unwrap(),
        disks.initial(0).unwrap(),
        "slot A changed"
    );
    assert_eq!(
        disks.slot(2).unwrap(),
        disks.initial(2).unwrap(),
        "appfs A changed"
    );
    assert_eq!(
        disks.slot(3).unwrap(),
        appfs,
        "appfs B does not hold the image"
    );

    let status = String::from_utf8(disks.data_file("central.raucs").unwrap().unwrap()).unwrap();
    let root1 = keys(&status, "slot.rootfs.1");
    let sha = |d: &[u8]| hex::encode(openssl::sha::sha256(d));
    for (k, v) in [
        ("bundle.compatible", "Test Device".to_string()),
        ("bundle.version", "2024.06.0".into()),
        ("bundle.description", "vm install test".into()),
        ("status", "ok".into()),
        ("sha256", sha(&rootfs)),
        ("size", rootfs.len().to_string()),
        ("installed.count", "1".into()),
        ("activated.count", "1".into()),
    ] {
        assert_eq!(root1.get(k), Some(&v), "{k} in\n{status}");
    }
    for k in ["installed.timestamp", "activated.timestamp", "bundle.hash"] {
        assert!(root1.contains_key(k), "{k} missing in\n{status}");
    }
    let app1 = keys(&status, "slot.appfs.1");
    assert_eq!(app1.get("sha256"), Some(&sha(&appfs)), "{status}");
    assert_eq!(
        app1.get("status").map(String::as_str),
        Some("ok"),
        "{status}"
    );
    assert!(keys(&status, "slot.rootfs.0").is_empty(), "{status}");

    let view = BootView::of(&disks.grubenv().unwrap());
    assert_eq!(view.primary.as_deref(), Some("B"), "{view:?}");
    assert!(view.a_good && view.b_good, "{view:?}");
    assert_eq!(view.order, "B A");

    let json = lines_with(&outcome, "status| ").join("\n");
    let v: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(v["booted"], "A", "{json}");
}
