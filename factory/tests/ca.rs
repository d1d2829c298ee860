//! CA issuing with a CA key behind `ContentSigner` (an OpenSSL file key here), checked with the
//! `openssl` CLI: CA certificates, device certificates from CSRs and SPKIs for every key type,
//! CSRs for an external root, imported CA certificates, CRLs.

mod common;

use bundle::keys::SignatureScheme;
use common::{FileKey, Station, openssl, write_pem};
use factory::ca::{CertificateAuthority, ca_certificate_request, check_ca_certificate};
use factory::csr::{build_csr, verify_csr};
use factory::fleet::{issue_crl, write_crl_pem};
use factory::types::{DeviceSerial, KeyType, RevocationReason, now};

#[test]
fn self_signed_ca_is_a_ca_for_openssl() {
    for key_type in [KeyType::EcP256, KeyType::Rsa3072] {
        let st = Station::with_ca_key(FileKey::generate(key_type));
        let ca = st.path("ca.pem");
        let text = openssl(&["x509", "-in", ca.to_str().unwrap(), "-noout", "-text"]);
        assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
        assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
        assert!(text.contains("X509v3 Subject Key Identifier"), "{text}");
        assert!(
            text.contains("Subject: O = Factory Test, CN = Test Device CA"),
            "{text}"
        );
        let ok = openssl(&[
            "verify",
            "-CAfile",
            ca.to_str().unwrap(),
            ca.to_str().unwrap(),
        ]);
        assert!(ok.contains(": OK"), "{ok}");
    }
}

#[test]
fn device_certificates_for_every_key_type_verify_with_openssl() {
    let st = Station::new();
    let ca = st.ca();
    for (profile, usage) in [
        ("default", "Key Agreement"),
        ("p384", "Key Agreement"),
        ("rsa", "Key Encipherment"),
    ] {
        let profile = st.config.profile(Some(profile)).unwrap();
        let key = FileKey::generate(profile.key_type);
        let serial = DeviceSerial::new(&format!("dev-{}", profile.name)).unwrap();
        // The CSR is signed by the device key (inside the token in production).
        let csr = build_csr(&profile.subject.render(&serial), &key.spki(), &key).unwrap();
        let csr_path = st.path(&format!("{serial}.csr"));
        write_pem(&csr_path, "CERTIFICATE REQUEST", &csr);
        openssl(&[
            "req",
            "-in",
            csr_path.to_str().unwrap(),
            "-noout",
            "-verify",
        ]);
        let t = now();
        let issued = ca.issue_for_csr(&serial, profile, &csr, t).unwrap();
        assert_eq!(issued.key_type, profile.key_type);
        let cert_path = st.path(&format!("{serial}.pem"));
        write_pem(&cert_path, "CERTIFICATE", &issued.der);
        let ok = openssl(&[
            "verify",
            "-CAfile",
            st.path("ca.pem").to_str().unwrap(),
            cert_path.to_str().unwrap(),
        ]);
        assert!(ok.contains(": OK"), "{ok}");
        let text = openssl(&[
            "x509",
            "-in",
            cert_path.to_str().unwrap(),
            "-noout",
            "-text",
        ]);
        assert!(text.contains(&format!("CN = {serial}")), "{text}");
        assert!(text.contains(usage), "{profile:?}: {text}");
        assert!(!text.contains("Digital Signature"), "{text}");
        assert!(text.contains("CA:FALSE"), "{text}");
        assert!(text.contains("X509v3 Subject Key Identifier"), "{text}");
        assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
        assert_eq!(issued.facts.issuer, ca.facts().subject);
        assert_eq!(issued.facts.aki, ca.facts().ski);
        assert_eq!(
            issued.facts.not_after - t,
            3650 * 86_400,
            "validity per profile"
        );
        // The same key through the SPKI path gives a certificate for the same key.
        let by_key = ca
            .issue_for_key(&serial, profile, &key.spki(), now())
            .unwrap();
        assert_eq!(by_key.facts.spki_der, key.spki());
        assert_ne!(
            by_key.facts.serial_hex, issued.facts.serial_hex,
            "fresh serial per certificate"
        );
    }
}

