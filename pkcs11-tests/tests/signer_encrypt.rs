//! Issue "encryption": our `default` layout (RSA and EC recipients) decrypts with rauc 1.8 for
//! the first, a middle and the last recipient, with PEM keys and with the same keys imported
//! into SoftHSM (derive usage); our `compact` layout decrypts with rauc 1.8 given `[encryption]
//! key=` and `cert=`; `rauc encrypt` output decrypts with `signer info/extract --key pkcs11:…`;
//! `openssl cms -decrypt` agrees on every layout.

mod common;

use std::path::{Path, PathBuf};

use common::bundle_file::cms;
use common::{Alg, Env, Profile, fails, ok};

/// `dev0` … `dev<n-1>`: even ones RSA-2048, odd ones EC P-256; returns (cert, key) in order.
fn devices(env: &Env, n: usize) -> Vec<(PathBuf, PathBuf)> {
    (0..n)
        .map(|i| {
            let alg = if i % 2 == 0 { Alg::Rsa2048 } else { Alg::P256 };
            env.pki
                .file_leaf(&format!("dev{i}"), alg, Profile::Recipient, None)
        })
        .collect()
}

/// A crypt bundle signed by a token key, and its content.
fn crypt_bundle(env: &Env) -> (PathBuf, common::Content) {
    let id = env.token_identity("ec-sign", "ec:prime256v1", Profile::Smime, "inter");
    let content = env.content("content", "crypt", 64);
    let bundle = env.signer_bundle(&id, &content, "crypt.raucb");
    (bundle, content)
}

fn encrypt(env: &Env, input: &Path, to: &Path, out: &str, options: &[&str]) -> PathBuf {
    let out = env.path(out);
    ok(env
        .signer()
        .arg("encrypt")
        .arg("--to")
        .arg(to)
        .arg("--keyring")
        .arg(env.pki.root())
        .args(options)
        .arg(input)
        .arg(&out))
    .says("Encrypted for");
    out
}

/// `openssl cms -decrypt` gives back the SignedData of the unencrypted bundle.
fn openssl_decrypts(env: &Env, enc: &Path, plain: &Path, key: &Path, cert: Option<&Path>) {
    let der = env.path("envelope.der");
    std::fs::write(&der, cms(enc)).unwrap();
    let mut cmd = env.command("openssl");
    cmd.args(["cms", "-decrypt", "-binary", "-inform", "DER", "-in"])
        .arg(&der)
        .arg("-inkey")
        .arg(key);
    if let Some(cert) = cert {
        cmd.arg("-recip").arg(cert);
    }
    let out = ok(&mut cmd);
    assert!(
        out.stdout == cms(plain),
        "openssl cms -decrypt with {}",
        key.display()
    );
}

fn rauc_info_key(env: &Env, bundle: &Path, key: &str) -> common::Run {
    ok(env
        .rauc()
        .arg("info")
        .arg(format!("--keyring={}", env.pki.root().display()))
        .arg(format!("--key={key}"))
        .arg(bundle))
}

#[test]
fn default_layout_decrypts_with_rauc_pem_and_token_keys() {
    let env = Env::new();
    let (plain, content) = crypt_bundle(&env);
    let devs = devices(&env, 8);
    let certs: Vec<&Path> = devs.iter().map(|(c, _)| c.as_path()).collect();
    let to = env.pki.concat("to.pem", &certs);
    let enc = encrypt(&env, &plain, &to, "enc.raucb", &[]);
    let listing = ok(env
        .rauc()
        .arg("info")
        .arg(format!("--keyring={}", env.pki.root().display()))
        .arg(format!("--key={}", devs[0].1.display()))
        .arg("--dump-recipients")
        .arg(&enc));
    listing.says("8 Recipients:");
    for i in [0, 3, 4, 7] {
        let (cert, key) = &devs[i];
        let text = rauc_info_key(&env, &enc, key.to_str().unwrap()).stdout_text();
        assert!(text.contains("[encrypted CMS]"), "{text}");
        let uri = env.import_key(&format!("dev{i}"), key, None);
        rauc_info_key(&env, &enc, &uri);
        openssl_decrypts(&env, &enc, &plain, key, None);
        openssl_decrypts(&env, &enc, &plain, key, Some(cert));
    }
    let x = env.path("x");
    ok(env
        .rauc()
        .arg("extract")
        .arg(format!("--keyring={}", env.pki.root().display()))
        .arg(format!("--key={}", devs[7].1.display()))
        .arg(&enc)
        .arg(&x));
    content.assert_extracted(&x);
    // a device that is not a recipient cannot decrypt, in rauc either
    let (_, outsider) = env
        .pki
        .file_leaf("outsider", Alg::P256, Profile::Recipient, None);
    fails(
        env.rauc()
            .arg("info")
            .arg(format!("--keyring={}", env.pki.root().display()))
            .arg(format!("--key={}", outsider.display()))
            .arg(&enc),
    );
}

