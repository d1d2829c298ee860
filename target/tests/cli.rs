//! The `ota` binary without a running service (local mode). The system bus address points at a
//! socket that does not exist, so the client path is never taken. Installed bundles come from
//! the directory test double (`--dangerous-unverified-directory`); real bundles are covered by
//! `verified.rs` and the VM tests.

mod common;

use std::process::Command;

use common::{BundleDir, Device, Img, pattern};

fn ota(dev: &Device, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ota"))
        .env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            format!("unix:path={}", dev.path("no-bus").display()),
        )
        .arg(format!("--conf={}", dev.conf().display()))
        .arg("--override-boot-slot=A")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn local_install_status_and_mark() {
    let dev = Device::new("", "");
    let img = pattern(7000, 3);
    let b = BundleDir::new(
        "Test Device",
        &[Img::new("rootfs", "rootfs.img", img.clone())],
        None,
    );
    let dir = b.path().to_str().unwrap();
    let (code, out, err) = ota(&dev, &["--dangerous-unverified-directory", "install", dir]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.starts_with("  0% Installing\n"), "{out}");
    assert!(
        out.ends_with(&format!(
            "100% Installing done.\nInstalling `{dir}` succeeded\n"
        )),
        "{out}"
    );
    assert_eq!(
        &std::fs::read(dev.path("slot-b.img")).unwrap()[..img.len()],
        &img[..]
    );

    let (code, out, err) = ota(&dev, &["status", "--output-format=json", "--detailed"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["compatible"], "Test Device");
    assert_eq!(v["booted"], "A");
    let slot = v["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|s| s.get("rootfs.1"))
        .unwrap();
    assert_eq!(slot["state"], "inactive");
    assert_eq!(slot["slot_status"]["checksum"]["size"], 7000);
    assert_eq!(slot["slot_status"]["status"], "ok");

    let (code, out, _) = ota(&dev, &["status", "--output-format=shell"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("RAUC_SYSTEM_COMPATIBLE='Test Device'\n"),
        "{out}"
    );
    assert!(out.contains("RAUC_SLOT_STATE_1='booted'\n"), "{out}");

    let (code, out, _) = ota(&dev, &["status", "mark-active", "other"]);
    assert_eq!(code, 0);
    assert_eq!(out, "rauc status: activated slot rootfs.1\n");
    let (code, _, err) = ota(&dev, &["status", "mark-good", "rootfs"]);
    assert_eq!(code, 1);
    assert!(err.contains("Invalid slot name format: 'rootfs'"), "{err}");
}

#[test]
fn failures_and_info() {
    let dev = Device::new("", "");
    let b = BundleDir::new(
        "Test Device",
        &[Img::new("rootfs", "rootfs.img", pattern(10, 1))],
        None,
    );
    let dir = b.path().to_str().unwrap();
    // Without the dangerous flag a directory is not a bundle.
    let (code, out, err) = ota(&dev, &["install", dir]);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("it is a directory, not a bundle file"),
        "{err}"
    );
    assert!(err.contains(&format!("Installing `{dir}` failed")), "{err}");
    let (code, _, err) = ota(&dev, &["install", "/does/not/exist"]);
    assert_eq!(code, 1);
    assert!(err.contains("No such file: /does/not/exist"), "{err}");

    // info always verifies: the test double does not apply to it.
    let (code, _, err) = ota(&dev, &["--dangerous-unverified-directory", "info", dir]);
    assert_eq!(code, 1);
    assert!(
        err.contains("it is a directory, not a bundle file"),
        "{err}"
    );

    std::fs::write(
        dev.conf(),
        "[system]\ncompatible=X\nbootloader=noop\nbogus=1\n",
    )
    .unwrap();
    let (code, _, err) = ota(&dev, &["status"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("Invalid key 'bogus' in group '[system]'"),
        "{err}"
    );
}
