//! Fleet commands through the `factory` binary: list, show, revoke, retire, recipients,
//! export and import.

mod common;

use common::Station;
use factory::inventory::DeviceRecord;
use factory::types::{DeviceStatus, now};
use serde_json::Value;

/// Devices: a1, a3 active in g1; a2 active in g2; r1 revoked, t1 retired, x1 expired (g1).
fn fleet(st: &Station) -> Vec<DeviceRecord> {
    let mut inv = st.inventory();
    let two_days_ago = now() - 2 * 86_400;
    let devices = vec![
        st.device("a3", "default", Some("g1"), now()).1,
        st.device("a1", "rsa", Some("g1"), now()).1,
        st.device("a2", "p384", Some("g2"), now()).1,
        st.device("r1", "default", Some("g1"), now()).1,
        st.device("t1", "default", Some("g1"), now()).1,
        st.device("x1", "short", Some("g1"), two_days_ago).1,
    ];
    st.record(&mut inv, &devices);
    devices
}

fn subjects(pem: &[u8]) -> Vec<String> {
    openssl::x509::X509::stack_from_pem(pem)
        .unwrap()
        .iter()
        .map(|c| {
            let cn = c
                .subject_name()
                .entries_by_nid(openssl::nid::Nid::COMMONNAME)
                .next()
                .unwrap();
            String::from_utf8(cn.data().as_slice().to_vec()).unwrap()
        })
        .collect()
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn revoke_retire_and_recipient_lists() {
    let st = Station::new();
    fleet(&st);
    stdout(&st.factory(&["revoke", "--device", "r1", "--reason", "key-compromise"]));
    stdout(&st.factory(&["retire", "--device", "t1"]));
    let out = st.path("recipients.pem");
    let text = stdout(&st.factory(&["recipients", "--out", out.to_str().unwrap()]));
    assert_eq!(
        text.trim(),
        format!("3 recipients written to {}", out.display())
    );
    let first = std::fs::read(&out).unwrap();
    assert_eq!(
        subjects(&first),
        ["a1", "a2", "a3"],
        "active and unexpired only, by serial"
    );
    // Stable: the same inventory gives the same bytes.
    stdout(&st.factory(&["recipients", "--out", out.to_str().unwrap()]));
    assert_eq!(std::fs::read(&out).unwrap(), first);
    let json: Value = serde_json::from_str(&stdout(&st.factory(&[
        "--output-format",
        "json",
        "recipients",
        "--group",
        "g1",
        "--out",
        out.to_str().unwrap(),
    ])))
    .unwrap();
    assert_eq!(json["count"], 2);
    assert_eq!(subjects(&std::fs::read(&out).unwrap()), ["a1", "a3"]);
    // The next list after a revocation excludes the device.
    stdout(&st.factory(&["revoke", "--device", "a1", "--reason", "superseded"]));
    stdout(&st.factory(&[
        "recipients",
        "--group",
        "g1",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert_eq!(subjects(&std::fs::read(&out).unwrap()), ["a3"]);
    // No temporary files are left next to the output.
    let names: Vec<_> = std::fs::read_dir(st.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        names.iter().all(|n| !n.to_string_lossy().contains(".tmp-")),
        "{names:?}"
    );
}

#[test]
fn list_and_show_readable_and_json() {
    let st = Station::new();
    let devices = fleet(&st);
    let text = stdout(&st.factory(&["list", "--group", "g1"]));
    assert!(text.lines().nth(1).unwrap().starts_with("a1 "), "{text}");
    assert!(text.trim_end().ends_with("5 devices"), "{text}");
    let json: Value = serde_json::from_str(&stdout(&st.factory(&[
        "--output-format",
        "json",
        "list",
        "--status",
        "active",
    ])))
    .unwrap();
    let serials: Vec<_> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["serial"].as_str().unwrap())
        .collect();
    assert_eq!(serials, ["a1", "a2", "a3", "r1", "t1", "x1"]);
    let a2 = &devices[2];
    let text = stdout(&st.factory(&["show", "a2"]));
    for needle in [
        "status:",
        "active",
        "ec-p384",
        &a2.cert_serial,
        &a2.spki_sha256,
        "audit:",
        "import",
        "-----BEGIN CERTIFICATE-----",
    ] {
        assert!(text.contains(needle), "missing {needle} in {text}");
    }
    let json: Value = serde_json::from_str(&stdout(&st.factory(&[
        "--output-format",
        "json",
        "show",
        "a2",
    ])))
    .unwrap();
    assert_eq!(json["device"]["key_type"], "ec-p384");
    assert_eq!(json["device"]["group"], "g2");
    assert_eq!(json["audit"][0]["action"], "import");
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let st = Station::new();
    fleet(&st);
    let export_before = stdout(&st.factory(&["export"]));
    for (args, expected) in [
        (
            vec!["show", "nope"],
            "device 'nope' is not in the inventory",
        ),
        (
            vec!["revoke", "--device", "nope", "--reason", "superseded"],
            "device 'nope' is not in the inventory",
        ),
        (
            vec!["revoke", "--device", "a1", "--reason", "lost"],
            "unknown revocation reason 'lost'",
        ),
        (
            vec!["retire", "--device", "bad serial"],
            "invalid device serial 'bad serial'",
        ),
        (
            vec!["list", "--status", "gone"],
            "unknown device status 'gone'",
        ),
    ] {
        let out = st.factory(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    stdout(&st.factory(&["retire", "--device", "t1"]));
    let out = st.factory(&["retire", "--device", "t1"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot retire device 't1': it is retired")
    );
    let export_after = stdout(&st.factory(&["export"]));
    // Only the one successful retirement changed the inventory.
    let changed: Vec<_> = export_before
        .lines()
        .zip(export_after.lines())
        .filter(|(a, b)| a != b && !a.starts_with(r#"{"type":"header""#))
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(
        changed[0].1.contains(r#""serial":"t1""#) && changed[0].1.contains(r#""status":"retired""#)
    );
}

#[test]
fn export_import_round_trip_and_conflicts() {
    let st = Station::new();
    fleet(&st);
    stdout(&st.factory(&["revoke", "--device", "r1", "--reason", "key-compromise"]));
    stdout(&st.factory(&["retire", "--device", "r1"]));
    let dump = st.path("inventory.jsonl");
    stdout(&st.factory(&["export", "--out", dump.to_str().unwrap()]));
    let lines = std::fs::read_to_string(&dump).unwrap();
    assert!(
        lines.lines().last().unwrap().contains(r#""devices":6"#),
        "{lines}"
    );
    // A second station imports it and lists exactly the same devices.
    let other = Station::new();
    let text = stdout(&other.factory(&["import", dump.to_str().unwrap()]));
    assert_eq!(text.trim(), "6 devices imported");
    let list = |s: &Station| stdout(&s.factory(&["--output-format", "json", "list"]));
    assert_eq!(list(&other), list(&st));
    let inv = other.inventory();
    let r1 = inv.device(&"r1".parse().unwrap()).unwrap().unwrap();
    assert_eq!(r1.status, DeviceStatus::Retired);
    assert!(r1.revocation.is_some());
    // Importing again conflicts on every device and imports nothing.
    let before = list(&other);
    let out = other.factory(&["import", dump.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("import refused, nothing was imported"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 2: device 'a1' already exists (active)"),
        "{stderr}"
    );
    assert_eq!(list(&other), before);
    // Truncated or tampered files are refused, also with nothing imported.
    let third = Station::new();
    let truncated: String = lines.lines().take(4).map(|l| format!("{l}\n")).collect();
    std::fs::write(st.path("cut.jsonl"), truncated).unwrap();
    let out = third.factory(&["import", st.path("cut.jsonl").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("ends without the end record"));
    let tampered = lines.replacen(r#""key_type":"rsa-3072""#, r#""key_type":"ec-p256""#, 1);
    std::fs::write(st.path("bad.jsonl"), tampered).unwrap();
    let out = third.factory(&["import", st.path("bad.jsonl").to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "bad.jsonl:2: key_type 'ec-p256' does not match the certificate ('rsa-3072')"
        ),
        "{stderr}"
    );
    assert_eq!(list(&third), "[]\n");
}
