//! A verified bundle mounted at `<mountprefix>/bundle`, torn down (unmount, dm devices, loop
//! device, mount directory) when dropped.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use bundle::state::VerifiedBundle;

use crate::error::{Error, Result};
use crate::mount::{BundleMount, BundleMountParams};

/// Name of the bundle mount directory below the mount prefix (as RAUC).
pub const BUNDLE_MOUNT_NAME: &str = "bundle";
/// Largest `manifest.raucm` read from a plain bundle.
const MAX_MANIFEST: u64 = 1 << 20;

/// The mount of a verified bundle; dropping it tears everything down.
pub struct MountedBundle {
    mount: Option<BundleMount>,
    dir: PathBuf,
    /// The bundle file the loop device was set up from (kept open for the mount's lifetime).
    _file: File,
}

impl std::fmt::Debug for MountedBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MountedBundle")
            .field("dir", &self.dir)
            .field("mount", &self.mount)
            .finish()
    }
}

impl MountedBundle {
    /// Mounts `bundle` at `<prefix>/bundle` (created with mode 0700 if missing). `file` is the
    /// open bundle file `bundle` was read from, `path` its name for messages.
    pub fn mount(
        bundle: &VerifiedBundle<File>,
        file: File,
        path: &Path,
        prefix: &Path,
    ) -> Result<Self> {
        let dir = prefix.join(BUNDLE_MOUNT_NAME);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io("Failed creating mount path", &dir, e))?;
        if let Some(device) = mounted_at(&dir) {
            return Err(Error::Bundle(format!(
                "Failed mounting bundle: '{}' is already a mount point (of {device}); unmount it \
                 first (a previous installation may have been interrupted)",
                dir.display()
            )));
        }
        tracing::info!(
            "Mounting bundle '{}' to '{}'",
            path.display(),
            dir.display()
        );
        let params = BundleMountParams::from_verified(bundle)?;
        let mount = match BundleMount::mount(&params, &dir) {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                return Err(e.into());
            }
        };
        Ok(MountedBundle {
            mount: Some(mount),
            dir,
            _file: file,
        })
    }

    /// The mount directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads `manifest.raucm` from the mounted squashfs (plain bundles).
    pub fn read_manifest(&self) -> Result<Vec<u8>> {
        let path = self.dir.join("manifest.raucm");
        let file = File::open(&path).map_err(|e| Error::io("failed to open manifest", &path, e))?;
        let mut bytes = Vec::new();
        file.take(MAX_MANIFEST + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("failed to read manifest", &path, e))?;
        if bytes.len() as u64 > MAX_MANIFEST {
            return Err(Error::Bundle(format!(
                "{} is larger than {MAX_MANIFEST} bytes",
                path.display()
            )));
        }
        Ok(bytes)
    }
}

impl Drop for MountedBundle {
    fn drop(&mut self) {
        if let Some(mount) = self.mount.take() {
            match mount.unmount() {
                Ok(()) => tracing::debug!("unmounted bundle from '{}'", self.dir.display()),
                Err(e) => tracing::warn!("Failed to unmount bundle: {e}"),
            }
        }
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            tracing::warn!("Failed to remove '{}': {e}", self.dir.display());
        }
    }
}

/// The device mounted at `dir`, from `/proc/self/mounts` (octal escapes of spaces decoded).
fn mounted_at(dir: &Path) -> Option<String> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split(' ');
        let device = fields.next()?;
        let point = fields.next()?.replace("\\040", " ");
        (Path::new(&point) == dir).then(|| device.to_string())
    })
}
