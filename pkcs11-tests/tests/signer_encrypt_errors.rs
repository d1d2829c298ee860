//! Encryption errors: bad `--to` input (no certificate, a private key, expired, duplicate,
//! unsupported key or curve), a key that is not a recipient, a tampered envelope and a wrong PIN
//! give clear errors, a non-zero exit and no output; the 64 KiB refusal names how many
//! recipients fit each layout, compact fits them, `--max-cms-size` raises the limit.

mod common;

use std::path::{Path, PathBuf};

use common::bundle_file::{cms, flip_copy, parts};
use common::{Alg, Env, Profile, WRONG_PIN, fails, ok, run};

fn crypt_bundle(env: &Env) -> (PathBuf, common::Content) {
    let id = env.token_identity("ec-sign", "ec:prime256v1", Profile::Smime, "inter");
    let content = env.content("content", "crypt", 32);
    let bundle = env.signer_bundle(&id, &content, "crypt.raucb");
    (bundle, content)
}

fn encrypt(env: &Env, input: &Path, to: &[&Path], out: &Path, options: &[&str]) -> common::Run {
    let mut cmd = env.signer();
    cmd.arg("encrypt");
    for t in to {
        cmd.arg("--to").arg(t);
    }
    run(cmd
        .arg("--keyring")
        .arg(env.pki.root())
        .args(options)
        .arg(input)
        .arg(out))
}

/// Fails with a message containing `needle`, exit status 1, and leaves no output.
fn refused(env: &Env, r: &common::Run, needle: &str, out: &Path) {
    assert_eq!(
        r.status.code(),
        Some(1),
        "{}\n{}",
        r.command,
        r.all_output()
    );
    r.says(needle);
    assert!(!out.exists(), "{} was written", out.display());
    assert!(
        !env.listing().iter().any(|n| n.ends_with(".partial")),
        "temporary left: {:?}",
        env.listing()
    );
}

