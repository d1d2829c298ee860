//! The station end to end with real SoftHSM tokens: `ca init` (CA key generated in the station
//! token), devices provisioned into their own tokens (EC P-256, P-384, RSA-3072), a
//! release-signing certificate from `ca issue`, a crypt bundle built with `signer bundle`,
//! encrypted with `signer encrypt --to` the output of `factory recipients` and decrypted with each
//! device's token (`signer info --key pkcs11:…`, `signer extract`); then a revoked device drops
//! off the next recipient list, appears on the CRL (`openssl crl -verify`) and can no longer
//! decrypt a bundle encrypted to the new list.

use std::path::Path;

use pkcs11_tests::station::{
    Station, crypt_content, inventory_snapshot, run, text, token_objects, workspace_binary,
};

const DEVICES: [(&str, &str); 4] = [
    ("ec-1", "default"),
    ("p384-1", "p384"),
    ("rsa-1", "rsa"),
    ("ec-2", "default"),
];

fn device_key(serial: &str) -> String {
    format!("pkcs11:token=dev-{serial};object=device-{serial};type=private")
}

fn openssl(args: &[&str]) -> String {
    let out = run(std::process::Command::new("openssl").args(args));
    assert!(out.status.success(), "openssl {args:?} failed");
    text(&out)
}

fn pem_count(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .matches("-----BEGIN CERTIFICATE-----")
        .count()
}

