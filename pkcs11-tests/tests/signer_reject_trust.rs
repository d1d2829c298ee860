//! Trust decisions, by us and consistently by rauc 1.8: a revoked signer (CRL in the keyring and
//! check-crl), an expired signer (and `--no-check-time` / `use-bundle-signing-time`), a
//! codeSigning-only signer without and with `check-purpose=codesign`, and two signers.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bundle::cms::signed::{self, Content};
use common::bundle_file::{signed_manifest, with_cms};
use common::{Alg, Env, Profile, Run, fails, ok, run};

/// `signer bundle` with a PEM leaf of the PKI, the intermediate embedded and no keyring (so no
/// post-sign check decides anything).
fn bundle_with_leaf(env: &Env, leaf: &str, out: &str) -> PathBuf {
    let content = env.content(&format!("content-{out}"), "verity", 32);
    let out = env.path(out);
    ok(env
        .signer()
        .arg("bundle")
        .arg("--cert")
        .arg(env.pki.cert(leaf))
        .arg("--key")
        .arg(env.pki.key(leaf))
        .arg("--intermediate")
        .arg(env.pki.inter())
        .arg(&content.dir)
        .arg(&out))
    .says("skipping signature verification");
    out
}

fn signer_info(env: &Env, bundle: &Path, keyring: &Path, flags: &[&str]) -> Run {
    run(env
        .signer()
        .arg("info")
        .arg("--keyring")
        .arg(keyring)
        .args(flags)
        .arg(bundle))
}

/// `rauc info` with a system.conf whose `[keyring]` has `path=keyring` and `settings`.
fn rauc_info(env: &Env, bundle: &Path, keyring: &Path, settings: &[&str], flags: &[&str]) -> Run {
    let conf = env.system_conf("rauc-info.conf", keyring, settings, None);
    run(env
        .rauc()
        .arg(format!("--conf={}", conf.display()))
        .arg("info")
        .args(flags)
        .arg(bundle))
}

fn assert_pass(r: &Run) {
    assert!(r.status.success(), "{}\n{}", r.command, r.all_output());
}

fn assert_fail(r: &Run, needle: &str) {
    assert!(
        !r.status.success() && r.status.code().is_some(),
        "{} should fail\n{}",
        r.command,
        r.all_output()
    );
    r.says(needle);
}

#[test]
fn revoked_signer_is_rejected_with_check_crl() {
    let env = Env::new();
    env.pki.file_leaf("good", Alg::P256, Profile::Smime, None);
    env.pki
        .file_leaf("revoked", Alg::P256, Profile::Smime, None);
    env.pki.revoke("revoked");
    let keyring = env.pki.crl_keyring();
    let good = bundle_with_leaf(&env, "good", "good.raucb");
    let revoked = bundle_with_leaf(&env, "revoked", "revoked.raucb");

    assert_fail(
        &signer_info(&env, &revoked, &keyring, &["--check-crl"]),
        "certificate revoked",
    );
    assert_fail(
        &rauc_info(&env, &revoked, &keyring, &["check-crl=true"], &[]),
        "certificate revoked",
    );
    // the CRLs themselves are fine: a valid signer passes with CRL checking
    assert_pass(&signer_info(&env, &good, &keyring, &["--check-crl"]));
    assert_pass(&rauc_info(&env, &good, &keyring, &["check-crl=true"], &[]));
    // without check-crl both accept (rauc warns about the unused CRL)
    assert_pass(&signer_info(&env, &revoked, &keyring, &[]));
    rauc_info(&env, &revoked, &keyring, &[], &[]).says("Detected CRL but CRL checking is disabled");

    // and a revoked key does not get a bundle out of `signer bundle` with CRL checking
    let content = env.content("content-refused", "verity", 32);
    let r = fails(
        env.signer()
            .arg("bundle")
            .arg("--cert")
            .arg(env.pki.cert("revoked"))
            .arg("--key")
            .arg(env.pki.key("revoked"))
            .arg("--intermediate")
            .arg(env.pki.inter())
            .arg("--keyring")
            .arg(&keyring)
            .arg("--check-crl")
            .arg(&content.dir)
            .arg(env.path("refused.raucb")),
    );
    r.says("certificate revoked");
    assert!(
        !env.listing()
            .iter()
            .any(|n| n.starts_with(".refused") || n == "refused.raucb")
    );
}

