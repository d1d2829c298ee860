//! What `ota info` shows: the facts `rauc info` prints, gathered through the same open →
//! decrypt → verify path as installation (without mounting), for [`bundle::info::render`].

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use backhand::{FilesystemReader, InnerNode};
use bundle::cms::enveloped::list_recipients;
use bundle::info::BundleInfo;
use bundle::state::VerifiedBundle;
use openssl::x509::X509;

use super::VerifiedOpener;
use super::policy;
use super::verified::{BundleFd, KeyOverride};
use crate::config::SystemConfig;
use crate::error::{Error, Result};

/// Largest `manifest.raucm` read from a plain bundle's squashfs.
const MAX_MANIFEST: u64 = 1 << 20;

/// Options of `info`.
#[derive(Debug, Clone, Copy, Default)]
pub struct InfoOptions<'a> {
    /// `--no-verify`: show the manifest without checking the signature (nothing can be trusted).
    pub no_verify: bool,
    /// `--key`/`--cert`: the decryption key instead of `[encryption]`.
    pub key: Option<KeyOverride<'a>>,
}

impl VerifiedOpener {
    /// Opens, decrypts (if needed) and, unless `no_verify`, verifies the bundle at `source`,
    /// and returns what `rauc info` prints. The `bundle-formats` mask applies as in `rauc info`.
    pub fn bundle_info(
        &self,
        source: &str,
        config: &SystemConfig,
        opts: InfoOptions<'_>,
    ) -> Result<BundleInfo> {
        let fd = BundleFd::open(source)?;
        if opts.no_verify {
            return self.unverified_info(&fd, config, opts.key);
        }
        let (signed, envelope) = self.open_signed(&fd, config, opts.key)?;
        let first_certificate = first_certificate(signed.signed_data());
        let mut verified = self.verify_signed(&fd, signed, config)?;
        policy::check_format_allowed(verified.format(), &config.bundle_formats)?;
        if verified.manifest_in_payload() {
            load_plain_manifest(&mut verified)?;
        }
        let loaded = verified
            .manifest()
            .ok_or_else(|| Error::Bundle("the bundle manifest was not loaded".into()))?
            .clone();
        Ok(BundleInfo {
            format: verified.format(),
            encrypted: verified.was_encrypted(),
            manifest: loaded.manifest,
            manifest_hash: loaded.hash,
            first_certificate,
            chain: Some(verified.signature().chain.clone()),
            recipients: envelope.as_deref().map(list_recipients).transpose()?,
        })
    }

    fn unverified_info(
        &self,
        fd: &BundleFd,
        config: &SystemConfig,
        key: Option<KeyOverride<'_>>,
    ) -> Result<BundleInfo> {
        let (signed, envelope) = self.open_signed(fd, config, key)?;
        let first_certificate = first_certificate(signed.signed_data());
        let encrypted = signed.was_encrypted();
        let unverified = signed.inspect_unverified()?;
        let loaded = unverified.manifest.ok_or_else(|| {
            Error::Bundle(
                "plain bundles carry their manifest in the payload, which is only read after \
                 verification: run info without --no-verify"
                    .into(),
            )
        })?;
        Ok(BundleInfo {
            format: loaded.manifest.bundle.format,
            encrypted,
            manifest: loaded.manifest,
            manifest_hash: loaded.hash,
            chain: None,
            first_certificate,
            recipients: envelope.as_deref().map(list_recipients).transpose()?,
        })
    }
}

fn first_certificate(signed_data: &[u8]) -> Option<X509> {
    let info = bundle::cms::inspect(signed_data).ok()?;
    info.certificates
        .first()
        .and_then(|der| X509::from_der(der).ok())
}

/// Reads `manifest.raucm` from a verified plain bundle's squashfs in user space (no mount) and
/// records it in the bundle.
pub(super) fn load_plain_manifest(verified: &mut VerifiedBundle<File>) -> Result<()> {
    let bytes = {
        let reader = verified.squashfs_reader()?;
        read_root_file(reader, "manifest.raucm")?
    };
    verified.load_plain_manifest(bytes)?;
    Ok(())
}

/// One regular file from the root of a squashfs, at most [`MAX_MANIFEST`] bytes.
fn read_root_file<R: Read + std::io::Seek + Send>(reader: R, name: &str) -> Result<Vec<u8>> {
    let squash = |e: backhand::BackhandError| {
        Error::Bundle(format!("failed to read the bundle's squashfs: {e}"))
    };
    let fs = FilesystemReader::from_reader(BufReader::new(reader)).map_err(squash)?;
    let wanted = Path::new("/").join(name);
    let node = fs
        .files()
        .find(|n| n.fullpath == wanted)
        .ok_or_else(|| Error::Bundle(format!("the bundle's squashfs has no {name}")))?;
    let InnerNode::File(file) = &node.inner else {
        return Err(Error::Bundle(format!(
            "{name} in the bundle's squashfs is not a regular file"
        )));
    };
    let mut data = Vec::new();
    fs.file(file)
        .reader_checked()
        .map_err(squash)?
        .take(MAX_MANIFEST + 1)
        .read_to_end(&mut data)
        .map_err(|e| Error::Bundle(format!("failed to read {name} from the squashfs: {e}")))?;
    if data.len() as u64 > MAX_MANIFEST {
        return Err(Error::Bundle(format!(
            "{name} is larger than {MAX_MANIFEST} bytes"
        )));
    }
    Ok(data)
}
