//! SignedData verification with RAUC's keyring semantics, against a PKI made by the openssl CLI.

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime};

use bundle::cms::signed::{self, Content, SignerCerts};
use bundle::cms::verify::{Keyring, verify};
use bundle::keys::SignatureScheme;
use common::{Pki, run, sign_with};

const MANIFEST: &[u8] = b"[update]\ncompatible=x\n";

fn setup() -> (tempfile::TempDir, Pki) {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path());
    (tmp, pki)
}

fn ec_cms(pki: &Pki, name: &str) -> Vec<u8> {
    sign_with(
        pki,
        name,
        SignatureScheme::EcdsaSha256,
        Content::Inline(MANIFEST),
    )
}

fn err_text(cms: &[u8], keyring: &Keyring) -> String {
    verify(cms, None, keyring).unwrap_err().to_string()
}

#[test]
fn valid_signature_returns_content_chain_and_time() {
    let (_t, pki) = setup();
    let v = verify(
        &ec_cms(&pki, "ec"),
        None,
        &Keyring::from_file(pki.path("root.cert.pem")),
    )
    .unwrap();
    assert_eq!(v.content.as_slice(), MANIFEST);
    let subjects: Vec<String> = v
        .chain
        .iter()
        .map(|c| {
            let cn = c.subject_name().entries().last().unwrap().data().to_owned();
            format!("{:?}", String::from_utf8_lossy(cn.as_slice()))
        })
        .collect();
    assert_eq!(
        subjects,
        [
            "\"Test signer ec\"",
            "\"Test inter CA\"",
            "\"Test root CA\""
        ]
    );
    assert_eq!(v.spki_hashes().unwrap().len(), 3);
    assert!(v.signing_time.unwrap() > SystemTime::now() - Duration::from_secs(600));
    assert!(v.warnings.is_empty());
}

#[test]
fn revoked_signer_with_crl_check() {
    let (_t, pki) = setup();
    let cms = ec_cms(&pki, "revoked");
    let keyring_file = pki.bundle_files(
        "kr.pem",
        &["root.cert.pem", "root.crl.pem", "inter.crl.pem"],
    );
    let mut kr = Keyring::from_file(&keyring_file);
    kr.check_crl = true;
    let err = err_text(&cms, &kr);
    assert!(err.starts_with("signature verification failed: "), "{err}");
    assert!(err.contains("certificate revoked"), "{err}");
    // a good signer passes with CRL checking
    verify(&ec_cms(&pki, "ec"), None, &kr).unwrap();
    // without check-crl: accepted, with RAUC's warning
    kr.check_crl = false;
    let v = verify(&cms, None, &kr).unwrap();
    assert_eq!(v.warnings, ["Detected CRL but CRL checking is disabled!"]);
    // check-crl without the root's CRL
    let partial = pki.bundle_files("kr2.pem", &["root.cert.pem", "inter.crl.pem"]);
    let mut kr = Keyring::from_file(partial);
    kr.check_crl = true;
    assert!(err_text(&ec_cms(&pki, "ec"), &kr).contains("unable to get certificate CRL"));
}

#[test]
fn expired_signer_and_time_options() {
    let (_t, pki) = setup();
    let inter = vec![pki.cert_der("inter")];
    let sign_at = |time| {
        signed::sign(
            Content::Inline(MANIFEST),
            &pki.signer("expired", SignatureScheme::EcdsaSha256),
            SignerCerts {
                certificate: &pki.cert_der("expired"),
                intermediates: &inter,
            },
            time,
        )
        .unwrap()
    };
    let now_cms = sign_at(SystemTime::now());
    // 2020-06-01, inside the certificate's validity
    let then_cms = sign_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_590_969_600));
    let mut kr = Keyring::from_file(pki.path("root.cert.pem"));
    assert!(err_text(&now_cms, &kr).contains("certificate has expired"));
    kr.no_check_time = true;
    verify(&now_cms, None, &kr).unwrap();
    kr.no_check_time = false;
    kr.use_bundle_signing_time = true;
    let v = verify(&then_cms, None, &kr).unwrap();
    assert_eq!(
        v.signing_time,
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_590_969_600))
    );
    assert!(err_text(&now_cms, &kr).contains("certificate has expired"));
}

#[test]
fn code_signing_purpose() {
    let (_t, pki) = setup();
    let cms = ec_cms(&pki, "codesign");
    let mut kr = Keyring::from_file(pki.path("root.cert.pem"));
    // OpenSSL's default smimesign rejects an EKU of only codeSigning
    assert!(err_text(&cms, &kr).contains("unsuitable certificate purpose"));
    kr.check_purpose = Some("codesign".into());
    verify(&cms, None, &kr).unwrap();
    kr.check_purpose = Some("codesign-rauc".into());
    verify(&cms, None, &kr).unwrap();
    // RAUC's rule needs EKU codeSigning on the leaf
    assert!(err_text(&ec_cms(&pki, "ec"), &kr).contains("unsuitable certificate purpose"));
    // OpenSSL purpose names work too
    kr.check_purpose = Some("smimesign".into());
    verify(&ec_cms(&pki, "ec"), None, &kr).unwrap();
    kr.check_purpose = Some("any".into());
    verify(&cms, None, &kr).unwrap();
    kr.check_purpose = Some("bogus".into());
    assert!(err_text(&cms, &kr).contains("failed to configure X509 purpose 'bogus'"));
}