/// Signs `bundle`'s manifest again with `leaf`, dated `when`, through the library, and puts
/// the CMS in with `signer replace-signature --no-verify` (no keyring: nothing checked).
fn redated(env: &Env, bundle: &Path, leaf: &str, when: SystemTime, out: &str) -> PathBuf {
    let manifest = signed_manifest(bundle, &env.dir);
    let id = signer::identity::SigningIdentity::open(
        env.pki.cert(leaf).to_str().unwrap(),
        env.pki.key(leaf).to_str().unwrap(),
        &[env.pki.inter().to_str().unwrap().to_string()],
        &keymgr::OpenOptions::default(),
    )
    .unwrap();
    let cms = signed::sign(
        Content::Inline(manifest.as_bytes()),
        id.key.as_ref(),
        id.certs(),
        when,
    )
    .unwrap();
    let sig = env.path(&format!("{out}.der"));
    std::fs::write(&sig, cms).unwrap();
    let out = env.path(out);
    ok(env
        .signer()
        .args(["replace-signature", "--no-verify"])
        .arg(bundle)
        .arg(&sig)
        .arg(&out));
    out
}

#[test]
fn expired_signer_is_rejected_unless_time_checks_say_otherwise() {
    let env = Env::new();
    env.pki.file_leaf(
        "expired",
        Alg::P256,
        Profile::Smime,
        Some(("20200101000000Z", "20210101000000Z")),
    );
    let root = env.pki.root();
    let now = bundle_with_leaf(&env, "expired", "expired-now.raucb");
    assert_fail(
        &signer_info(&env, &now, &root, &[]),
        "certificate has expired",
    );
    assert_fail(
        &rauc_info(&env, &now, &root, &[], &[]),
        "certificate has expired",
    );
    // --no-check-time accepts it, in both
    assert_pass(&signer_info(&env, &now, &root, &["--no-check-time"]));
    assert_pass(&rauc_info(&env, &now, &root, &[], &["--no-check-time"]));
    // signed today, checked at the signing time: still expired
    assert_fail(
        &signer_info(&env, &now, &root, &["--use-bundle-signing-time"]),
        "certificate has expired",
    );
    assert_fail(
        &rauc_info(&env, &now, &root, &["use-bundle-signing-time=true"], &[]),
        "certificate has expired",
    );
    // signed while the certificate was valid (2020-07-01): accepted at the signing time only
    let july_2020 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_593_561_600);
    let old = redated(&env, &now, "expired", july_2020, "expired-2020.raucb");
    assert_pass(&signer_info(
        &env,
        &old,
        &root,
        &["--use-bundle-signing-time"],
    ));
    assert_pass(&rauc_info(
        &env,
        &old,
        &root,
        &["use-bundle-signing-time=true"],
        &[],
    ));
    assert_fail(
        &signer_info(&env, &old, &root, &[]),
        "certificate has expired",
    );
    assert_fail(
        &rauc_info(&env, &old, &root, &[], &[]),
        "certificate has expired",
    );

    // the way out: resign with a valid key, without verifying the expired input
    env.pki.file_leaf("fresh", Alg::P256, Profile::Smime, None);
    let resign = |out: &str, flags: &[&str]| {
        run(env
            .signer()
            .arg("resign")
            .args(flags)
            .arg("--cert")
            .arg(env.pki.cert("fresh"))
            .arg("--key")
            .arg(env.pki.key("fresh"))
            .arg("--intermediate")
            .arg(env.pki.inter())
            .arg("--keyring")
            .arg(&root)
            .arg(&now)
            .arg(env.path(out)))
    };
    assert_fail(&resign("refused.raucb", &[]), "certificate has expired");
    assert!(!env.path("refused.raucb").exists());
    assert_pass(&resign("fresh.raucb", &["--no-verify"]));
    assert_pass(&rauc_info(&env, &env.path("fresh.raucb"), &root, &[], &[]));
}

