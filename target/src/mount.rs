//! The bundle mount stack: loop → dm-verity → (dm-crypt) → squashfs (plain bundles: loop →
//! squashfs), torn down on every path.
//!
//! [`BundleMount::mount`] first computes a [`MountPlan`] (pure, bounds-checked), then builds the
//! stack one RAII layer at a time; if any step fails, the layers built so far are dropped in
//! reverse order, so a failure halfway leaves no loop device, dm device or mount behind.
//! [`BundleMount::unmount`] tears down explicitly and reports every failure; dropping the value
//! does the same silently (logging with `tracing`).

mod error;
mod params;

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use tracing::{debug, info, warn};

pub use error::MountError;
pub use params::{BundleMountParams, MountPlan};

use crate::dm::DmDevice;
use crate::loopdev::LoopDevice;

/// A mounted bundle payload; unmounts and removes every layer on drop.
#[derive(Debug)]
pub struct BundleMount {
    mount_point: PathBuf,
    mounted: bool,
    // Teardown order: mount, crypt, verity, loop.
    crypt: Option<DmDevice>,
    verity: Option<DmDevice>,
    loop_dev: Option<LoopDevice>,
}

impl BundleMount {
    /// Mounts the bundle's squashfs read-only (`ro,nodev,nosuid`) at the existing directory
    /// `mount_point` through loop → dm-verity → (dm-crypt), or loop only for plain bundles.
    pub fn mount(
        params: &BundleMountParams,
        mount_point: &Path,
    ) -> Result<BundleMount, MountError> {
        if !mount_point.is_dir() {
            return Err(MountError::MountPointMissing {
                path: mount_point.to_path_buf(),
            });
        }
        let bundle = params.bundle();
        let plan = MountPlan::new(params, file_size(bundle)?)?;
        debug!(?plan, bundle = %bundle.display(), "mounting bundle");
        let mut stack = BundleMount {
            mount_point: mount_point.to_path_buf(),
            mounted: false,
            crypt: None,
            verity: None,
            loop_dev: None,
        };
        let loop_dev = stack
            .loop_dev
            .insert(LoopDevice::attach_read_only(bundle, plan.loop_size)?);
        let mut top = loop_dev.path().to_path_buf();
        let loop_num = loop_dev.devnum();
        if let Some(verity) = params.verity() {
            let verity_dev = stack
                .verity
                .insert(DmDevice::create_verity(loop_num, verity)?);
            top = verity_dev.path();
            if let Some(key) = params.crypt_key() {
                let verity_num = verity_dev.devnum();
                top = stack
                    .crypt
                    .insert(DmDevice::create_crypt(verity_num, verity.data_size, key)?)
                    .path();
            }
        }
        mount_squashfs(&top, mount_point)?;
        stack.mounted = true;
        info!(bundle = %bundle.display(), mount_point = %mount_point.display(), device = %top.display(), "mounted bundle");
        Ok(stack)
    }

    /// Where the squashfs is mounted.
    pub fn mount_point(&self) -> &Path {
        &self.mount_point
    }

    /// The device the squashfs is mounted from (`/dev/dm-N`: crypt if present, else verity).
    pub fn top_device(&self) -> Option<PathBuf> {
        self.crypt
            .as_ref()
            .or(self.verity.as_ref())
            .map(DmDevice::path)
    }

    /// The loop device under the stack.
    pub fn loop_device(&self) -> Option<&Path> {
        self.loop_dev.as_ref().map(LoopDevice::path)
    }

    /// Unmounts and removes every layer, in reverse order, and reports what failed.
    ///
    /// A busy file system is detached lazily and busy dm devices are removed deferred, so the
    /// kernel still cleans up once the last user lets go; both are reported as errors.
    pub fn unmount(mut self) -> Result<(), MountError> {
        let mut failures = self.teardown();
        match failures.len() {
            0 => Ok(()),
            1 => Err(failures.remove(0)),
            _ => Err(MountError::Teardown { failures }),
        }
    }

    fn teardown(&mut self) -> Vec<MountError> {
        let mut failures = Vec::new();
        if std::mem::replace(&mut self.mounted, false) {
            failures.extend(unmount_path(&self.mount_point).err());
        }
        for device in [self.crypt.take(), self.verity.take()]
            .into_iter()
            .flatten()
        {
            failures.extend(device.remove().err());
        }
        if let Some(loop_dev) = self.loop_dev.take() {
            failures.extend(loop_dev.detach().err());
        }
        failures
    }
}

impl Drop for BundleMount {
    fn drop(&mut self) {
        for err in self.teardown() {
            warn!("{err}");
        }
    }
}

fn file_size(path: &Path) -> Result<u64, MountError> {
    let mut file = File::open(path).map_err(|source| MountError::io("open", path, source))?;
    file.seek(SeekFrom::End(0))
        .map_err(|source| MountError::io("seek to the end of", path, source))
}

fn mount_squashfs(device: &Path, mount_point: &Path) -> Result<(), MountError> {
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID;
    nix::mount::mount(
        Some(device),
        mount_point,
        Some("squashfs"),
        flags,
        None::<&str>,
    )
    .map_err(|errno| MountError::Mount {
        device: device.to_path_buf(),
        mount_point: mount_point.to_path_buf(),
        errno,
    })
}

/// `umount`; if busy, a lazy detach so that the layers below can still go away later.
fn unmount_path(mount_point: &Path) -> Result<(), MountError> {
    match nix::mount::umount2(mount_point, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(Errno::EBUSY) => {
            let _ = nix::mount::umount2(mount_point, MntFlags::MNT_DETACH);
            Err(MountError::Unmount {
                mount_point: mount_point.to_path_buf(),
                errno: Errno::EBUSY,
                detached_lazily: true,
            })
        }
        Err(errno) => Err(MountError::Unmount {
            mount_point: mount_point.to_path_buf(),
            errno,
            detached_lazily: false,
        }),
    }
}
