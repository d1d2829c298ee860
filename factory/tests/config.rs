//! Station configuration: the documented example parses; broken configurations fail with a
//! message naming the file and key, and leave no inventory behind.

mod common;

use std::path::Path;
use std::process::Command;

use factory::config::StationConfig;
use factory::types::{DeviceSerial, KeyType};

const BASE: &str = r#"inventory = "inv.sqlite"
[ca]
key = "k"
cert = "c"
[device-token]
uri = "pkcs11:token=dev-{serial}"
"#;

fn load(text: &str) -> Result<StationConfig, String> {
    StationConfig::from_toml(text, Path::new("/etc/factory/station.toml"))
        .map_err(|e| e.to_string())
}

#[test]
fn example_file_is_valid_and_documents_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("station.example.toml");
    let c = StationConfig::load(&path).unwrap();
    assert_eq!(c.default_profile, "default");
    assert_eq!(c.profile(None).unwrap().key_type, KeyType::EcP256);
    assert_eq!(c.profile(Some("rsa")).unwrap().key_type, KeyType::Rsa3072);
    assert_eq!(c.ca.crl_next_update_days, 30);
    assert!(c.tpm.record_ek_certificate && !c.tpm.enabled);
    let s = DeviceSerial::new("SN1").unwrap();
    assert_eq!(c.device_token_uri(&s), "pkcs11:token=device-SN1");
    assert_eq!(c.device_token.key_label.render(&s), "device-SN1");
    assert_eq!(c.inventory, path.parent().unwrap().join("inventory.sqlite"));
}

#[test]
fn broken_configurations_name_the_key() {
    let cases: &[(&str, &str)] = &[
        (
            "[ca]\nkey=\"k\"\ncert=\"c\"\n[device-token]\nuri=\"x{serial}\"\n",
            "key 'inventory': is required",
        ),
        (&format!("{BASE}bogus = 1\n"), "unknown field `bogus`"),
        (
            &format!("{BASE}[profiles.default]\nkey-typ = \"ec-p256\"\n"),
            "unknown field `key-typ`",
        ),
        (
            &format!("{BASE}[profiles.default]\nkey-type = \"ec-p521\"\n"),
            "key 'profiles.default.key-type': unknown key type 'ec-p521'",
        ),
        (
            &format!("{BASE}[profiles.default]\nsubject = \"/CN=fixed\"\n"),
            "key 'profiles.default.subject': must contain {serial}",
        ),
        (
            &format!("{BASE}[profiles.default]\nsubject = \"/XX={{serial}}\"\n"),
            "unknown attribute 'XX'",
        ),
        (
            &format!("{BASE}[profiles.default]\nsubject = \"/C=Germany/CN={{serial}}\"\n"),
            "two-letter country code",
        ),
        (
            &format!("{BASE}[profiles.default]\nvalidity-days = 0\n"),
            "key 'profiles.default.validity-days': must be 1..=36500 days",
        ),
        (
            &format!("{BASE}[profiles.default]\nvalidity-days = \"ten\"\n"),
            "invalid type",
        ),
        (
            &format!("default-profile = \"gone\"\n{BASE}"),
            "key 'default-profile': no profile named 'gone'",
        ),
        (
            &BASE.replace("pkcs11:token=dev-{serial}", "pkcs11:token=all"),
            "key 'device-token.uri': must contain {serial}",
        ),
        (
            &BASE.replace("{serial}", "{serial"),
            "key 'device-token.uri': unexpected '{'",
        ),
        (
            &BASE.replace("key = \"k\"", "key = \"k\"\nkey-type = \"ec-p384\""),
            "ec-p384 CA keys are not supported",
        ),
        (
            &BASE.replace("cert = \"c\"", "cert = \"\""),
            "key 'ca.cert': must not be empty",
        ),
        (
            &format!("{BASE}[tpm]\nenabled = true\n"),
            "key 'tpm.tcti': is required when tpm.enabled = true",
        ),
        (
            &format!("{BASE}[tpm]\nec-key-handle = \"0x01000001\"\n"),
            "not a persistent handle",
        ),
        ("inventory = [", "TOML parse error"),
    ];
    for (text, expected) in cases {
        let err = load(text).expect_err(text);
        assert!(err.contains("/etc/factory/station.toml"), "{err}");
        assert!(
            err.contains(expected),
            "expected '{expected}' in: {err}\nconfig:\n{text}"
        );
    }
}

#[test]
fn a_broken_config_stops_every_command_before_the_inventory() {
    let dir = common::tempdir();
    let path = dir.path().join("station.toml");
    std::fs::write(&path, format!("{BASE}[ca]\n")).unwrap();
    for args in [
        vec!["list"],
        vec!["revoke", "--device", "x", "--reason", "superseded"],
        vec!["export"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_factory"))
            .arg("--config")
            .arg(&path)
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: invalid station configuration"),
            "{stderr}"
        );
        assert!(
            stderr.contains("duplicate key") || stderr.contains("ca"),
            "{stderr}"
        );
    }
    assert!(
        !dir.path().join("inv.sqlite").exists(),
        "no inventory was created"
    );
}
