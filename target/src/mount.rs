//! The bundle mount stack: loop → dm-verity → (dm-crypt) → squashfs, torn down on every path.
//!
//! [`BundleMount::mount`] first computes a [`MountPlan`] (pure, bounds-checked), then builds the
//! stack one RAII layer at a time; if any step fails, the layers built so far are dropped in
//! reverse order, so a failure halfway leaves no loop device, dm device or mount behind.
//! [`BundleMount::unmount`] tears down explicitly and reports every failure; dropping the value
//! does the same silently (logging with `tracing`).

mod error;

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use tracing::{debug, info, warn};

pub use error::MountError;

use crate::dm::table::{self, VERITY_BLOCK_SIZE};
use crate::dm::{CryptKey, DmDevice, VerityParams};
use crate::loopdev::LoopDevice;

/// Everything needed to mount a verified verity or crypt bundle payload.
#[derive(Debug, Clone)]
pub struct BundleMountParams {
    /// Payload size P = D + verity-size (the bytes before the CMS; the loop size limit).
    pub payload_size: u64,
    /// dm-verity parameters; `verity.data_size` is D.
    pub verity: VerityParams,
    /// The `crypt-key` of a crypt bundle; `None` for verity bundles.
    pub crypt_key: Option<CryptKey>,
}

/// The decided shape of the stack (a pure function of the parameters and the file size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPlan {
    /// Loop device size limit (P).
    pub loop_size: u64,
    /// Bytes mapped by dm-verity and dm-crypt (D).
    pub data_size: u64,
    /// Whether a dm-crypt layer sits on top of dm-verity.
    pub crypt: bool,
}

impl MountPlan {
    /// Checks the parameters against each other and against the bundle file size.
    pub fn new(params: &BundleMountParams, file_size: u64) -> Result<MountPlan, MountError> {
        let data_size = params.verity.data_size;
        table::check_data_size(data_size)?;
        let p = params.payload_size;
        if !p.is_multiple_of(VERITY_BLOCK_SIZE) || p > file_size {
            return Err(MountError::InvalidParams(format!(
                "payload size {p} must be a multiple of {VERITY_BLOCK_SIZE} within the bundle file ({file_size} bytes)"
            )));
        }
        let hash_tree = p.saturating_sub(data_size);
        if hash_tree < table::min_hash_tree_size(data_size) {
            return Err(MountError::InvalidParams(format!(
                "verity data size {data_size} leaves {hash_tree} bytes for the hash tree in a payload of {p} bytes; \
                 at least {} are needed",
                table::min_hash_tree_size(data_size)
            )));
        }
        Ok(MountPlan {
            loop_size: p,
            data_size,
            crypt: params.crypt_key.is_some(),
        })
    }
}

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
    /// Mounts the squashfs of `bundle` read-only (`ro,nodev,nosuid`) at the existing directory
    /// `mount_point` through loop → dm-verity → (dm-crypt).
    pub fn mount(
        bundle: &Path,
        params: &BundleMountParams,
        mount_point: &Path,
    ) -> Result<BundleMount, MountError> {
        if !mount_point.is_dir() {
            return Err(MountError::MountPointMissing {
                path: mount_point.to_path_buf(),
            });
        }
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
        let loop_num = loop_dev.devnum();
        let verity = stack
            .verity
            .insert(DmDevice::create_verity(loop_num, &params.verity)?);
        let mut top = verity.path();
        if let Some(key) = &params.crypt_key {
            let verity_num = verity.devnum();
            top = stack
                .crypt
                .insert(DmDevice::create_crypt(verity_num, plan.data_size, key)?)
                .path();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn params(payload_size: u64, data_size: u64, crypt: bool) -> BundleMountParams {
        BundleMountParams {
            payload_size,
            verity: VerityParams {
                data_size,
                root_hash: [1; 32],
                salt: vec![2; 32],
            },
            crypt_key: crypt.then(|| CryptKey::from_bytes([3; 32])),
        }
    }

    #[test]
    fn plan_for_rauc_sized_bundles() {
        // environment.md §6.6: 1052672 data bytes + 16384 bytes of hash tree.
        let plan = MountPlan::new(&params(1_069_056, 1_052_672, true), 1_069_056 + 700).unwrap();
        assert_eq!(
            plan,
            MountPlan {
                loop_size: 1_069_056,
                data_size: 1_052_672,
                crypt: true
            }
        );
        let plan = MountPlan::new(&params(1_069_056, 1_052_672, false), 1_069_056).unwrap();
        assert!(!plan.crypt);
    }

    #[test]
    fn plan_rejects_out_of_bounds_and_inconsistent_sizes() {
        let cases = [
            (1_069_056, 1_052_672, 1_069_055), // payload beyond the end of the file
            (1_069_056 + 1, 1_052_672, 2_000_000), // payload not block aligned
            (1_069_056, 1_069_056, 2_000_000), // no room for a hash tree
            (1_052_672 + 12288, 1_052_672, 2_000_000), // hash tree too small (needs 4 blocks)
            (1_069_056, 2_000_000 - 4096, 2_000_000), // data larger than the payload
            (1_069_056, 0, 2_000_000),         // empty data
            (1_069_056, 1000, 2_000_000),      // unaligned data
        ];
        for (p, d, file) in cases {
            let result = MountPlan::new(&params(p, d, false), file);
            assert!(
                matches!(result, Err(MountError::InvalidParams(_))),
                "P={p} D={d} file={file}: {result:?}"
            );
        }
    }
}
