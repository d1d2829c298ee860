//! Exactly one private-key operation per decryption: `signer info --key pkcs11:…` runs through
//! opensc's `pkcs11-spy.so` on envelopes with many recipients, and the PKCS#11 call trace is
//! counted (`C_DeriveKey` for EC, `C_DecryptInit` for RSA). With the token certificate next to
//! the key, the recipient is found before the key is used; the compact layout needs no
//! certificate for EC keys.

mod common;

use std::path::{Path, PathBuf};

use common::{Alg, Env, Profile, TokenIdentity, ok};
use softhsm::SOFTHSM_MODULE;

const SPY: &str = "/usr/lib/x86_64-linux-gnu/pkcs11-spy.so";

/// How often `call` appears in a pkcs11-spy log (lines `<n>: C_Xxx`).
fn calls(log: &str, call: &str) -> usize {
    log.lines()
        .filter(|l| {
            l.split_once(": ")
                .is_some_and(|(n, f)| n.chars().all(|c| c.is_ascii_digit()) && f.trim() == call)
        })
        .count()
}

/// A key pair generated in the token whose certificate is issued but NOT stored in the token.
fn token_key_without_certificate(env: &Env, label: &str, key_type: &str) -> TokenIdentity {
    let base = format!("{};object={label}", env.token.uri());
    let out = ok(env.keymgr().args([
        "--output-format",
        "json",
        "generate",
        &base,
        "--key-type",
        key_type,
    ]));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cert_pem = env.pki.cert_for_public_key(
        label,
        json["public_key_pem"].as_str().unwrap(),
        Profile::Recipient,
        "inter",
    );
    TokenIdentity {
        label: label.to_string(),
        key_uri: format!("{base};type=private"),
        cert_uri: format!("{base};type=cert"),
        cert_pem,
    }
}

/// `signer info --key <uri>` through pkcs11-spy; returns (C_DeriveKey, C_DecryptInit) counts.
fn traced_info(env: &Env, bundle: &Path, id: &TokenIdentity) -> (usize, usize) {
    let log = env.path(&format!(
        "spy-{}-{}.log",
        id.label,
        bundle.file_stem().unwrap().to_string_lossy()
    ));
    ok(env
        .signer()
        .env("PKCS11SPY", SOFTHSM_MODULE)
        .env("PKCS11SPY_OUTPUT", &log)
        .args(["--module", SPY, "info", "--key", &id.key_uri])
        .arg("--keyring")
        .arg(env.pki.root())
        .arg(bundle))
    .says("[encrypted CMS]");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(calls(&text, "C_Initialize") == 1, "not a spy log: {log:?}");
    (calls(&text, "C_DeriveKey"), calls(&text, "C_DecryptInit"))
}

fn setup(env: &Env) -> (PathBuf, [TokenIdentity; 4]) {
    let with_ec = env.token_identity("ec-cert", "ec:prime256v1", Profile::Recipient, "inter");
    let with_rsa = env.token_identity("rsa-cert", "rsa:2048", Profile::Recipient, "inter");
    let bare_ec = token_key_without_certificate(env, "ec-bare", "ec:prime256v1");
    let bare_rsa = token_key_without_certificate(env, "rsa-bare", "rsa:2048");
    let many_ec = env
        .pki
        .many_recipients("many-ec", 40, openssl::nid::Nid::X9_62_PRIME256V1);
    let rsa: Vec<PathBuf> = (0..6)
        .map(|i| {
            env.pki
                .file_leaf(&format!("rsa{i}"), Alg::Rsa2048, Profile::Recipient, None)
                .0
        })
        .collect();
    let mut parts: Vec<&Path> = vec![&many_ec, &rsa[0], &rsa[1], &rsa[2]];
    parts.extend([
        with_ec.cert_pem.as_path(),
        &with_rsa.cert_pem,
        &bare_ec.cert_pem,
        &bare_rsa.cert_pem,
    ]);
    parts.extend([rsa[3].as_path(), &rsa[4], &rsa[5]]);
    let to = env.pki.concat("to.pem", &parts);
    (to, [with_ec, with_rsa, bare_ec, bare_rsa])
}

fn encrypted(env: &Env, to: &Path, layout: &str) -> PathBuf {
    let id = env.token_identity("sign", "ec:prime256v1", Profile::Smime, "inter");
    let content = env.content(&format!("content-{layout}"), "crypt", 16);
    let plain = env.signer_bundle(&id, &content, &format!("plain-{layout}.raucb"));
    let out = env.path(&format!("{layout}.raucb"));
    ok(env
        .signer()
        .arg("encrypt")
        .args(["--recipient-layout", layout, "--to"])
        .arg(to)
        .arg("--keyring")
        .arg(env.pki.root())
        .arg(&plain)
        .arg(&out))
    .says("Encrypted for 50 recipients");
    out
}

#[test]
fn one_token_operation_per_decryption_default_layout() {
    let env = Env::new();
    let (to, [with_ec, with_rsa, bare_ec, bare_rsa]) = setup(&env);
    let bundle = encrypted(&env, &to, "default");
    assert_eq!(
        traced_info(&env, &bundle, &with_ec),
        (1, 0),
        "EC key with certificate"
    );
    assert_eq!(
        traced_info(&env, &bundle, &with_rsa),
        (0, 1),
        "RSA key with certificate"
    );
    // without a certificate the default layout gives nothing to match the key against
    // before using it; the counts are reported, not required to be 1
    let (ec_derive, _) = traced_info(&env, &bundle, &bare_ec);
    let (_, rsa_decrypt) = traced_info(&env, &bundle, &bare_rsa);
    eprintln!(
        "default layout without certificate: EC C_DeriveKey {ec_derive}, RSA C_DecryptInit {rsa_decrypt}"
    );
    assert!(ec_derive >= 1 && rsa_decrypt >= 1);
}

#[test]
fn one_token_operation_per_decryption_compact_layout() {
    let env = Env::new();
    let (to, [with_ec, with_rsa, bare_ec, _]) = setup(&env);
    let bundle = encrypted(&env, &to, "compact");
    assert_eq!(
        traced_info(&env, &bundle, &with_ec),
        (1, 0),
        "EC key with certificate"
    );
    assert_eq!(
        traced_info(&env, &bundle, &with_rsa),
        (0, 1),
        "RSA key with certificate"
    );
    assert_eq!(
        traced_info(&env, &bundle, &bare_ec),
        (1, 0),
        "EC key without certificate"
    );
}