#[test]
fn compact_layout_decrypts_with_rauc_given_key_and_cert_in_conf() {
    let env = Env::new();
    let (plain, content) = crypt_bundle(&env);
    let devs = devices(&env, 10);
    let certs: Vec<&Path> = devs.iter().map(|(c, _)| c.as_path()).collect();
    let to = env.pki.concat("to.pem", &certs);
    for (name, options) in [
        ("compact", &["--recipient-layout", "compact"][..]),
        (
            "compact-ski",
            &["--recipient-layout", "compact", "--recipient-id", "ski"][..],
        ),
    ] {
        let enc = encrypt(&env, &plain, &to, &format!("{name}.raucb"), options);
        for i in [1, 4, 5, 9] {
            let (cert, key) = &devs[i];
            let conf = env.system_conf(
                &format!("{name}-{i}.conf"),
                &env.pki.root(),
                &[],
                Some((key, cert)),
            );
            let text = ok(env
                .rauc()
                .arg(format!("--conf={}", conf.display()))
                .arg("info")
                .arg(&enc))
            .stdout_text();
            assert!(text.contains("[encrypted CMS]"), "{text}");
            openssl_decrypts(&env, &enc, &plain, key, Some(cert));
            let x = env.path(&format!("x-{name}-{i}"));
            ok(env
                .rauc()
                .arg(format!("--conf={}", conf.display()))
                .arg("extract")
                .arg(&enc)
                .arg(&x));
            content.assert_extracted(&x);
        }
    }
}

#[test]
fn openssl_decrypts_every_layout() {
    let env = Env::new();
    let (plain, _) = crypt_bundle(&env);
    let devs = devices(&env, 6);
    let certs: Vec<&Path> = devs.iter().map(|(c, _)| c.as_path()).collect();
    let to = env.pki.concat("to.pem", &certs);
    for (name, options) in [
        ("default", &[][..]),
        ("default-ski", &["--recipient-id", "ski"][..]),
        ("compact", &["--recipient-layout", "compact"][..]),
        (
            "compact-ski",
            &["--recipient-layout", "compact", "--recipient-id", "ski"][..],
        ),
        ("oaep", &["--rsa-oaep"][..]),
    ] {
        let enc = encrypt(&env, &plain, &to, &format!("{name}.raucb"), options);
        for (cert, key) in &devs {
            openssl_decrypts(&env, &enc, &plain, key, Some(cert));
            let ours = ok(env
                .signer()
                .arg("info")
                .arg("--keyring")
                .arg(env.pki.root())
                .arg("--key")
                .arg(key)
                .arg(&enc));
            ours.says("[encrypted CMS]");
        }
        // 3 RSA and 3 P-256 devices: compact puts the three EC keys in one RecipientInfo.
        let (layout, infos) = if name.starts_with("compact") {
            ("compact", 4)
        } else {
            ("default", 6)
        };
        ok(env
            .signer()
            .arg("info")
            .arg("--keyring")
            .arg(env.pki.root())
            .arg("--key")
            .arg(&devs[1].1)
            .arg("--dump-recipients")
            .arg(&enc))
        .says(&format!(
            "Recipient layout: {layout} (6 recipients in {infos} RecipientInfos)"
        ));
    }
}

#[test]
fn rauc_encrypt_output_decrypts_with_token_keys() {
    let env = Env::new();
    env.pki
        .file_leaf("rauc-signer", Alg::P256, Profile::Smime, None);
    let content = env.content("content", "crypt", 64);
    let plain = env.rauc_bundle("rauc-signer", &content, "crypt.raucb");
    let ec = env.token_identity("dev-ec", "ec:prime256v1", Profile::Recipient, "inter");
    let rsa = env.token_identity("dev-rsa", "rsa:3072", Profile::Recipient, "inter");
    let (other, _) = env
        .pki
        .file_leaf("dev-other", Alg::P256, Profile::Recipient, None);
    let to = env
        .pki
        .concat("to.pem", &[&other, &ec.cert_pem, &rsa.cert_pem]);
    let enc = env.path("enc.raucb");
    ok(env
        .rauc()
        .arg("encrypt")
        .arg(format!("--keyring={}", env.pki.root().display()))
        .arg(format!("--to={}", to.display()))
        .arg(&plain)
        .arg(&enc))
    .says("Encrypted for 3 recipients");
    for id in [&ec, &rsa] {
        let text = ok(env
            .signer()
            .arg("info")
            .arg("--keyring")
            .arg(env.pki.root())
            .args(["--key", &id.key_uri])
            .arg(&enc))
        .stdout_text();
        assert!(text.contains("[encrypted CMS]"), "{text}");
        let x = env.path(&format!("x-{}", id.label));
        ok(env
            .signer()
            .arg("extract")
            .arg("--keyring")
            .arg(env.pki.root())
            .args(["--key", &id.key_uri])
            .arg(&enc)
            .arg(&x));
        content.assert_extracted(&x);
    }
}
