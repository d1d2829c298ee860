//! rauc 1.8 as the peer: a CRL from the station makes `rauc info` with `check-crl=true` reject
//! a revoked signer, and a recipient list from `factory recipients` feeds `rauc encrypt --to`
//! (a revoked device can no longer decrypt the next release).

mod common;

use std::path::Path;
use std::process::Command;

use common::{Station, openssl, run};
use factory::fleet::{issue_crl, write_crl_pem};
use factory::inventory::{DeviceOrigin, DeviceRecord};
use factory::types::{DeviceSerial, KeyId, RevocationReason, now};

const SIGN_EXT: &str = "[sign]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                        subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n";

/// A release signer issued by the station CA with the openssl CLI.
fn signer(st: &Station, name: &str) -> DeviceRecord {
    let p = |n: &str| st.path(n).to_str().unwrap().to_string();
    std::fs::write(st.path("sign.cnf"), SIGN_EXT).unwrap();
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &p(&format!("{name}.key")),
    ]);
    openssl(&[
        "req",
        "-new",
        "-key",
        &p(&format!("{name}.key")),
        "-subj",
        &format!("/O=Factory Test/CN={name}"),
        "-out",
        &p(&format!("{name}.csr")),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p(&format!("{name}.csr")),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "30",
        "-extfile",
        &p("sign.cnf"),
        "-extensions",
        "sign",
        "-outform",
        "DER",
        "-out",
        &p(&format!("{name}.der")),
    ]);
    openssl(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        &p(&format!("{name}.der")),
        "-out",
        &p(&format!("{name}.pem")),
    ]);
    let der = std::fs::read(st.path(&format!("{name}.der"))).unwrap();
    let origin = DeviceOrigin {
        group: Some("signers".into()),
        tags: vec![],
        token_uri: "pkcs11:token=release".into(),
        token_description: "release signer".into(),
        key_id: KeyId::random().unwrap(),
        key_label: name.into(),
        ek_cert_sha256: None,
    };
    DeviceRecord::new_active(DeviceSerial::new(name).unwrap(), der, origin, now()).unwrap()
}

/// A bundle content directory and a system.conf.
fn rauc_setup(st: &Station, format: &str, check_crl: bool) {
    let content = st.path(&format!("content-{format}"));
    std::fs::create_dir_all(&content).unwrap();
    std::fs::write(
        content.join("manifest.raucm"),
        format!("[update]\ncompatible=Factory Test\nversion=1.0\n\n[bundle]\nformat={format}\n\n[image.rootfs]\nfilename=rootfs.img\n"),
    )
    .unwrap();
    let mut image = vec![0u8; 65536];
    openssl::rand::rand_bytes(&mut image).unwrap();
    std::fs::write(content.join("rootfs.img"), image).unwrap();
    std::fs::create_dir_all(st.path("data")).unwrap();
    std::fs::write(
        st.path(&format!("system-{check_crl}.conf")),
        format!(
            "[system]\ncompatible=Factory Test\nbootloader=noop\nbundle-formats=plain verity crypt\ndata-directory={}\n\n\
             [keyring]\npath={}\ncheck-crl={check_crl}\n",
            st.path("data").display(),
            st.path("ca.pem").display()
        ),
    )
    .unwrap();
}

fn rauc(st: &Station, args: &[&str]) -> (bool, String) {
    run(Command::new("rauc")
        .current_dir(st.dir.path())
        .env("TMPDIR", st.dir.path())
        .args(args))
}

fn bundle(st: &Station, format: &str, signer: &str) -> String {
    let out = format!("{format}-{signer}.raucb");
    let (ok, text) = rauc(
        st,
        &[
            "bundle",
            &format!("--cert={signer}.pem"),
            &format!("--key={signer}.key"),
            "--keyring=ca.pem",
            &format!("content-{format}"),
            &out,
        ],
    );
    assert!(ok, "rauc bundle failed: {text}");
    out
}

fn keyring(st: &Station, name: &str, crl: Option<&Path>) -> String {
    let mut pem = std::fs::read(st.path("ca.pem")).unwrap();
    if let Some(crl) = crl {
        pem.extend(std::fs::read(crl).unwrap());
    }
    std::fs::write(st.path(name), pem).unwrap();
    format!("--keyring={name}")
}

