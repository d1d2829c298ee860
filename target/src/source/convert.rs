//! From the authenticated manifest to the planner's [`BundleInput`].

use bundle::manifest::LoadedManifest;

use crate::error::{Error, Result};
use crate::plan::{BundleInput, ImageHooks, ImageInput};

/// The planner's view of a verified manifest. `spki_hashes` are the signer chain's SPKI
/// SHA-256 digests (signer first). Manifest features the installer cannot honour are refused
/// here rather than silently ignored: a custom `[handler]` and artifact images.
pub fn bundle_input(loaded: &LoadedManifest, spki_hashes: &[[u8; 32]]) -> Result<BundleInput> {
    let m = &loaded.manifest;
    if let Some(handler) = &m.handler.filename {
        return Err(Error::Bundle(format!(
            "bundle uses a custom handler ('{handler}' in [handler]), which this installer does \
             not support; install images with the default handlers or slot hooks instead"
        )));
    }
    let mut images = Vec::with_capacity(m.images.len());
    for image in &m.images {
        if let Some(artifact) = &image.artifact {
            return Err(Error::Bundle(format!(
                "bundle image '{}/{artifact}' is an artifact (rauc >= 1.13), which this \
                 installer does not support",
                image.slot_class
            )));
        }
        images.push(ImageInput {
            slot_class: image.slot_class.clone(),
            variant: image.variant.clone(),
            filename: image.filename.clone(),
            sha256: image.sha256.clone(),
            size: image.size.unwrap_or(0),
            hooks: ImageHooks {
                pre_install: image.hooks.pre_install,
                install: image.hooks.install,
                post_install: image.hooks.post_install,
            },
        });
    }
    Ok(BundleInput {
        compatible: m.update.compatible.clone(),
        version: m.update.version.clone(),
        description: m.update.description.clone(),
        build: m.update.build.clone(),
        manifest_hash: Some(loaded.hash_hex()),
        hook_file: m.hooks.filename.clone(),
        install_check_hook: m.hooks.install_check,
        images,
        spki_hashes: spki_hashes.iter().map(spki_hash_text).collect(),
    })
}

/// An SPKI hash as RAUC prints it: upper-case hex bytes separated by colons.
pub fn spki_hash_text(hash: &[u8; 32]) -> String {
    hash.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> LoadedManifest {
        LoadedManifest::load(text.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn converts_images_hooks_and_hashes() {
        let m = load(
            "[update]\ncompatible=Test Device\nversion=1.0\n\n[bundle]\nformat=verity\n\n\
             [hooks]\nfilename=hook.sh\nhooks=install-check;\n\n\
             [image.rootfs]\nfilename=root.img\nsha256=aa\nsize=4096\nhooks=pre-install;post-install;\n\n\
             [image.appfs.v2]\nfilename=app.ext4\nsha256=bb\nsize=8192\n",
        );
        let b = bundle_input(&m, &[[0xab; 32], [0x01; 32]]).unwrap();
        assert_eq!(b.compatible, "Test Device");
        assert_eq!(b.version.as_deref(), Some("1.0"));
        assert_eq!(b.manifest_hash, Some(m.hash_hex()));
        assert_eq!(b.hook_file.as_deref(), Some("hook.sh"));
        assert!(b.install_check_hook);
        assert_eq!(b.images.len(), 2);
        assert_eq!(b.images[0].size, 4096);
        assert!(b.images[0].hooks.pre_install && b.images[0].hooks.post_install);
        assert_eq!(b.images[1].variant.as_deref(), Some("v2"));
        assert_eq!(b.spki_hashes[0], ["AB"; 32].join(":"));
        assert_eq!(b.spki_hashes[1].len(), 32 * 3 - 1);
    }

    #[test]
    fn refuses_custom_handlers() {
        let m = load(
            "[update]\ncompatible=X\n\n[handler]\nfilename=handler.sh\n\n[image.rootfs]\nfilename=r.img\n",
        );
        let e = bundle_input(&m, &[]).unwrap_err().to_string();
        assert!(e.contains("custom handler ('handler.sh'"), "{e}");
    }
}
