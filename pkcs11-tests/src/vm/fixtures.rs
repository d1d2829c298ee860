//! Host-side inputs for bundle mount tests, made with the real tools: a test PKI (openssl CLI,
//! environment.md §3), a squashfs image (`mksquashfs`), bundles (`rauc bundle` 1.8, §6.3) and
//! their dm parameters (trailer + `openssl cms -verify -noverify -binary`, parsed with
//! `bundle::keyfile`). The parameters are independent of our own bundle reader on purpose: the
//! mount-stack test feeds them (and deliberately wrong variants) to `target::mount` directly.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use bundle::keyfile::KeyFile;
use serde::{Deserialize, Serialize};
use target::dm::{CryptKey, VerityParams};
use target::mount::BundleMountParams;

use super::{VmError, require_tool, run_command};

/// Extension sections of the test PKI (the root section must not be called `[ca]`).
const EXTENSIONS: &str = "\
[req]
distinguished_name = dn
[dn]
[v3_root]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
[sign]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=codeSigning
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
";

/// A root CA and a code-signing certificate (EC P-256), as PEM files.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// Root certificate (the keyring).
    pub root_cert: PathBuf,
    /// Root private key (issues further test certificates).
    pub root_key: PathBuf,
    /// Signer certificate (EKU codeSigning).
    pub sign_cert: PathBuf,
    /// Signer private key.
    pub sign_key: PathBuf,
}

impl TestPki {
    /// Creates the PKI in `dir` with the openssl CLI.
    pub fn create(dir: &Path) -> Result<TestPki, VmError> {
        require_tool("openssl", "openssl")?;
        let file = |name: &str| dir.join(name);
        std::fs::write(file("ext.cnf"), EXTENSIONS)
            .map_err(|e| VmError::io("write", file("ext.cnf"), e))?;
        let ssl = |args: &[&str]| run_command(Command::new("openssl").args(args).current_dir(dir));
        for key in ["root.key.pem", "sign.key.pem"] {
            ssl(&[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                key,
            ])?;
        }
        ssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            "root.key.pem",
            "-subj",
            "/O=Test/CN=Test Root CA",
            "-days",
            "3650",
            "-sha256",
            "-config",
            "ext.cnf",
            "-extensions",
            "v3_root",
            "-out",
            "root.cert.pem",
        ])?;
        ssl(&[
            "req",
            "-new",
            "-key",
            "sign.key.pem",
            "-subj",
            "/O=Test/CN=Test Signer",
            "-config",
            "ext.cnf",
            "-out",
            "sign.csr",
        ])?;
        ssl(&[
            "x509",
            "-req",
            "-in",
            "sign.csr",
            "-CA",
            "root.cert.pem",
            "-CAkey",
            "root.key.pem",
            "-CAcreateserial",
            "-days",
            "365",
            "-sha256",
            "-extfile",
            "ext.cnf",
            "-extensions",
            "sign",
            "-out",
            "sign.cert.pem",
        ])?;
        Ok(TestPki {
            root_cert: file("root.cert.pem"),
            root_key: file("root.key.pem"),
            sign_cert: file("sign.cert.pem"),
            sign_key: file("sign.key.pem"),
        })
    }
}

/// A squashfs image (`mksquashfs`, xz) holding `/etc/hello` and `random_bytes` random bytes.
pub fn squashfs_image(dir: &Path, name: &str, random_bytes: usize) -> Result<PathBuf, VmError> {
    require_tool("mksquashfs", "squashfs-tools")?;
    let src = dir.join(format!("{name}.src"));
    std::fs::create_dir_all(src.join("etc")).map_err(|e| VmError::io("create", &src, e))?;
    std::fs::write(src.join("etc/hello"), "hello\n").map_err(|e| VmError::io("write", &src, e))?;
    let mut blob = vec![0u8; random_bytes];
    openssl::rand::rand_bytes(&mut blob)
        .map_err(|e| VmError::Fixture(format!("random bytes: {e}")))?;
    std::fs::write(src.join("blob"), blob).map_err(|e| VmError::io("write", &src, e))?;
    let image = dir.join(name);
    run_command(Command::new("mksquashfs").arg(&src).arg(&image).args([
        "-comp",
        "xz",
        "-all-root",
        "-noappend",
        "-no-progress",
        "-quiet",
    ]))?;
    Ok(image)
}

