//! The real [`BundleOpener`]: open → decrypt → verify → policy → mount.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use bundle::cms::verify::Keyring;
use bundle::container::{DEFAULT_MAX_SIGNATURE_SIZE, OpenOptions as ContainerOptions};
use bundle::manifest::BundleFormat;
use bundle::state::{Bundle, OpenedBundle as Classified, SignedBundle, VerifiedBundle};

use super::mounted::MountedBundle;
use super::policy::{self, BundleFacts, Purpose};
use super::{BundleOpener, ImageProtection, OpenOptions, OpenedBundle, access, convert};
use crate::config::SystemConfig;
use crate::error::{Error, Result};
use crate::plan::BundleInput;

/// Opens bundles the way `rauc install` does (see the [module documentation](super)).
///
/// Settings beyond `system.conf`: `--keyring` replaces `[keyring] path`, and the PKCS#11 module
/// for `pkcs11:` keys without `module-path` comes from `key_options` (else keymgr's defaults:
/// `PKCS11_MODULE_PATH`, `RAUC_PKCS11_MODULE`, the p11-kit proxy).
#[derive(Debug, Clone, Default)]
pub struct VerifiedOpener {
    keyring_path: Option<PathBuf>,
    no_check_time: bool,
    key_options: keymgr::OpenOptions,
}

/// A decryption key to use instead of `[encryption]` (`info --key`).
#[derive(Debug, Clone, Copy)]
pub struct KeyOverride<'a> {
    /// The key: a `pkcs11:` URI, a `tpm2:` key or a PEM file.
    pub key: &'a str,
    /// Its certificate for recipient matching, if not found next to the key.
    pub cert: Option<&'a str>,
}

/// An open bundle file: every later step reads the same inode through `/proc/self/fd`.
pub(super) struct BundleFd {
    pub(super) file: File,
    pub(super) path: PathBuf,
}

impl BundleFd {
    /// Opens a local bundle; URLs would need streaming, which is not supported.
    pub(super) fn open(source: &str) -> Result<BundleFd> {
        if let Some((scheme, _)) = source.split_once("://") {
            return Err(Error::Bundle(format!(
                "Failed to open bundle '{source}': '{scheme}' URLs need bundle streaming, which \
                 this installer does not support; download the bundle and give its path"
            )));
        }
        let path = std::path::absolute(source).unwrap_or_else(|_| PathBuf::from(source));
        if path.is_dir() {
            return Err(Error::Bundle(format!(
                "Failed to open bundle '{}': it is a directory, not a bundle file",
                path.display()
            )));
        }
        let file = File::open(&path)
            .map_err(|e| Error::io("Failed to open bundle for reading", &path, e))?;
        Ok(BundleFd { file, path })
    }

    fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }

    /// Puts the real path into errors that name the `/proc/self/fd` alias.
    fn rename_error(&self, e: bundle::Error) -> Error {
        match e {
            bundle::Error::Io { action, source, .. } => Error::io(action, &self.path, source),
            e => Error::Format(e),
        }
    }
}

impl VerifiedOpener {
    /// An opener with no overrides.
    pub fn new() -> VerifiedOpener {
        VerifiedOpener::default()
    }

    /// `--keyring`: replaces `[keyring] path` (the other `[keyring]` settings stay).
    pub fn with_keyring_path(mut self, path: Option<PathBuf>) -> VerifiedOpener {
        self.keyring_path = path;
        self
    }

    /// `--no-check-time`: do not check certificate validity times (`info` only).
    pub fn with_no_check_time(mut self, no_check_time: bool) -> VerifiedOpener {
        self.no_check_time = no_check_time;
        self
    }

    /// Options for opening `pkcs11:` keys (the default module).
    pub fn with_key_options(mut self, options: keymgr::OpenOptions) -> VerifiedOpener {
        self.key_options = options;
        self
    }

    /// The keyring used for `config`.
    pub fn keyring(&self, config: &SystemConfig) -> Keyring {
        let mut keyring = config.keyring.clone();
        if let Some(path) = &self.keyring_path {
            keyring.path = Some(path.clone());
        }
        keyring.no_check_time |= self.no_check_time;
        keyring
    }

    /// Steps 1–2 of the install order: trailer, CMS size limit, decryption of an EnvelopedData
    /// (with `key` or else `[encryption]`). Also returns the envelope's bytes if it had one.
    pub(super) fn open_signed(
        &self,
        fd: &BundleFd,
        config: &SystemConfig,
        key: Option<KeyOverride<'_>>,
    ) -> Result<(SignedBundle<File>, Option<Vec<u8>>)> {
        let options = ContainerOptions {
            max_signature_size: DEFAULT_MAX_SIGNATURE_SIZE,
        };
        let classified =
            Bundle::open_with(fd.proc_path(), options).map_err(|e| fd.rename_error(e))?;
        match classified {
            Classified::Signed(s) => Ok((s, None)),
            Classified::Enveloped(env) => {
                let envelope = env.envelope().to_vec();
                let decryptor = self.decryptor(config, key)?;
                tracing::info!("Decrypting bundle with {}", decryptor.description());
                let signed = env
                    .decrypt(decryptor.as_ref())
                    .map_err(|e| fd.rename_error(e))?;
                Ok((signed, Some(envelope)))
            }
        }
    }

