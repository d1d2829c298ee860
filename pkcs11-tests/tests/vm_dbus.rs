//! The real D-Bus flow in a QEMU guest: our `ota service` on a private system-like
//! `dbus-daemon`, driven by the real `rauc` 1.8 command line as the client — `rauc status`,
//! `rauc install` of an encrypted crypt bundle (decrypted by the service with the SoftHSM token
//! key of `[encryption] key=pkcs11:…`), `rauc status mark-good` — on the A/B device of
//! `vm_install.rs`. The host then checks slot B, the status file and the GRUB environment.

use std::path::Path;

use pkcs11_tests::vm::device::guest::{BootView, add_dbus_and_rauc};
use pkcs11_tests::vm::device::{DeviceSpec, TestDevice};
use pkcs11_tests::vm::{Kernel, Vm, VmOutcome};

const SIGNER: &str = env!("CARGO_BIN_EXE_signer-cli");
const OTA: &str = env!("CARGO_BIN_EXE_ota-cli");

const SCRIPT: &str = r#"
. /etc/ota-vm/prelude.sh
start_bus
ota service > /tmp/service.log 2>&1 &
SVC=$!
wait_service || { cat /tmp/service.log; exit 93; }
run() { name=$1; shift; "$@" > /tmp/$name.out 2>&1; rc=$?; sed "s/^/$name| /" /tmp/$name.out; echo "RC $name $rc"; }
run status-before rauc status
run install rauc install /bundles/good.raucb
run status-after rauc status --detailed
run mark-good rauc status mark-good other
run mark-unknown rauc status mark-bad rootfs.9
run json rauc status --output-format=json
kill $SVC; wait $SVC
kill $BUS_PID
sed "s/^/service| /" /tmp/service.log
leftovers dbus
finish
"#;

fn step(outcome: &VmOutcome, name: &str) -> (Option<i32>, String) {
    let prefix = format!("{name}| ");
    let text: Vec<&str> = outcome
        .lines()
        .iter()
        .filter_map(|l| l.strip_prefix(&prefix))
        .collect();
    let rc = outcome
        .lines()
        .iter()
        .find_map(|l| l.strip_prefix(&format!("RC {name} ")))
        .and_then(|v| v.trim().parse().ok());
    (rc, text.join("\n"))
}

#[test]
fn vm_rauc_cli_installs_through_our_service() {
    let kernel = Kernel::obtain().unwrap();
    let work = tempfile::tempdir().unwrap();
    let dev = TestDevice::create(work.path(), DeviceSpec::default()).unwrap();
    let crypt = dev
        .signed_bundle(Path::new(SIGNER), "crypt", "crypt")
        .unwrap();
    let good = dev
        .encrypt(Path::new(SIGNER), &crypt, "good", &[&dev.device_cert])
        .unwrap();
    let disks = dev.disks(&[&good]).unwrap();
    let mut image = dev.initramfs(&kernel, Path::new(OTA)).unwrap();
    add_dbus_and_rauc(&mut image).unwrap();
    let mut vm = Vm::new(&kernel, image);
    disks.attach(&mut vm);
    vm.kernel_arg("rauc.slot=A").script(SCRIPT);
    let outcome = vm.run(work.path()).unwrap();
    eprintln!("boot to power-off: {:.1} s", outcome.elapsed.as_secs_f64());
    outcome.expect_success().unwrap();
    let tail = outcome.tail(150);

    let (rc, text) = step(&outcome, "status-before");
    assert_eq!(rc, Some(0), "{text}\n{tail}");
    assert!(text.contains("Booted from: rootfs.0 (A)"), "{text}");
    assert!(text.contains("Activated: rootfs.0 (A)"), "{text}");

    let (rc, text) = step(&outcome, "install");
    assert_eq!(rc, Some(0), "{text}\n{tail}");
    assert!(text.contains("100% Installing done."), "{text}");
    assert!(
        text.contains("Installing `/bundles/good.raucb` succeeded"),
        "{text}"
    );
    let service = step(&outcome, "service").1;
    assert!(
        service.contains("Decrypting bundle with pkcs11:") && service.contains(";token=device;"),
        "{service}"
    );

    let (rc, text) = step(&outcome, "status-after");
    assert_eq!(rc, Some(0), "{text}");
    assert!(text.contains("Activated: rootfs.1 (B)"), "{text}");
    assert!(text.contains("2024.06.0"), "{text}");

    let (rc, text) = step(&outcome, "mark-good");
    assert_eq!(rc, Some(0), "{text}");
    assert!(text.contains("marked slot rootfs.1 as good"), "{text}");
    let (rc, text) = step(&outcome, "mark-unknown");
    assert_eq!(rc, Some(1), "{text}");
    assert!(
        text.contains("No slot with class rootfs and name rootfs.9 found"),
        "{text}"
    );

    let (rc, json) = step(&outcome, "json");
    assert_eq!(rc, Some(0), "{json}");
    let v: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(v["booted"], "A", "{json}");
    assert_eq!(v["boot_primary"], "rootfs.1", "{json}");
    assert!(
        outcome.contains("LEFTOVERS dbus dm=0 loops=[] mounts=0 dirs=[]"),
        "{tail}"
    );

    // the host's view of the disks
    let rootfs = std::fs::read(&dev.rootfs_image).unwrap();
    assert_eq!(&disks.slot(1).unwrap()[..rootfs.len()], &rootfs[..]);
    assert_eq!(disks.slot(0).unwrap(), disks.initial(0).unwrap());
    let view = BootView::of(&disks.grubenv().unwrap());
    assert_eq!(view.primary.as_deref(), Some("B"), "{view:?}");
    assert!(view.a_good && view.b_good, "{view:?}");
    let status = String::from_utf8(disks.data_file("central.raucs").unwrap().unwrap()).unwrap();
    assert!(
        status.contains("[slot.rootfs.1]\nbundle.compatible=Test Device\n"),
        "{status}"
    );
}
