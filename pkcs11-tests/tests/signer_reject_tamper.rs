//! Rejections of damaged bundles, by us and consistently by rauc 1.8: a flipped byte in the
//! payload, the hash tree, the CMS and the trailer; truncated files; a keyring that does not
//! hold the signer's root.

mod common;

use std::path::{Path, PathBuf};

use common::bundle_file::{flip_copy, parts, signed_manifest, truncate_copy, verity_params};
use common::{Env, Profile, Run, run};

/// What `signer` and `rauc` did with one bundle for one verb.
struct Verdict {
    ours: Run,
    rauc: Run,
}

impl Verdict {
    fn both_fail(&self) -> &Self {
        for (who, r) in [("signer", &self.ours), ("rauc", &self.rauc)] {
            assert!(
                !r.status.success() && r.status.code().is_some(),
                "{who} should have rejected: {}\n{}",
                r.command,
                r.all_output()
            );
        }
        self
    }

    fn both_pass(&self) -> &Self {
        for (who, r) in [("signer", &self.ours), ("rauc", &self.rauc)] {
            assert!(
                r.status.success(),
                "{who} should have accepted: {}\n{}",
                r.command,
                r.all_output()
            );
        }
        self
    }

    /// Our message contains one of `needles` (case-insensitive).
    fn ours_says(&self, needles: &[&str]) -> &Self {
        let errors: Vec<&str> = self
            .ours
            .stderr
            .lines()
            .filter(|l| l.starts_with("signer: error: "))
            .collect();
        assert_eq!(
            errors.len(),
            1,
            "one error line expected: {}",
            self.ours.stderr
        );
        let text = errors[0].to_lowercase();
        assert!(
            needles.iter().any(|n| text.contains(&n.to_lowercase())),
            "expected one of {needles:?} in: {}",
            self.ours.stderr
        );
        self
    }
}

fn info(env: &Env, bundle: &Path, keyring: &Path) -> Verdict {
    Verdict {
        ours: run(env
            .signer()
            .arg("info")
            .arg("--keyring")
            .arg(keyring)
            .arg(bundle)),
        rauc: run(env
            .rauc()
            .arg("info")
            .arg(format!("--keyring={}", keyring.display()))
            .arg(bundle)),
    }
}

fn extract(env: &Env, bundle: &Path, keyring: &Path) -> Verdict {
    let name = bundle.file_name().unwrap().to_string_lossy();
    let ours_dir = env.path(&format!("x-ours-{name}"));
    let rauc_dir = env.path(&format!("x-rauc-{name}"));
    let v = Verdict {
        ours: run(env
            .signer()
            .arg("extract")
            .arg("--keyring")
            .arg(keyring)
            .arg(bundle)
            .arg(&ours_dir)),
        rauc: run(env
            .rauc()
            .arg("extract")
            .arg(format!("--keyring={}", keyring.display()))
            .arg(bundle)
            .arg(&rauc_dir)),
    };
    if !v.ours.status.success() {
        assert!(
            !ours_dir.exists(),
            "failed extract left {}",
            ours_dir.display()
        );
    }
    v
}

fn made(env: &Env, format: &str) -> (PathBuf, common::Content) {
    let id = env.token_identity("ec-sign", "ec:prime256v1", Profile::Smime, "inter");
    let content = env.content(&format!("content-{format}"), format, 100);
    let bundle = env.signer_bundle(&id, &content, &format!("good-{format}.raucb"));
    (bundle, content)
}

fn flipped(env: &Env, bundle: &Path, what: &str, offset: u64) -> PathBuf {
    let out = env.path(&format!("{what}.raucb"));
    flip_copy(bundle, &out, offset);
    out
}

fn tampered_payload_and_tree(format: &str) {
    let env = Env::new();
    let (good, _) = made(&env, format);
    let root = env.pki.root();
    info(&env, &good, &root).both_pass();
    extract(&env, &good, &root).both_pass();
    let p = parts(&good);
    let (_, _, tree) = verity_params(&signed_manifest(&good, &env.dir));
    let data = p.payload_size - tree;
    for (what, offset) in [
        ("payload-start", 0),
        ("payload-middle", data / 2 + 17),
        ("payload-last", data - 1),
        ("tree-top", data + 3),
        ("tree-leaf", p.payload_size - 4096 + 40),
        ("tree-spare", p.payload_size - 8),
    ] {
        let bad = flipped(&env, &good, &format!("{format}-{what}"), offset);
        // like rauc 1.8, info checks the signature only (the payload is checked by dm-verity
        // at install time and by extract in user space)
        info(&env, &bad, &root).both_pass();
        extract(&env, &bad, &root)
            .both_fail()
            .ours_says(&["verity", "hash", "corrupt"]);
    }
}

#[test]
fn verity_flipped_payload_and_tree_bytes_are_rejected() {
    tampered_payload_and_tree("verity");
}

#[test]
fn crypt_flipped_payload_and_tree_bytes_are_rejected() {
    tampered_payload_and_tree("crypt");
}

#[test]
fn flipped_cms_and_trailer_bytes_are_rejected() {
    let env = Env::new();
    let (good, _) = made(&env, "verity");
    let root = env.pki.root();
    let p = parts(&good);
    let cms = p.payload_size;
    for (what, offset) in [
        ("cms-first", cms),
        ("cms-manifest", cms + 80),
        ("cms-middle", cms + p.cms_size / 2),
        ("cms-signature", cms + p.cms_size - 3),
        ("trailer-high", p.file_size - 8),
        ("trailer-low", p.file_size - 1),
    ] {
        let bad = flipped(&env, &good, what, offset);
        info(&env, &bad, &root).both_fail().ours_says(&[
            "signature",
            "cms",
            "der",
            "size",
            "exceeds",
            "manifest",
        ]);
        extract(&env, &bad, &root).both_fail();
    }
}

#[test]
fn truncated_bundles_are_rejected() {
    let env = Env::new();
    let (good, _) = made(&env, "crypt");
    let root = env.pki.root();
    let p = parts(&good);
    for (what, len) in [
        ("empty", 0),
        ("seven", 7),
        ("one-block", 4096),
        ("half-payload", p.payload_size / 2),
        ("payload-only", p.payload_size),
        ("half-cms", p.payload_size + p.cms_size / 2),
        ("no-trailer", p.file_size - 8),
        ("short-trailer", p.file_size - 1),
    ] {
        let bad = env.path(&format!("cut-{what}.raucb"));
        truncate_copy(&good, &bad, len);
        info(&env, &bad, &root).both_fail().ours_says(&[
            "size",
            "exceeds",
            "too small",
            "short",
            "trailer",
            "signature",
            "cms",
        ]);
        extract(&env, &bad, &root).both_fail();
    }
}

#[test]
fn wrong_keyring_is_rejected() {
    let env = Env::new();
    let (good, _) = made(&env, "verity");
    let other = env.pki.cert("other");
    info(&env, &good, &other)
        .both_fail()
        .ours_says(&["unable to get local issuer certificate"]);
    extract(&env, &good, &other).both_fail();
    // the intermediate alone is no trust anchor without allow-partial-chain
    info(&env, &good, &env.pki.inter()).both_fail();
}
