//! Issue "release signing": our verity and crypt bundles, signed with EC P-256 and RSA-3072 keys
//! that live in SoftHSM (`keymgr generate`, certificate from the test CA imported with
//! `keymgr import --cert`), pass rauc 1.8 (`info --keyring`, `extract`) with the intermediate CA
//! given by `--intermediate`; their hash trees pass `veritysetup verify`.

mod common;

use common::bundle_file::{parts, signed_manifest, verity_params, veritysetup_verify};
use common::{Env, Profile, TokenIdentity, ok};

/// Checks one of our bundles with rauc 1.8: info (keyring = root only, so the intermediate must
/// come from the bundle) and extract (images byte for byte).
fn rauc_accepts(env: &Env, bundle: &std::path::Path, content: &common::Content, format: &str) {
    let info = ok(env
        .rauc()
        .arg("info")
        .arg(format!("--keyring={}", env.pki.root().display()))
        .arg(bundle));
    let text = info.stdout_text();
    assert!(text.contains("Compatible: \t'Test Device'"), "{text}");
    assert!(
        text.contains(&format!("Bundle Format: \t{format}")),
        "{text}"
    );
    assert!(text.contains("2 Images:"), "{text}");
    // signer → intermediate → root
    assert!(
        text.contains(" 2 Subject: O = Test, CN = Test root CA"),
        "{text}"
    );
    let out = env.path(&format!("rauc-extract-{format}"));
    ok(env
        .rauc()
        .arg("extract")
        .arg(format!("--keyring={}", env.pki.root().display()))
        .arg(bundle)
        .arg(&out));
    content.assert_extracted(&out);
}

/// The bundle's verity tree passes `veritysetup verify` with the root hash and salt of its
/// signed manifest (taken out with `signer extract-signature` + `openssl cms`).
fn veritysetup_accepts(env: &Env, bundle: &std::path::Path) {
    let sig = env.path(&format!(
        "{}.sig",
        bundle.file_name().unwrap().to_string_lossy()
    ));
    ok(env
        .signer()
        .arg("extract-signature")
        .arg("--keyring")
        .arg(env.pki.root())
        .arg(bundle)
        .arg(&sig));
    assert_eq!(
        std::fs::read(&sig).unwrap(),
        common::bundle_file::cms(bundle)
    );
    let manifest = signed_manifest(bundle, &env.dir);
    let (root, salt, size) = verity_params(&manifest);
    assert!(size > 0 && size % 4096 == 0);
    assert!(
        veritysetup_verify(bundle, &root, &salt, size),
        "veritysetup rejects {}",
        bundle.display()
    );
    let wrong_root = format!(
        "{}{}",
        &root[..63],
        if root.ends_with('0') { "1" } else { "0" }
    );
    assert!(!veritysetup_verify(bundle, &wrong_root, &salt, size));
}

fn release(env: &Env, id: &TokenIdentity, pin_by_source: bool) {
    for format in ["verity", "crypt"] {
        let content = env.content(&format!("content-{format}"), format, 300);
        let out = env.path(&format!("{}-{format}.raucb", id.label));
        let key = if pin_by_source {
            id.key_uri_with_pin_source(&env.pin_file)
        } else {
            id.key_uri.clone()
        };
        let mut cmd = if pin_by_source {
            env.signer_no_pin()
        } else {
            env.signer()
        };
        let r = ok(cmd
            .args(["bundle", "--cert", &id.cert_uri, "--key", &key])
            .arg("--intermediate")
            .arg(env.pki.inter())
            .arg("--keyring")
            .arg(env.pki.root())
            .arg(&content.dir)
            .arg(&out));
        r.says(&format!(
            "Verified signature by 'O = Test, CN = Test {}'",
            id.label
        ));
        assert_eq!(parts(&out).payload_size % 4096, 0);
        rauc_accepts(env, &out, &content, format);
        veritysetup_accepts(env, &out);
    }
}

#[test]
fn ec_p256_token_key_verity_and_crypt_pass_rauc() {
    let env = Env::new();
    let id = env.token_identity("ec-sign", "ec:prime256v1", Profile::Smime, "inter");
    release(&env, &id, false);
}

#[test]
fn rsa3072_token_key_verity_and_crypt_pass_rauc() {
    let env = Env::new();
    let id = env.token_identity("rsa-sign", "rsa:3072", Profile::Smime, "inter");
    release(&env, &id, true);
}

/// The same bundles also verify with the openssl CLI (keyring root, intermediate from the CMS)
/// and rauc shows our signer chain in the same order as `signer info`.
#[test]
fn openssl_cms_verifies_our_signature_and_chains_agree() {
    let env = Env::new();
    let id = env.token_identity("ec-sign", "ec:prime256v1", Profile::Smime, "inter");
    let content = env.content("content", "verity", 64);
    let bundle = env.signer_bundle(&id, &content, "b.raucb");
    let cms = env.path("b.cms");
    std::fs::write(&cms, common::bundle_file::cms(&bundle)).unwrap();
    let manifest = ok(env
        .command("openssl")
        .args(["cms", "-verify", "-inform", "DER", "-binary", "-CAfile"])
        .arg(env.pki.root())
        .arg("-in")
        .arg(&cms))
    .stdout_text();
    assert!(manifest.contains("format=verity\n"), "{manifest}");
    let chain =
        |text: String| -> String { text[text.find("Certificate Chain:").unwrap()..].to_string() };
    let rauc = ok(env
        .rauc()
        .arg("info")
        .arg(format!("--keyring={}", env.pki.root().display()))
        .arg(&bundle));
    let ours = ok(env
        .signer()
        .arg("info")
        .arg("--keyring")
        .arg(env.pki.root())
        .arg(&bundle));
    assert_eq!(chain(ours.stdout_text()), chain(rauc.stdout_text()));
}
