//! The error type of the mount stack (`loopdev`, `dm`, `mount`).

use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

/// What failed while setting up or tearing down a bundle mount, with the device or path involved.
///
/// Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A file or device node could not be opened, read or inspected.
    #[error("failed to {action} {path}: {source}")]
    Io {
        /// What was attempted (`open`, `stat`, …).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Parameters that cannot describe a bundle payload (sizes, key format).
    #[error("invalid bundle mount parameters: {0}")]
    InvalidParams(String),
    /// The requested loop range is empty, unaligned or beyond the end of the file.
    #[error(
        "cannot map {size_limit} bytes of {path} ({backing_size} bytes) through a loop device: \
         the size must be a non-zero multiple of 4096 within the file"
    )]
    LoopRange {
        /// The backing file.
        path: PathBuf,
        /// The requested size limit.
        size_limit: u64,
        /// The size of the backing file.
        backing_size: u64,
    },
    /// A loop ioctl failed.
    #[error("{ioctl} on {device} failed: {errno}; is the loop driver loaded?")]
    LoopIoctl {
        /// The ioctl (`LOOP_CONFIGURE`, …).
        ioctl: &'static str,
        /// The loop device or control node.
        device: PathBuf,
        /// The error number.
        errno: Errno,
    },
    /// Every free loop device was taken by someone else before we could bind it.
    #[error(
        "no loop device could be bound after {attempts} attempts (all were taken concurrently)"
    )]
    LoopBusy {
        /// How many devices were tried.
        attempts: u32,
    },
    /// The kernel did not apply the size limit.
    #[error("loop device {device} has {actual} bytes instead of the requested {expected}")]
    LoopSize {
        /// The loop device.
        device: PathBuf,
        /// The requested size.
        expected: u64,
        /// The size the kernel reports.
        actual: u64,
    },
    /// `/dev/mapper/control` could not be opened.
    #[error("failed to open /dev/mapper/control: {detail}; is device-mapper (dm-mod) available?")]
    DmControl {
        /// The underlying error.
        detail: String,
    },
    /// A device-mapper ioctl failed.
    #[error("{op} for dm device '{device}' failed: {detail}")]
    Dm {
        /// The ioctl (`DM_DEV_CREATE`, `DM_TABLE_LOAD`, …).
        op: &'static str,
        /// The dm device name (empty for list/version queries).
        device: String,
        /// The error (errno) description.
        detail: String,
    },
    /// A dm device was still in use and is only marked for deferred removal.
    #[error("dm device '{device}' is busy; it will be removed when its last user closes it")]
    DmDeferred {
        /// The dm device name.
        device: String,
    },
    /// The first block of the verity device did not verify (wrong root hash or salt, or corrupted data).
    #[error(
        "failed to read {device} through dm-verity: {source}; the bundle payload does not match its signed root hash"
    )]
    VerityRead {
        /// The verity device node.
        device: PathBuf,
        /// The read error (EIO).
        #[source]
        source: io::Error,
    },
    /// The verity target did not report `V` (verified) after loading.
    #[error(
        "dm-verity device {device} reports status '{status}' instead of 'V': the bundle payload is corrupted"
    )]
    VerityStatus {
        /// The verity device node.
        device: PathBuf,
        /// The status the kernel reported.
        status: String,
    },
    /// The mount point is not an existing directory.
    #[error("mount point {path} is not an existing directory")]
    MountPointMissing {
        /// The mount point.
        path: PathBuf,
    },
    /// `mount -t squashfs` failed (with a crypt bundle this usually means a wrong key).
    #[error(
        "failed to mount {device} (squashfs, ro,nodev,nosuid) on {mount_point}: {errno}; \
         a wrong crypt key or a corrupted payload leaves no valid squashfs"
    )]
    Mount {
        /// The top dm device.
        device: PathBuf,
        /// The mount point.
        mount_point: PathBuf,
        /// The error number.
        errno: Errno,
    },
    /// `umount` failed.
    #[error(
        "failed to unmount {mount_point}: {errno}{}",
        if *detached_lazily { "; detached lazily, it goes away when no longer used" } else { "" }
    )]
    Unmount {
        /// The mount point.
        mount_point: PathBuf,
        /// The error number.
        errno: Errno,
        /// Whether a lazy detach (`MNT_DETACH`) was done instead.
        detached_lazily: bool,
    },
    /// Several teardown steps failed.
    #[error("teardown of the bundle mount failed: {}", failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Teardown {
        /// Every failure, in teardown order.
        failures: Vec<MountError>,
    },
}

impl MountError {
    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error) -> MountError {
        MountError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}
