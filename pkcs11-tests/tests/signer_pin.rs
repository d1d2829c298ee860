//! No PIN appears in any output: `signer bundle` with a token key and the right or a wrong PIN,
//! given by a `pin-source` file or by `RAUC_PKCS11_PIN`, with and without `-d` (and with
//! everything traced); the wrong-PIN error is clear.

mod common;

use common::{Env, PIN, Profile, Run, WRONG_PIN, run};

#[derive(Debug, Clone, Copy)]
enum Source {
    File,
    Env,
}

fn attempt(
    env: &Env,
    id: &common::TokenIdentity,
    source: Source,
    pin: &str,
    debug: &[&str],
    n: usize,
) -> Run {
    let content = env.content(&format!("content-{n}"), "verity", 16);
    let out = env.path(&format!("b-{n}.raucb"));
    let mut cmd = env.signer_no_pin();
    let key = match source {
        Source::File => {
            let file = env.path(&format!("pin-{n}.txt"));
            std::fs::write(&file, format!("{pin}\n")).unwrap();
            id.key_uri_with_pin_source(&file)
        }
        Source::Env => {
            cmd.env("RAUC_PKCS11_PIN", pin);
            id.key_uri.clone()
        }
    };
    run(cmd
        .args(debug)
        .args(["bundle", "--cert", &id.cert_uri, "--key", &key])
        .arg("--keyring")
        .arg(env.pki.root())
        .arg("--intermediate")
        .arg(env.pki.inter())
        .arg(&content.dir)
        .arg(&out))
}

fn no_pin_in(r: &Run) {
    let all = r.all_output();
    for pin in [PIN, WRONG_PIN] {
        assert!(!all.contains(pin), "a PIN leaked in {}:\n{all}", r.command);
    }
}

fn matrix(debug: &[&str]) {
    let env = Env::new();
    let ec = env.token_identity("ec-sign", "ec:prime256v1", Profile::Smime, "inter");
    let rsa = env.token_identity("rsa-sign", "rsa:2048", Profile::Smime, "inter");
    let mut n = 0;
    for id in [&ec, &rsa] {
        for source in [Source::File, Source::Env] {
            n += 1;
            let good = attempt(&env, id, source, PIN, debug, n);
            assert!(good.status.success(), "{:?}: {}", source, good.all_output());
            no_pin_in(&good);
            n += 1;
            let bad = attempt(&env, id, source, WRONG_PIN, debug, n);
            assert!(
                !bad.status.success() && bad.status.code() == Some(1),
                "wrong PIN accepted: {}",
                bad.all_output()
            );
            no_pin_in(&bad);
            let text = bad.stderr.to_lowercase();
            assert!(
                text.contains("pin incorrect") || text.contains("ckr_pin_incorrect"),
                "unclear wrong-PIN error: {}",
                bad.stderr
            );
            let origin = match source {
                Source::File => "pin-source",
                Source::Env => "RAUC_PKCS11_PIN",
            };
            assert!(
                bad.stderr.contains(origin),
                "the error should name the PIN source: {}",
                bad.stderr
            );
            assert!(!env.path(&format!("b-{n}.raucb")).exists());
        }
    }
}

#[test]
fn no_pin_in_output_right_and_wrong_pin() {
    matrix(&[]);
}

#[test]
fn no_pin_in_debug_output_right_and_wrong_pin() {
    matrix(&["-d"]);
}

/// Everything our crates can log, at trace level, still holds no PIN.
#[test]
fn no_pin_in_trace_output() {
    let env = Env::new();
    let id = env.token_identity("ec-sign", "ec:prime256v1", Profile::Smime, "inter");
    for (n, pin) in [PIN, WRONG_PIN].into_iter().enumerate() {
        let content = env.content(&format!("content-{n}"), "crypt", 16);
        let r = run(env
            .signer_no_pin()
            .env("RAUC_PKCS11_PIN", pin)
            .env("SIGNER_LOG", "trace")
            .args(["-d", "bundle", "--cert", &id.cert_uri, "--key", &id.key_uri])
            .arg(&content.dir)
            .arg(env.path(&format!("t-{n}.raucb"))));
        assert_eq!(r.status.success(), pin == PIN, "{}", r.all_output());
        no_pin_in(&r);
    }
}

/// A missing PIN (no source, no terminal) is a clear error that says how to give one.
#[test]
fn missing_pin_says_how_to_give_one() {
    let env = Env::new();
    let id = env.token_identity("ec-sign", "ec:prime256v1", Profile::Smime, "inter");
    let content = env.content("content", "verity", 16);
    let r = run(env
        .signer_no_pin()
        .stdin(std::process::Stdio::null())
        .args(["bundle", "--cert", &id.cert_uri, "--key", &id.key_uri])
        .arg(&content.dir)
        .arg(env.path("b.raucb")));
    assert_eq!(r.status.code(), Some(1), "{}", r.all_output());
    r.says("RAUC_PKCS11_PIN").says("pin-source");
    no_pin_in(&r);
}
