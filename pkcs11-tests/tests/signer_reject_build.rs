//! What `signer bundle` refuses to build, consistently with `rauc bundle` 1.8: manifests with
//! unknown keys or groups; the `plain` format without `--dangerous-allow-plain`. And outputs are
//! never half-written: after a failure there is no file and no temporary, and nothing is ever
//! overwritten.

mod common;

use std::path::Path;

use common::{Env, Profile, TokenIdentity, fails, ok, run};

fn build(env: &Env, id: &TokenIdentity, content: &Path, out: &Path, extra: &[&str]) -> common::Run {
    run(env
        .signer()
        .args(["bundle", "--cert", &id.cert_uri, "--key", &id.key_uri])
        .arg("--keyring")
        .arg(env.pki.root())
        .arg("--intermediate")
        .arg(env.pki.inter())
        .args(extra)
        .arg(content)
        .arg(out))
}

fn rauc_build(env: &Env, content: &Path, out: &Path) -> common::Run {
    env.pki
        .file_leaf("rauc-signer", common::Alg::P256, Profile::Smime, None);
    run(env
        .rauc()
        .arg("bundle")
        .arg(format!("--cert={}", env.pki.cert("rauc-signer").display()))
        .arg(format!("--key={}", env.pki.key("rauc-signer").display()))
        .arg(content)
        .arg(out))
}

#[test]
fn manifests_with_unknown_keys_or_groups_are_refused() {
    let env = Env::new();
    let id = env.token_identity("ec-sign", "ec:prime256v1", Profile::Smime, "inter");
    let content = env.content("content", "verity", 32);
    let manifest = std::fs::read_to_string(content.dir.join("manifest.raucm")).unwrap();
    for (what, text, message) in [
        (
            "key-update",
            manifest.replace("[update]\n", "[update]\nchannel=beta\n"),
            "Invalid key 'channel' in group '[update]'",
        ),
        (
            "key-image",
            manifest.replace("filename=rootfs.img\n", "filename=rootfs.img\ntype=raw\n"),
            "uses 'type' in group '[image.rootfs]', which rauc 1.8 rejects",
        ),
        (
            "group",
            manifest.clone() + "\n[release]\nwave=1\n",
            "Invalid group '[release]'",
        ),
        (
            "min-rauc-version",
            manifest.replace("[update]\n", "[update]\nmin-rauc-version=1.14\n"),
            "'min-rauc-version' in group '[update]'",
        ),
    ] {
        std::fs::write(content.dir.join("manifest.raucm"), &text).unwrap();
        let before = env.listing();
        let out = env.path(&format!("{what}.raucb"));
        let r = build(&env, &id, &content.dir, &out, &[]);
        assert!(!r.status.success(), "{what}: {}", r.all_output());
        r.says(message);
        assert_eq!(env.listing(), before, "{what}: something was left behind");
        // rauc 1.8 refuses the same manifests
        let rauc_content = content.copy_to(&env.path(&format!("rauc-{what}")));
        let rr = rauc_build(
            &env,
            &rauc_content.dir,
            &env.path(&format!("rauc-{what}.raucb")),
        );
        assert!(
            !rr.status.success(),
            "rauc accepted {what}: {}",
            rr.all_output()
        );
    }
    // `[meta.*]` is fine for rauc 1.8 (ignored) and for us; `[rollout]` (rauc ≥ 1.14) is
    // ignored and not written, as latest rauc does, so rauc 1.8 accepts the bundle
    std::fs::write(
        content.dir.join("manifest.raucm"),
        manifest + "\n[meta.release]\nchannel=beta\n\n[rollout]\nwave=1\n",
    )
    .unwrap();
    let out = env.path("meta.raucb");
    let r = build(&env, &id, &content.dir, &out, &[]);
    assert!(r.status.success(), "{}", r.all_output());
    let signed = common::bundle_file::signed_manifest(&out, &env.dir);
    assert!(!signed.contains("rollout"), "{signed}");
    ok(env
        .rauc()
        .arg("info")
        .arg(format!("--keyring={}", env.pki.root().display()))
        .arg(&out));
}

