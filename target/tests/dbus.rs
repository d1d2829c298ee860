//! The D-Bus service against a private dbus-daemon (started and stopped by PID per test), with
//! real clients: busctl, gdbus, the real `rauc` 1.8 CLI and `ota` itself.
//!
//! Bundles are opened by the **directory test double** (`ota --dangerous-unverified-directory`:
//! an unpacked bundle directory taken as verified and mounted), because the host has no
//! device-mapper to mount real verity/crypt bundles. The install flow, progress, `Completed` and
//! the slot writes are the real ones; the same flow with real encrypted bundles, the real opener
//! and the rauc 1.8 CLI runs in the VM (`pkcs11-tests/tests/vm_dbus.rs`).

mod common;

use std::process::Command;

use common::{
    BundleDir, Bus, Device, Img, KillOnDrop, Service, pattern, run_on_bus, wait_until, write_script,
};

const GIO: &str = "org.gtk.GDBus.UnmappedGError.Quark._g_2dio_2derror_2dquark.Code30";

fn busctl(bus: &Bus, args: &[&str]) -> (bool, String, String) {
    let addr = format!("--address={}", bus.address);
    let mut all = vec![addr.as_str()];
    all.extend_from_slice(args);
    run_on_bus(bus, "busctl", &all)
}

fn gdbus_call(bus: &Bus, method: &str, args: &[&str]) -> (bool, String, String) {
    let mut all = vec![
        "call",
        "--address",
        &bus.address,
        "--dest",
        "de.pengutronix.rauc",
        "--object-path",
        "/",
        "--method",
    ];
    let m = format!("de.pengutronix.rauc.Installer.{method}");
    all.push(&m);
    all.extend_from_slice(args);
    run_on_bus(bus, "gdbus", &all)
}

fn prop(bus: &Bus, name: &str) -> String {
    let (ok, out, err) = busctl(
        bus,
        &[
            "get-property",
            "de.pengutronix.rauc",
            "/",
            "de.pengutronix.rauc.Installer",
            name,
        ],
    );
    assert!(ok, "{err}");
    out.trim().to_string()
}

fn wait_idle(bus: &Bus) {
    wait_until("Operation idle", || prop(bus, "Operation") == "s \"idle\"");
}

#[test]
fn introspection_matches_rauc_interface() {
    let bus = Bus::start();
    let dev = Device::new("", "");
    let _svc = Service::start(&bus, &dev, "A");
    let (ok, out, err) = busctl(
        &bus,
        &[
            "introspect",
            "de.pengutronix.rauc",
            "/",
            "de.pengutronix.rauc.Installer",
        ],
    );
    assert!(ok, "{err}");
    let rows: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| l.starts_with('.'))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let find = |name: &str| {
        rows.iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("{name} missing:\n{out}"))
    };
    for (name, kind, sig, result) in [
        (".GetPrimary", "method", "-", "s"),
        (".GetSlotStatus", "method", "-", "a(sa{sv})"),
        (".Info", "method", "s", "ss"),
        (".Install", "method", "s", "-"),
        (".InstallBundle", "method", "sa{sv}", "-"),
        (".InspectBundle", "method", "sa{sv}", "a{sv}"),
        (".Mark", "method", "ss", "ss"),
        (".Completed", "signal", "i", "-"),
    ] {
        assert_eq!(&find(name)[1..4], &[kind, sig, result], "{name}");
    }
    for (name, sig) in [
        (".BootSlot", "s"),
        (".Compatible", "s"),
        (".LastError", "s"),
        (".Operation", "s"),
        (".Progress", "(isi)"),
        (".Variant", "s"),
    ] {
        let r = find(name);
        assert_eq!((r[1], r[2]), ("property", sig), "{name}");
        assert_eq!(*r.last().unwrap(), "emits-change", "{name}");
    }
    assert_eq!(rows.len(), 14, "nothing beyond the rauc interface:\n{out}");
    let (_, xml, _) = run_on_bus(
        &bus,
        "gdbus",
        &[
            "introspect",
            "--address",
            &bus.address,
            "--dest",
            "de.pengutronix.rauc",
            "--object-path",
            "/",
            "--xml",
        ],
    );
    for arg in [
        "name=\"source\"",
        "name=\"slot_identifier\"",
        "name=\"slot_status_array\"",
        "name=\"compatible\"",
    ] {
        assert!(xml.contains(arg), "{arg} in\n{xml}");
    }
}

