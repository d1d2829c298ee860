//! `target::mount` on bundles made by the real `rauc bundle` 1.8, inside a QEMU guest with the
//! Debian kernel's dm-verity and dm-crypt: good verity and crypt bundles mount and their image
//! hashes match; a flipped payload byte fails to read through dm-verity; wrong keys and root
//! hashes fail halfway; a busy unmount falls back to lazy/deferred teardown — and after every
//! case no dm device, loop device or mount is left.

use std::path::{Path, PathBuf};

use pkcs11_tests::vm::fixtures::{self, BundleParams, Format, TestPki};
use pkcs11_tests::vm::{DM_STACK_MODULES, Disk, Initramfs, Kernel, Vm};

/// Offset of the flipped byte: inside data block 100, i.e. inside `rootfs.img`'s data blocks,
/// which follow the 96-byte squashfs superblock.
const CORRUPT_OFFSET: u64 = 4096 * 100 + 17;

struct Inputs {
    files: Vec<(String, PathBuf)>,
    corrupt_disk: PathBuf,
    image_sha256: String,
}

/// PKI, a 1 MiB squashfs image, verity and crypt bundles (rauc 1.8) and their parameters.
fn make_inputs(dir: &Path) -> Inputs {
    let pki_dir = dir.join("pki");
    std::fs::create_dir_all(&pki_dir).unwrap();
    let pki = TestPki::create(&pki_dir).unwrap();
    let image = fixtures::squashfs_image(dir, "rootfs.img", 1 << 20).unwrap();
    let mut files = Vec::new();
    for (name, format) in [("verity", Format::Verity), ("crypt", Format::Crypt)] {
        let bundle =
            fixtures::rauc_bundle(&pki, &image, format, &dir.join(format!("{name}.raucb")))
                .unwrap();
        let params = BundleParams::read(&bundle, dir).unwrap();
        assert_eq!(params.crypt_key.is_some(), format == Format::Crypt);
        let json = dir.join(format!("{name}.json"));
        std::fs::write(&json, serde_json::to_vec(&params).unwrap()).unwrap();
        let bad = dir.join(format!("{name}-bad.raucb"));
        fixtures::copy_with_flipped_byte(&bundle, &bad, CORRUPT_OFFSET).unwrap();
        files.extend([
            (format!("{name}.raucb"), bundle),
            (format!("{name}.json"), json),
            (format!("{name}-bad.raucb"), bad),
        ]);
    }
    // The corrupted verity bundle also goes in as a virtio disk: loop over a block device.
    let corrupt_disk = dir.join("verity-bad.disk");
    std::fs::copy(dir.join("verity-bad.raucb"), &corrupt_disk).unwrap();
    let len = std::fs::metadata(&corrupt_disk).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&corrupt_disk)
        .unwrap()
        .set_len(len.next_multiple_of(4096))
        .unwrap();
    Inputs {
        files,
        corrupt_disk,
        image_sha256: fixtures::sha256_hex(&image).unwrap(),
    }
}

/// Each case runs the helper, then lists dm and loop devices for the log.
fn guest_script(sha: &str, disk: &str) -> String {
    format!(
        r#"
B=/bundles
fail=0
run() {{
  vm-bundle-mount --case "$@" || fail=1
  echo "LEFTOVERS $1 dm=[$(dmsetup ls 2>&1 | tr '\n' ' ')] loop=[$(losetup -a 2>&1 | tr '\n' ' ')] mapper=[$(ls /dev/mapper | tr '\n' ' ')]"
}}
run versions versions
run verity mount --bundle $B/verity.raucb --params $B/verity.json --image rootfs.img --sha256 {sha}
run crypt mount --bundle $B/crypt.raucb --params $B/crypt.json --image rootfs.img --sha256 {sha}
run crypt-drop mount --bundle $B/crypt.raucb --params $B/crypt.json --image rootfs.img --sha256 {sha} --drop
run verity-corrupt-disk corrupt --bundle {disk} --params $B/verity.json --image rootfs.img
run crypt-corrupt corrupt --bundle $B/crypt-bad.raucb --params $B/crypt.json --image rootfs.img
run crypt-wrong-key setup-fails --bundle $B/crypt.raucb --params $B/crypt.json --mutate wrong-key
run verity-wrong-root-hash setup-fails --bundle $B/verity.raucb --params $B/verity.json --mutate wrong-root-hash
run crypt-wrong-root-hash setup-fails --bundle $B/crypt.raucb --params $B/crypt.json --mutate wrong-root-hash
run crypt-busy busy --bundle $B/crypt.raucb --params $B/crypt.json --image rootfs.img
echo "FINAL dmsetup: $(dmsetup ls 2>&1)"
exit $fail
"#
    )
}

#[test]
fn vm_mounts_rauc_bundles_and_leaves_nothing_behind() {
    let kernel = Kernel::obtain().unwrap();
    let work = tempfile::tempdir().unwrap();
    let inputs = make_inputs(work.path());
    let mut image = Initramfs::new().unwrap();
    image.modules(&kernel, DM_STACK_MODULES).unwrap();
    image
        .host_binary(
            env!("CARGO_BIN_EXE_vm-bundle-mount"),
            "/bin/vm-bundle-mount",
        )
        .unwrap();
    image.host_program("dmsetup").unwrap();
    for (name, path) in &inputs.files {
        image
            .host_file(&format!("/bundles/{name}"), path, 0o644)
            .unwrap();
    }
    let mut vm = Vm::new(&kernel, image);
    let disk = vm.disk(Disk::read_only(&inputs.corrupt_disk));
    vm.script(&guest_script(&inputs.image_sha256, &disk));
    let outcome = vm.run(work.path()).unwrap();
    eprintln!(
        "boot to power-off: {:.1} s wall; guest uptime: /init {:?} s, modules loaded {:?} s, script done {:?} s",
        outcome.elapsed.as_secs_f64(),
        outcome.uptime("init"),
        outcome.uptime("modules"),
        outcome.uptime("script-done"),
    );
    let failures: Vec<&String> = outcome
        .lines()
        .iter()
        .filter(|l| l.starts_with("VMTEST") && l.contains(" FAIL "))
        .collect();
    assert!(
        failures.is_empty(),
        "failed checks: {failures:#?}\n{}",
        outcome.tail(80)
    );
    outcome.expect_success().unwrap();

    let cases = [
        "verity",
        "crypt",
        "crypt-drop",
        "verity-corrupt-disk",
        "crypt-corrupt",
        "crypt-wrong-key",
        "verity-wrong-root-hash",
        "crypt-wrong-root-hash",
        "crypt-busy",
    ];
    for case in cases {
        for check in ["scenario", "clean"] {
            let line = format!("VMTEST {case} {check} OK");
            assert!(
                outcome.lines().iter().any(|l| l.starts_with(&line)),
                "missing '{line}'\n{}",
                outcome.tail(80)
            );
        }
        let leftovers =
            format!("LEFTOVERS {case} dm=[No devices found ] loop=[] mapper=[control ]");
        assert!(
            outcome.contains(&leftovers),
            "missing '{leftovers}'\n{}",
            outcome.tail(80)
        );
    }
    // the kernel itself reports the corruption
    assert!(
        outcome
            .lines()
            .iter()
            .any(|l| l.contains("device-mapper: verity") && l.contains("is corrupted"))
    );
    assert!(outcome.contains("FINAL dmsetup: No devices found"));
    assert!(outcome.contains("VMTEST versions scenario OK dm ioctl 4."));
}
