//! Smoke test on a tpm2-pkcs11 token (environment.md §7.2): swtpm started by the test on
//! loopback (stopped by PID), dictionary-attack lockout disabled, token initialized through
//! PKCS#11 with pkcs11-tool, then an RSA key generated through keymgr signs and decrypts.

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bundle::keys::RsaPadding;
use common::{openssl, write_public_pem};
use keymgr::{Access, KeyType, OpenOptions, Pkcs11Uri, TokenSession, open_decryptor, open_signer};

const TPM2_PKCS11: &str = "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so";

/// A swtpm process on two consecutive loopback ports; killed by PID on drop.
struct Swtpm {
    pid: i32,
    port: u16,
}

impl Swtpm {
    fn start(dir: &Path) -> Swtpm {
        let state = dir.join("tpm-state");
        std::fs::create_dir_all(&state).unwrap();
        let port = free_port_pair();
        let pid_file = dir.join("swtpm.pid");
        let server = format!("type=tcp,port={port},bindaddr=127.0.0.1");
        let ctrl = format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1);
        let status = Command::new("swtpm")
            .args(["socket", "--tpm2", "--tpmstate"])
            .arg(format!("dir={}", state.display()))
            .args(["--server", &server, "--ctrl", &ctrl])
            .args([
                "--flags",
                "not-need-init,startup-clear",
                "--daemon",
                "--pid",
            ])
            .arg(format!("file={}", pid_file.display()))
            .status()
            .expect("swtpm runs");
        assert!(status.success(), "swtpm failed to start");
        let pid = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let tpm = Swtpm { pid, port };
        // Bounded wait for the server socket.
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return tpm;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("swtpm did not listen on port {port}");
    }

    fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) of the process this test started.
        unsafe { libc::kill(self.pid, libc::SIGTERM) };
    }
}

fn free_port_pair() -> u16 {
    for _ in 0..50 {
        let a = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = a.local_addr().unwrap().port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two consecutive free loopback ports");
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("tool runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

fn set_env(key: &str, value: &str) {
    // SAFETY: this test runs alone in its process (nextest), before tpm2-pkcs11 is loaded.
    unsafe { std::env::set_var(key, value) };
}

/// A tpm2-pkcs11 token `tpm-token` with user PIN 1234; returns its URI with a pin-source.
fn init_token(dir: &Path, tpm: &Swtpm) -> (String, PathBuf) {
    let tcti = tpm.tcti();
    run(Command::new("tpm2_dictionarylockout")
        .arg("--clear-lockout")
        .env("TPM2TOOLS_TCTI", &tcti));
    run(Command::new("tpm2_dictionarylockout")
        .args([
            "--setup-parameters",
            "--max-tries=4294967295",
            "--recovery-time=0",
            "--lockout-recovery-time=0",
        ])
        .env("TPM2TOOLS_TCTI", &tcti));
    let store = dir.join("store");
    std::fs::create_dir_all(&store).unwrap();
    set_env("TPM2_PKCS11_TCTI", &tcti);
    set_env("TPM2_PKCS11_STORE", store.to_str().unwrap());
    let p11 = || {
        let mut c = Command::new("pkcs11-tool");
        c.args(["--module", TPM2_PKCS11]);
        c
    };
    run(p11().args([
        "--slot-index",
        "0",
        "--init-token",
        "--label",
        "tpm-token",
        "--so-pin",
        "12345678",
    ]));
    run(p11()
        .args([
            "--token-label",
            "tpm-token",
            "--login",
            "--login-type",
            "so",
            "--so-pin",
            "12345678",
        ])
        .args(["--init-pin", "--pin", "1234"]));
    let pin = dir.join("tpm.pin");
    std::fs::write(&pin, "1234\n").unwrap();
    let uri = format!(
        "pkcs11:token=tpm-token;object=tpm-rsa?pin-source={}&module-path={TPM2_PKCS11}",
        pin.display()
    );
    (uri, pin)
}

#[test]
fn rsa_key_generated_through_keymgr_signs_and_decrypts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tpm = Swtpm::start(d);
    let (uri, _pin) = init_token(d, &tpm);

    let parsed = Pkcs11Uri::parse(&uri).unwrap();
    let mut ts = TokenSession::open(&parsed, None, Access::ReadWrite).unwrap();
    ts.login(&parsed).unwrap();
    let key = ts
        .generate_key_pair(KeyType::Rsa(2048), "tpm-rsa", Some(&[0x01]))
        .unwrap();
    assert!(
        key.uri
            .to_string()
            .contains(";token=tpm-token;id=%01;object=tpm-rsa;type=private")
    );
    write_public_pem(d, "pub.pem", &key.public_key_der);
    drop(ts);

    let signer = open_signer(&uri, &OpenOptions::default()).unwrap();
    assert_eq!(signer.public_key_der().unwrap(), key.public_key_der);
    std::fs::write(d.join("data.bin"), b"bundle manifest").unwrap();
    std::fs::write(d.join("sig.bin"), signer.sign(b"bundle manifest").unwrap()).unwrap();
    let out = openssl(
        d,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "sig.bin",
            "data.bin",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out).trim(), "Verified OK");

    let dec = open_decryptor(&uri).unwrap();
    std::fs::write(d.join("cek.bin"), [0x5a; 32]).unwrap();
    openssl(
        d,
        &[
            "pkeyutl", "-encrypt", "-pubin", "-inkey", "pub.pem", "-in", "cek.bin", "-out",
            "ct.bin",
        ],
    );
    let ct = std::fs::read(d.join("ct.bin")).unwrap();
    assert_eq!(
        dec.rsa_decrypt(&ct, RsaPadding::Pkcs1v15)
            .unwrap()
            .as_slice(),
        &[0x5a; 32]
    );
    openssl(
        d,
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            "pub.pem",
            "-in",
            "cek.bin",
            "-out",
            "oaep.bin",
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
        ],
    );
    let ct = std::fs::read(d.join("oaep.bin")).unwrap();
    assert_eq!(
        dec.rsa_decrypt(&ct, RsaPadding::OaepSha256)
            .unwrap()
            .as_slice(),
        &[0x5a; 32]
    );
}