#[test]
fn properties_slot_status_and_mark() {
    let bus = Bus::start();
    let dev = Device::new("variant-name=v7\n", "");
    let _svc = Service::start(&bus, &dev, "A");
    assert_eq!(prop(&bus, "Operation"), "s \"idle\"");
    assert_eq!(prop(&bus, "Compatible"), "s \"Test Device\"");
    assert_eq!(prop(&bus, "Variant"), "s \"v7\"");
    assert_eq!(prop(&bus, "BootSlot"), "s \"A\"");
    assert_eq!(prop(&bus, "LastError"), "s \"\"");
    assert_eq!(prop(&bus, "Progress"), "(isi) 0 \"\" 0");

    let (ok, out, _) = gdbus_call(&bus, "Mark", &["active", "other"]);
    assert!(ok);
    assert_eq!(out.trim(), "('rootfs.1', 'activated slot rootfs.1')");
    let (ok, _, err) = gdbus_call(&bus, "Mark", &["good", "nonsense"]);
    assert!(!ok);
    assert!(
        err.contains(&format!("{GIO}: Invalid slot name format: 'nonsense'")),
        "{err}"
    );

    let (ok, out, err) = gdbus_call(&bus, "GetSlotStatus", &[]);
    assert!(ok, "{err}");
    for want in [
        "('rootfs.0', {",
        "'class': <'rootfs'>",
        "'state': <'booted'>",
        "'bootname': <'B'>",
        "'parent': <'rootfs.1'>",
        "'boot-status': <'bad'>",
        "'activated.count': <uint32 1>",
    ] {
        assert!(out.contains(want), "{want} in {out}");
    }
    let b = BundleDir::new(
        "Test Device",
        &[Img::new("rootfs", "rootfs.img", pattern(10, 1))],
        None,
    );
    let dir = b.path().to_str().unwrap();
    let (ok, out, err) = gdbus_call(&bus, "Info", &[dir]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "('Test Device', '2024.01.0')");
    let (ok, out, err) = gdbus_call(&bus, "InspectBundle", &[dir, "{}"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("'update': <{") && out.contains("'compatible': <'Test Device'>"),
        "{out}"
    );
    assert!(
        out.contains("'slot-class': <'rootfs'>") && out.contains("'size': <uint64 10>"),
        "{out}"
    );
    let (ok, _, err) = gdbus_call(&bus, "GetPrimary", &[]);
    assert!(!ok);
    assert!(err.contains("Failed getting primary slot: Obtaining primary entry from bootloader 'noop' not supported yet"), "{err}");
}

#[test]
fn install_bundle_argument_validation() {
    let bus = Bus::start();
    let dev = Device::new("", "");
    let _svc = Service::start(&bus, &dev, "A");
    for (args, key) in [
        ("{'foo': <true>}", "foo"),
        ("{'ignore-compatible': <'yes'>}", "ignore-compatible"),
        ("{'transaction-id': <7>}", "transaction-id"),
    ] {
        let (ok, _, err) = gdbus_call(&bus, "InstallBundle", &["/nonexistent", args]);
        assert!(!ok);
        assert!(
            err.contains(&format!("GDBus.Error:{GIO}: Unsupported key: {key}")),
            "{err}"
        );
    }
    assert_eq!(prop(&bus, "Operation"), "s \"idle\"");
    // Every key of any rauc version is accepted (rauc 1.8 rejects ignore-version-limit).
    let all = "{'ignore-compatible': <true>, 'ignore-version-limit': <true>, 'transaction-id': <'t'>, \
               'require-manifest-hash': <'ab'>, 'tls-cert': <'c'>, 'tls-key': <'k'>, 'tls-ca': <'a'>, \
               'tls-no-verify': <true>, 'http-headers': <['X-A: b']>}";
    let (ok, out, err) = gdbus_call(&bus, "InstallBundle", &["/nonexistent", all]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "()");
    wait_idle(&bus);
    let last = prop(&bus, "LastError");
    assert!(last.contains("/nonexistent"), "{last}");
    let (ok, _, err) = gdbus_call(
        &bus,
        "InspectBundle",
        &["/x", "{'ignore-compatible': <true>}"],
    );
    assert!(
        !ok && err.contains("Unsupported key: ignore-compatible"),
        "{err}"
    );
}

#[test]
fn rauc_18_cli_status_and_mark_through_our_service() {
    let bus = Bus::start();
    let dev = Device::new("", "");
    let _svc = Service::start(&bus, &dev, "A");
    let (ok, out, err) = run_on_bus(&bus, "rauc", &["status"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("Compatible:  Test Device"), "{out}");
    assert!(out.contains("Booted from: rootfs.0 (A)"), "{out}");
    assert!(out.contains("[rootfs.1]"), "{out}");
    assert!(
        err.contains("Obtaining primary entry from bootloader 'noop' not supported yet"),
        "{err}"
    );
    let (ok, out, err) = run_on_bus(&bus, "rauc", &["status", "mark-good"]);
    assert!(ok, "{out}\n{err}");
    assert_eq!(out.trim(), "rauc status: marked slot rootfs.0 as good");
    let (ok, out, err) = run_on_bus(&bus, "rauc", &["status", "mark-active", "other"]);
    assert!(ok, "{out}\n{err}");
    assert_eq!(out.trim(), "rauc status: activated slot rootfs.1");
    let (ok, out, _) = run_on_bus(
        &bus,
        "rauc",
        &["status", "--detailed", "--output-format=json"],
    );
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["booted"], "A");
    let slots = v["slots"].as_array().unwrap();
    let b = slots.iter().find_map(|s| s.get("rootfs.1")).unwrap();
    assert_eq!(b["slot_status"]["activated"]["count"], 1);
}

#[test]
fn rauc_18_cli_installs_through_our_service() {
    let bus = Bus::start();
    let dev = Device::new("", "");
    let _svc = Service::start(&bus, &dev, "A");
    let img = pattern(20000, 9);
    let b = BundleDir::new(
        "Test Device",
        &[Img::new("rootfs", "rootfs.img", img.clone())],
        None,
    );
    let bundle = b.path().to_str().unwrap();
    let (ok, out, err) = run_on_bus(&bus, "rauc", &["install", bundle]);
    assert!(ok, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "installing", "{out}");
    assert!(lines.contains(&"  0% Installing"), "{out}");
    assert!(lines.contains(&" 99% Updating slots done."), "{out}");
    assert!(lines.contains(&"100% Installing done."), "{out}");
    assert_eq!(
        *lines.last().unwrap(),
        format!("Installing `{bundle}` succeeded")
    );
    assert_eq!(
        &std::fs::read(dev.path("slot-b.img")).unwrap()[..img.len()],
        &img[..]
    );
    wait_idle(&bus);

    // A failing install: LastError, Completed(1), exit code 1.
    let bad = BundleDir::new(
        "Other Device",
        &[Img::new("rootfs", "rootfs.img", img)],
        None,
    );
    let (ok, out, err) = run_on_bus(&bus, "rauc", &["install", bad.path().to_str().unwrap()]);
    assert!(!ok);
    assert!(out.contains("LastError: Compatible mismatch: Expected 'Test Device' but bundle manifest has 'Other Device'"), "{out}");
    assert!(err.contains("failed"), "{err}");
}

#[test]
fn ota_cli_uses_the_service() {
    let bus = Bus::start();
    let dev = Device::new("", "");
    let _svc = Service::start(&bus, &dev, "B");
    let ota = env!("CARGO_BIN_EXE_ota");
    let b = BundleDir::new(
        "Test Device",
        &[Img::new("rootfs", "rootfs.img", pattern(999, 1))],
        None,
    );
    // No --conf: the client needs none when the service runs.
    let (ok, out, err) = run_on_bus(&bus, ota, &["install", b.path().to_str().unwrap()]);
    assert!(ok, "{out}\n{err}");
    assert!(out.starts_with("installing\n"), "{out}");
    assert!(out.contains("100% Installing done.\n"), "{out}");
    assert!(out.contains("succeeded"), "{out}");
    wait_idle(&bus);
    let (ok, out, err) = run_on_bus(&bus, ota, &["status", "--detailed"]);
    assert!(ok, "{err}");
    assert!(out.contains("Booted from: rootfs.1 (B)"), "{out}");
    assert!(
        out.contains("installed:\n              timestamp="),
        "{out}"
    );
    let (ok, out, _) = run_on_bus(&bus, ota, &["status", "mark-bad", "other"]);
    assert!(ok);
    assert_eq!(out.trim(), "rauc status: marked slot rootfs.0 as bad");
}

#[test]
fn busy_while_installing() {
    let bus = Bus::start();
    let dev = Device::new("", "[handlers]\npre-install=pre.sh\n");
    let flag = dev.path("go");
    write_script(
        &dev.path("pre.sh"),
        &format!(
            "touch {s}\nwhile [ ! -e {f} ]; do sleep 0.05; done\n",
            s = dev.path("started").display(),
            f = flag.display()
        ),
    );
    let _svc = Service::start(&bus, &dev, "A");
    let b = BundleDir::new(
        "Test Device",
        &[Img::new("rootfs", "rootfs.img", pattern(10, 1))],
        None,
    );
    let (ok, _, err) = gdbus_call(&bus, "InstallBundle", &[b.path().to_str().unwrap(), "{}"]);
    assert!(ok, "{err}");
    wait_until("pre-install handler", || dev.path("started").exists());
    assert_eq!(prop(&bus, "Operation"), "s \"installing\"");
    let (ok, _, err) = gdbus_call(&bus, "InstallBundle", &[b.path().to_str().unwrap(), "{}"]);
    assert!(
        !ok && err.contains(&format!("{GIO}: Already processing a different method")),
        "{err}"
    );
    for m in ["GetSlotStatus", "GetPrimary"] {
        let (ok, _, err) = gdbus_call(&bus, m, &[]);
        assert!(
            !ok && err.contains("already processing a different method"),
            "{m}: {err}"
        );
    }
    std::fs::write(&flag, b"").unwrap();
    wait_idle(&bus);
    assert_eq!(prop(&bus, "LastError"), "s \"\"");
    assert!(prop(&bus, "Progress").starts_with("(isi) 100 \"Installing done.\" 1"));
}

#[test]
fn non_root_callers_may_read_but_not_install_or_mark() {
    let bus = Bus::start();
    let dev = Device::new("", "");
    let _svc = Service::start(&bus, &dev, "A");
    let as_nobody = |args: &[&str]| {
        let out = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "gdbus",
                "call",
                "--address",
                &bus.address,
            ])
            .args([
                "--dest",
                "de.pengutronix.rauc",
                "--object-path",
                "/",
                "--method",
            ])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = as_nobody(&["de.pengutronix.rauc.Installer.GetSlotStatus"]);
    assert!(ok, "{err}");
    let (ok, err) = as_nobody(&["de.pengutronix.rauc.Installer.Mark", "good", "booted"]);
    assert!(
        !ok && err.contains(&format!("{GIO}: Permission denied")),
        "{err}"
    );
    let (ok, err) = as_nobody(&["de.pengutronix.rauc.Installer.InstallBundle", "/x", "{}"]);
    assert!(!ok && err.contains("Permission denied"), "{err}");
    assert_eq!(prop(&bus, "Operation"), "s \"idle\"");
}