/// Bundle formats `rauc bundle` can make with a dm-verity payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `format=verity`.
    Verity,
    /// `format=crypt` (unencrypted CMS; the manifest holds the crypt key).
    Crypt,
}

/// Makes a bundle with the real `rauc bundle` (file keys) holding `image` as `rootfs.img`.
pub fn rauc_bundle(
    pki: &TestPki,
    image: &Path,
    format: Format,
    out: &Path,
) -> Result<PathBuf, VmError> {
    require_tool("rauc", "rauc")?;
    let word = match format {
        Format::Verity => "verity",
        Format::Crypt => "crypt",
    };
    let dir = out.with_extension("content");
    std::fs::create_dir_all(&dir).map_err(|e| VmError::io("create", &dir, e))?;
    std::fs::copy(image, dir.join("rootfs.img")).map_err(|e| VmError::io("copy", image, e))?;
    let manifest = format!(
        "[update]\ncompatible=Test Device\nversion=2024.01.0\n\n[bundle]\nformat={word}\n\n[image.rootfs]\nfilename=rootfs.img\n"
    );
    std::fs::write(dir.join("manifest.raucm"), manifest)
        .map_err(|e| VmError::io("write", &dir, e))?;
    let conf = out.with_extension("conf");
    let conf_text = format!(
        "[system]\ncompatible=Test Device\nbootloader=noop\n\n[keyring]\npath={}\ncheck-purpose=codesign\n",
        pki.root_cert.display()
    );
    std::fs::write(&conf, conf_text).map_err(|e| VmError::io("write", &conf, e))?;
    let _ = std::fs::remove_file(out);
    run_command(
        Command::new("rauc")
            .arg(format!("--conf={}", conf.display()))
            .arg(format!("--cert={}", pki.sign_cert.display()))
            .arg(format!("--key={}", pki.sign_key.display()))
            .arg(format!("--keyring={}", pki.root_cert.display()))
            .arg("bundle")
            .arg(&dir)
            .arg(out),
    )?;
    Ok(out.to_path_buf())
}

/// The dm parameters of a verity/crypt bundle, as the signed manifest states them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleParams {
    /// P: bytes before the CMS.
    pub payload_size: u64,
    /// `verity-size`.
    pub verity_size: u64,
    /// `verity-hash` (hex).
    pub verity_hash: String,
    /// `verity-salt` (hex).
    pub verity_salt: String,
    /// `crypt-key` (hex) of crypt bundles — test material only.
    pub crypt_key: Option<String>,
}

impl BundleParams {
    /// Reads the trailer, cuts out the CMS and gets the manifest with
    /// `openssl cms -verify -noverify -inform DER -binary` (signature checked, chain not).
    pub fn read(bundle: &Path, scratch: &Path) -> Result<BundleParams, VmError> {
        let (payload_size, cms) = split_bundle(bundle)?;
        let cms_path = scratch.join("cms.der");
        std::fs::write(&cms_path, cms).map_err(|e| VmError::io("write", &cms_path, e))?;
        let manifest = run_command(
            Command::new("openssl")
                .args([
                    "cms",
                    "-verify",
                    "-noverify",
                    "-inform",
                    "DER",
                    "-binary",
                    "-in",
                ])
                .arg(&cms_path),
        )?;
        let text = String::from_utf8(manifest)
            .map_err(|_| VmError::Fixture("manifest is not UTF-8".into()))?;
        let bad = |e: bundle::keyfile::KeyFileError| {
            VmError::Fixture(format!("manifest of {}: {e}", bundle.display()))
        };
        let mut keyfile = KeyFile::parse(&text).map_err(bad)?;
        let mut group = keyfile
            .take_group("bundle")
            .ok_or_else(|| VmError::Fixture("manifest has no [bundle]".into()))?;
        Ok(BundleParams {
            payload_size,
            verity_size: group.take_u64("verity-size").map_err(bad)?.unwrap_or(0),
            verity_hash: group.require_string("verity-hash").map_err(bad)?,
            verity_salt: group.require_string("verity-salt").map_err(bad)?,
            crypt_key: group.take_string("crypt-key").map_err(bad)?,
        })
    }

