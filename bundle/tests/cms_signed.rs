//! SignedData builder: checked by `openssl cms -verify` and by rauc 1.8 (`rauc info`).

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime};

use bundle::cms::signed::{self, Content, SignerCerts};
use bundle::cms::{self, oid};
use bundle::keys::SignatureScheme;
use common::{Kind, Pki, build_bundle, rauc_conf, run, sign_with};

const SCHEMES: [(&str, SignatureScheme); 4] = [
    ("ec", SignatureScheme::EcdsaSha256),
    ("ec384", SignatureScheme::EcdsaSha256),
    ("rsa", SignatureScheme::RsaPkcs1Sha256),
    ("rsa", SignatureScheme::RsaPssSha256),
];

fn openssl_verify(pki: &Pki, cms_der: &[u8], detached: Option<&[u8]>) -> Vec<u8> {
    let dir = &pki.dir;
    std::fs::write(dir.join("sig.der"), cms_der).unwrap();
    let mut cmd = Command::new("openssl");
    cmd.current_dir(dir)
        .args([
            "cms", "-verify", "-inform", "DER", "-in", "sig.der", "-binary",
        ])
        .args(["-CAfile", "root.cert.pem", "-out", "content.out"]);
    if let Some(content) = detached {
        std::fs::write(dir.join("content.in"), content).unwrap();
        cmd.args(["-content", "content.in"]);
    }
    run(&mut cmd);
    std::fs::read(dir.join("content.out")).unwrap()
}

#[test]
fn inline_signatures_verify_with_openssl_for_every_scheme() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path());
    let manifest = b"[update]\ncompatible=x\n";
    for (name, scheme) in SCHEMES {
        let der = sign_with(&pki, name, scheme, Content::Inline(manifest));
        assert_eq!(
            openssl_verify(&pki, &der, None),
            manifest,
            "{name} {scheme:?}"
        );
        let info = cms::inspect(&der).unwrap();
        assert!(!info.detached);
        assert_eq!(info.signer_count, 1);
        assert_eq!(
            info.econtent.as_ref().map(|c| c.as_slice()),
            Some(&manifest[..])
        );
        assert_eq!(info.certificates.len(), 2, "signer + intermediate");
        let age = SystemTime::now()
            .duration_since(info.signing_time.unwrap())
            .unwrap_or_default();
        assert!(age < Duration::from_secs(600));
    }
}

#[test]
fn structure_matches_openssl_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path());
    let der = sign_with(
        &pki,
        "ec",
        SignatureScheme::EcdsaSha256,
        Content::Inline(b"m"),
    );
    let sd = cms::signed_data(&der).unwrap();
    assert_eq!(sd.version as u8, 1);
    assert_eq!(sd.encap_content_info.econtent_type, oid::DATA);
    let si = sd.signer_infos.0.get(0).unwrap();
    assert_eq!(si.version as u8, 1);
    assert!(matches!(
        si.sid,
        ::cms::signed_data::SignerIdentifier::IssuerAndSerialNumber(_)
    ));
    let attrs: Vec<_> = si
        .signed_attrs
        .as_ref()
        .unwrap()
        .iter()
        .map(|a| a.oid)
        .collect();
    assert_eq!(
        attrs,
        [oid::CONTENT_TYPE, oid::SIGNING_TIME, oid::MESSAGE_DIGEST]
    );
    assert!(si.unsigned_attrs.is_none());
    // the printed structure shows no SMIMECapabilities and a UTCTime signing time
    std::fs::write(tmp.path().join("s.der"), &der).unwrap();
    let printed = run(Command::new("openssl")
        .current_dir(tmp.path())
        .args(["cms", "-cmsout", "-print", "-inform", "DER", "-in", "s.der"]));
    assert!(!printed.contains("SMIMECapabilities"), "{printed}");
    assert!(printed.contains("UTCTIME"), "{printed}");
    // DER: OpenSSL re-encodes it to the same bytes
    let reencoded = openssl::cms::CmsContentInfo::from_der(&der)
        .unwrap()
        .to_der()
        .unwrap();
    assert_eq!(reencoded, der);
}