#[test]
fn real_rauc_service_reads_our_status_file_and_serves_our_client() {
    // Install with ota (local mode), then let the real rauc 1.8 service read the same
    // data directory; ota's D-Bus client talks to rauc's service.
    let bus = Bus::start();
    let dev = Device::new("", "");
    let ota = env!("CARGO_BIN_EXE_ota");
    let b = BundleDir::new(
        "Test Device",
        &[Img::new("rootfs", "rootfs.img", pattern(4321, 8))],
        None,
    );
    let conf = format!("--conf={}", dev.conf().display());
    let out = Command::new(ota)
        .env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            format!("unix:path={}", dev.path("no-bus").display()),
        )
        .args([
            &conf,
            "--override-boot-slot=A",
            "--dangerous-unverified-directory",
            "install",
        ])
        .arg(b.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    std::fs::create_dir_all(dev.path("mnt")).unwrap();
    let rauc = KillOnDrop(
        Command::new("rauc")
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .args([
                &conf,
                "--override-boot-slot=A",
                &format!("--mount={}", dev.path("mnt").display()),
                "service",
            ])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr = bus.address.clone();
    wait_until("rauc service", || {
        Command::new("busctl")
            .args([
                &format!("--address={addr}"),
                "status",
                "de.pengutronix.rauc",
            ])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    let (ok, out, err) = run_on_bus(&bus, ota, &["status", "--detailed", "--output-format=json"]);
    drop(rauc);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["compatible"], "Test Device");
    let slot = v["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|s| s.get("rootfs.1"))
        .unwrap();
    let st = &slot["slot_status"];
    assert_eq!(st["status"], "ok");
    assert_eq!(st["checksum"]["size"], 4321);
    assert_eq!(st["installed"]["count"], 1);
    assert_eq!(st["activated"]["count"], 1);
    assert_eq!(st["bundle"]["version"], "2024.01.0");
}
