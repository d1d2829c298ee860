//! Bundles made by `rauc bundle` 1.8 (verity, crypt, plain) pass `signer info` and
//! `signer extract`; `signer info` prints exactly what `rauc info` prints (readable and shell
//! byte for byte; json with rauc's keys and values).

mod common;

use std::path::Path;

use common::{Alg, Env, Profile, ok};

fn rauc_info(env: &Env, bundle: &Path, format: &str, extra: &[&str]) -> Vec<u8> {
    ok(env
        .rauc()
        .arg("info")
        .arg(format!("--keyring={}", env.pki.root().display()))
        .arg(format!("--output-format={format}"))
        .args(extra)
        .arg(bundle))
    .stdout
}

fn signer_info(env: &Env, bundle: &Path, format: &str, extra: &[&str]) -> Vec<u8> {
    ok(env
        .signer()
        .arg("info")
        .arg("--keyring")
        .arg(env.pki.root())
        .args(["--output-format", format])
        .args(extra)
        .arg(bundle))
    .stdout
}

/// readable and shell byte for byte; json: every key rauc prints, with rauc's value (rauc
/// prints `--dump-*` blocks after the JSON, so json is compared without them).
fn same_info_as_rauc(env: &Env, bundle: &Path, extra: &[&str]) {
    for format in ["readable", "shell"] {
        let theirs = rauc_info(env, bundle, format, extra);
        let ours = signer_info(env, bundle, format, extra);
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "{format} output differs for {}",
            bundle.display()
        );
    }
    if extra.iter().any(|a| a.starts_with("--dump")) {
        return;
    }
    let theirs: serde_json::Value =
        serde_json::from_slice(&rauc_info(env, bundle, "json", extra)).unwrap();
    let ours_bytes = signer_info(env, bundle, "json", extra);
    let ours: serde_json::Value = serde_json::from_slice(&ours_bytes)
        .unwrap_or_else(|e| panic!("signer json is not JSON ({e}): {ours_bytes:?}"));
    let theirs = theirs.as_object().unwrap();
    for (key, value) in theirs {
        assert_eq!(ours.get(key), Some(value), "json key {key}");
    }
    let pretty: serde_json::Value =
        serde_json::from_slice(&signer_info(env, bundle, "json-pretty", extra)).unwrap();
    assert_eq!(pretty, ours);
}

fn rauc_made(format: &str) {
    let env = Env::new();
    env.pki
        .file_leaf("rauc-signer", Alg::Rsa2048, Profile::Smime, None);
    let content = env.content("content", format, 200);
    let bundle = env.rauc_bundle("rauc-signer", &content, &format!("rauc-{format}.raucb"));
    same_info_as_rauc(&env, &bundle, &[]);
    same_info_as_rauc(&env, &bundle, &["--dump-cert"]);
    same_info_as_rauc(&env, &bundle, &["--no-verify"]);
    let out = env.path("extracted");
    ok(env
        .signer()
        .arg("extract")
        .arg("--keyring")
        .arg(env.pki.root())
        .arg(&bundle)
        .arg(&out))
    .says("Extracted");
    content.assert_extracted(&out);
}

#[test]
fn rauc_verity_bundle_passes_signer_info_and_extract() {
    rauc_made("verity");
}

#[test]
fn rauc_crypt_bundle_passes_signer_info_and_extract() {
    rauc_made("crypt");
}

#[test]
fn rauc_plain_bundle_passes_signer_info_and_extract() {
    rauc_made("plain");
}

/// `rauc encrypt` output (RSA and EC recipients): `signer info --key` prints what
/// `rauc info --key` prints, for a PEM key and for the same key inside the token.
#[test]
fn rauc_encrypted_bundle_info_matches_rauc() {
    let env = Env::new();
    env.pki
        .file_leaf("rauc-signer", Alg::P256, Profile::Smime, None);
    let (ec_cert, ec_key) = env
        .pki
        .file_leaf("dev-ec", Alg::P256, Profile::Recipient, None);
    let (rsa_cert, _) = env
        .pki
        .file_leaf("dev-rsa", Alg::Rsa2048, Profile::Recipient, None);
    let content = env.content("content", "crypt", 64);
    let plain = env.rauc_bundle("rauc-signer", &content, "crypt.raucb");
    let to = env.pki.concat("to.pem", &[&rsa_cert, &ec_cert]);
    let enc = env.path("crypt-enc.raucb");
    ok(env
        .rauc()
        .arg("encrypt")
        .arg(format!("--keyring={}", env.pki.root().display()))
        .arg(format!("--to={}", to.display()))
        .arg(&plain)
        .arg(&enc));
    let key = ec_key.to_str().unwrap().to_string();
    same_info_as_rauc(&env, &enc, &["--key", &key]);
    same_info_as_rauc(&env, &enc, &["--key", &key, "--dump-recipients"]);
    let uri = env.import_key("dev-ec", &ec_key, Some(&ec_cert));
    same_info_as_rauc(&env, &enc, &["--key", &uri]);
}

/// Our own bundles print the same as rauc prints for them, too.
#[test]
fn our_bundle_info_matches_rauc() {
    let env = Env::new();
    let id = env.token_identity("ec-sign", "ec:prime256v1", Profile::Smime, "inter");
    for format in ["verity", "crypt"] {
        let content = env.content(&format!("content-{format}"), format, 64);
        let bundle = env.signer_bundle(&id, &content, &format!("{format}.raucb"));
        same_info_as_rauc(&env, &bundle, &[]);
    }
}
