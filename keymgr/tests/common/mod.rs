//! Shared helpers of the keymgr integration tests: a SoftHSM token, the openssl CLI, test
//! certificates. Every test runs in its own process (cargo nextest), so each makes its own
//! SoftHSM.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use keymgr::{Access, OpenOptions, Pkcs11Uri, TokenSession};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509, X509NameBuilder};
use softhsm::{SOFTHSM_MODULE, SoftHsm, TokenHandle};

/// The user PIN of test tokens.
pub const USER_PIN: &str = "4711-user";
/// The SO PIN of test tokens.
pub const SO_PIN: &str = "12345678";

/// A private SoftHSM with one token and a PIN file.
pub struct Fixture {
    pub hsm: SoftHsm,
    pub token: TokenHandle,
    pub pin_file: PathBuf,
}

impl Fixture {
    /// A SoftHSM (exported to this process) with an initialized token `label`.
    pub fn new(label: &str) -> Fixture {
        let hsm = SoftHsm::new().expect("SoftHSM set-up");
        let token = hsm.init_token(label, SO_PIN, USER_PIN).expect("token init");
        let pin_file = hsm.dir().join("user.pin");
        std::fs::write(&pin_file, format!("{USER_PIN}\n")).unwrap();
        Fixture {
            hsm,
            token,
            pin_file,
        }
    }

    /// `pkcs11:token=<label>;object=<object>?pin-source=<file>&module-path=<softhsm>`.
    pub fn key_uri(&self, object: &str) -> String {
        format!(
            "{}?pin-source={}&module-path={SOFTHSM_MODULE}",
            self.token.object_uri(object, None),
            self.pin_file.display()
        )
    }

    /// A logged-in read/write session on the token.
    pub fn session(&self) -> TokenSession {
        let uri = Pkcs11Uri::parse(&self.key_uri("x")).unwrap().token_part();
        let mut ts = TokenSession::open(&uri, None, Access::ReadWrite).unwrap();
        ts.login(&uri).unwrap();
        ts
    }

    /// Scratch directory.
    pub fn dir(&self) -> &Path {
        self.hsm.dir()
    }

    /// Writes a scratch file.
    pub fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.dir().join(name);
        std::fs::write(&path, data).unwrap();
        path
    }
}

/// Options with the SoftHSM module.
pub fn softhsm_options() -> OpenOptions {
    OpenOptions::with_module(SOFTHSM_MODULE)
}

/// Runs the openssl CLI in `dir`; panics with its stderr on failure; returns stdout.
pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `openssl genpkey` of an EC P-256 key into `dir/out` (PEM).
pub fn genpkey_p256(dir: &Path, out: &str) {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            out,
        ],
    );
}

/// Runs the openssl CLI and says whether it succeeded.
pub fn openssl_ok(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs")
        .status
        .success()
}

/// Writes a SubjectPublicKeyInfo DER as PEM and returns the path.
pub fn write_public_pem(dir: &Path, name: &str, spki: &[u8]) -> PathBuf {
    let key = PKey::public_key_from_der(spki).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, key.public_key_to_pem().unwrap()).unwrap();
    path
}

/// A throw-away P-256 CA key.
pub fn ca_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

/// A certificate for `spki` (DER) with common name `cn`, issued by `ca`.
pub fn certificate_for(spki: &[u8], cn: &str, ca: &PKey<Private>) -> X509 {
    let subject_key = PKey::public_key_from_der(spki).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut issuer = X509NameBuilder::new().unwrap();
    issuer.append_entry_by_text("CN", "keymgr test CA").unwrap();
    let issuer = issuer.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(4711).unwrap().to_asn1_integer().unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&issuer).unwrap();
    b.set_pubkey(&subject_key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.sign(ca, MessageDigest::sha256()).unwrap();
    b.build()
}