/// A recipient certificate (issued by the intermediate) for a key `openssl genpkey <args>` makes.
fn unsupported_cert(env: &Env, name: &str, genpkey: &[&str]) -> PathBuf {
    let key = env.path(&format!("{name}.key.pem"));
    ok(env
        .command("openssl")
        .arg("genpkey")
        .args(genpkey)
        .arg("-out")
        .arg(&key));
    let public = ok(env
        .command("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key))
    .stdout_text();
    env.pki
        .cert_for_public_key(name, &public, Profile::Recipient, "inter")
}

#[test]
fn bad_recipient_input_is_refused() {
    let env = Env::new();
    let (bundle, _) = crypt_bundle(&env);
    let (good, good_key) = env
        .pki
        .file_leaf("dev", Alg::P256, Profile::Recipient, None);
    let (expired, _) = env.pki.file_leaf(
        "expired",
        Alg::P256,
        Profile::Recipient,
        Some(("20200101000000Z", "20210101000000Z")),
    );
    let p521 = unsupported_cert(
        &env,
        "p521",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"],
    );
    let ed = unsupported_cert(&env, "ed25519", &["-algorithm", "ED25519"]);
    let empty = env.path("empty.pem");
    std::fs::write(&empty, "no certificates here\n").unwrap();
    let dup = env.pki.concat("dup.pem", &[&good, &good]);
    let out = env.path("enc.raucb");
    let cases: Vec<(&str, Vec<&Path>, &str)> = vec![
        ("no certificate", vec![&empty], "certificate"),
        ("a private key", vec![&good_key], "certificate"),
        ("expired", vec![&good, &expired], "expired"),
        ("duplicate", vec![&dup], "duplicate"),
        ("duplicate across files", vec![&good, &good], "duplicate"),
        ("P-521", vec![&good, &p521], "secp521r1"),
        ("Ed25519", vec![&ed], "unsupported"),
        (
            "missing file",
            vec![Path::new("/nonexistent/to.pem")],
            "/nonexistent/to.pem",
        ),
    ];
    for (what, to, needle) in cases {
        let r = encrypt(&env, &bundle, &to, &out, &[]);
        eprintln!("{what}: {}", r.stderr.trim());
        refused(&env, &r, needle, &out);
    }
    // rauc 1.8 silently writes zero recipients for a private key; we never write such a bundle
    ok(env
        .rauc()
        .arg("encrypt")
        .arg(format!("--keyring={}", env.pki.root().display()))
        .arg(format!("--to={}", good_key.display()))
        .arg(&bundle)
        .arg(env.path("rauc-zero.raucb")))
    .says("Encrypted for 0 recipient");
}

#[test]
fn a_key_that_is_not_a_recipient_tampering_and_wrong_pin_fail_cleanly() {
    let env = Env::new();
    let (bundle, content) = crypt_bundle(&env);
    let dev = env.token_identity("dev", "ec:prime256v1", Profile::Recipient, "inter");
    let (rsa_cert, rsa_key) = env
        .pki
        .file_leaf("dev-rsa", Alg::Rsa2048, Profile::Recipient, None);
    let (_, outsider) = env
        .pki
        .file_leaf("outsider", Alg::P256, Profile::Recipient, None);
    let outsider_uri = env.import_key("outsider", &outsider, None);
    let enc = env.path("enc.raucb");
    let r = encrypt(&env, &bundle, &[&dev.cert_pem, &rsa_cert], &enc, &[]);
    assert!(r.status.success(), "{}", r.all_output());
    let keyring = env.pki.root();
    let info = |key: &str, b: &Path| {
        run(env
            .signer()
            .arg("info")
            .arg("--keyring")
            .arg(&keyring)
            .args(["--key", key])
            .arg(b))
    };
    let extract = |key: &str, b: &Path, out: &Path| {
        run(env
            .signer()
            .arg("extract")
            .arg("--keyring")
            .arg(&keyring)
            .args(["--key", key])
            .arg(b)
            .arg(out))
    };
    // the recipients decrypt
    assert!(info(&dev.key_uri, &enc).status.success());
    let x = env.path("x");
    assert!(
        extract(rsa_key.to_str().unwrap(), &enc, &x)
            .status
            .success()
    );
    content.assert_extracted(&x);
    // not a recipient: PEM and token key
    for key in [outsider.to_str().unwrap(), outsider_uri.as_str()] {
        let r = info(key, &enc);
        assert_eq!(r.status.code(), Some(1), "{}", r.all_output());
        r.says("not a recipient");
        let out = env.path("x-outsider");
        let r = extract(key, &enc, &out);
        assert_eq!(r.status.code(), Some(1));
        assert!(!out.exists());
        r.says("recipient");
    }
    fails(
        env.rauc()
            .arg("info")
            .arg(format!("--keyring={}", keyring.display()))
            .arg(format!("--key={}", outsider.display()))
            .arg(&enc),
    );
    // tampered envelope: the encrypted content, the wrapped key
    let p = parts(&enc);
    for (what, offset) in [
        ("content", p.payload_size + p.cms_size - 20),
        ("middle", p.payload_size + p.cms_size / 2),
    ] {
        let bad = env.path(&format!("tampered-{what}.raucb"));
        flip_copy(&enc, &bad, offset);
        for key in [dev.key_uri.as_str(), rsa_key.to_str().unwrap()] {
            let r = info(key, &bad);
            assert_eq!(r.status.code(), Some(1), "{what}: {}", r.all_output());
            let text = r.stderr.to_lowercase();
            assert!(
                ["damaged", "tampered", "signature verification failed"]
                    .iter()
                    .any(|n| text.contains(n)),
                "{what}: {}",
                r.stderr
            );
        }
        fails(
            env.rauc()
                .arg("info")
                .arg(format!("--keyring={}", keyring.display()))
                .arg(format!("--key={}", rsa_key.display()))
                .arg(&bad),
        );
    }
    // wrong PIN: clear, no PIN in the output, no output directory
    let out = env.path("x-wrong-pin");
    let r = run(env
        .signer_no_pin()
        .env("RAUC_PKCS11_PIN", WRONG_PIN)
        .arg("extract")
        .arg("--keyring")
        .arg(&keyring)
        .args(["--key", &dev.key_uri])
        .arg(&enc)
        .arg(&out));
    assert_eq!(r.status.code(), Some(1));
    r.says("CKR_PIN_INCORRECT").says("RAUC_PKCS11_PIN");
    assert!(!r.all_output().contains(WRONG_PIN) && !r.all_output().contains(common::PIN));
    assert!(!out.exists());
    // the unencrypted input was never modified
    assert_eq!(cms(&bundle).len() as u64, parts(&bundle).cms_size);
}

#[test]
fn the_64k_refusal_names_what_fits_compact_fits_and_the_limit_can_be_raised() {
    let env = Env::new();
    let (bundle, _) = crypt_bundle(&env);
    let many = env
        .pki
        .many_recipients("many", 400, openssl::nid::Nid::X9_62_PRIME256V1);
    let out = env.path("enc.raucb");
    let r = encrypt(&env, &bundle, &[&many], &out, &[]);
    refused(&env, &r, "65536", &out);
    r.says("400 recipients")
        .says("default layout")
        .says("compact layout")
        .says("--max-cms-size");
    eprintln!("refusal: {}", r.stderr.trim());
    // rauc 1.8 writes it and then cannot read it
    let rauc_out = env.path("rauc-enc.raucb");
    ok(env
        .rauc()
        .arg("encrypt")
        .arg(format!("--keyring={}", env.pki.root().display()))
        .arg(format!("--to={}", many.display()))
        .arg(&bundle)
        .arg(&rauc_out));
    fails(env.rauc().arg("info").arg("--no-verify").arg(&rauc_out)).says("exceeds 64KiB");

    let compact = env.path("compact.raucb");
    let r = encrypt(
        &env,
        &bundle,
        &[&many],
        &compact,
        &["--recipient-layout", "compact", "--recipient-id", "ski"],
    );
    assert!(r.status.success(), "{}", r.all_output());
    assert!(parts(&compact).cms_size <= 65536);

    let big = env.path("big.raucb");
    let r = encrypt(&env, &bundle, &[&many], &big, &["--max-cms-size", "200000"]);
    assert!(r.status.success(), "{}", r.all_output());
    let size = parts(&big).cms_size;
    assert!(size > 65536 && size <= 200000, "{size}");
    // our reader keeps rauc 1.8's limit by default
    fails(env.signer().arg("info").arg("--no-verify").arg(&big)).says("exceeds 64KiB");
}

#[test]
fn wrong_inputs_are_refused_like_rauc() {
    let env = Env::new();
    let (crypt, _) = crypt_bundle(&env);
    let id = env.token_identity("ec-verity", "ec:prime256v1", Profile::Smime, "inter");
    let verity = env.signer_bundle(&id, &env.content("content-v", "verity", 16), "v.raucb");
    let (to, _) = env
        .pki
        .file_leaf("dev", Alg::P256, Profile::Recipient, None);
    let keyring = format!("--keyring={}", env.pki.root().display());
    // only crypt bundles are encrypted
    let out = env.path("v-enc.raucb");
    let message = "Refused to encrypt input bundle that is not in 'crypt' format.";
    refused(
        &env,
        &encrypt(&env, &verity, &[&to], &out, &[]),
        message,
        &out,
    );
    fails(
        env.rauc()
            .arg("encrypt")
            .arg(&keyring)
            .arg(format!("--to={}", to.display()))
            .arg(&verity)
            .arg(env.path("rauc-v-enc.raucb")),
    )
    .says(message);
    // an encrypted bundle needs the key, for info and extract
    let enc = env.path("enc.raucb");
    assert!(encrypt(&env, &crypt, &[&to], &enc, &[]).status.success());
    let message = "Encrypted bundle detected, but no decryption key given";
    fails(env.signer().arg("info").arg(&keyring).arg(&enc)).says(message);
    fails(env.rauc().arg("info").arg(&keyring).arg(&enc)).says(message);
    let x = env.path("x");
    fails(env.signer().arg("extract").arg(&keyring).arg(&enc).arg(&x)).says(message);
    assert!(!x.exists());
    // and is not encrypted twice
    let twice = env.path("twice.raucb");
    refused(
        &env,
        &encrypt(&env, &enc, &[&to], &twice, &[]),
        "no decryption key given",
        &twice,
    );
}
