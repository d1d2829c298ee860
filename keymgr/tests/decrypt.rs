//! Token decryptors: ECDH through the token equals openssl's software ECDH with the same peer;
//! RSA PKCS#1 v1.5 and OAEP decryption of values encrypted by the openssl CLI.

mod common;

use bundle::keys::{EcCurve, KeyKind, RsaPadding};
use common::{Fixture, genpkey_p256, openssl, write_public_pem};
use keymgr::{KeyType, OpenOptions, open_decryptor, open_decryptor_with};
use openssl::bn::BigNumContext;
use openssl::ec::PointConversionForm;
use openssl::pkey::PKey;

/// The uncompressed point of an EC public key file.
fn point_of(pem_path: &std::path::Path) -> Vec<u8> {
    let key = PKey::public_key_from_pem(&std::fs::read(pem_path).unwrap()).unwrap();
    let ec = key.ec_key().unwrap();
    let mut ctx = BigNumContext::new().unwrap();
    ec.public_key()
        .to_bytes(ec.group(), PointConversionForm::UNCOMPRESSED, &mut ctx)
        .unwrap()
}

/// ECDH of the token key `label` with a fresh openssl peer on `curve_name` equals openssl's
/// `pkeyutl -derive` of the peer's private key with the token's public key.
fn ecdh_matches_openssl(fx: &Fixture, label: &str, curve_name: &str, curve: EcCurve) {
    let d = fx.dir();
    let dec = open_decryptor(&fx.key_uri(label)).unwrap();
    assert_eq!(dec.kind(), KeyKind::Ec(curve));
    write_public_pem(d, "token-pub.pem", &dec.public_key_der().unwrap());
    let curve_opt = format!("ec_paramgen_curve:{curve_name}");
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            &curve_opt,
            "-out",
            "peer.pem",
        ],
    );
    openssl(
        d,
        &["pkey", "-in", "peer.pem", "-pubout", "-out", "peer-pub.pem"],
    );
    let software = openssl(
        d,
        &[
            "pkeyutl",
            "-derive",
            "-inkey",
            "peer.pem",
            "-peerkey",
            "token-pub.pem",
        ],
    );
    let z = dec.ecdh(&point_of(&d.join("peer-pub.pem"))).unwrap();
    assert_eq!(z.len(), curve.field_bytes());
    assert_eq!(z.as_slice(), software.as_slice());
}

#[test]
fn ecdh_p256_and_p384_equal_openssl() {
    let fx = Fixture::new("ecdh");
    let ts = fx.session();
    ts.generate_key_pair(KeyType::Ec(EcCurve::P256), "ec256", Some(&[1]))
        .unwrap();
    ts.generate_key_pair(KeyType::Ec(EcCurve::P384), "ec384", Some(&[2]))
        .unwrap();
    ecdh_matches_openssl(&fx, "ec256", "P-256", EcCurve::P256);
    ecdh_matches_openssl(&fx, "ec384", "P-384", EcCurve::P384);
    // The temporary derived secrets are gone.
    let objects = fx.token.list_objects().unwrap();
    assert!(!objects.contains("Secret Key Object"), "{objects}");
}

#[test]
fn imported_ec_key_derives_and_matches_its_pem() {
    let fx = Fixture::new("ecdh-import");
    let d = fx.dir();
    genpkey_p256(d, "recip.pem");
    let pem = std::fs::read(d.join("recip.pem")).unwrap();
    let uri = fx
        .session()
        .import_private_key(&pem, "recip.pem", "recip", &[5])
        .unwrap();
    assert!(
        uri.to_string()
            .ends_with("id=%05;object=recip;type=private")
    );
    let token = open_decryptor(&fx.key_uri("recip")).unwrap();
    let file = open_decryptor(d.join("recip.pem").to_str().unwrap()).unwrap();
    assert_eq!(
        token.public_key_der().unwrap(),
        file.public_key_der().unwrap()
    );
    genpkey_p256(d, "peer.pem");
    openssl(
        d,
        &["pkey", "-in", "peer.pem", "-pubout", "-out", "peer-pub.pem"],
    );
    let point = point_of(&d.join("peer-pub.pem"));
    assert_eq!(*token.ecdh(&point).unwrap(), *file.ecdh(&point).unwrap());
}

