//! The QEMU harness itself: script exit status, result files, disks, kill at a marker, timeout.

use std::path::Path;
use std::time::Duration;

use pkcs11_tests::vm::{Disk, Initramfs, Kernel, Vm, VmEnd};

/// No process may still run with `dir` in its command line (QEMU gets the initramfs from there).
fn assert_no_qemu_left(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'));
        let cmdline = String::from_utf8_lossy(&cmdline);
        assert!(
            zombie || !cmdline.contains(&needle),
            "QEMU left running: {cmdline}"
        );
    }
}

/// A SoftHSM token directory made on the host with `softhsm2-util --init-token`.
fn softhsm_token(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("softhsm");
    std::fs::create_dir_all(root.join("tokens")).unwrap();
    let conf = root.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!("directories.tokendir = {}\n", root.join("tokens").display()),
    )
    .unwrap();
    let status = std::process::Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            "vm-harness-token",
            "--so-pin",
            "5678",
            "--pin",
            "1234",
        ])
        .env("SOFTHSM2_CONF", &conf)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    root
}

#[test]
fn vm_runs_script_with_host_binaries_disks_and_results() {
    let kernel = Kernel::obtain().unwrap();
    let work = tempfile::tempdir().unwrap();
    let ro = work.path().join("ro.img");
    let mut ro_data = b"READ-ONLY-DISK-CONTENT".to_vec();
    ro_data.resize(1 << 20, 0);
    std::fs::write(&ro, &ro_data).unwrap();
    let rw = work.path().join("rw.img");
    std::fs::write(&rw, vec![0u8; 1 << 20]).unwrap();

    let mut image = Initramfs::new().unwrap();
    image
        .modules(&kernel, &["virtio_pci", "virtio_blk", "dm-mod"])
        .unwrap();
    image.host_program("dmsetup").unwrap();
    image.file("/etc/extra/note.txt", "extra file\n", 0o644);
    // a PKCS#11 module loaded with dlopen, its token directory and a tool that uses it
    let softhsm = softhsm_token(work.path());
    image.host_program("softhsm2-util").unwrap();
    image
        .host_library("/usr/lib/softhsm/libsofthsm2.so")
        .unwrap();
    image
        .host_tree(softhsm.join("tokens"), "/softhsm/tokens")
        .unwrap();
    let conf = "directories.tokendir = /softhsm/tokens\nobjectstore.backend = file\n";
    image.file("/etc/softhsm2.conf", conf, 0o644);
    let mut vm = Vm::new(&kernel, image);
    let ro_dev = vm.disk(Disk::read_only(&ro));
    let rw_dev = vm.disk(Disk::writable(&rw));
    vm.collect_results();
    let script = format!(
        r#"
set -e
echo "RO: $(head -c 22 {ro_dev})"
if echo x > {ro_dev} 2>/dev/null; then echo "RO-WRITE-SUCCEEDED"; fi
printf 'written-by-guest' | dd of={rw_dev} bs=512 conv=notrunc 2>/dev/null
sync
dmsetup version > $OTA_VM_RESULTS/dmsetup-version.txt
SOFTHSM2_CONF=/etc/softhsm2.conf softhsm2-util --module /usr/lib/softhsm/libsofthsm2.so --show-slots > $OTA_VM_RESULTS/slots.txt
mkdir -p $OTA_VM_RESULTS/sub
cp /etc/extra/note.txt $OTA_VM_RESULTS/sub/
exit 3
"#
    );
    vm.script(&script);
    let outcome = vm.run(work.path()).unwrap();
    eprintln!(
        "boot: {:.1} s wall, guest uptime at /init {:?} s, after modules {:?} s",
        outcome.elapsed.as_secs_f64(),
        outcome.uptime("init"),
        outcome.uptime("modules")
    );
    assert_eq!(outcome.end, VmEnd::PoweredOff, "{}", outcome.tail(40));
    assert_eq!(outcome.exit_code(), Some(3), "{}", outcome.tail(40));
    assert!(outcome.expect_success().is_err());
    assert!(
        outcome.contains("RO: READ-ONLY-DISK-CONTENT"),
        "{}",
        outcome.tail(40)
    );
    assert!(!outcome.contains("RO-WRITE-SUCCEEDED"));
    assert_eq!(&std::fs::read(&rw).unwrap()[..16], b"written-by-guest");
    assert_eq!(&std::fs::read(&ro).unwrap(), &ro_data);
    let version = String::from_utf8(outcome.result("dmsetup-version.txt").unwrap()).unwrap();
    assert!(version.contains("Driver version:"), "{version}");
    assert_eq!(outcome.result("sub/note.txt").unwrap(), b"extra file\n");
    let slots = String::from_utf8(outcome.result("slots.txt").unwrap()).unwrap();
    assert!(slots.contains("vm-harness-token"), "{slots}");
    assert!(outcome.result("missing.txt").is_err());
    assert_no_qemu_left(work.path());
}

#[test]
fn vm_is_killed_after_a_marker_and_keeps_synced_disk_writes() {
    let kernel = Kernel::obtain().unwrap();
    let work = tempfile::tempdir().unwrap();
    let rw = work.path().join("rw.img");
    std::fs::write(&rw, vec![0u8; 1 << 20]).unwrap();
    let mut image = Initramfs::new().unwrap();
    image
        .modules(&kernel, &["virtio_pci", "virtio_blk"])
        .unwrap();
    let mut vm = Vm::new(&kernel, image);
    let dev = vm.disk(Disk::writable(&rw));
    vm.script(&format!(
        "printf 'before-crash' | dd of={dev} bs=512 conv=notrunc 2>/dev/null\nsync\necho POWER-CUT-NOW\nsleep 600\necho NEVER-PRINTED\n"
    ));
    vm.kill_after("POWER-CUT-NOW", Duration::from_millis(300));
    let outcome = vm.run(work.path()).unwrap();
    assert_eq!(
        outcome.end,
        VmEnd::Killed {
            marker: "POWER-CUT-NOW".into()
        },
        "{}",
        outcome.tail(30)
    );
    assert_eq!(outcome.exit_code(), None);
    assert!(!outcome.contains("NEVER-PRINTED"));
    assert_eq!(&std::fs::read(&rw).unwrap()[..12], b"before-crash");
    assert!(outcome.expect_success().is_err());
    assert_no_qemu_left(work.path());
}

#[test]
fn vm_timeout_kills_qemu() {
    let kernel = Kernel::obtain().unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut image = Initramfs::new().unwrap();
    image.script("sleep 600\n");
    let mut vm = Vm::new(&kernel, image);
    vm.timeout(Duration::from_secs(3));
    let outcome = vm.run(work.path()).unwrap();
    assert_eq!(
        outcome.end,
        VmEnd::TimedOut {
            after: Duration::from_secs(3)
        }
    );
    let err = outcome.expect_success().unwrap_err().to_string();
    assert!(err.contains("did not power off"), "{err}");
    assert_no_qemu_left(work.path());
}
