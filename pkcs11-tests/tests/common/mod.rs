//! Shared helpers of the `signer_*` tests: a SoftHSM token and a PKI in a temporary directory,
//! our binaries and the peers (`rauc` 1.8, `openssl`, `veritysetup`) as commands, content
//! directories, and byte surgery on bundle files.
//!
//! One [`Env`] per test (each test runs in its own process under nextest; SoftHSM reads
//! `SOFTHSM2_CONF` once per process).
#![allow(dead_code)]

pub mod bundle_file;
pub mod pki;
pub mod run;

use std::path::{Path, PathBuf};
use std::process::Command;

use softhsm::{SOFTHSM_MODULE, SoftHsm, TokenHandle};

#[allow(unused_imports)]
pub use pki::{Alg, Pki, Profile};
#[allow(unused_imports)]
pub use run::{Run, bin, fails, ok, run};

/// The user PIN of the test token: a string that appears nowhere else, so tests can grep
/// outputs for it.
pub const PIN: &str = "58294671";

/// A PIN that is not the token's (same length, also unique).
pub const WRONG_PIN: &str = "31975208";

/// A temporary directory with a SoftHSM token (`signer-test`), a PKI and a PIN file.
pub struct Env {
    /// The SoftHSM installation (its directory is removed on drop).
    pub hsm: SoftHsm,
    /// The token.
    pub token: TokenHandle,
    /// The test PKI.
    pub pki: Pki,
    /// Scratch directory for bundles and outputs.
    pub dir: PathBuf,
    /// A file holding [`PIN`] (for `pin-source`).
    pub pin_file: PathBuf,
}

/// A key pair in the token with its certificate (imported under the same label and id).
#[derive(Debug, Clone)]
pub struct TokenIdentity {
    /// The object label.
    pub label: String,
    /// `pkcs11:token=…;object=<label>;type=private`.
    pub key_uri: String,
    /// `pkcs11:token=…;object=<label>;type=cert`.
    pub cert_uri: String,
    /// The certificate as a PEM file.
    pub cert_pem: PathBuf,
}

impl TokenIdentity {
    /// The key URI with `?pin-source=<file>`.
    pub fn key_uri_with_pin_source(&self, file: &Path) -> String {
        format!("{}?pin-source={}", self.key_uri, file.display())
    }
}

impl Env {
    /// Creates the token, the PKI and the scratch directories.
    pub fn new() -> Env {
        let hsm = SoftHsm::new().unwrap();
        let token = hsm.init_token("signer-test", "12345678", PIN).unwrap();
        let dir = hsm.dir().join("work");
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let pki = Pki::new(&hsm.dir().join("pki"));
        let pin_file = hsm.dir().join("pin.txt");
        std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
        Env {
            hsm,
            token,
            pki,
            dir,
            pin_file,
        }
    }

    /// A path in the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The entries of the scratch directory (to prove that nothing was left behind).
    pub fn listing(&self) -> Vec<String> {
        listing(&self.dir)
    }

    fn tool(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = self.hsm.command(program);
        cmd.env("RAUC_PKCS11_MODULE", SOFTHSM_MODULE)
            .env_remove("PKCS11_MODULE_PATH")
            .env_remove("RAUC_PKCS11_PIN")
            .env("TMPDIR", self.dir.join("tmp"))
            .current_dir(&self.dir);
        cmd
    }

    /// Our `signer`, with the SoftHSM module and no PIN in the environment.
    pub fn signer_no_pin(&self) -> Command {
        self.tool(bin("signer"))
    }

    /// Our `signer` with `RAUC_PKCS11_PIN` set to the token's PIN.
    pub fn signer(&self) -> Command {
        let mut cmd = self.signer_no_pin();
        cmd.env("RAUC_PKCS11_PIN", PIN);
        cmd
    }

    /// Our `keymgr` with the PIN in the environment.
    pub fn keymgr(&self) -> Command {
        let mut cmd = self.tool(bin("keymgr"));
        cmd.env("RAUC_PKCS11_PIN", PIN);
        cmd
    }

    /// `rauc` 1.8 with the SoftHSM module and the PIN (for `pkcs11:` keys).
    pub fn rauc(&self) -> Command {
        let mut cmd = self.tool("rauc");
        cmd.env("RAUC_PKCS11_PIN", PIN);
        cmd
    }

    /// Any other program, with `SOFTHSM2_CONF` and the scratch directory as working directory.
    pub fn command(&self, program: &str) -> Command {
        self.tool(program)
    }

    /// `openssl cms -sign` of `input` (inline, binary, DER, no S/MIME capabilities) by the file
    /// leaf `leaf` with the intermediate attached, as a signing room would; writes `out`.
    pub fn openssl_cms_sign(&self, input: &Path, leaf: &str, out: &Path) {
        ok(self
            .command("openssl")
            .args(["cms", "-sign", "-binary", "-nodetach", "-nosmimecap"])
            .args(["-outform", "DER", "-in"])
            .arg(input)
            .arg("-signer")
            .arg(self.pki.cert(leaf))
            .arg("-inkey")
            .arg(self.pki.key(leaf))
            .arg("-certfile")
            .arg(self.pki.inter())
            .arg("-out")
            .arg(out));
    }