#[test]
fn detached_signature_verifies_with_openssl() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path());
    let payload = common::noise(10000, 3);
    let digest = signed::sha256_reader(&payload[..], payload.len() as u64).unwrap();
    let der = sign_with(
        &pki,
        "rsa",
        SignatureScheme::RsaPkcs1Sha256,
        Content::Detached { sha256: digest },
    );
    assert!(cms::inspect(&der).unwrap().detached);
    openssl_verify(&pki, &der, Some(&payload));
    // a changed payload fails
    let mut bad = payload.clone();
    bad[5] ^= 1;
    std::fs::write(tmp.path().join("content.in"), &bad).unwrap();
    let status = Command::new("openssl")
        .current_dir(tmp.path())
        .args([
            "cms", "-verify", "-inform", "DER", "-in", "sig.der", "-binary",
        ])
        .args([
            "-CAfile",
            "root.cert.pem",
            "-content",
            "content.in",
            "-out",
            "/dev/null",
        ])
        .output()
        .unwrap()
        .status;
    assert!(!status.success());
}

#[test]
fn certificate_key_mismatch_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path());
    let err = signed::sign(
        Content::Inline(b"m"),
        &pki.signer("rsa", SignatureScheme::RsaPkcs1Sha256),
        SignerCerts {
            certificate: &pki.cert_der("ec"),
            intermediates: &[],
        },
        SystemTime::now(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("key values mismatch"), "{err}");
}

fn rauc_info(pki: &Pki, bundle: &std::path::Path) -> String {
    let conf = rauc_conf(&pki.dir, "path=root.cert.pem");
    run(Command::new("rauc")
        .current_dir(&pki.dir)
        .arg(format!("--conf={}", conf.display()))
        .args(["info", "--keyring", "root.cert.pem"])
        .arg(bundle))
}

#[test]
fn rauc_accepts_verity_bundles_for_every_scheme() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path());
    for (i, (name, scheme)) in SCHEMES.into_iter().enumerate() {
        let dir = tmp.path().join(format!("b{i}"));
        std::fs::create_dir(&dir).unwrap();
        let (path, _) = build_bundle(&dir, Kind::Verity, |c| sign_with(&pki, name, scheme, c));
        let out = rauc_info(&pki, &path);
        assert!(out.contains("Compatible: \t'Test Device'"), "{out}");
        assert!(out.contains("Bundle Format: \tverity"), "{out}");
        assert!(out.contains(&format!("CN = Test signer {name}")), "{out}");
    }
}

#[test]
fn rauc_accepts_crypt_and_plain_bundles() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path());
    for kind in [Kind::Crypt, Kind::Plain] {
        let dir = tmp.path().join(if matches!(kind, Kind::Crypt) {
            "c"
        } else {
            "p"
        });
        std::fs::create_dir(&dir).unwrap();
        let (path, _) = build_bundle(&dir, kind, |c| {
            sign_with(&pki, "ec", SignatureScheme::EcdsaSha256, c)
        });
        let out = rauc_info(&pki, &path);
        assert!(out.contains("Compatible: \t'Test Device'"), "{out}");
    }
    // rauc extract checks the crypt payload (userspace verity + decryption) and unpacks it
    let conf = rauc_conf(&pki.dir, "path=root.cert.pem");
    let bundle = tmp.path().join("c/crypt.raucb");
    let out_dir = tmp.path().join("extracted");
    run(Command::new("rauc")
        .env("TMPDIR", tmp.path())
        .arg(format!("--conf={}", conf.display()))
        .args(["extract", "--keyring"])
        .arg(pki.path("root.cert.pem"))
        .arg(&bundle)
        .arg(&out_dir));
    assert_eq!(
        std::fs::read(out_dir.join("rootfs.img")).unwrap(),
        common::noise(24 * 1024, 42)
    );
}