#[test]
fn plain_needs_dangerous_allow_plain() {
    let env = Env::new();
    let id = env.token_identity("rsa-sign", "rsa:2048", Profile::Smime, "inter");
    let content = env.content("content", "plain", 32);
    let out = env.path("plain.raucb");
    let before = env.listing();
    let r = build(&env, &id, &content.dir, &out, &[]);
    assert!(!r.status.success());
    r.says("refusing to create a 'plain' bundle")
        .says("--dangerous-allow-plain");
    assert_eq!(env.listing(), before);
    // explicit format=plain: same refusal
    let manifest = std::fs::read_to_string(content.dir.join("manifest.raucm")).unwrap();
    std::fs::write(
        content.dir.join("manifest.raucm"),
        manifest.replace(
            "\n\n[image.rootfs]",
            "\n\n[bundle]\nformat=plain\n\n[image.rootfs]",
        ),
    )
    .unwrap();
    build(&env, &id, &content.dir, &out, &[]).says("asks for format=plain");
    assert!(!out.exists());
    let r = build(&env, &id, &content.dir, &out, &["--dangerous-allow-plain"]);
    assert!(r.status.success(), "{}", r.all_output());
    ok(env
        .rauc()
        .arg("info")
        .arg(format!("--keyring={}", env.pki.root().display()))
        .arg(&out))
    .says("Bundle Format: \tplain");
    let x = env.path("x");
    ok(env
        .rauc()
        .arg("extract")
        .arg(format!("--keyring={}", env.pki.root().display()))
        .arg(&out)
        .arg(&x));
    content.assert_extracted(&x);
}

#[test]
fn outputs_are_never_half_written_nor_overwritten() {
    let env = Env::new();
    let id = env.token_identity("ec-sign", "ec:prime256v1", Profile::Smime, "inter");
    let content = env.content("content", "crypt", 64);
    let out = env.path("b.raucb");
    let before = env.listing();
    // mksquashfs fails on a bad argument: nothing left
    let r = build(
        &env,
        &id,
        &content.dir,
        &out,
        &["--mksquashfs-args", "-no-such-option"],
    );
    assert!(!r.status.success());
    r.says("mksquashfs");
    assert_eq!(env.listing(), before);
    // the post-sign check fails (keyring of another root): nothing left
    let r = run(env
        .signer()
        .args(["bundle", "--cert", &id.cert_uri, "--key", &id.key_uri])
        .arg("--keyring")
        .arg(env.pki.cert("other"))
        .arg(&content.dir)
        .arg(&out));
    assert!(!r.status.success());
    r.says("unable to get local issuer certificate");
    assert_eq!(env.listing(), before);
    // the output inside the content directory is refused
    build(&env, &id, &content.dir, &content.dir.join("in.raucb"), &[])
        .says("must not be inside the content directory");
    // success, then never overwritten: by bundle, resign, encrypt, extract-signature
    assert!(build(&env, &id, &content.dir, &out, &[]).status.success());
    let original = std::fs::read(&out).unwrap();
    build(&env, &id, &content.dir, &out, &[]).says("already exists");
    let keyring = env.pki.root();
    let other = env.path("other.raucb");
    std::fs::write(&other, b"precious").unwrap();
    for args in [
        vec!["resign", "--cert", &id.cert_uri, "--key", &id.key_uri],
        vec!["extract-signature"],
    ] {
        let r = fails(
            env.signer()
                .args(&args)
                .arg("--keyring")
                .arg(&keyring)
                .arg(&out)
                .arg(&other),
        );
        r.says("already exists");
    }
    let (to, _) = env
        .pki
        .file_leaf("dev", common::Alg::P256, Profile::Recipient, None);
    fails(
        env.signer()
            .arg("encrypt")
            .arg("--to")
            .arg(&to)
            .arg("--keyring")
            .arg(&keyring)
            .arg(&out)
            .arg(&other),
    )
    .says("already exists");
    assert_eq!(std::fs::read(&other).unwrap(), b"precious");
    assert_eq!(std::fs::read(&out).unwrap(), original);
    // extract refuses a non-empty directory and leaves it alone
    let dir = env.path("nonempty");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("keep"), b"x").unwrap();
    fails(
        env.signer()
            .arg("extract")
            .arg("--keyring")
            .arg(&keyring)
            .arg(&out)
            .arg(&dir),
    )
    .says("already exists");
    assert_eq!(common::listing(&dir), vec!["keep".to_string()]);
    let mut expected = before.clone();
    expected.extend(["b.raucb", "nonempty", "other.raucb"].map(String::from));
    expected.sort();
    assert_eq!(env.listing(), expected, "no temporaries left");
}