    /// Converts to the mount stack's input (D = P − verity-size) for `bundle`. These parameters
    /// are not vouched for by a verified signature: for tests of the mount stack only.
    pub fn mount_params(&self, bundle: &Path) -> Result<BundleMountParams, String> {
        let data_size = self
            .payload_size
            .checked_sub(self.verity_size)
            .ok_or("verity-size exceeds the payload")?;
        let mut root_hash = [0u8; 32];
        hex::decode_to_slice(&self.verity_hash, &mut root_hash)
            .map_err(|e| format!("verity-hash: {e}"))?;
        let salt = hex::decode(&self.verity_salt).map_err(|e| format!("verity-salt: {e}"))?;
        let crypt_key = match &self.crypt_key {
            Some(key) => Some(CryptKey::from_hex(key).map_err(|e| e.to_string())?),
            None => None,
        };
        Ok(BundleMountParams::dangerous_from_unverified_parts(
            bundle,
            self.payload_size,
            VerityParams {
                data_size,
                root_hash,
                salt,
            },
            crypt_key,
        ))
    }
}

/// Splits `payload | CMS | u64 BE CMS size` into the payload size and the CMS bytes.
fn split_bundle(bundle: &Path) -> Result<(u64, Vec<u8>), VmError> {
    let mut file = std::fs::File::open(bundle).map_err(|e| VmError::io("open", bundle, e))?;
    let total = file
        .seek(SeekFrom::End(0))
        .map_err(|e| VmError::io("seek", bundle, e))?;
    let mut trailer = [0u8; 8];
    file.seek(SeekFrom::End(-8))
        .and_then(|_| file.read_exact(&mut trailer))
        .map_err(|e| VmError::io("read", bundle, e))?;
    let cms_size = u64::from_be_bytes(trailer);
    let payload = total
        .checked_sub(8)
        .and_then(|t| t.checked_sub(cms_size))
        .ok_or_else(|| {
            VmError::Fixture(format!(
                "{}: CMS size {cms_size} exceeds the file",
                bundle.display()
            ))
        })?;
    let mut cms = vec![0u8; cms_size as usize];
    file.seek(SeekFrom::Start(payload))
        .and_then(|_| file.read_exact(&mut cms))
        .map_err(|e| VmError::io("read", bundle, e))?;
    Ok((payload, cms))
}

/// Hex SHA-256 of a file.
pub fn sha256_hex(path: &Path) -> Result<String, VmError> {
    let data = std::fs::read(path).map_err(|e| VmError::io("read", path, e))?;
    Ok(hex::encode(openssl::sha::sha256(&data)))
}

/// Copies `from` to `to` with the byte at `offset` inverted.
pub fn copy_with_flipped_byte(from: &Path, to: &Path, offset: u64) -> Result<(), VmError> {
    std::fs::copy(from, to).map_err(|e| VmError::io("copy", from, e))?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(to)
        .map_err(|e| VmError::io("open", to, e))?;
    let mut byte = [0u8; 1];
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut byte))
        .and_then(|_| file.seek(SeekFrom::Start(offset)))
        .and_then(|_| file.write_all(&[!byte[0]]))
        .map_err(|e| VmError::io("flip a byte in", to, e))
}