#[test]
fn crl_makes_rauc_reject_a_revoked_signer() {
    let st = Station::new();
    let mut inv = st.inventory();
    let release = signer(&st, "release-1");
    st.record(&mut inv, std::slice::from_ref(&release));
    rauc_setup(&st, "verity", true);
    let bundle = bundle(&st, "verity", "release-1");
    let conf = format!("--conf={}", st.path("system-true.conf").display());
    let ca = st.ca();
    // check-crl without any CRL: rauc refuses, so the CRL below is really consulted.
    let (ok, text) = rauc(
        &st,
        &["info", &conf, &keyring(&st, "k0.pem", None), &bundle],
    );
    assert!(
        !ok && text.contains("unable to get certificate CRL"),
        "{text}"
    );
    // A current CRL without the signer: accepted.
    let crl1 = issue_crl(&mut inv, &ca, now(), 30).unwrap();
    write_crl_pem(&crl1, &st.path("crl1.pem")).unwrap();
    let (ok, text) = rauc(
        &st,
        &[
            "info",
            &conf,
            &keyring(&st, "k1.pem", Some(&st.path("crl1.pem"))),
            &bundle,
        ],
    );
    assert!(ok, "rauc info with the first CRL: {text}");
    assert!(
        text.contains("Compatible:") && text.contains("Factory Test"),
        "{text}"
    );
    // Revoke the signer: the next CRL makes rauc reject the same bundle.
    inv.revoke(&release.serial, RevocationReason::KeyCompromise, now())
        .unwrap();
    let crl2 = issue_crl(&mut inv, &ca, now(), 30).unwrap();
    assert_eq!((crl2.number, crl2.entries), (2, 1));
    write_crl_pem(&crl2, &st.path("crl2.pem")).unwrap();
    let (ok, text) = rauc(
        &st,
        &[
            "info",
            &conf,
            &keyring(&st, "k2.pem", Some(&st.path("crl2.pem"))),
            &bundle,
        ],
    );
    assert!(!ok, "rauc accepted a bundle of a revoked signer: {text}");
    assert!(text.contains("certificate revoked"), "{text}");
}

#[test]
fn rauc_encrypts_to_the_recipient_list_and_a_revoked_device_is_left_out() {
    let st = Station::new();
    let mut inv = st.inventory();
    let release = signer(&st, "release-2");
    let (ec_key, ec_dev) = st.device("dev-ec", "default", Some("line"), now());
    let (rsa_key, rsa_dev) = st.device("dev-rsa", "rsa", Some("line"), now());
    st.record(&mut inv, &[release, ec_dev.clone(), rsa_dev.clone()]);
    std::fs::write(st.path("dev-ec.key"), ec_key.pem()).unwrap();
    std::fs::write(st.path("dev-rsa.key"), rsa_key.pem()).unwrap();
    rauc_setup(&st, "crypt", false);
    let plain = bundle(&st, "crypt", "release-2");
    let conf = format!("--conf={}", st.path("system-false.conf").display());
    let encrypt = |out: &str| {
        let recipients = st.path("recipients.pem");
        let listed = String::from_utf8(
            st.factory(&[
                "recipients",
                "--group",
                "line",
                "--out",
                recipients.to_str().unwrap(),
            ])
            .stdout,
        )
        .unwrap();
        let (ok, text) = rauc(
            &st,
            &[
                "encrypt",
                &conf,
                "--keyring=ca.pem",
                "--to=recipients.pem",
                &plain,
                out,
            ],
        );
        assert!(ok, "rauc encrypt: {text}");
        (listed, text)
    };
    let decrypts = |bundle: &str, key: &str| {
        rauc(
            &st,
            &[
                "info",
                &conf,
                "--keyring=ca.pem",
                &format!("--key={key}"),
                bundle,
            ],
        )
        .0
    };
    let (listed, text) = encrypt("enc1.raucb");
    assert!(listed.starts_with("2 recipients"), "{listed}");
    assert!(text.contains("Encrypted for 2 recipients"), "{text}");
    assert!(decrypts("enc1.raucb", "dev-ec.key"), "EC device decrypts");
    assert!(decrypts("enc1.raucb", "dev-rsa.key"), "RSA device decrypts");
    inv.revoke(&rsa_dev.serial, RevocationReason::KeyCompromise, now())
        .unwrap();
    let (listed, text) = encrypt("enc2.raucb");
    assert!(listed.starts_with("1 recipients"), "{listed}");
    assert!(text.contains("Encrypted for 1 recipient"), "{text}");
    assert!(decrypts("enc2.raucb", "dev-ec.key"));
    assert!(
        !decrypts("enc2.raucb", "dev-rsa.key"),
        "the revoked device is no recipient"
    );
}
