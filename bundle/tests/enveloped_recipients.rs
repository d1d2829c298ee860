//! Recipient input: what `--to` accepts and every refusal.

mod enveloped_common;

use std::time::SystemTime;

use bundle::Error;
use bundle::cms::enveloped::{
    EncryptOptions, Recipient, encrypt, load_recipients, parse_recipients_pem,
};
use enveloped_common::{Alg, CertOpts, Pki, fake_signed_data, gen_key, pem_of};

fn parse(pem: &[u8]) -> bundle::Result<Vec<Recipient>> {
    parse_recipients_pem(
        pem,
        std::path::Path::new("recipients.pem"),
        SystemTime::now(),
    )
}

#[test]
fn several_certificates_per_file_and_several_files() {
    let pki = Pki::new();
    let certs: Vec<_> = [Alg::P256, Alg::Rsa(2048), Alg::P384]
        .iter()
        .map(|a| pki.issue(&gen_key(*a), "dev", CertOpts::default()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.pem");
    let b = dir.path().join("b.pem");
    // Text around the blocks (as `openssl x509 -text` writes it) is ignored.
    let mut text = b"Certificate:\n    Data: ...\n".to_vec();
    text.extend(pem_of(&[&certs[0], &certs[1]]));
    std::fs::write(&a, text).unwrap();
    std::fs::write(&b, pem_of(&[&certs[2]])).unwrap();
    let rs = load_recipients(&[&a, &b], SystemTime::now()).unwrap();
    assert_eq!(rs.len(), 3);
    assert!(rs[0].origin().contains("a.pem") && rs[0].origin().contains("certificate 1"));
    assert_eq!(rs[2].origin(), format!("'{}'", b.display()));
    assert_eq!(rs[1].subject(), "O = Test, CN = dev");
}

#[test]
fn a_file_without_certificate_is_refused() {
    let e = parse(b"").unwrap_err();
    assert!(matches!(e, Error::NoRecipientCertificate { .. }), "{e}");
    assert!(e.to_string().contains("Expecting: CERTIFICATE"));
}

#[test]
fn a_private_key_is_refused() {
    let key = gen_key(Alg::P256);
    let pem = key.private_key_to_pem_pkcs8().unwrap();
    let e = parse(&pem).unwrap_err();
    assert!(matches!(e, Error::PrivateKeyAsRecipient { .. }), "{e}");
    // Also when it follows a certificate (rauc 1.8 silently stops there).
    let pki = Pki::new();
    let mut mixed = pki
        .issue(&gen_key(Alg::P256), "d", CertOpts::default())
        .to_pem()
        .unwrap();
    mixed.extend(
        gen_key(Alg::Rsa(2048))
            .rsa()
            .unwrap()
            .private_key_to_pem()
            .unwrap(),
    );
    assert!(matches!(
        parse(&mixed),
        Err(Error::PrivateKeyAsRecipient { .. })
    ));
}

#[test]
fn expired_and_not_yet_valid_certificates_are_refused() {
    let pki = Pki::new();
    let expired = pki.issue(
        &gen_key(Alg::P256),
        "old",
        CertOpts {
            not_before_days: -30,
            not_after_days: -1,
            ..CertOpts::default()
        },
    );
    let e = parse(&expired.to_pem().unwrap()).unwrap_err();
    assert!(matches!(e, Error::RecipientExpired { .. }), "{e}");
    let future = pki.issue(
        &gen_key(Alg::P256),
        "new",
        CertOpts {
            not_before_days: 2,
            not_after_days: 30,
            ..CertOpts::default()
        },
    );
    let e = parse(&future.to_pem().unwrap()).unwrap_err();
    assert!(matches!(e, Error::RecipientNotYetValid { .. }), "{e}");
}

#[test]
fn duplicates_are_refused() {
    let pki = Pki::new();
    let cert = pki.issue(&gen_key(Alg::P256), "twice", CertOpts::default());
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.pem");
    std::fs::write(&a, pem_of(&[&cert])).unwrap();
    let e = load_recipients(&[&a, &a], SystemTime::now()).unwrap_err();
    assert!(matches!(e, Error::DuplicateRecipient { .. }), "{e}");
    assert!(e.to_string().contains("the same certificate"));

    // Two certificates for one key: distinct issuer+serial, but the same SKI.
    let key = gen_key(Alg::P256);
    let c1 =
        Recipient::from_der(&pki.issue(&key, "k", CertOpts::default()).to_der().unwrap()).unwrap();
    let c2 =
        Recipient::from_der(&pki.issue(&key, "k", CertOpts::default()).to_der().unwrap()).unwrap();
    let content = fake_signed_data(300);
    encrypt(
        &content,
        &[c1.clone(), c2.clone()],
        &EncryptOptions::default(),
    )
    .unwrap();
    let e = encrypt(&content, &[c1, c2], &EncryptOptions::compact_ski()).unwrap_err();
    assert!(matches!(e, Error::DuplicateRecipient { .. }), "{e}");
}

#[test]
fn unsupported_keys_are_refused() {
    let pki = Pki::new();
    for alg in [Alg::P521, Alg::Rsa(1024), Alg::Ed25519] {
        let cert = pki.issue(&gen_key(alg), "odd", CertOpts::default());
        let e = parse(&cert.to_pem().unwrap()).unwrap_err();
        assert!(
            matches!(e, Error::UnsupportedRecipientKey { .. }),
            "{alg:?}: {e}"
        );
    }
}

#[test]
fn ski_ids_need_a_subject_key_identifier() {
    let pki = Pki::new();
    let cert = pki.issue(
        &gen_key(Alg::P256),
        "no-ski",
        CertOpts {
            ski: false,
            ..CertOpts::default()
        },
    );
    let r = Recipient::from_der(&cert.to_der().unwrap()).unwrap();
    let content = fake_signed_data(300);
    encrypt(
        &content,
        std::slice::from_ref(&r),
        &EncryptOptions::default(),
    )
    .unwrap();
    let e = encrypt(&content, &[r], &EncryptOptions::compact_ski()).unwrap_err();
    assert!(matches!(e, Error::RecipientWithoutSki { .. }), "{e}");
}

#[test]
fn no_recipients_no_envelope() {
    let e = encrypt(&fake_signed_data(300), &[], &EncryptOptions::default()).unwrap_err();
    assert!(matches!(e, Error::NoRecipients), "{e}");
}
