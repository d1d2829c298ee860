//! **Test double**: an unpacked bundle directory (the content directory `rauc bundle` takes:
//! `manifest.raucm` plus image files) taken as an already verified and mounted bundle. It checks
//! no signature and must never be used for real bundles; the `ota` binary enables it only with
//! `--dangerous-unverified-directory`, and the host tests of the executor and the D-Bus service
//! use it where no device-mapper exists.

use std::path::Path;

use bundle::keyfile::{Group, KeyFile};

use super::{BundleOpener, ImageProtection, OpenOptions, OpenedBundle};
use crate::config::SystemConfig;
use crate::error::{Error, Result};
use crate::plan::{BundleInput, ImageHooks, ImageInput};

/// **Test double**: an unpacked bundle directory taken as verified and mounted. No signature
/// is checked. See the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct DirectoryBundleOpener;

impl BundleOpener for DirectoryBundleOpener {
    fn open(&self, source: &str, _: &SystemConfig, _: &OpenOptions) -> Result<OpenedBundle> {
        let dir = Path::new(source);
        if !dir.is_dir() {
            return Err(Error::Bundle(format!(
                "Failed to open bundle '{source}': the directory test double only opens directories"
            )));
        }
        let manifest = dir.join("manifest.raucm");
        let text = std::fs::read_to_string(&manifest)
            .map_err(|e| Error::io("failed to read manifest", &manifest, e))?;
        let info = read_manifest(&text)
            .map_err(|e| Error::Bundle(format!("{}: {e}", manifest.display())))?;
        Ok(OpenedBundle {
            info,
            mount_dir: dir.to_path_buf(),
            protection: ImageProtection::Unchecked,
            guard: None,
        })
    }
}

/// Minimal manifest reading for the test double: `[update]`, `[hooks]`, `[bundle]` and
/// `[image.CLASS[.VARIANT]]` (filename, sha256, size, hooks). The real manifest parser is
/// `bundle::manifest`, used by [`super::VerifiedOpener`].
fn read_manifest(text: &str) -> std::result::Result<BundleInput, bundle::keyfile::KeyFileError> {
    let mut kf = KeyFile::parse(text)?;
    let mut b = BundleInput::default();
    if let Some(mut g) = kf.take_group("update") {
        b.compatible = g.require_string("compatible")?;
        b.version = g.take_string("version")?;
        b.description = g.take_string("description")?;
        b.build = g.take_string("build")?;
    }
    if let Some(mut g) = kf.take_group("hooks") {
        b.hook_file = g.take_string("filename")?;
        let hooks = g.take_list("hooks")?.unwrap_or_default();
        b.install_check_hook = hooks.iter().any(|h| h == "install-check");
    }
    let _ = kf.take_group("bundle");
    for g in kf.take_groups_with_prefix("image.") {
        b.images.push(read_image(g)?);
    }
    Ok(b)
}

fn read_image(mut g: Group) -> std::result::Result<ImageInput, bundle::keyfile::KeyFileError> {
    let mut parts = g.name()["image.".len()..].splitn(2, '.');
    let slot_class = parts.next().unwrap_or_default().to_string();
    let variant = parts.next().map(str::to_string);
    let hooks = g.take_list("hooks")?.unwrap_or_default();
    Ok(ImageInput {
        slot_class,
        variant,
        filename: g.take_string("filename")?,
        sha256: g.take_string("sha256")?,
        size: g.take_u64("size")?.unwrap_or(0),
        hooks: ImageHooks {
            pre_install: hooks.iter().any(|h| h == "pre-install"),
            install: hooks.iter().any(|h| h == "install"),
            post_install: hooks.iter().any(|h| h == "post-install"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_manifest() {
        let b = read_manifest(
            "[update]\ncompatible=Test Device\nversion=1\n[hooks]\nfilename=hook.sh\nhooks=install-check;\n\
             [bundle]\nformat=verity\n[image.rootfs]\nfilename=r.img\nsha256=ab\nsize=4\nhooks=pre-install;post-install;\n\
             [image.appfs.v2]\nfilename=a.img\n",
        )
        .unwrap();
        assert_eq!(b.compatible, "Test Device");
        assert!(b.install_check_hook);
        assert_eq!(b.images[0].size, 4);
        assert!(b.images[0].hooks.pre_install && !b.images[0].hooks.install);
        assert_eq!(b.images[1].variant.as_deref(), Some("v2"));
    }
}
