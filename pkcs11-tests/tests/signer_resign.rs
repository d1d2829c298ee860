//! `signer resign` (payload kept byte for byte; rauc 1.8 accepts the result),
//! `signer replace-signature` with a CMS made by `openssl cms -sign` over the extracted manifest
//! (the external signing room flow), `signer extract-signature`, and `--conf` with a rauc
//! system.conf supplying the keyring and check-purpose.

mod common;

use std::path::Path;

use common::bundle_file::{cms, payload, signed_manifest};
use common::{Alg, Env, Profile, fails, ok};

fn rauc_info_and_extract(
    env: &Env,
    bundle: &Path,
    content: &common::Content,
    key: &[&str],
) -> String {
    let keyring = format!("--keyring={}", env.pki.root().display());
    let text = ok(env.rauc().arg("info").arg(&keyring).args(key).arg(bundle)).stdout_text();
    let out = env.path(&format!(
        "x-{}",
        bundle.file_name().unwrap().to_string_lossy()
    ));
    ok(env
        .rauc()
        .arg("extract")
        .arg(&keyring)
        .args(key)
        .arg(bundle)
        .arg(&out));
    content.assert_extracted(&out);
    text
}

#[test]
fn resign_keeps_the_payload_and_passes_rauc() {
    let env = Env::new();
    let old = env.token_identity("ec-old", "ec:prime256v1", Profile::Smime, "inter");
    let new = env.token_identity("rsa-new", "rsa:2048", Profile::Smime, "inter");
    for format in ["verity", "crypt", "plain"] {
        let content = env.content(&format!("content-{format}"), format, 64);
        let input = env.path(&format!("{format}.raucb"));
        let mut cmd = env.signer();
        cmd.args(["bundle", "--cert", &old.cert_uri, "--key", &old.key_uri])
            .arg("--keyring")
            .arg(env.pki.root())
            .arg("--intermediate")
            .arg(env.pki.inter());
        if format == "plain" {
            cmd.arg("--dangerous-allow-plain");
        }
        ok(cmd.arg(&content.dir).arg(&input));
        let output = env.path(&format!("{format}-resigned.raucb"));
        ok(env
            .signer()
            .args(["resign", "--cert", &new.cert_uri, "--key", &new.key_uri])
            .arg("--keyring")
            .arg(env.pki.root())
            .arg("--intermediate")
            .arg(env.pki.inter())
            .arg(&input)
            .arg(&output))
        .says("Verified signature by 'O = Test, CN = Test rsa-new'");
        assert!(
            payload(&input) == payload(&output),
            "{format}: payload changed"
        );
        if format != "plain" {
            assert_eq!(
                signed_manifest(&input, &env.dir),
                signed_manifest(&output, &env.dir)
            );
        }
        let text = rauc_info_and_extract(&env, &output, &content, &[]);
        assert!(
            text.contains(" 0 Subject: O = Test, CN = Test rsa-new"),
            "{text}"
        );
    }
}

#[test]
fn resign_of_an_encrypted_bundle_decrypts_first() {
    let env = Env::new();
    let old = env.token_identity("ec-old", "ec:prime256v1", Profile::Smime, "inter");
    let dev = env.token_identity("dev", "ec:prime256v1", Profile::Recipient, "inter");
    let content = env.content("content", "crypt", 64);
    let plain = env.signer_bundle(&old, &content, "crypt.raucb");
    let enc = env.path("enc.raucb");
    ok(env
        .signer()
        .arg("encrypt")
        .arg("--to")
        .arg(&dev.cert_pem)
        .arg("--keyring")
        .arg(env.pki.root())
        .arg(&plain)
        .arg(&enc));
    let out = env.path("resigned.raucb");
    ok(env
        .signer()
        .args(["resign", "--cert", &old.cert_uri, "--key", &old.key_uri])
        .args(["--decryption-key", &dev.key_uri])
        .arg("--keyring")
        .arg(env.pki.root())
        .arg("--intermediate")
        .arg(env.pki.inter())
        .arg(&enc)
        .arg(&out))
    .says("signer encrypt");
    assert!(payload(&enc) == payload(&out));
    let text = rauc_info_and_extract(&env, &out, &content, &[]);
    assert!(text.contains("[unencrypted CMS]"), "{text}");
}

#[test]
fn replace_signature_with_an_openssl_cms_from_the_signing_room() {
    let env = Env::new();
    let build_id = env.token_identity("ec-build", "ec:prime256v1", Profile::Smime, "inter");
    env.pki
        .file_leaf("room", Alg::Rsa3072, Profile::Smime, None);
    let content = env.content("content", "verity", 64);
    let input = env.signer_bundle(&build_id, &content, "in.raucb");

    // the build host hands out the signed manifest ...
    let sig = env.path("in.sig");
    ok(env
        .signer()
        .arg("extract-signature")
        .arg("--keyring")
        .arg(env.pki.root())
        .arg(&input)
        .arg(&sig));
    let manifest = env.path("manifest.raucm");
    ok(env
        .command("openssl")
        .args([
            "cms",
            "-verify",
            "-noverify",
            "-binary",
            "-inform",
            "DER",
            "-in",
        ])
        .arg(&sig)
        .arg("-out")
        .arg(&manifest));
    // ... the signing room signs it with openssl ...
    let room_sig = env.path("room.der");
    env.openssl_cms_sign(&manifest, "room", &room_sig);
    // ... and the signature goes back in
    let out = env.path("out.raucb");
    ok(env
        .signer()
        .arg("replace-signature")
        .arg("--keyring")
        .arg(env.pki.root())
        .arg(&input)
        .arg(&room_sig)
        .arg(&out))
    .says("Verified signature by 'O = Test, CN = Test room'");
    assert!(payload(&input) == payload(&out));
    assert_eq!(cms(&out), std::fs::read(&room_sig).unwrap());
    let text = rauc_info_and_extract(&env, &out, &content, &[]);
    assert!(
        text.contains(" 0 Subject: O = Test, CN = Test room"),
        "{text}"
    );
    // rauc 1.8 replace-signature writes the same bytes
    let rauc_out = env.path("rauc-out.raucb");
    ok(env
        .rauc()
        .arg(format!("--keyring={}", env.pki.root().display()))
        .arg("replace-signature")
        .arg(&input)
        .arg(&room_sig)
        .arg(&rauc_out));
    assert!(std::fs::read(&rauc_out).unwrap() == std::fs::read(&out).unwrap());

    // a signature over another bundle's manifest does not describe this payload
    let other_content = env.content("content-other", "verity", 64);
    let other = env.signer_bundle(&build_id, &other_content, "other.raucb");
    let other_sig = env.path("other.sig");
    std::fs::write(&other_sig, cms(&other)).unwrap();
    let r = fails(
        env.signer()
            .arg("replace-signature")
            .arg("--keyring")
            .arg(env.pki.root())
            .arg(&input)
            .arg(&other_sig)
            .arg(env.path("mismatch.raucb")),
    );
    assert!(r.stderr.to_lowercase().contains("verity"), "{}", r.stderr);
    assert!(!env.path("mismatch.raucb").exists());
}