#[test]
fn provision_encrypt_decrypt_revoke() {
    let st = Station::new("");
    let serials: Vec<&str> = DEVICES.iter().map(|(s, _)| *s).collect();
    st.device_tokens(&serials);
    let ca = st.ca_init();
    let ca_s = ca.to_str().unwrap();
    let ca_text = openssl(&["x509", "-in", ca_s, "-noout", "-text"]);
    assert!(ca_text.contains("CA:TRUE"), "{ca_text}");

    for (serial, profile) in DEVICES {
        let out = st.factory_ok(&[
            "provision",
            "--device",
            serial,
            "--profile",
            profile,
            "--group",
            "line-a",
        ]);
        assert!(
            out.contains(&format!("device {serial} provisioned")),
            "{out}"
        );
    }
    // Re-running reports the state and changes nothing.
    let before = inventory_snapshot(&st.config);
    let objects_before = token_objects("dev-ec-1");
    let out = st.factory_ok(&["provision", "--device", "ec-1", "--group", "line-b"]);
    assert!(
        out.contains("already provisioned (status active); nothing changed"),
        "{out}"
    );
    assert_eq!(inventory_snapshot(&st.config), before);
    assert_eq!(token_objects("dev-ec-1"), objects_before);

    // Each device token holds a sensitive, non-extractable key pair and its certificate under
    // one CKA_ID and label.
    assert_eq!(objects_before.len(), 3, "{objects_before:?}");
    assert!(objects_before.iter().all(|o| o.id == objects_before[0].id));
    let attrs = run(std::process::Command::new("pkcs11-tool")
        .envs(st.env())
        .args([
            "--module",
            softhsm::SOFTHSM_MODULE,
            "--token-label",
            "dev-rsa-1",
        ])
        .args([
            "--login",
            "--pin",
            pkcs11_tests::station::USER_PIN,
            "--list-objects",
        ]));
    let attrs = text(&attrs);
    assert!(
        attrs.contains("sensitive, always sensitive, never extractable, local"),
        "{attrs}"
    );
    assert!(attrs.contains("RSA 3072 bits"), "{attrs}");

    // A release key in the station token, certified by the station CA.
    let keymgr = workspace_binary("keymgr");
    let out = run(std::process::Command::new(keymgr)
        .envs(st.env())
        .args(["generate", "--key-type", "ec:prime256v1"])
        .arg("pkcs11:token=station;object=release"));
    assert!(out.status.success());
    let release = st.path("release.pem");
    st.factory_ok(&[
        "ca",
        "issue",
        "--key",
        "pkcs11:token=station;object=release",
        "--profile",
        "release",
        "--name",
        "release-2026",
        "--out",
        release.to_str().unwrap(),
        "--store",
    ]);
    let text_release = openssl(&["x509", "-in", release.to_str().unwrap(), "-noout", "-text"]);
    assert!(
        text_release.contains("Code Signing, E-mail Protection"),
        "{text_release}"
    );
    openssl(&["verify", "-CAfile", ca_s, release.to_str().unwrap()]);

    // Build the crypt bundle with the release key (certificate by URI: stored by --store).
    let content = crypt_content(st.dir());
    let bundle = st.path("release.raucb");
    let out = st.signer(&[
        "bundle",
        "--cert",
        "pkcs11:token=station;object=release;type=cert",
        "--key",
        "pkcs11:token=station;object=release",
        "--keyring",
        ca_s,
        content.to_str().unwrap(),
        bundle.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    // rauc 1.8 accepts the signer with its default purpose (no check-purpose).
    let out = run(std::process::Command::new("rauc")
        .args(["info", "--keyring", ca_s])
        .arg(&bundle));
    assert!(
        out.status.success(),
        "rauc info rejected the release signer"
    );

    // Encrypt to the recipient list and decrypt with every device's token.
    let recipients = st.path("recipients-1.pem");
    let out = st.factory_ok(&[
        "recipients",
        "--group",
        "line-a",
        "--out",
        recipients.to_str().unwrap(),
    ]);
    assert!(out.contains("4 recipients"), "{out}");
    assert_eq!(pem_count(&recipients), 4);
    let enc1 = st.path("enc-1.raucb");
    encrypt(&st, ca_s, &bundle, &recipients, &enc1);
    for serial in serials.iter().copied() {
        let out = run(st
            .signer_command()
            .args(["info", "--keyring", ca_s, "--key", &device_key(serial)])
            .arg(&enc1));
        assert!(out.status.success(), "{serial} cannot decrypt");
        assert!(text(&out).contains("Factory Test"), "{serial}");
    }
    for serial in ["p384-1", "rsa-1"] {
        let dir = st.path(&format!("extract-{serial}"));
        let out = run(st
            .signer_command()
            .args(["extract", "--keyring", ca_s, "--key", &device_key(serial)])
            .arg(&enc1)
            .arg(&dir));
        assert!(out.status.success(), "{serial} cannot extract");
        assert_eq!(
            std::fs::read(dir.join("rootfs.img")).unwrap(),
            std::fs::read(content.join("rootfs.img")).unwrap()
        );
    }

    // Revoke ec-2: off the next list, on the CRL, and no longer able to decrypt.
    st.factory_ok(&["revoke", "--device", "ec-2", "--reason", "key-compromise"]);
    let recipients2 = st.path("recipients-2.pem");
    let out = st.factory_ok(&["recipients", "--out", recipients2.to_str().unwrap()]);
    assert!(out.contains("3 recipients"), "{out}");
    let crl = st.path("crl.pem");
    st.factory_ok(&["crl", "--out", crl.to_str().unwrap(), "--next-update", "3"]);
    let crl_text = openssl(&[
        "crl",
        "-in",
        crl.to_str().unwrap(),
        "-CAfile",
        ca_s,
        "-verify",
        "-noout",
        "-text",
    ]);
    assert!(crl_text.contains("verify OK"), "{crl_text}");
    let revoked_serial = device_cert_serial(&st, "ec-2");
    assert!(crl_text.contains(&revoked_serial), "{crl_text}");
    assert!(!crl_text.contains(&device_cert_serial(&st, "ec-1")));
    assert!(
        !std::fs::read_to_string(&recipients2)
            .unwrap()
            .contains(&pem_of(&st, "ec-2"))
    );

    let enc2 = st.path("enc-2.raucb");
    encrypt(&st, ca_s, &bundle, &recipients2, &enc2);
    let out = run(st
        .signer_command()
        .args(["info", "--keyring", ca_s, "--key", &device_key("ec-2")])
        .arg(&enc2));
    assert!(!out.status.success(), "the revoked device still decrypts");
    let message = text(&out);
    assert!(message.to_lowercase().contains("recipient"), "{message}");
    let out = run(st
        .signer_command()
        .args(["info", "--keyring", ca_s, "--key", &device_key("ec-1")])
        .arg(&enc2));
    assert!(out.status.success());

    // Reconciliation: every active device's token agrees with the inventory.
    let out = st.factory(&["verify", "--all"]);
    assert!(out.status.success(), "{}", text(&out));
    let report = text(&out);
    assert_eq!(
        report.matches("inventory and token agree").count(),
        3,
        "{report}"
    );
    assert!(report.contains("device ec-2: revoked"), "{report}");
}

fn encrypt(st: &Station, ca: &str, bundle: &Path, recipients: &Path, out: &Path) {
    let res = run(st
        .signer_command()
        .args(["encrypt", "--keyring", ca, "--to"])
        .arg(recipients)
        .arg(bundle)
        .arg(out));
    assert!(res.status.success());
}

/// The certificate serial of a device from `factory show --output-format json`.
fn device_cert_serial(st: &Station, serial: &str) -> String {
    let out = st.factory_ok(&["--output-format", "json", "show", serial]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["device"]["cert_serial"]
        .as_str()
        .or_else(|| v["cert_serial"].as_str())
        .unwrap_or_else(|| panic!("no cert_serial in {out}"))
        .to_string()
}

/// The body of a device's certificate PEM (from the token).
fn pem_of(_st: &Station, serial: &str) -> String {
    let objects = token_objects(&format!("dev-{serial}"));
    let cert = objects
        .iter()
        .find(|o| o.object_type == keymgr::ObjectType::Cert)
        .unwrap();
    let ts = keymgr::TokenSession::open(
        &cert.uri,
        Some(Path::new(softhsm::SOFTHSM_MODULE)),
        keymgr::Access::ReadOnly,
    )
    .unwrap();
    let der = ts.export_certificate(&cert.uri).unwrap();
    let pem = openssl::x509::X509::from_der(&der)
        .unwrap()
        .to_pem()
        .unwrap();
    let pem = String::from_utf8(pem).unwrap();
    pem.lines().nth(1).unwrap().to_string()
}

#[test]
fn ca_init_reports_json() {
    let st = Station::new("");
    let ca = st.path("ca.pem");
    let out = st.factory_ok(&[
        "--output-format",
        "json",
        "ca",
        "init",
        "--out",
        ca.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON on stdout");
    assert_eq!(v["subject"], "O=Factory Test, CN=Factory Test Device CA");
    assert_eq!(v["subject"], v["issuer"]);
    let serial = v["cert_serial"].as_str().unwrap();
    let text = openssl(&["x509", "-in", ca.to_str().unwrap(), "-noout", "-serial"]);
    assert_eq!(text.trim(), format!("serial={serial}"));
}
