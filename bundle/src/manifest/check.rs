//! RAUC's manifest checks (`rauc: src/manifest.c (check_manifest_*)`, `rauc-format.md` §2.5).

use super::params::decode32;
use super::{BundleFormat, CryptKey, Manifest, VerityParams};
use crate::{Error, Result};

/// The typed parameters of a checked external manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalParams {
    /// `verity` or `crypt`.
    pub format: BundleFormat,
    /// The dm-verity parameters.
    pub verity: VerityParams,
    /// The payload key (crypt only).
    pub crypt_key: Option<CryptKey>,
}

impl Manifest {
    /// The check of an *input* manifest (content directory, before `rauc bundle`): common rules,
    /// no `sha256`/`size`/`converted`, no `/` in filenames, no artifacts or converters in plain
    /// bundles, and `install` hooks not combined with others.
    pub fn check_input(&self) -> Result<()> {
        self.check_common()?;
        if self.bundle.format == BundleFormat::Plain {
            self.check_plain()?;
        }
        for image in &self.images {
            let name = image.filename.as_deref().unwrap_or("(null)");
            if image.filename.as_deref().is_some_and(|f| f.contains('/')) {
                return Err(Error::manifest(format!(
                    "Image filename {name} must not contain '/'"
                )));
            }
            if image.sha256.is_some() {
                return Err(Error::manifest(format!(
                    "Unexpected digest for image {name} in input manifest"
                )));
            }
            if let Some(size) = image.size {
                return Err(Error::manifest(format!(
                    "Unexpected size {size} for image {name} in input manifest"
                )));
            }
            if image.converted.as_ref().is_some_and(|c| !c.is_empty()) {
                return Err(Error::manifest(
                    "Unexpected 'converted' option in input manifest",
                ));
            }
            if image.hooks.install && (image.hooks.pre_install || image.hooks.post_install) {
                return Err(Error::manifest(
                    "An 'install' hook must not be combined with 'pre-install' or 'post-install' hooks",
                ));
            }
        }
        Ok(())
    }

    /// The check of an *internal* manifest (the squashfs `manifest.raucm`), with rauc 1.8's
    /// semantics: every image complete (`sha256`, `size`), no crypt key and no verity keys. As in
    /// 1.8 the format may be verity or crypt (the internal manifest of such bundles names its
    /// format); a plain bundle's caller must additionally require [`BundleFormat::Plain`].
    pub fn check_internal(&self) -> Result<()> {
        self.check_common()?;
        self.check_bundled()?;
        if self.bundle.format == BundleFormat::Plain {
            self.check_plain()?;
        }
        let format = self.bundle.format;
        if self.bundle.crypt_key.is_some() {
            return Err(Error::manifest(
                "Unexpected key for crypt bundle in internal manifest",
            ));
        }
        for (present, what) in [
            (self.bundle.verity_hash.is_some(), "hash"),
            (self.bundle.verity_salt.is_some(), "salt"),
            (self.bundle.verity_size.is_some(), "size"),
        ] {
            if present {
                return Err(Error::manifest(format!(
                    "Unexpected verity {what} for {format} bundle in internal manifest"
                )));
            }
        }
        Ok(())
    }

    /// The check of an *external* manifest (the one signed inside the CMS): format verity or
    /// crypt, 64-hex `verity-hash`/`verity-salt` (and `crypt-key` for crypt), `verity-size` a
    /// non-zero multiple of 4096, every image complete. Returns the typed parameters.
    pub fn check_external(&self) -> Result<ExternalParams> {
        self.check_common()?;
        let format = self.bundle.format;
        if format == BundleFormat::Plain {
            return Err(Error::manifest(
                "Unsupported bundle format 'plain' for external manifest",
            ));
        }
        let crypt_key = if format == BundleFormat::Crypt {
            let text = self
                .bundle
                .crypt_key
                .as_ref()
                .ok_or_else(|| Error::manifest("Missing key for crypt bundle"))?;
            Some(
                CryptKey::from_hex(text.expose())
                    .ok_or_else(|| Error::manifest("Invalid key for crypt bundle"))?,
            )
        } else {
            None
        };
        let decode = |value: &Option<String>, what: &str| -> Result<[u8; 32]> {
            let text = value
                .as_deref()
                .ok_or_else(|| Error::manifest(format!("Missing {what} for {format} bundle")))?;
            decode32(text)
                .ok_or_else(|| Error::manifest(format!("Invalid {what} for {format} bundle")))
        };
        let root_hash = decode(&self.bundle.verity_hash, "hash")?;
        let salt = decode(&self.bundle.verity_salt, "salt")?;
        let tree_size = self
            .bundle
            .verity_size
            .filter(|&s| s != 0)
            .ok_or_else(|| Error::manifest(format!("Missing size for {format} bundle")))?;
        if tree_size % 4096 != 0 {
            return Err(Error::manifest(format!(
                "Unaligned size for {format} bundle"
            )));
        }
        self.check_bundled()?;
        Ok(ExternalParams {
            format,
            verity: VerityParams {
                root_hash,
                salt,
                tree_size,
            },
            crypt_key,
        })
    }

    fn check_common(&self) -> Result<()> {
        let image_hooks = self.images.iter().any(|i| i.hooks.any());
        if (self.hooks.install_check || image_hooks) && self.hooks.filename.is_none() {
            return Err(Error::manifest(
                "Hooks used, but no hook 'filename' defined in [hooks] section",
            ));
        }
        for image in &self.images {
            if image.adaptive.is_some() && image.filename.is_none() {
                return Err(Error::manifest("'adaptive' requires 'filename' to be set"));
            }
            if image.convert.is_some() && image.filename.is_none() {
                return Err(Error::manifest("'convert' requires 'filename' to be set"));
            }
        }
        Ok(())
    }

    fn check_plain(&self) -> Result<()> {
        for image in &self.images {
            if image.artifact.is_some() {
                return Err(Error::manifest(
                    "Artifacts are not supported in plain bundles",
                ));
            }
            if image.convert.is_some() || image.converted.as_ref().is_some_and(|c| !c.is_empty()) {
                return Err(Error::manifest(
                    "Image converters are not supported in plain bundles",
                ));
            }
        }
        Ok(())
    }

    /// Every image with a filename has a valid `sha256` and a `size` (`check_manifest_bundled`).
    fn check_bundled(&self) -> Result<()> {
        for image in &self.images {
            let Some(name) = image.filename.as_deref() else {
                continue;
            };
            if name.contains('/') {
                return Err(Error::manifest(format!(
                    "Image filename {name} must not contain '/'"
                )));
            }
            let digest = image
                .sha256
                .as_deref()
                .ok_or_else(|| Error::manifest(format!("Missing digest for image {name}")))?;
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::manifest(format!(
                    "Invalid digest {digest} for image {name}"
                )));
            }
            if image.size.is_none() && !image.hooks.install {
                return Err(Error::manifest(format!("Missing size for image {name}")));
            }
            if let (Some(convert), Some(converted)) = (&image.convert, &image.converted) {
                if convert.len() != converted.len() {
                    return Err(Error::manifest(format!(
                        "Inconsistent number of converted inputs/outputs for image {name}"
                    )));
                }
            } else if image.convert.is_some() {
                return Err(Error::manifest(format!(
                    "Missing converted outputs for image {name}"
                )));
            }
        }
        Ok(())
    }
}