#[test]
fn ec_key_without_derive_usage_gets_a_clear_error() {
    let fx = Fixture::new("no-derive");
    let d = fx.dir();
    genpkey_p256(d, "k.pem");
    openssl(
        d,
        &["pkey", "-in", "k.pem", "-outform", "DER", "-out", "k.der"],
    );
    let der = std::fs::read(d.join("k.der")).unwrap();
    fx.token
        .import_private_key(&der, "07", "plain", false)
        .unwrap();
    let dec = open_decryptor(&fx.key_uri("plain")).unwrap();
    let point = point_of(&{
        openssl(d, &["pkey", "-in", "k.pem", "-pubout", "-out", "k-pub.pem"]);
        d.join("k-pub.pem")
    });
    let err = dec.ecdh(&point).unwrap_err().to_string();
    assert!(
        err.contains("CKA_DERIVE") && err.contains("derive usage"),
        "{err}"
    );
    // A malformed peer point is refused before any token call.
    let err = dec.ecdh(&point[1..]).unwrap_err().to_string();
    assert!(err.contains("uncompressed"), "{err}");
}

#[test]
fn rsa_pkcs1_and_oaep_decrypt_openssl_ciphertexts() {
    let fx = Fixture::new("rsa-dec");
    let d = fx.dir();
    let key = fx
        .session()
        .generate_key_pair(KeyType::Rsa(2048), "rsa-dec", None)
        .unwrap();
    write_public_pem(d, "pub.pem", &key.public_key_der);
    let secret = b"0123456789abcdef0123456789abcdef";
    fx.write("secret.bin", secret);
    openssl(
        d,
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            "pub.pem",
            "-in",
            "secret.bin",
            "-out",
            "ct1.bin",
        ],
    );
    openssl(
        d,
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            "pub.pem",
            "-in",
            "secret.bin",
            "-out",
            "ct2.bin",
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
        ],
    );
    let dec = open_decryptor_with(&fx.key_uri("rsa-dec"), &OpenOptions::default()).unwrap();
    assert_eq!(dec.kind(), KeyKind::Rsa { bits: 2048 });
    let ct1 = std::fs::read(d.join("ct1.bin")).unwrap();
    let ct2 = std::fs::read(d.join("ct2.bin")).unwrap();
    assert_eq!(
        dec.rsa_decrypt(&ct1, RsaPadding::Pkcs1v15)
            .unwrap()
            .as_slice(),
        secret
    );
    assert_eq!(
        dec.rsa_decrypt(&ct2, RsaPadding::OaepSha256)
            .unwrap()
            .as_slice(),
        secret
    );
    // ECDH on an RSA key is refused with a clear error.
    assert!(
        dec.ecdh(&[4; 65])
            .unwrap_err()
            .to_string()
            .contains("EC key")
    );
}

#[test]
fn decryptor_certificate_comes_from_the_token() {
    let fx = Fixture::new("dec-cert");
    let ts = fx.session();
    let key = ts
        .generate_key_pair(KeyType::Ec(EcCurve::P256), "dev", Some(&[0x21]))
        .unwrap();
    let dec = open_decryptor(&fx.key_uri("dev")).unwrap();
    assert_eq!(dec.certificate_der(), None);
    let cert = common::certificate_for(&key.public_key_der, "dev", &common::ca_key());
    // Another label on purpose: pairing is by CKA_ID.
    ts.write_certificate(&cert.to_der().unwrap(), "dev-cert", &[0x21])
        .unwrap();
    let dec = open_decryptor(&fx.key_uri("dev")).unwrap();
    assert_eq!(dec.certificate_der(), Some(cert.to_der().unwrap()));
    assert_eq!(
        keymgr::load_certificate(&fx.key_uri("dev")).unwrap(),
        cert.to_der().unwrap()
    );
}