    /// Opens the decryption key: `key` if given, else `[encryption] key` (and `cert`).
    fn decryptor(
        &self,
        config: &SystemConfig,
        key: Option<KeyOverride<'_>>,
    ) -> Result<Box<dyn keymgr::Decryptor>> {
        let cert_path = config
            .encryption
            .cert
            .as_deref()
            .map(|p| p.to_string_lossy().into_owned());
        let (spec, cert, origin) = match key {
            Some(k) => (k.key, k.cert, "--key".to_string()),
            None => {
                let spec = config
                    .encryption
                    .key
                    .as_deref()
                    .ok_or(Error::Format(bundle::Error::NoDecryptionKey))?;
                let origin = match &config.path {
                    Some(p) => format!("[encryption] key in {}", p.display()),
                    None => "[encryption] key".to_string(),
                };
                (spec, cert_path.as_deref(), origin)
            }
        };
        keymgr::open_decryptor_with_certificate(spec, cert, &self.key_options).map_err(|source| {
            Error::DecryptionKey {
                spec: shown_spec(spec),
                origin,
                source: Box::new(source),
            }
        })
    }

    /// Steps 1–3: open, decrypt, verify (with the exclusive-access check for plain bundles).
    pub(super) fn verify(
        &self,
        fd: &BundleFd,
        config: &SystemConfig,
        key: Option<KeyOverride<'_>>,
    ) -> Result<(VerifiedBundle<File>, Option<Vec<u8>>)> {
        let (signed, envelope) = self.open_signed(fd, config, key)?;
        Ok((self.verify_signed(fd, signed, config)?, envelope))
    }

    /// Step 3: the signature against the keyring (plain bundles: after the exclusive-access
    /// check, since their payload is authenticated only here).
    pub(super) fn verify_signed(
        &self,
        fd: &BundleFd,
        signed: SignedBundle<File>,
        config: &SystemConfig,
    ) -> Result<VerifiedBundle<File>> {
        if signed.is_detached() {
            access::enforce_exclusive(&fd.file, &fd.path)?;
        }
        tracing::info!("Verifying bundle signature...");
        let verified = signed
            .verify(&self.keyring(config))
            .map_err(|e| fd.rename_error(e))?;
        for w in &verified.signature().warnings {
            tracing::warn!("{w}");
        }
        Ok(verified)
    }
}

/// The facts the policy needs.
fn facts(v: &VerifiedBundle<File>) -> BundleFacts {
    BundleFacts {
        format: v.format(),
        encrypted: v.was_encrypted(),
        manifest_hash: match v.format() {
            BundleFormat::Plain => None,
            _ => v.manifest().map(|m| m.hash_hex()),
        },
    }
}

/// A key specification for messages: `pkcs11:` URIs with any PIN redacted.
fn shown_spec(spec: &str) -> String {
    match keymgr::KeySpec::parse(spec) {
        Ok(keymgr::KeySpec::Pkcs11(uri)) => uri.redacted(),
        _ if spec.to_ascii_lowercase().starts_with("pkcs11:") => {
            "(an invalid pkcs11: URI)".to_string()
        }
        _ => spec.to_string(),
    }
}

fn input_of(v: &VerifiedBundle<File>) -> Result<BundleInput> {
    let manifest = v
        .manifest()
        .ok_or_else(|| Error::Bundle("the bundle manifest was not loaded".into()))?;
    convert::bundle_input(manifest, &v.signature().spki_hashes)
}

impl BundleOpener for VerifiedOpener {
    fn open(
        &self,
        source: &str,
        config: &SystemConfig,
        opts: &OpenOptions,
    ) -> Result<OpenedBundle> {
        let fd = BundleFd::open(source)?;
        let (mut verified, _) = self.verify(&fd, config, None)?;
        policy::check(
            &facts(&verified),
            &config.bundle_formats,
            opts.purpose,
            opts.require_manifest_hash.as_deref(),
        )?;
        let file = fd
            .file
            .try_clone()
            .map_err(|e| Error::io("failed to duplicate the bundle file handle", &fd.path, e))?;
        let mounted = MountedBundle::mount(&verified, file, &fd.path, &config.mount_prefix)?;
        if verified.manifest_in_payload() {
            verified.load_plain_manifest(mounted.read_manifest()?)?;
        }
        let info = input_of(&verified)?;
        let protection = match verified.format() {
            BundleFormat::Plain => ImageProtection::Unchecked,
            BundleFormat::Verity | BundleFormat::Crypt => ImageProtection::DmVerity,
        };
        Ok(OpenedBundle {
            info,
            mount_dir: mounted.dir().to_path_buf(),
            protection,
            guard: Some(Box::new(mounted)),
        })
    }

    fn inspect(&self, source: &str, config: &SystemConfig) -> Result<BundleInput> {
        let fd = BundleFd::open(source)?;
        let (mut verified, _) = self.verify(&fd, config, None)?;
        policy::check(
            &facts(&verified),
            &config.bundle_formats,
            Purpose::Inspect,
            None,
        )?;
        if verified.manifest_in_payload() {
            super::info::load_plain_manifest(&mut verified)?;
        }
        input_of(&verified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_specs_in_messages_hide_pins() {
        let shown = shown_spec("pkcs11:token=dev;object=key?pin-value=1234");
        assert!(!shown.contains("1234"), "{shown}");
        assert!(shown.contains("token=dev"), "{shown}");
        assert_eq!(shown_spec("/etc/rauc/key.pem"), "/etc/rauc/key.pem");
        assert_eq!(shown_spec("pkcs11:%zz"), "(an invalid pkcs11: URI)");
    }

    #[test]
    fn urls_are_refused_with_a_reason() {
        let e = BundleFd::open("https://example.com/b.raucb")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("streaming"), "{e}");
    }
}
