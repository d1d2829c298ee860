//! Test support: a real swtpm on free loopback ports, started by the test and stopped by PID,
//! and a tiny in-process CA for certificates of TPM keys.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private, Public};
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509, X509Builder, X509NameBuilder};

/// A running swtpm (TPM 2.0 simulator) with dictionary-attack lockout disabled.
pub struct Swtpm {
    child: Child,
    /// The TPM command port.
    pub port: u16,
    dir: tempfile::TempDir,
}

/// A free port P whose neighbour P+1 is free too (the swtpm TCTI expects the control channel
/// at the command port + 1).
fn free_port_pair() -> (u16, u16) {
    loop {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return (port, port + 1);
        }
    }
}

impl Swtpm {
    /// Starts swtpm on two free ports and waits until it accepts connections.
    pub fn start() -> Self {
        for _ in 0..5 {
            if let Some(s) = Self::try_start() {
                s.disable_lockout();
                return s;
            }
        }
        panic!("swtpm did not start");
    }

    fn try_start() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let (port, ctrl) = free_port_pair();
        let mut child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--flags", "not-need-init,startup-clear"])
            .arg("--tpmstate")
            .arg(format!("dir={}", dir.path().display()))
            .arg("--server")
            .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
            .arg("--ctrl")
            .arg(format!("type=tcp,port={ctrl},bindaddr=127.0.0.1"))
            .arg("--log")
            .arg(format!(
                "file={},level=1",
                dir.path().join("swtpm.log").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("swtpm is installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                return None; // port taken: try others
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Swtpm { child, port, dir });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// The TCTI string for tss-esapi and tpm2-tools.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Runs a tpm2-tools command against this swtpm; returns stdout.
    pub fn tool(&self, args: &[&str]) -> String {
        let o = Command::new(args[0])
            .args(&args[1..])
            .env("TPM2TOOLS_TCTI", self.tcti())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn disable_lockout(&self) {
        self.tool(&["tpm2_dictionarylockout", "--clear-lockout"]);
        self.tool(&[
            "tpm2_dictionarylockout",
            "--setup-parameters",
            "--max-tries=4294967295",
            "--recovery-time=0",
            "--lockout-recovery-time=0",
        ]);
    }

    /// Transient objects currently loaded (must be none after every operation).
    pub fn transient_handles(&self) -> String {
        self.tool(&["tpm2_getcap", "handles-transient"])
    }

    /// A scratch directory that lives as long as the swtpm.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        // Stop by PID (the child handle), then reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small CA that certifies public keys (as a factory CA certifies TPM keys).
pub struct Ca {
    key: PKey<Private>,
    cert: X509,
}

impl Ca {
    /// A self-signed P-256 CA.
    pub fn new() -> Self {
        let key = PKey::from_ec_key(
            EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
        )
        .unwrap();
        let pub_key = PKey::public_key_from_der(&key.public_key_to_der().unwrap()).unwrap();
        let cert = build(&key, None, &pub_key, "Test TPM CA", true);
        Ca { key, cert }
    }

    /// Issues a certificate (with subjectKeyIdentifier) for a public key.
    pub fn certify(&self, spki_der: &[u8], cn: &str) -> X509 {
        let public = PKey::public_key_from_der(spki_der).unwrap();
        build(&self.key, Some(&self.cert), &public, cn, false)
    }
}

fn build(
    signer: &PKey<Private>,
    issuer: Option<&X509>,
    key: &PKey<Public>,
    cn: &str,
    ca: bool,
) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("O", "Test").unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial
        .rand(120, openssl::bn::MsbOption::MAYBE_ZERO, false)
        .unwrap();
    b.set_serial_number(&Asn1Integer::from_bn(&serial).unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&name, |i| i.subject_name()))
        .unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
        .unwrap();
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
    } else {
        b.append_extension(KeyUsage::new().critical().key_agreement().build().unwrap())
            .unwrap();
    }
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(issuer.map(|i| &**i), None))
        .unwrap();
    b.append_extension(ski).unwrap();
    b.sign(signer, MessageDigest::sha256()).unwrap();
    b.build()
}