    /// Generates a key pair in the token with `keymgr generate`, issues a certificate for its
    /// public key from `issuer` and imports it with `keymgr import --cert`.
    pub fn token_identity(
        &self,
        label: &str,
        key_type: &str,
        profile: Profile,
        issuer: &str,
    ) -> TokenIdentity {
        let base = format!("{};object={label}", self.token.uri());
        let generated = ok(self.keymgr().args([
            "--output-format",
            "json",
            "generate",
            &base,
            "--key-type",
            key_type,
        ]));
        let json: serde_json::Value = serde_json::from_slice(&generated.stdout).unwrap();
        let public_pem = json["public_key_pem"].as_str().unwrap();
        let cert_pem = self
            .pki
            .cert_for_public_key(label, public_pem, profile, issuer);
        ok(self
            .keymgr()
            .args(["import", &base, "--cert"])
            .arg(&cert_pem));
        TokenIdentity {
            label: label.to_string(),
            key_uri: format!("{base};type=private"),
            cert_uri: format!("{base};type=cert"),
            cert_pem,
        }
    }

    /// Imports a PEM private key into the token with `keymgr import --key` (EC keys get derive
    /// usage) and its certificate with `keymgr import --cert`; returns the private key URI.
    pub fn import_key(&self, label: &str, key_pem: &Path, cert_pem: Option<&Path>) -> String {
        let base = format!("{};object={label}", self.token.uri());
        ok(self.keymgr().args(["import", &base, "--key"]).arg(key_pem));
        if let Some(cert) = cert_pem {
            ok(self.keymgr().args(["import", &base, "--cert"]).arg(cert));
        }
        format!("{base};type=private")
    }

    /// A content directory `<name>` for `format` with two images of random bytes
    /// (`rootfs.img`, `rootfs_kib` KiB; `appfs.img`, 16 KiB). Returns the directory.
    pub fn content(&self, name: &str, format: &str, rootfs_kib: usize) -> Content {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        let images = vec![
            ("rootfs".to_string(), random_bytes(rootfs_kib * 1024)),
            ("appfs".to_string(), random_bytes(16 * 1024)),
        ];
        let mut manifest = format!(
            "[update]\ncompatible=Test Device\nversion=2024.01.0\ndescription=test bundle {format}\n\n"
        );
        if format != "plain" {
            manifest += &format!("[bundle]\nformat={format}\n\n");
        }
        for (class, data) in &images {
            std::fs::write(dir.join(format!("{class}.img")), data).unwrap();
            manifest += &format!("[image.{class}]\nfilename={class}.img\n\n");
        }
        std::fs::write(
            dir.join("manifest.raucm"),
            manifest.trim_end().to_string() + "\n",
        )
        .unwrap();
        Content { dir, images }
    }

    /// Writes a rauc 1.8 system.conf `<name>` whose `[keyring]` has `path=keyring` plus
    /// `keyring_extra` lines, and whose `[encryption]` is `encryption` (key, cert).
    pub fn system_conf(
        &self,
        name: &str,
        keyring: &Path,
        keyring_extra: &[&str],
        encryption: Option<(&Path, &Path)>,
    ) -> PathBuf {
        let mut text = format!(
            "[system]\ncompatible=Test Device\nbootloader=noop\nbundle-formats=plain verity crypt\n\n\
             [keyring]\npath={}\n",
            keyring.display()
        );
        for line in keyring_extra {
            text += line;
            text.push('\n');
        }
        if let Some((key, cert)) = encryption {
            text += &format!(
                "\n[encryption]\nkey={}\ncert={}\n",
                key.display(),
                cert.display()
            );
        }
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `signer bundle` with a token identity (`--intermediate` the intermediate CA) and the PIN
    /// from the environment; checks the new bundle against the root keyring.
    pub fn signer_bundle(&self, id: &TokenIdentity, content: &Content, out: &str) -> PathBuf {
        let out = self.path(out);
        ok(self
            .signer()
            .args(["bundle", "--cert", &id.cert_uri, "--key", &id.key_uri])
            .arg("--intermediate")
            .arg(self.pki.inter())
            .arg("--keyring")
            .arg(self.pki.root())
            .arg(&content.dir)
            .arg(&out));
        out
    }

    /// `rauc bundle` with a file-key leaf of the PKI (intermediate embedded).
    pub fn rauc_bundle(&self, leaf: &str, content: &Content, out: &str) -> PathBuf {
        let out = self.path(out);
        ok(self
            .rauc()
            .arg("bundle")
            .arg(format!("--cert={}", self.pki.cert(leaf).display()))
            .arg(format!("--key={}", self.pki.key(leaf).display()))
            .arg(format!("--intermediate={}", self.pki.inter().display()))
            .arg(format!("--keyring={}", self.pki.root().display()))
            .arg(&content.dir)
            .arg(&out));
        out
    }
}

/// A content directory and the images in it.
#[derive(Debug, Clone)]
pub struct Content {
    /// The directory.
    pub dir: PathBuf,
    /// (slot class, bytes) of every image, `<class>.img`.
    pub images: Vec<(String, Vec<u8>)>,
}

impl Content {
    /// Asserts that `dir` (an extraction) holds every image byte for byte and a manifest.
    pub fn assert_extracted(&self, dir: &Path) {
        for (class, data) in &self.images {
            let got = std::fs::read(dir.join(format!("{class}.img")))
                .unwrap_or_else(|e| panic!("{class}.img in {}: {e}", dir.display()));
            assert!(got == *data, "{class}.img differs after extraction");
        }
        assert!(dir.join("manifest.raucm").is_file());
    }

    /// A copy of this content directory under `name` (rauc 1.8 rewrites the manifest in place).
    pub fn copy_to(&self, name: &Path) -> Content {
        std::fs::create_dir_all(name).unwrap();
        for e in std::fs::read_dir(&self.dir).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), name.join(e.file_name())).unwrap();
        }
        Content {
            dir: name.to_path_buf(),
            images: self.images.clone(),
        }
    }
}

/// Incompressible bytes.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    openssl::rand::rand_bytes(&mut data).unwrap();
    data
}

/// Sorted names in a directory.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
