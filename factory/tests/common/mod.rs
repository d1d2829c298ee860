//! Test support: an OpenSSL file key implementing `ContentSigner` (the CA and device keys of
//! these tests; production keys live in tokens), a test station with a self-signed CA, device
//! certificates, and helpers to run the `factory` binary and the `openssl` CLI.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bundle::keys::{ContentSigner, KeyError, SignatureScheme};
use factory::ca::{CertificateAuthority, self_signed_ca_certificate};
use factory::config::StationConfig;
use factory::inventory::{DeviceOrigin, DeviceRecord, ImportItem, Inventory};
use factory::types::{DeviceSerial, KeyId, KeyType, UnixTime, now};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{RsaPssSaltlen, Signer};

/// An OpenSSL private key used through `ContentSigner` (test code only).
#[derive(Clone)]
pub struct FileKey {
    pub pkey: PKey<Private>,
    pub scheme: SignatureScheme,
}

impl FileKey {
    pub fn generate(key_type: KeyType) -> Self {
        let (pkey, scheme) = match key_type {
            KeyType::EcP256 | KeyType::EcP384 => {
                let nid = if key_type == KeyType::EcP256 {
                    Nid::X9_62_PRIME256V1
                } else {
                    Nid::SECP384R1
                };
                let ec = EcKey::generate(&EcGroup::from_curve_name(nid).unwrap()).unwrap();
                (PKey::from_ec_key(ec).unwrap(), SignatureScheme::EcdsaSha256)
            }
            KeyType::Rsa3072 => (
                PKey::from_rsa(Rsa::generate(3072).unwrap()).unwrap(),
                SignatureScheme::RsaPkcs1Sha256,
            ),
        };
        Self { pkey, scheme }
    }

    pub fn spki(&self) -> Vec<u8> {
        self.pkey.public_key_to_der().unwrap()
    }

    pub fn pem(&self) -> Vec<u8> {
        self.pkey.private_key_to_pem_pkcs8().unwrap()
    }

    pub fn from_pem(pem: &[u8]) -> Self {
        let pkey = PKey::private_key_from_pem(pem).unwrap();
        let scheme = if pkey.id() == openssl::pkey::Id::EC {
            SignatureScheme::EcdsaSha256
        } else {
            SignatureScheme::RsaPkcs1Sha256
        };
        Self { pkey, scheme }
    }

    pub fn boxed(&self) -> Box<dyn ContentSigner + Send> {
        Box::new(self.clone())
    }
}

impl ContentSigner for FileKey {
    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }

    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut signer = Signer::new(MessageDigest::sha256(), &self.pkey)?;
        if self.scheme == SignatureScheme::RsaPssSha256 {
            signer.set_rsa_padding(Padding::PKCS1_PSS)?;
            signer.set_rsa_mgf1_md(MessageDigest::sha256())?;
            signer.set_rsa_pss_saltlen(RsaPssSaltlen::custom(32))?;
        }
        Ok(signer.sign_oneshot_to_vec(data)?)
    }
}

/// A fresh temporary directory (removed on drop).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("factory-test-")
        .tempdir()
        .unwrap()
}

/// A station configuration in `dir` with an inventory there; `extra` is appended.
pub fn write_config(dir: &Path, extra: &str) -> (PathBuf, StationConfig) {
    let text = format!(
        r#"inventory = "inventory.sqlite"
[ca]
key = "pkcs11:token=station;object=ca;type=private"
cert = "pkcs11:token=station;object=ca;type=cert"
subject = "/O=Factory Test/CN=Test Device CA"
[profiles.default]
subject = "/O=Factory Test/CN={{serial}}"
[profiles.p384]
key-type = "ec-p384"
subject = "/O=Factory Test/CN={{serial}}"
[profiles.rsa]
key-type = "rsa-3072"
subject = "/O=Factory Test/OU=RSA/CN={{serial}}"
[profiles.short]
validity-days = 1
subject = "/CN={{serial}}"
[device-token]
uri = "pkcs11:token=dev-{{serial}}"
{extra}"#
    );
    let path = dir.join("station.toml");
    std::fs::write(&path, text).unwrap();
    let config = StationConfig::load(&path).unwrap();
    (path, config)
}

/// A test station: configuration, CA key (file) and self-signed CA certificate.
pub struct Station {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub config: StationConfig,
    pub ca_key: FileKey,
    pub ca_cert: Vec<u8>,
}

impl Station {
    pub fn new() -> Self {
        Self::with_ca_key(FileKey::generate(KeyType::EcP256))
    }

    pub fn with_ca_key(ca_key: FileKey) -> Self {
        let dir = tempdir();
        let (config_path, config) = write_config(dir.path(), "");
        let ca_cert =
            self_signed_ca_certificate(ca_key.boxed(), &ca_key.spki(), &config.ca, now()).unwrap();
        std::fs::write(
            dir.path().join("ca.pem"),
            factory::cert::to_pem("CERTIFICATE", &ca_cert),
        )
        .unwrap();
        std::fs::write(dir.path().join("ca.key"), ca_key.pem()).unwrap();
        Self {
            dir,
            config_path,
            config,
            ca_key,
            ca_cert,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn ca(&self) -> CertificateAuthority<'static> {
        CertificateAuthority::new(self.ca_cert.clone(), self.ca_key.boxed()).unwrap()
    }

    pub fn inventory(&self) -> Inventory {
        Inventory::open(&self.config.inventory).unwrap()
    }

    /// A device key and its active device record, issued `issued_at` per `profile`.
    pub fn device(
        &self,
        serial: &str,
        profile: &str,
        group: Option<&str>,
        issued_at: UnixTime,
    ) -> (FileKey, DeviceRecord) {
        let profile = self.config.profile(Some(profile)).unwrap();
        let key = FileKey::generate(profile.key_type);
        let serial = DeviceSerial::new(serial).unwrap();
        let cert = self
            .ca()
            .issue_for_key(&serial, profile, &key.spki(), issued_at)
            .unwrap();
        let origin = DeviceOrigin {
            group: group.map(str::to_string),
            tags: vec!["test".into()],
            token_uri: self.config.device_token_uri(&serial),
            token_description: "test token".into(),
            key_id: KeyId::random().unwrap(),
            key_label: format!("device-{serial}"),
            ek_cert_sha256: None,
        };
        let record = DeviceRecord::new_active(serial, cert.der, origin, issued_at).unwrap();
        (key, record)
    }

    /// Records devices through the import path (one transaction).
    pub fn record(&self, inventory: &mut Inventory, records: &[DeviceRecord]) {
        let items = records.iter().enumerate().map(|(i, r)| {
            Ok(ImportItem {
                line: i as u64 + 1,
                record: r.clone(),
            })
        });
        inventory.import_devices(items, 0, now()).unwrap();
    }

    /// Runs the `factory` binary with this station's configuration.
    pub fn factory(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_factory"))
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .output()
            .unwrap();
        eprintln!(
            "factory {args:?} -> {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// Runs a command, returns (success, stdout + stderr).
pub fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{cmd:?} -> {}\n{text}", out.status);
    (out.status.success(), text)
}

/// `openssl <args>`, asserting success; returns the output.
pub fn openssl(args: &[&str]) -> String {
    let (ok, text) = run(Command::new("openssl").args(args));
    assert!(ok, "openssl {args:?} failed:\n{text}");
    text
}

/// Writes DER as PEM to `path`.
pub fn write_pem(path: &Path, label: &str, der: &[u8]) {
    std::fs::write(path, factory::cert::to_pem(label, der)).unwrap();
}