#[test]
fn device_certificate_is_a_cms_recipient() {
    let st = Station::new();
    let (key, device) = st.device("dev-cms", "default", None, now());
    let cert = st.path("dev.pem");
    write_pem(&cert, "CERTIFICATE", &device.certificate);
    std::fs::write(st.path("dev.key"), key.pem()).unwrap();
    std::fs::write(st.path("msg"), b"secret update").unwrap();
    let p = |n: &str| st.path(n).to_str().unwrap().to_string();
    openssl(&[
        "cms",
        "-encrypt",
        "-binary",
        "-aes-256-cbc",
        "-in",
        &p("msg"),
        "-out",
        &p("msg.cms"),
        "-outform",
        "DER",
        &p("dev.pem"),
    ]);
    openssl(&[
        "cms",
        "-decrypt",
        "-binary",
        "-inform",
        "DER",
        "-in",
        &p("msg.cms"),
        "-inkey",
        &p("dev.key"),
        "-recip",
        &p("dev.pem"),
        "-out",
        &p("msg.out"),
    ]);
    assert_eq!(std::fs::read(st.path("msg.out")).unwrap(), b"secret update");
}

#[test]
fn rsa_pss_signed_csr_verifies() {
    let mut key = FileKey::generate(KeyType::Rsa3072);
    key.scheme = SignatureScheme::RsaPssSha256;
    let st = Station::new();
    let serial = DeviceSerial::new("pss-1").unwrap();
    let profile = st.config.profile(Some("rsa")).unwrap();
    let csr = build_csr(&profile.subject.render(&serial), &key.spki(), &key).unwrap();
    write_pem(&st.path("pss.csr"), "CERTIFICATE REQUEST", &csr);
    let text = openssl(&[
        "req",
        "-in",
        st.path("pss.csr").to_str().unwrap(),
        "-noout",
        "-verify",
        "-text",
    ]);
    assert!(text.contains("rsassaPss"), "{text}");
}

#[test]
fn wrong_inputs_are_refused() {
    let st = Station::new();
    let ca = st.ca();
    let serial = DeviceSerial::new("dev-x").unwrap();
    // Profile wants P-256, the key is P-384.
    let p384 = FileKey::generate(KeyType::EcP384);
    let err = ca
        .issue_for_key(
            &serial,
            st.config.profile(None).unwrap(),
            &p384.spki(),
            now(),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("its key is ec-p384 but profile 'default' issues ec-p256"),
        "{err}"
    );
    // A CSR signed by another key fails proof of possession.
    let a = FileKey::generate(KeyType::EcP256);
    let b = FileKey::generate(KeyType::EcP256);
    let subject = st.config.profile(None).unwrap().subject.render(&serial);
    assert!(build_csr(&subject, &a.spki(), &b).is_err());
    // A CA key that does not belong to the CA certificate is caught at the first signature.
    let wrong = CertificateAuthority::new(
        st.ca_cert.clone(),
        FileKey::generate(KeyType::EcP256).boxed(),
    )
    .unwrap();
    let err = wrong
        .issue_for_key(&serial, st.config.profile(None).unwrap(), &a.spki(), now())
        .unwrap_err();
    assert!(err.to_string().contains("do not belong together"), "{err}");
    // A P-384 CA key is refused (rcgen pairs SHA-256 only with P-256/RSA).
    let err =
        factory::ca::self_signed_ca_certificate(p384.boxed(), &p384.spki(), &st.config.ca, now())
            .unwrap_err();
    assert!(
        err.to_string().contains("cannot be a station CA key"),
        "{err}"
    );
    // A garbage CSR.
    assert!(verify_csr(b"not a csr").is_err());
}