#[test]
fn wrong_keyring_and_missing_keyring() {
    let (_t, pki) = setup();
    let cms = ec_cms(&pki, "ec");
    let err = err_text(&cms, &Keyring::from_file(pki.path("other.cert.pem")));
    assert!(
        err.contains("unable to get local issuer certificate"),
        "{err}"
    );
    assert_eq!(
        err_text(&cms, &Keyring::default()),
        "No keyring file or directory provided"
    );
    let err = err_text(&cms, &Keyring::from_file(pki.path("does-not-exist.pem")));
    assert!(err.contains("failed to load CA file"), "{err}");
}

#[test]
fn partial_chain() {
    let (_t, pki) = setup();
    let cms = ec_cms(&pki, "ec");
    let mut kr = Keyring::from_file(pki.path("inter.cert.pem"));
    assert!(err_text(&cms, &kr).starts_with("signature verification failed"));
    kr.allow_partial_chain = true;
    let v = verify(&cms, None, &kr).unwrap();
    assert_eq!(v.chain.len(), 2);
}

#[test]
fn hashed_directory_keyring() {
    let (_t, pki) = setup();
    let dir = pki.path("hashed");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(pki.path("root.cert.pem"), dir.join("root.pem")).unwrap();
    run(Command::new("openssl").arg("rehash").arg(&dir));
    let kr = Keyring {
        directory: Some(dir),
        ..Keyring::default()
    };
    let v = verify(&ec_cms(&pki, "ec"), None, &kr).unwrap();
    assert_eq!(v.chain.len(), 3);
}

#[test]
fn two_signers_are_refused() {
    let (_t, pki) = setup();
    std::fs::write(pki.path("m.txt"), MANIFEST).unwrap();
    run(Command::new("openssl").current_dir(&pki.dir).args([
        "cms",
        "-sign",
        "-binary",
        "-nosmimecap",
        "-nodetach",
        "-outform",
        "DER",
        "-in",
        "m.txt",
        "-signer",
        "ec.cert.pem",
        "-inkey",
        "ec.key.pem",
        "-signer",
        "rsa.cert.pem",
        "-inkey",
        "rsa.key.pem",
        "-certfile",
        "inter.cert.pem",
        "-out",
        "two.der",
    ]));
    let cms = std::fs::read(pki.path("two.der")).unwrap();
    assert_eq!(
        err_text(&cms, &Keyring::from_file(pki.path("root.cert.pem"))),
        "Unsupported number of signers: 2"
    );
}

#[test]
fn ber_from_openssl_stream_is_accepted() {
    let (_t, pki) = setup();
    std::fs::write(pki.path("m.txt"), MANIFEST).unwrap();
    run(Command::new("openssl").current_dir(&pki.dir).args([
        "cms",
        "-sign",
        "-binary",
        "-nosmimecap",
        "-nodetach",
        "-stream",
        "-outform",
        "DER",
        "-in",
        "m.txt",
        "-signer",
        "ec.cert.pem",
        "-inkey",
        "ec.key.pem",
        "-certfile",
        "inter.cert.pem",
        "-out",
        "ber.der",
    ]));
    let cms = std::fs::read(pki.path("ber.der")).unwrap();
    let v = verify(&cms, None, &Keyring::from_file(pki.path("root.cert.pem"))).unwrap();
    assert_eq!(v.content.as_slice(), MANIFEST);
}

#[test]
fn tampering_is_detected() {
    let (_t, pki) = setup();
    let kr = Keyring::from_file(pki.path("root.cert.pem"));
    // inline: change one byte of the embedded manifest
    let mut cms = ec_cms(&pki, "ec");
    let at = cms
        .windows(MANIFEST.len())
        .position(|w| w == MANIFEST)
        .unwrap();
    cms[at + 3] ^= 0x20;
    assert!(err_text(&cms, &kr).starts_with("signature verification failed: "));
    // detached: a changed payload
    let payload = common::noise(8192, 1);
    let digest = signed::sha256_reader(&payload[..], 8192).unwrap();
    let cms = sign_with(
        &pki,
        "ec",
        SignatureScheme::EcdsaSha256,
        Content::Detached { sha256: digest },
    );
    verify(&cms, Some(&payload), &kr).unwrap();
    let mut bad = payload.clone();
    bad[100] ^= 1;
    let err = verify(&cms, Some(&bad), &kr).unwrap_err().to_string();
    assert!(err.starts_with("signature verification failed: "), "{err}");
    assert!(verify(&cms, None, &kr).is_err());
}
