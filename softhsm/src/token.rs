//! One initialized SoftHSM token and `pkcs11-tool` helpers to fill it.

use std::path::PathBuf;
use std::process::Command;

use crate::{CONF_ENV, Error, Result, SOFTHSM_MODULE, SoftHsm, run};

/// An initialized token of a [`SoftHsm`]: its label and PINs, and helpers that call the real
/// `pkcs11-tool` on it (with the module and `SOFTHSM2_CONF` set explicitly).
#[derive(Debug, Clone)]
pub struct TokenHandle {
    label: String,
    so_pin: String,
    user_pin: String,
    conf: PathBuf,
    scratch: PathBuf,
}

impl TokenHandle {
    pub(crate) fn new(hsm: &SoftHsm, label: &str, so_pin: &str, user_pin: &str) -> TokenHandle {
        TokenHandle {
            label: label.to_string(),
            so_pin: so_pin.to_string(),
            user_pin: user_pin.to_string(),
            conf: hsm.conf_path().to_path_buf(),
            scratch: hsm.dir().to_path_buf(),
        }
    }

    /// The token label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The security officer PIN.
    pub fn so_pin(&self) -> &str {
        &self.so_pin
    }

    /// The user PIN.
    pub fn user_pin(&self) -> &str {
        &self.user_pin
    }

    /// `pkcs11:token=<label>` (label percent-encoded where needed).
    pub fn uri(&self) -> String {
        format!("pkcs11:token={}", encode(self.label.as_bytes()))
    }

    /// `pkcs11:token=<label>;object=<object>` plus `;type=<kind>` when `kind` is given.
    pub fn object_uri(&self, object: &str, kind: Option<&str>) -> String {
        let mut uri = format!("{};object={}", self.uri(), encode(object.as_bytes()));
        if let Some(kind) = kind {
            uri.push_str(";type=");
            uri.push_str(kind);
        }
        uri
    }

    /// `pkcs11-tool` for this token, logged in as the user: `--module`, `--token-label`,
    /// `--login --pin` and `SOFTHSM2_CONF` are set.
    pub fn pkcs11_tool(&self) -> Command {
        let mut cmd = Command::new("pkcs11-tool");
        cmd.env(CONF_ENV, &self.conf)
            .args(["--module", SOFTHSM_MODULE, "--token-label", &self.label])
            .args(["--login", "--pin", &self.user_pin]);
        cmd
    }

    /// Generates a key pair inside the token: `key_type` as pkcs11-tool spells it
    /// (`EC:prime256v1`, `EC:secp384r1`, `rsa:2048`, …), `id_hex` the CKA_ID in hex.
    pub fn generate_key(&self, key_type: &str, id_hex: &str, label: &str) -> Result<()> {
        let mut cmd = self.pkcs11_tool();
        cmd.args(["--keypairgen", "--key-type", key_type, "--id", id_hex])
            .args(["--label", label]);
        run(
            cmd,
            &format!("pkcs11-tool --keypairgen --key-type {key_type} --id {id_hex}"),
        )?;
        Ok(())
    }

    /// Writes a DER certificate object with the given id and label.
    pub fn write_certificate(&self, der: &[u8], id_hex: &str, label: &str) -> Result<()> {
        self.write_object(der, "cert", id_hex, label, &[])
    }

    /// Imports a DER private key (PKCS#8 or traditional, as `openssl pkey -outform DER` writes
    /// it). `usage_derive` adds `--usage-derive` (needed for ECDH with EC keys).
    pub fn import_private_key(
        &self,
        der: &[u8],
        id_hex: &str,
        label: &str,
        usage_derive: bool,
    ) -> Result<()> {
        let usage: &[&str] = if usage_derive {
            &["--usage-sign", "--usage-decrypt", "--usage-derive"]
        } else {
            &["--usage-sign", "--usage-decrypt"]
        };
        self.write_object(der, "privkey", id_hex, label, usage)
    }

    /// Reads the public key object with `id_hex` as SubjectPublicKeyInfo DER.
    pub fn read_public_key_der(&self, id_hex: &str) -> Result<Vec<u8>> {
        self.read_object("pubkey", id_hex)
    }

    /// Exports the public key with `id_hex` as PEM through GnuTLS `p11tool` (pkcs11-tool 0.23
    /// cannot read back P-384 public keys: "cannot create EVP_PKEY").
    pub fn export_public_key_pem(&self, id_hex: &str) -> Result<String> {
        let id: String = id_hex
            .as_bytes()
            .chunks(2)
            .map(|pair| format!("%{}", String::from_utf8_lossy(pair)))
            .collect();
        let uri = format!("{};id={id};type=public", self.uri());
        let mut cmd = Command::new("p11tool");
        cmd.env(CONF_ENV, &self.conf)
            .env("GNUTLS_PIN", &self.user_pin)
            .args([
                "--provider",
                SOFTHSM_MODULE,
                "--login",
                "--export-pubkey",
                &uri,
            ]);
        let out = run(cmd, &format!("p11tool --export-pubkey {uri}"))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Reads the certificate object with `id_hex` as DER.
    pub fn read_certificate_der(&self, id_hex: &str) -> Result<Vec<u8>> {
        self.read_object("cert", id_hex)
    }

    /// Runs `pkcs11-tool --list-objects` and returns its standard output.
    pub fn list_objects(&self) -> Result<String> {
        let mut cmd = self.pkcs11_tool();
        cmd.arg("--list-objects");
        let out = run(cmd, "pkcs11-tool --list-objects")?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn write_object(
        &self,
        der: &[u8],
        kind: &str,
        id_hex: &str,
        label: &str,
        extra: &[&str],
    ) -> Result<()> {
        let file = self.scratch.join(format!("write-{kind}-{id_hex}.der"));
        std::fs::write(&file, der).map_err(|source| Error::Io {
            what: "write",
            path: file.clone(),
            source,
        })?;
        let mut cmd = self.pkcs11_tool();
        cmd.arg("--write-object")
            .arg(&file)
            .args(["--type", kind, "--id", id_hex, "--label", label])
            .args(extra);
        let result = run(
            cmd,
            &format!("pkcs11-tool --write-object --type {kind} --id {id_hex}"),
        );
        let _ = std::fs::remove_file(&file);
        result.map(|_| ())
    }

    fn read_object(&self, kind: &str, id_hex: &str) -> Result<Vec<u8>> {
        let file = self.scratch.join(format!("read-{kind}-{id_hex}.der"));
        let mut cmd = self.pkcs11_tool();
        cmd.args(["--read-object", "--type", kind, "--id", id_hex, "-o"])
            .arg(&file);
        run(
            cmd,
            &format!("pkcs11-tool --read-object --type {kind} --id {id_hex}"),
        )?;
        let der = std::fs::read(&file).map_err(|source| Error::Io {
            what: "read",
            path: file.clone(),
            source,
        })?;
        let _ = std::fs::remove_file(&file);
        Ok(der)
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
