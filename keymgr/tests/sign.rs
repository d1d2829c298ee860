//! Token and PEM signers, verified with the openssl CLI against independently exported public
//! keys (pkcs11-tool, p11tool, openssl).

mod common;

use bundle::keys::ContentSigner;
use bundle::keys::SignatureScheme;
use common::{Fixture, openssl, openssl_ok, softhsm_options, write_public_pem};
use keymgr::{KeyInfo, KeyType, OpenOptions, RsaSignaturePadding, open_signer};

const DATA: &[u8] = b"signed attributes of a RAUC bundle";

/// Signs DATA with `uri`, verifies with `openssl dgst` against the public key that pkcs11-tool
/// (or p11tool) exports for `id_hex`, and also against the signer's own public key.
fn sign_and_verify(fx: &Fixture, uri: &str, id_hex: &str, options: &OpenOptions, pss: bool) {
    let signer = open_signer(uri, options).unwrap();
    let sig = signer.sign(DATA).unwrap();
    let dir = fx.dir();
    fx.write("data.bin", DATA);
    fx.write("sig.bin", &sig);
    // pkcs11-tool 0.23 cannot read back P-384 public keys; p11tool can (but takes 3 s).
    let exported = fx.token.read_public_key_der(id_hex).unwrap_or_else(|_| {
        let pem = fx.token.export_public_key_pem(id_hex).unwrap();
        openssl::pkey::PKey::public_key_from_pem(pem.as_bytes())
            .unwrap()
            .public_key_to_der()
            .unwrap()
    });
    assert_eq!(signer.public_key_der().unwrap(), exported);
    write_public_pem(dir, "pub.pem", &exported);
    let mut args = vec![
        "dgst",
        "-sha256",
        "-verify",
        "pub.pem",
        "-signature",
        "sig.bin",
    ];
    if pss {
        args.extend([
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
            "-sigopt",
            "rsa_mgf1_md:sha256",
        ]);
    }
    args.push("data.bin");
    let out = openssl(dir, &args);
    assert_eq!(String::from_utf8_lossy(&out).trim(), "Verified OK");
    // A different message does not verify.
    fx.write("data.bin", b"something else");
    assert!(!openssl_ok(dir, &args));
}

#[test]
fn ecdsa_p256_token_key() {
    let fx = Fixture::new("sign-p256");
    fx.token
        .generate_key("EC:prime256v1", "01", "ec-sign")
        .unwrap();
    let uri = fx.key_uri("ec-sign");
    sign_and_verify(&fx, &uri, "01", &OpenOptions::default(), false);
    let signer = open_signer(&uri, &OpenOptions::default()).unwrap();
    assert_eq!(signer.scheme(), SignatureScheme::EcdsaSha256);
    assert!(signer.description().contains("object=ec-sign;type=private"));
}

#[test]
fn ecdsa_p384_key_generated_by_keymgr() {
    let fx = Fixture::new("sign-p384");
    let key = fx
        .session()
        .generate_key_pair("ec:secp384r1".parse().unwrap(), "ec384", Some(&[0x02]))
        .unwrap();
    assert_eq!(key.id, vec![2]);
    assert!(
        key.uri
            .to_string()
            .ends_with(";token=sign-p384;id=%02;object=ec384;type=private")
    );
    // Selected by id only, module from the options.
    let uri = format!(
        "pkcs11:token=sign-p384;id=%02;type=private?pin-source={}",
        fx.pin_file.display()
    );
    sign_and_verify(&fx, &uri, "02", &softhsm_options(), false);
}

#[test]
fn rsa_pkcs1_and_pss() {
    let fx = Fixture::new("sign-rsa");
    fx.token.generate_key("rsa:2048", "03", "rsa-sign").unwrap();
    let uri = fx.key_uri("rsa-sign");
    let pkcs1 = OpenOptions::default();
    assert_eq!(
        open_signer(&uri, &pkcs1).unwrap().scheme(),
        SignatureScheme::RsaPkcs1Sha256
    );
    sign_and_verify(&fx, &uri, "03", &pkcs1, false);
    let pss = OpenOptions {
        rsa_padding: RsaSignaturePadding::Pss,
        ..OpenOptions::default()
    };
    assert_eq!(
        open_signer(&uri, &pss).unwrap().scheme(),
        SignatureScheme::RsaPssSha256
    );
    sign_and_verify(&fx, &uri, "03", &pss, true);
}