#[test]
fn extract_signature_matches_rauc() {
    let env = Env::new();
    let id = env.token_identity("ec-sign", "ec:prime256v1", Profile::Smime, "inter");
    let (dev_cert, dev_key) = env
        .pki
        .file_leaf("dev", Alg::Rsa2048, Profile::Recipient, None);
    let content = env.content("content", "crypt", 64);
    let plain = env.signer_bundle(&id, &content, "crypt.raucb");
    let enc = env.path("enc.raucb");
    ok(env
        .signer()
        .arg("encrypt")
        .arg("--to")
        .arg(&dev_cert)
        .arg("--keyring")
        .arg(env.pki.root())
        .arg(&plain)
        .arg(&enc));
    let key = format!("--key={}", dev_key.display());
    for (bundle, extra) in [(&plain, vec![]), (&enc, vec![key.as_str()])] {
        let name = bundle.file_name().unwrap().to_string_lossy().to_string();
        let ours = env.path(&format!("{name}.ours.der"));
        let theirs = env.path(&format!("{name}.rauc.der"));
        ok(env
            .signer()
            .arg("extract-signature")
            .arg("--keyring")
            .arg(env.pki.root())
            .args(&extra)
            .arg(bundle)
            .arg(&ours));
        ok(env
            .rauc()
            .arg(format!("--keyring={}", env.pki.root().display()))
            .arg("extract-signature")
            .args(&extra)
            .arg(bundle)
            .arg(&theirs));
        assert_eq!(
            std::fs::read(&ours).unwrap(),
            std::fs::read(&theirs).unwrap()
        );
        // the decrypted SignedData of the encrypted bundle is the unencrypted bundle's CMS
        assert_eq!(std::fs::read(&ours).unwrap(), cms(&plain));
    }
}

#[test]
fn conf_supplies_keyring_and_check_purpose() {
    let env = Env::new();
    let id = env.token_identity("cs-sign", "ec:prime256v1", Profile::CodeSign, "inter");
    let conf = env.system_conf(
        "system.conf",
        &env.pki.root(),
        &["check-purpose=codesign"],
        None,
    );
    let content = env.content("content", "verity", 64);
    let bundle = env.path("b.raucb");
    let conf_arg = format!("--conf={}", conf.display());
    ok(env
        .signer()
        .arg(&conf_arg)
        .args(["bundle", "--cert", &id.cert_uri, "--key", &id.key_uri])
        .arg("--intermediate")
        .arg(env.pki.inter())
        .arg(&content.dir)
        .arg(&bundle))
    .says("Verified signature by 'O = Test, CN = Test cs-sign'");
    let ours = ok(env.signer().arg(&conf_arg).arg("info").arg(&bundle));
    let theirs = ok(env.rauc().arg(&conf_arg).arg("info").arg(&bundle));
    assert_eq!(ours.stdout_text(), theirs.stdout_text());
    let x = env.path("x");
    ok(env
        .signer()
        .args(["extract", "-c"])
        .arg(&conf)
        .arg(&bundle)
        .arg(&x));
    content.assert_extracted(&x);
    // without the conf there is no keyring; with only the keyring the purpose fails
    fails(env.signer().arg("info").arg(&bundle)).says("No keyring");
    fails(
        env.signer()
            .arg("info")
            .arg("--keyring")
            .arg(env.pki.root())
            .arg(&bundle),
    )
    .says("unsuitable certificate purpose");
    // --keyring overrides the conf's path, as in rauc
    fails(
        env.signer()
            .arg(&conf_arg)
            .arg("info")
            .arg("--keyring")
            .arg(env.pki.cert("other"))
            .arg(&bundle),
    )
    .says("unable to get local issuer certificate");
    fails(
        env.rauc()
            .arg(&conf_arg)
            .arg(format!("--keyring={}", env.pki.cert("other").display()))
            .arg("info")
            .arg(&bundle),
    );
    // a conf that rauc 1.8 rejects is rejected by us too
    let bad = env.path("bad.conf");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&conf).unwrap() + "\n[rollout]\nx=1\n",
    )
    .unwrap();
    let bad_arg = format!("--conf={}", bad.display());
    fails(env.signer().arg(&bad_arg).arg("info").arg(&bundle)).says("rollout");
    fails(env.rauc().arg(&bad_arg).arg("info").arg(&bundle));
}
