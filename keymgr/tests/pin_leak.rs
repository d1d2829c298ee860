//! The PIN never appears in log output (captured at TRACE level, including the `log` records
//! of cryptoki) nor in any error's Display or Debug, in right-PIN, wrong-PIN and no-PIN flows,
//! through the library and through the `keymgr` binary.

mod common;

use std::io::IsTerminal;
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::{Fixture, SO_PIN};
use keymgr::{OpenOptions, Pkcs11Uri, open_decryptor, open_signer};

const GOOD: &str = "Good-PIN-8472";
const WRONG: &str = "Wrong-PIN-5931";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> Captured {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init()
        .expect("the only subscriber of this test process");
    captured
}

fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains(GOOD), "{what} contains the PIN: {text}");
    assert!(
        !text.contains(WRONG),
        "{what} contains the wrong PIN: {text}"
    );
}

fn set_env(key: &str, value: Option<&str>) {
    // SAFETY: this test runs alone in its process (nextest) and touches the environment only
    // from its own thread.
    unsafe {
        match value {
            Some(v) => std::env::set_var(key, v),
            None => std::env::remove_var(key),
        }
    }
}

#[test]
fn pin_never_in_logs_or_errors() {
    let logs = capture_logs();
    let hsm = softhsm::SoftHsm::new().unwrap();
    let token = hsm.init_token("leak", SO_PIN, GOOD).unwrap();
    token.generate_key("EC:prime256v1", "01", "k").unwrap();
    let module = softhsm::SOFTHSM_MODULE;
    let base = format!("{}?module-path={module}", token.object_uri("k", None));
    set_env("RAUC_PKCS11_PIN", None);
    let mut errors: Vec<String> = Vec::new();
    let mut record = |e: keymgr::Error| {
        errors.push(e.to_string());
        errors.push(format!("{e:?}"));
    };

    // Right PIN from pin-value (logs a warning) and from the environment: sign and ECDH.
    let with_value = |pin: &str| format!("{base}&pin-value={pin}");
    let signer = open_signer(&with_value(GOOD), &OpenOptions::default()).unwrap();
    signer.sign(b"data").unwrap();
    set_env("RAUC_PKCS11_PIN", Some(GOOD));
    let dec = open_decryptor(&base).unwrap();
    record(
        dec.ecdh(&[4; 65])
            .map(|_| ())
            .unwrap_err()
            .downcast::<keymgr::Error>()
            .map(|e| *e)
            .unwrap(),
    );

    // Wrong PIN from pin-value, pin-source and the environment. (Close the keys first: while a
    // session of the process is logged in, the token answers CKR_USER_ALREADY_LOGGED_IN.)
    drop((signer, dec));
    record(
        open_signer(&with_value(WRONG), &OpenOptions::default())
            .err()
            .unwrap(),
    );
    let wrong_file = hsm.dir().join("wrong.pin");
    std::fs::write(&wrong_file, WRONG).unwrap();
    let with_file = format!("{base}&pin-source={}", wrong_file.display());
    record(open_decryptor(&with_file).err().unwrap());
    set_env("RAUC_PKCS11_PIN", Some(WRONG));
    record(open_signer(&base, &OpenOptions::default()).err().unwrap());

    // No PIN at all (no terminal under nextest).
    set_env("RAUC_PKCS11_PIN", None);
    if !std::io::stdin().is_terminal() {
        let err = open_signer(&base, &OpenOptions::default()).err().unwrap();
        assert!(err.to_string().contains("pin-source"), "{err}");
        record(err);
    }

    // Malformed URIs around a PIN.
    for bad in [
        format!("{base}&pin-value={WRONG}%zz"),
        format!("{base}&pin-value={WRONG}&pin-value={GOOD}"),
        format!("pkcs11:token=leak;pin-value={GOOD}"),
    ] {
        record(Pkcs11Uri::parse(&bad).unwrap_err());
    }
    let parsed = Pkcs11Uri::parse(&with_value(GOOD)).unwrap();
    errors.push(format!("{parsed:?} {parsed}"));

    for e in &errors {
        assert_clean("an error", e);
    }
    assert!(errors.iter().any(|e| e.contains("CKR_PIN_INCORRECT")));
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("pin-value"),
        "the pin-value warning is logged: {logs}"
    );
    assert!(logs.contains("incorrect PIN"), "{logs}");
    assert_clean("the log", &logs);
}

#[test]
fn pin_never_in_cli_output() {
    let fx = Fixture::new("cli-leak");
    fx.token.generate_key("EC:prime256v1", "01", "k").unwrap();
    let keymgr = env!("CARGO_BIN_EXE_keymgr");
    let run = |args: &[&str], pin: &str| {
        let out = Command::new(keymgr)
            .args(["--debug", "--module", softhsm::SOFTHSM_MODULE])
            .args(args)
            .envs(fx.hsm.env())
            .env("RAUC_PKCS11_PIN", pin)
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let uri = "pkcs11:token=cli-leak;object=k";
    let (ok, text) = run(&["objects", uri], WRONG);
    assert!(!ok && text.contains("CKR_PIN_INCORRECT"), "{text}");
    assert_clean("keymgr objects (wrong PIN)", &text);
    let (ok, text) = run(&["objects", uri], common::USER_PIN);
    assert!(ok, "{text}");
    let pin_uri = format!("{uri}?pin-value={WRONG}");
    let (ok, text) = run(&["export", &pin_uri, "--pubkey"], common::USER_PIN);
    assert!(
        !ok && text.contains("never taken from the command line"),
        "{text}"
    );
    assert_clean("keymgr export (pin-value refused)", &text);
}