#[test]
fn codesigning_only_signer_needs_check_purpose_codesign() {
    let env = Env::new();
    env.pki
        .file_leaf("codesign", Alg::P256, Profile::CodeSign, None);
    let root = env.pki.root();
    let content = env.content("content", "verity", 32);
    let build = |out: &str, purpose: &[&str]| {
        run(env
            .signer()
            .arg("bundle")
            .arg("--cert")
            .arg(env.pki.cert("codesign"))
            .arg("--key")
            .arg(env.pki.key("codesign"))
            .arg("--keyring")
            .arg(&root)
            .arg("--intermediate")
            .arg(env.pki.inter())
            .args(purpose)
            .arg(&content.dir)
            .arg(env.path(out)))
    };
    // like rauc bundle: the post-sign check applies smimesign and refuses
    assert_fail(
        &build("refused.raucb", &[]),
        "unsuitable certificate purpose",
    );
    let rauc_content = content.copy_to(&env.path("content-rauc"));
    let rauc = run(env
        .rauc()
        .arg("bundle")
        .arg(format!("--cert={}", env.pki.cert("codesign").display()))
        .arg(format!("--key={}", env.pki.key("codesign").display()))
        .arg(format!("--keyring={}", root.display()))
        .arg(format!("--intermediate={}", env.pki.inter().display()))
        .arg(&rauc_content.dir)
        .arg(env.path("rauc-refused.raucb")));
    assert_fail(&rauc, "unsuitable certificate purpose");
    assert!(!env.path("refused.raucb").exists());

    assert_pass(&build("codesign.raucb", &["--check-purpose", "codesign"]));
    let bundle = env.path("codesign.raucb");
    assert_fail(
        &signer_info(&env, &bundle, &root, &[]),
        "unsuitable certificate purpose",
    );
    assert_fail(
        &rauc_info(&env, &bundle, &root, &[], &[]),
        "unsuitable certificate purpose",
    );
    assert_pass(&signer_info(
        &env,
        &bundle,
        &root,
        &["--check-purpose", "codesign"],
    ));
    assert_pass(&rauc_info(
        &env,
        &bundle,
        &root,
        &["check-purpose=codesign"],
        &[],
    ));
}

#[test]
fn two_signers_are_rejected() {
    let env = Env::new();
    env.pki.file_leaf("a", Alg::P256, Profile::Smime, None);
    env.pki.file_leaf("b", Alg::Rsa2048, Profile::Smime, None);
    let root = env.pki.root();
    let good = bundle_with_leaf(&env, "a", "good.raucb");
    let manifest = env.path("manifest.raucm");
    std::fs::write(&manifest, signed_manifest(&good, &env.dir)).unwrap();
    let one = env.path("one.der");
    env.openssl_cms_sign(&manifest, "a", &one);
    let two = env.path("two.der");
    ok(env
        .command("openssl")
        .args([
            "cms",
            "-resign",
            "-binary",
            "-nosmimecap",
            "-inform",
            "DER",
            "-outform",
            "DER",
        ])
        .arg("-in")
        .arg(&one)
        .arg("-signer")
        .arg(env.pki.cert("b"))
        .arg("-inkey")
        .arg(env.pki.key("b"))
        .arg("-out")
        .arg(&two));

    // one openssl signer: fine for both
    let single = env.path("single.raucb");
    with_cms(&good, &std::fs::read(&one).unwrap(), &single);
    assert_pass(&signer_info(&env, &single, &root, &[]));
    assert_pass(&rauc_info(&env, &single, &root, &[], &[]));

    // two signers, put in by hand and with replace-signature --no-verify
    let by_hand = env.path("two-by-hand.raucb");
    with_cms(&good, &std::fs::read(&two).unwrap(), &by_hand);
    let replaced = env.path("two-replaced.raucb");
    ok(env
        .signer()
        .args(["replace-signature", "--no-verify"])
        .arg(&good)
        .arg(&two)
        .arg(&replaced));
    assert_eq!(
        std::fs::read(&by_hand).unwrap(),
        std::fs::read(&replaced).unwrap()
    );
    assert_fail(
        &signer_info(&env, &by_hand, &root, &[]),
        "Unsupported number of signers: 2",
    );
    assert_fail(
        &rauc_info(&env, &by_hand, &root, &[], &[]),
        "Unsupported number of signers: 2",
    );
    // replace-signature with a keyring refuses to write such a bundle
    let r = fails(
        env.signer()
            .arg("replace-signature")
            .arg("--keyring")
            .arg(&root)
            .arg(&good)
            .arg(&two)
            .arg(env.path("two-checked.raucb")),
    );
    r.says("Unsupported number of signers: 2");
    assert!(!env.path("two-checked.raucb").exists());
}