#[test]
fn external_root_signs_the_ca_csr_and_import_checks_it() {
    let st = Station::new();
    let p = |n: &str| st.path(n).to_str().unwrap().to_string();
    let ca_key = FileKey::generate(KeyType::EcP256);
    let csr = ca_certificate_request(&ca_key, &ca_key.spki(), &st.config.ca).unwrap();
    write_pem(&st.path("sub.csr"), "CERTIFICATE REQUEST", &csr);
    openssl(&["req", "-in", &p("sub.csr"), "-noout", "-verify"]);
    // An external root (openssl) signs it as an intermediate CA.
    std::fs::write(
        st.path("ext.cnf"),
        "[v3_sub]\nbasicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n[leaf]\nbasicConstraints=critical,CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &p("root.key"),
        "-subj",
        "/CN=External Root",
        "-days",
        "30",
        "-out",
        &p("root.pem"),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p("sub.csr"),
        "-CA",
        &p("root.pem"),
        "-CAkey",
        &p("root.key"),
        "-CAcreateserial",
        "-days",
        "30",
        "-extfile",
        &p("ext.cnf"),
        "-extensions",
        "v3_sub",
        "-outform",
        "DER",
        "-out",
        &p("sub.der"),
    ]);
    let der = std::fs::read(st.path("sub.der")).unwrap();
    let facts = check_ca_certificate(&der, &ca_key.spki(), now()).unwrap();
    assert_eq!(facts.issuer, "CN=External Root");
    // The imported CA issues device certificates that chain to the external root.
    let ca = CertificateAuthority::new(der.clone(), ca_key.boxed()).unwrap();
    let (key, _) = st.device("dev-ext", "default", None, now());
    let serial = DeviceSerial::new("dev-ext").unwrap();
    let cert = ca
        .issue_for_key(
            &serial,
            st.config.profile(None).unwrap(),
            &key.spki(),
            now(),
        )
        .unwrap();
    write_pem(&st.path("sub.pem"), "CERTIFICATE", &der);
    write_pem(&st.path("leaf.pem"), "CERTIFICATE", &cert.der);
    let ok = openssl(&[
        "verify",
        "-CAfile",
        &p("root.pem"),
        "-untrusted",
        &p("sub.pem"),
        &p("leaf.pem"),
    ]);
    assert!(ok.contains(": OK"), "{ok}");
    // Refused: a certificate for another key, and a non-CA certificate.
    assert!(check_ca_certificate(&der, &FileKey::generate(KeyType::EcP256).spki(), now()).is_err());
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p("sub.csr"),
        "-CA",
        &p("root.pem"),
        "-CAkey",
        &p("root.key"),
        "-CAcreateserial",
        "-days",
        "30",
        "-extfile",
        &p("ext.cnf"),
        "-extensions",
        "leaf",
        "-outform",
        "DER",
        "-out",
        &p("leaf-ca.der"),
    ]);
    let not_ca = std::fs::read(st.path("leaf-ca.der")).unwrap();
    let err = check_ca_certificate(&not_ca, &ca_key.spki(), now()).unwrap_err();
    assert!(err.to_string().contains("not a CA certificate"), "{err}");
}

#[test]
fn crl_lists_revoked_devices_and_openssl_verifies_it() {
    let st = Station::new();
    let mut inv = st.inventory();
    let devices: Vec<_> = (1..=3)
        .map(|i| st.device(&format!("dev-{i}"), "default", None, now()).1)
        .collect();
    st.record(&mut inv, &devices);
    let ca = st.ca();
    let first = issue_crl(&mut inv, &ca, now(), 30).unwrap();
    assert_eq!((first.number, first.entries), (1, 0));
    inv.revoke(&devices[0].serial, RevocationReason::KeyCompromise, now())
        .unwrap();
    inv.revoke(&devices[2].serial, RevocationReason::Superseded, now())
        .unwrap();
    inv.retire(&devices[2].serial, now()).unwrap(); // retired after revocation: stays on the CRL
    inv.retire(&devices[1].serial, now()).unwrap(); // retired only: not on the CRL
    let crl = issue_crl(&mut inv, &ca, now(), 7).unwrap();
    assert_eq!((crl.number, crl.entries), (2, 2));
    assert_eq!(crl.next_update - crl.this_update, 7 * 86_400);
    let path = st.path("crl.pem");
    write_crl_pem(&crl, &path).unwrap();
    let text = openssl(&[
        "crl",
        "-in",
        path.to_str().unwrap(),
        "-CAfile",
        st.path("ca.pem").to_str().unwrap(),
        "-verify",
        "-noout",
        "-text",
    ]);
    assert!(text.contains("verify OK"), "{text}");
    assert!(
        text.contains(&format!("Serial Number: {}", devices[0].cert_serial)),
        "{text}"
    );
    assert!(
        text.contains(&format!("Serial Number: {}", devices[2].cert_serial)),
        "{text}"
    );
    assert!(!text.contains(&devices[1].cert_serial), "{text}");
    assert!(
        text.contains("Key Compromise") && text.contains("Superseded"),
        "{text}"
    );
    let number = text
        .split("X509v3 CRL Number:")
        .nth(1)
        .and_then(|t| t.split_whitespace().next());
    assert_eq!(number, Some("2"), "{text}");
    let audit = inv.audit_log(None).unwrap();
    assert_eq!(audit.iter().filter(|e| e.action == "crl").count(), 2);
    assert_eq!(inv.crl_number().unwrap(), 2);
}
