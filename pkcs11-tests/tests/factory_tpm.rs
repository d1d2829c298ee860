//! TPM devices on a real swtpm (started by the test on loopback ports, dictionary-attack lockout
//! disabled, stopped by PID): an RSA device key made through tpm2-pkcs11 (CSR signed inside the
//! TPM) and an EC device key made TPM-natively at a persistent handle (it cannot sign: the CA
//! certifies its public key). Both record the fingerprint of the TPM's EK certificate, and
//! each decrypts a bundle encrypted to the recipient list (`signer info --key pkcs11:…` and
//! `--key tpm2:handle=…;cert=…`). A taken persistent handle is refused without touching it.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openssl::asn1::Asn1Time;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::{X509, X509NameBuilder};
use pkcs11_tests::station::{
    Station, USER_PIN, crypt_content, inventory_snapshot, run, text, workspace_binary,
};

const TPM2_PKCS11: &str = "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so";
const EK_CERT_NV_INDEX: &str = "0x1c0000a";
const EC_HANDLE: &str = "0x81010002";

/// swtpm on two consecutive free loopback ports; killed by PID on drop.
struct Swtpm {
    child: Child,
    port: u16,
}

impl Swtpm {
    fn start(state: &Path) -> Swtpm {
        std::fs::create_dir_all(state).unwrap();
        for _ in 0..10 {
            let port = free_port_pair();
            let child = Command::new("swtpm")
                .args(["socket", "--tpm2", "--flags", "not-need-init,startup-clear"])
                .arg("--tpmstate")
                .arg(format!("dir={}", state.display()))
                .arg("--server")
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("swtpm is installed");
            let mut tpm = Swtpm { child, port };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if tpm.child.try_wait().unwrap().is_some() {
                    break; // a port was taken meanwhile: try others
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    tpm.tool(&["tpm2_dictionarylockout", "--clear-lockout"]);
                    tpm.tool(&[
                        "tpm2_dictionarylockout",
                        "--setup-parameters",
                        "--max-tries=4294967295",
                        "--recovery-time=0",
                        "--lockout-recovery-time=0",
                    ]);
                    return tpm;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("swtpm did not start");
    }

    fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    fn tool(&self, args: &[&str]) -> String {
        let out = run(Command::new(args[0])
            .args(&args[1..])
            .env("TPM2TOOLS_TCTI", self.tcti()));
        assert!(out.status.success(), "{args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port_pair() -> u16 {
    loop {
        let a = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = a.local_addr().unwrap().port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// An EK certificate (as a TPM manufacturer would provision one) written into NV.
fn provision_ek_certificate(tpm: &Swtpm, dir: &Path) -> Vec<u8> {
    let key = PKey::from_ec_key(
        EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
    )
    .unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "swtpm EK").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(3650).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    let der = b.build().to_der().unwrap();
    let file = dir.join("ek.der");
    std::fs::write(&file, &der).unwrap();
    let size = (der.len() + 8).to_string();
    tpm.tool(&[
        "tpm2_nvdefine",
        EK_CERT_NV_INDEX,
        "-C",
        "o",
        "-s",
        &size,
        "-a",
        "ownerread|ownerwrite|authread|no_da",
    ]);
    tpm.tool(&[
        "tpm2_nvwrite",
        EK_CERT_NV_INDEX,
        "-C",
        "o",
        "-i",
        file.to_str().unwrap(),
    ]);
    der
}

/// Environment of every process that loads tpm2-pkcs11.
fn tpm_env(tpm: &Swtpm, store: &Path) -> Vec<(String, String)> {
    vec![
        ("TPM2_PKCS11_TCTI".into(), tpm.tcti()),
        ("TPM2_PKCS11_STORE".into(), store.display().to_string()),
        ("TPM2_PKCS11_LOG_LEVEL".into(), "0".into()),
    ]
}

/// A tpm2-pkcs11 token `tpm-token` (initialized through PKCS#11 itself, no tpm2_ptool).
fn init_tpm2_pkcs11_token(env: &[(String, String)], store: &Path) {
    std::fs::create_dir_all(store).unwrap();
    let p11 = || {
        let mut c = Command::new("pkcs11-tool");
        c.envs(env.iter().cloned()).args(["--module", TPM2_PKCS11]);
        c
    };
    let out = run(p11()
        .args(["--slot-index", "0", "--init-token", "--label", "tpm-token"])
        .args(["--so-pin", "12345678"]));
    assert!(out.status.success());
    let out = run(p11()
        .args([
            "--token-label",
            "tpm-token",
            "--login",
            "--login-type",
            "so",
        ])
        .args(["--so-pin", "12345678", "--init-pin", "--pin", USER_PIN]));
    assert!(out.status.success());
}

fn show(st: &Station, env: &[(String, String)], serial: &str) -> serde_json::Value {
    let out = run(st.factory_command().envs(env.iter().cloned()).args([
        "--output-format",
        "json",
        "show",
        serial,
    ]));
    assert!(out.status.success());
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["device"].clone()
}

#[test]
fn tpm_devices_rsa_via_tpm2_pkcs11_and_ec_native() {
    let st = Station::new("");
    let tpm = Swtpm::start(&st.path("tpm-state"));
    st.write_config(&format!(
        "[tpm]\nenabled = true\ntcti = \"{}\"\nec-key-handle = \"{EC_HANDLE}\"\n",
        tpm.tcti()
    ));
    let ek = provision_ek_certificate(&tpm, st.dir());
    let ek_sha256 = hex::encode(openssl::sha::sha256(&ek));
    let store = st.path("tpm2-pkcs11-store");
    let env = tpm_env(&tpm, &store);
    init_tpm2_pkcs11_token(&env, &store);
    // pkcs11-tool's token initialization leaves the store's primary key loaded: start empty.
    tpm.tool(&["tpm2_flushcontext", "-t"]);
    let ca = st.ca_init();
    let ca_s = ca.to_str().unwrap();
    let factory = |args: &[&str]| run(st.factory_command().envs(env.iter().cloned()).args(args));

    // RSA through tpm2-pkcs11: key pair and CSR signature inside the TPM.
    let rsa_token = format!(
        "pkcs11:token=tpm-token?pin-source={}&module-path={TPM2_PKCS11}",
        st.pin_file.display()
    );
    let out = factory(&[
        "provision",
        "--device",
        "tpm-rsa",
        "--profile",
        "rsa",
        "--token",
        &rsa_token,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_no_transient_objects(&tpm);
    let rsa = show(&st, &env, "tpm-rsa");
    assert_eq!(rsa["key_type"], "rsa-3072");
    assert_eq!(rsa["ek_cert_sha256"], ek_sha256.as_str(), "{rsa}");
    assert!(
        rsa["token_description"]
            .as_str()
            .unwrap()
            .contains("libtpm2_pkcs11"),
        "{rsa}"
    );

    // EC natively at the configured persistent handle; the certificate goes to cert=.
    let ec_cert = st.path("tpm-ec.pem");
    let ec_token = format!("tpm2:cert={}", ec_cert.display());
    let out = factory(&["provision", "--device", "tpm-ec", "--token", &ec_token]);
    assert!(out.status.success(), "{}", text(&out));
    let ec = show(&st, &env, "tpm-ec");
    assert_eq!(ec["key_type"], "ec-p256");
    assert_eq!(ec["ek_cert_sha256"], ek_sha256.as_str(), "{ec}");
    let ec_spec = ec["token_uri"].as_str().unwrap().to_string();
    assert_eq!(
        ec_spec,
        format!(
            "tpm2:handle={EC_HANDLE};tcti={};cert={}",
            tpm.tcti(),
            ec_cert.display()
        )
    );
    assert!(
        tpm.tool(&["tpm2_getcap", "handles-persistent"])
            .contains(EC_HANDLE)
    );
    assert_no_transient_objects(&tpm);
    let cert_text = run(Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&ec_cert));
    assert!(text(&cert_text).contains("Key Agreement"));

    // A second device on the taken handle is refused; the first key stays.
    let before = inventory_snapshot(&st.config);
    let other = format!("tpm2:cert={}", st.path("other.pem").display());
    let out = factory(&["provision", "--device", "tpm-ec-2", "--token", &other]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("persistent handle 0x81010002"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("is taken"), "{}", text(&out));
    assert_eq!(inventory_snapshot(&st.config), before);
    assert!(
        tpm.tool(&["tpm2_getcap", "handles-persistent"])
            .contains(EC_HANDLE)
    );

    // A release bundle encrypted to both devices; each decrypts with its TPM key.
    let keymgr = workspace_binary("keymgr");
    let out = run(Command::new(keymgr)
        .envs(st.env())
        .args(["generate", "--key-type", "ec:prime256v1"])
        .arg("pkcs11:token=station;object=release"));
    assert!(out.status.success());
    let release = st.path("release.pem");
    let out = factory(&[
        "ca",
        "issue",
        "--key",
        "pkcs11:token=station;object=release",
        "--profile",
        "release",
        "--name",
        "release-1",
        "--out",
        release.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let content = crypt_content(st.dir());
    let bundle = st.path("b.raucb");
    let out = st.signer(&[
        "bundle",
        "--cert",
        release.to_str().unwrap(),
        "--key",
        "pkcs11:token=station;object=release",
        "--keyring",
        ca_s,
        content.to_str().unwrap(),
        bundle.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let recipients = st.path("recipients.pem");
    let out = factory(&["recipients", "--out", recipients.to_str().unwrap()]);
    assert!(text(&out).contains("2 recipients"), "{}", text(&out));
    let enc = st.path("enc.raucb");
    let out = st.signer(&[
        "encrypt",
        "--keyring",
        ca_s,
        "--to",
        recipients.to_str().unwrap(),
        bundle.to_str().unwrap(),
        enc.to_str().unwrap(),
    ]);
    assert!(out.status.success());

    let rsa_key = format!(
        "pkcs11:token=tpm-token;object=device-tpm-rsa;type=private?pin-source={}&module-path={TPM2_PKCS11}",
        st.pin_file.display()
    );
    let out = run(st
        .signer_command()
        .envs(env.iter().cloned())
        .args(["info", "--keyring", ca_s, "--key", &rsa_key])
        .arg(&enc));
    assert!(
        out.status.success(),
        "the tpm2-pkcs11 RSA key cannot decrypt"
    );
    assert_no_transient_objects(&tpm);
    for (key, dir) in [(&ec_spec, "out-ec"), (&rsa_key, "out-rsa")] {
        let out = run(st
            .signer_command()
            .envs(env.iter().cloned())
            .args(["extract", "--keyring", ca_s, "--key", key])
            .arg(&enc)
            .arg(st.path(dir)));
        assert!(out.status.success(), "{key} cannot extract");
        assert_no_transient_objects(&tpm);
        assert_eq!(
            std::fs::read(st.path(dir).join("rootfs.img")).unwrap(),
            std::fs::read(content.join("rootfs.img")).unwrap()
        );
    }

    // Reconciliation reads both TPM tokens and finds them in agreement.
    let out = factory(&["verify", "--all"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(text(&out).matches("inventory and token agree").count(), 2);
    // Also with tpm2-pkcs11 loaded first and the TPM-native key read after it in one process.
    let out = factory(&["verify", "--device", "tpm-rsa", "--device", "tpm-ec"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_no_transient_objects(&tpm);
}

/// No transient object is left in swtpm (it has three slots and no resource manager).
fn assert_no_transient_objects(tpm: &Swtpm) {
    assert_eq!(tpm.tool(&["tpm2_getcap", "handles-transient"]), "");
}