#[test]
fn token_signer_finds_its_certificate() {
    let fx = Fixture::new("sign-cert");
    let ts = fx.session();
    let key = ts.generate_key_pair(KeyType::Rsa(2048), "k", None).unwrap();
    assert_eq!(key.id.len(), keymgr::manage::RANDOM_ID_LEN);
    let signer = open_signer(&fx.key_uri("k"), &OpenOptions::default()).unwrap();
    assert!(signer.certificate().is_none());
    let cert = common::certificate_for(&key.public_key_der, "k", &common::ca_key());
    let der = cert.to_der().unwrap();
    ts.write_certificate(&der, "k", &key.id).unwrap();
    let signer = open_signer(&fx.key_uri("k"), &OpenOptions::default()).unwrap();
    assert_eq!(signer.certificate(), Some(der.clone()));
    // load_certificate finds it by the key's URI and by type=cert.
    assert_eq!(keymgr::load_certificate(&fx.key_uri("k")).unwrap(), der);
    let cert_uri = fx
        .key_uri("k")
        .replacen("object=k", "object=k;type=cert", 1);
    assert_eq!(keymgr::load_certificates(&cert_uri).unwrap(), vec![der]);
}

#[test]
fn pem_file_signers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            "ec.pem",
        ],
    );
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "rsa.pem",
        ],
    );
    std::fs::write(d.join("data.bin"), DATA).unwrap();
    for (key, pss) in [("ec.pem", false), ("rsa.pem", false), ("rsa.pem", true)] {
        let options = OpenOptions {
            rsa_padding: if pss {
                RsaSignaturePadding::Pss
            } else {
                RsaSignaturePadding::Pkcs1v15
            },
            ..OpenOptions::default()
        };
        let signer = open_signer(d.join(key).to_str().unwrap(), &options).unwrap();
        std::fs::write(d.join("sig.bin"), signer.sign(DATA).unwrap()).unwrap();
        openssl(d, &["pkey", "-in", key, "-pubout", "-out", "pub.pem"]);
        let mut args = vec![
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "sig.bin",
        ];
        if pss {
            args.extend([
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:32",
            ]);
        }
        args.push("data.bin");
        assert_eq!(
            String::from_utf8_lossy(&openssl(d, &args)).trim(),
            "Verified OK",
            "{key} pss={pss}"
        );
    }
}

#[test]
fn encrypted_pem_needs_the_passphrase_variable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-aes256",
            "-pass",
            "pass:pem-pass-99",
            "-out",
            "enc.pem",
        ],
    );
    let path = d.join("enc.pem");
    let err = open_signer(path.to_str().unwrap(), &OpenOptions::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("RAUC_KEY_PASSPHRASE"), "{err}");
    // SAFETY: this test runs in its own process (nextest) and sets the variable before use.
    unsafe { std::env::set_var("RAUC_KEY_PASSPHRASE", "pem-pass-99") };
    let signer = open_signer(path.to_str().unwrap(), &OpenOptions::default()).unwrap();
    assert!(!signer.sign(DATA).unwrap().is_empty());
}

#[test]
fn parallel_workers_sign_on_their_own_sessions() {
    let fx = Fixture::new("sign-parallel");
    fx.token.generate_key("EC:prime256v1", "01", "k").unwrap();
    let uri = keymgr::Pkcs11Uri::parse(&fx.key_uri("k")).unwrap();
    let key = keymgr::TokenKey::open(&uri, &OpenOptions::default()).unwrap();
    let workers: Vec<_> = (0..4).map(|_| key.duplicate().unwrap()).collect();
    let signatures: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = workers
            .iter()
            .map(|w| s.spawn(move || (0..10).map(|_| w.sign(DATA).unwrap()).last().unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    drop(key);
    let d = fx.dir();
    fx.write("data.bin", DATA);
    write_public_pem(d, "pub.pem", &workers[0].public_key_der().unwrap());
    for sig in signatures {
        fx.write("sig.bin", &sig);
        openssl(
            d,
            &[
                "dgst",
                "-sha256",
                "-verify",
                "pub.pem",
                "-signature",
                "sig.bin",
                "data.bin",
            ],
        );
    }
}
