//! Module selection through `PKCS11_MODULE_PATH` with OpenSC's `pkcs11-spy.so` in front of
//! SoftHSM, and the private-key operations the spy log records: none while opening a key or
//! reading its certificate, exactly one per signature, ECDH or decryption. An operation is one
//! `C_SignInit` / `C_DecryptInit` / `C_DeriveKey`; cryptoki calls `C_Sign` and `C_Decrypt` twice
//! per operation (a length query, then the call), so count the `*Init` calls.

mod common;

use std::path::Path;

use bundle::keys::RsaPadding;
use common::{Fixture, genpkey_p256, openssl, write_public_pem};
use keymgr::{OpenOptions, open_decryptor, open_signer};

const SPY: &str = "/usr/lib/x86_64-linux-gnu/pkcs11-spy.so";

/// How many calls of `function` the spy log holds (lines `N: C_Function`).
fn calls(log: &Path, function: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.split_once(": ")
                .is_some_and(|(n, f)| n.parse::<u64>().is_ok() && f == function)
        })
        .count()
}

fn set_env(key: &str, value: Option<&str>) {
    // SAFETY: this test runs alone in its process (nextest), before any module is loaded.
    unsafe {
        match value {
            Some(v) => std::env::set_var(key, v),
            None => std::env::remove_var(key),
        }
    }
}

#[test]
fn pkcs11_module_path_with_spy_counts_private_key_operations() {
    let fx = Fixture::new("spy");
    fx.token.generate_key("EC:prime256v1", "01", "ec").unwrap();
    fx.token.generate_key("rsa:2048", "02", "rsa").unwrap();
    let log = fx.dir().join("spy.log");
    set_env("PKCS11_MODULE_PATH", Some(SPY));
    set_env("RAUC_PKCS11_MODULE", None);
    set_env("PKCS11SPY", Some(softhsm::SOFTHSM_MODULE));
    set_env("PKCS11SPY_OUTPUT", Some(log.to_str().unwrap()));
    let uri = |label: &str| {
        format!(
            "{}?pin-source={}",
            fx.token.object_uri(label, None),
            fx.pin_file.display()
        )
    };

    let signer = open_signer(&uri("ec"), &OpenOptions::default()).unwrap();
    assert!(
        calls(&log, "C_Initialize") == 1,
        "the spy module was loaded"
    );
    assert_eq!(calls(&log, "C_SignInit"), 0);
    let sig = signer.sign(b"payload").unwrap();
    assert_eq!(calls(&log, "C_SignInit"), 1);
    let d = fx.dir();
    write_public_pem(d, "ec.pem", &signer.public_key_der().unwrap());
    fx.write("sig.bin", &sig);
    fx.write("data.bin", b"payload");
    openssl(
        d,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "ec.pem",
            "-signature",
            "sig.bin",
            "data.bin",
        ],
    );

    let dec = open_decryptor(&uri("ec")).unwrap();
    assert_eq!(dec.certificate_der(), None);
    assert_eq!(calls(&log, "C_DeriveKey"), 0);
    genpkey_p256(d, "peer.pem");
    let peer =
        openssl::pkey::PKey::private_key_from_pem(&std::fs::read(d.join("peer.pem")).unwrap())
            .unwrap();
    let ec = peer.ec_key().unwrap();
    let mut ctx = openssl::bn::BigNumContext::new().unwrap();
    let point = ec
        .public_key()
        .to_bytes(
            ec.group(),
            openssl::ec::PointConversionForm::UNCOMPRESSED,
            &mut ctx,
        )
        .unwrap();
    dec.ecdh(&point).unwrap();
    assert_eq!(calls(&log, "C_DeriveKey"), 1);
    assert_eq!(
        calls(&log, "C_DestroyObject"),
        1,
        "the derived secret is destroyed"
    );

    let rsa = open_decryptor(&uri("rsa")).unwrap();
    write_public_pem(d, "rsa.pem", &rsa.public_key_der().unwrap());
    fx.write("cek.bin", &[7; 32]);
    openssl(
        d,
        &[
            "pkeyutl", "-encrypt", "-pubin", "-inkey", "rsa.pem", "-in", "cek.bin", "-out",
            "ct.bin",
        ],
    );
    let ct = std::fs::read(d.join("ct.bin")).unwrap();
    assert_eq!(calls(&log, "C_DecryptInit"), 0);
    assert_eq!(
        rsa.rsa_decrypt(&ct, RsaPadding::Pkcs1v15)
            .unwrap()
            .as_slice(),
        &[7; 32]
    );
    assert_eq!(calls(&log, "C_DecryptInit"), 1);
    assert_eq!(
        calls(&log, "C_SignInit"),
        1,
        "no other private-key operation happened"
    );
    assert_eq!(
        calls(&log, "C_Initialize"),
        1,
        "one module context per process"
    );
}
