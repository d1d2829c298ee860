//! Crash safety of `ota install` in a QEMU guest: the VM is killed (a power cut: QEMU gets
//! SIGKILL) at random moments after the installer starts writing slot B, at least 20 times in a
//! row, each boot continuing from the state the previous cut left behind. After every cut the
//! host replays the data disk's journal (on a copy) and checks the GRUB environment: there is
//! always a bootable slot, A stays good, and B is primary only when both of its images are
//! complete. After the cuts, one more boot installs successfully.
//!
//! A first, uninterrupted boot measures how long the write takes (marker → activation); the
//! cuts are spread uniformly over 0–115 % of that time.

use std::path::Path;
use std::time::Duration;

use pkcs11_tests::vm::device::guest::{BootView, Disks};
use pkcs11_tests::vm::device::{DeviceSpec, TestDevice};
use pkcs11_tests::vm::{Initramfs, Kernel, Vm, VmEnd, VmOutcome};

const SIGNER: &str = env!("CARGO_BIN_EXE_signer-cli");
const OTA: &str = env!("CARGO_BIN_EXE_ota-cli");
const TRIALS: usize = 20;
/// Printed by `ota` when it starts writing slot B.
const MARKER: &str = "Updating /dev/vdc with";
/// Printed by `ota` after both slots are written, when it switches the bootloader.
const ACTIVATING: &str = "Marking target slot rootfs.1 as bootable";

const SCRIPT: &str = r#"
. /etc/ota-vm/prelude.sh
ota install /bundles/good.raucb
echo "RC install $?"
finish
"#;

struct Rig {
    dev: TestDevice,
    disks: Disks,
    kernel: Kernel,
    image: Initramfs,
    rootfs: Vec<u8>,
    appfs: Vec<u8>,
}

impl Rig {
    fn boot(&self, work: &Path, kill_after: Option<Duration>) -> VmOutcome {
        let mut vm = Vm::new(&self.kernel, self.image.clone());
        self.disks.attach(&mut vm);
        vm.kernel_arg("rauc.slot=A").script(SCRIPT);
        if let Some(delay) = kill_after {
            vm.kill_after(MARKER, delay);
        }
        vm.run(work).unwrap()
    }

    /// The invariant after any boot or cut; returns whether B is primary.
    fn check(&self, what: &str) -> bool {
        let view = BootView::of(&self.disks.grubenv().unwrap());
        assert!(view.a_good, "{what}: slot A is no longer good: {view:?}");
        assert_eq!(
            self.disks.slot(0).unwrap(),
            self.disks.initial(0).unwrap(),
            "{what}: slot A changed"
        );
        match view.primary.as_deref() {
            Some("A") => false,
            Some("B") => {
                let b = self.disks.slot(1).unwrap();
                assert_eq!(
                    &b[..self.rootfs.len()],
                    &self.rootfs[..],
                    "{what}: B primary but incomplete"
                );
                assert_eq!(
                    self.disks.slot(3).unwrap(),
                    self.appfs,
                    "{what}: B primary, appfs incomplete"
                );
                true
            }
            other => panic!("{what}: no bootable slot ({other:?}): {view:?}"),
        }
    }
}

/// Uniform random fraction in [0, 1) from OpenSSL.
fn fraction() -> f64 {
    let mut b = [0u8; 4];
    openssl::rand::rand_bytes(&mut b).unwrap();
    f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0)
}

fn expect_installed(outcome: &VmOutcome, rig: &Rig, what: &str) {
    outcome.expect_success().unwrap();
    assert!(
        outcome.contains("RC install 0"),
        "{what}:\n{}",
        outcome.tail(60)
    );
    assert!(
        rig.check(what),
        "{what}: B is not primary after a complete install"
    );
}

#[test]
fn vm_power_cuts_during_the_slot_write_always_leave_a_bootable_slot() {
    let kernel = Kernel::obtain().unwrap();
    let work = tempfile::tempdir().unwrap();
    let spec = DeviceSpec {
        rootfs_image: 16 << 20,
        rootfs_slot: 20 << 20,
        appfs_image: 4 << 20,
    };
    let dev = TestDevice::create(work.path(), spec).unwrap();
    let crypt = dev
        .signed_bundle(Path::new(SIGNER), "crypt", "crypt")
        .unwrap();
    let good = dev
        .encrypt(Path::new(SIGNER), &crypt, "good", &[&dev.device_cert])
        .unwrap();
    let disks = dev.disks(&[&good]).unwrap();
    let image = dev.initramfs(&kernel, Path::new(OTA)).unwrap();
    let rig = Rig {
        rootfs: std::fs::read(&dev.rootfs_image).unwrap(),
        appfs: std::fs::read(&dev.appfs_image).unwrap(),
        dev,
        disks,
        kernel,
        image,
    };
    assert!(!rig.check("initial state"));

    // Calibration: an uninterrupted install from the initial state.
    let outcome = rig.boot(work.path(), None);
    expect_installed(&outcome, &rig, "calibration boot");
    let write = outcome.time_of(ACTIVATING).unwrap() - outcome.time_of(MARKER).unwrap();
    eprintln!(
        "calibration: boot {:.1} s, write of both slots {:.2} s",
        outcome.elapsed.as_secs_f64(),
        write.as_secs_f64()
    );

    let (mut mid_write, mut after_activation) = (0, 0);
    for trial in 1..=TRIALS {
        let delay = write.mul_f64(1.15 * fraction());
        let outcome = rig.boot(work.path(), Some(delay));
        assert!(
            outcome.contains(MARKER),
            "trial {trial}: the write never started\n{}",
            outcome.tail(60)
        );
        let what = format!(
            "trial {trial} (cut {} ms after the marker)",
            delay.as_millis()
        );
        let b_primary = rig.check(&what);
        match (&outcome.end, b_primary) {
            (VmEnd::Killed { .. }, false) => mid_write += 1,
            (VmEnd::Killed { .. }, true) | (VmEnd::PoweredOff, true) => after_activation += 1,
            (end, b) => panic!("{what}: ended {end:?} with B primary = {b}"),
        }
        eprintln!("{what}: {:?}, B primary: {b_primary}", outcome.end);
    }
    eprintln!("{TRIALS} cuts: {mid_write} before activation, {after_activation} after");
    assert!(mid_write > 0, "no cut hit the write");

    // After all the cuts, the next boot installs.
    let outcome = rig.boot(work.path(), None);
    expect_installed(&outcome, &rig, "final boot");
    let status = String::from_utf8(rig.disks.data_file("central.raucs").unwrap().unwrap()).unwrap();
    assert!(status.contains("[slot.rootfs.1]"), "{status}");
    let _ = &rig.dev;
}
