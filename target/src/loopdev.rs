//! Loop devices over a byte range of a bundle file.
//!
//! [`LoopDevice::attach_read_only`] binds a free `/dev/loopN` to the first `size_limit` bytes of a
//! file (or block device): read-only, autoclear, 4096-byte logical blocks — the settings RAUC uses
//! for a bundle payload (`lo_sizelimit` = payload size). The value detaches the device on drop.
//!
//! `LOOP_CONFIGURE` (Linux ≥ 5.8) is used when available, otherwise `LOOP_SET_FD` +
//! `LOOP_SET_STATUS64` + `LOOP_SET_BLOCK_SIZE`. Another process may grab the device between
//! `LOOP_CTL_GET_FREE` and the bind (`EBUSY`), or be tearing it down (`ENXIO`); both races are
//! retried with the next free device.

mod sys;

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use tracing::{debug, warn};

use crate::dm::DevNum;
use crate::mount::MountError;

/// Logical block size of the loop devices made here (bundle payloads are 4 KiB aligned).
pub const LOOP_BLOCK_SIZE: u32 = 4096;

/// How often a bind is retried after losing the `LOOP_CTL_GET_FREE` race.
const BIND_ATTEMPTS: u32 = 16;

/// A bound loop device; detaches itself (`LOOP_CLR_FD`) when dropped.
///
/// The device is configured with autoclear, so if another user (a dm table) still holds it when
/// this value is dropped, the kernel frees it as soon as that user lets go.
#[derive(Debug)]
pub struct LoopDevice {
    file: Option<File>,
    path: PathBuf,
    devnum: DevNum,
    size: u64,
}

impl LoopDevice {
    /// Binds a free loop device read-only to bytes `0..size_limit` of `backing`.
    ///
    /// `size_limit` must be a non-zero multiple of [`LOOP_BLOCK_SIZE`] and must not exceed the
    /// size of `backing`. The resulting device size is checked against `size_limit`.
    pub fn attach_read_only(backing: &Path, size_limit: u64) -> Result<LoopDevice, MountError> {
        let control = open_rw(Path::new(sys::LOOP_CONTROL))?;
        attach_with(backing, size_limit, Bind::Configure, || {
            sys::get_free(&control)
        })
    }

    fn finish(file: File, path: PathBuf, size_limit: u64) -> Result<LoopDevice, MountError> {
        let meta = file
            .metadata()
            .map_err(|source| MountError::io("stat", &path, source))?;
        let devnum = DevNum::from_dev_t(meta.rdev());
        let mut device = LoopDevice {
            file: Some(file),
            path,
            devnum,
            size: 0,
        };
        let file = device.file.as_ref().expect("just set");
        device.size =
            sys::device_size(file).map_err(|e| ioctl_err("BLKGETSIZE64", &device.path, e))?;
        if device.size != size_limit {
            // Dropping `device` detaches it again.
            return Err(MountError::LoopSize {
                device: device.path.clone(),
                expected: size_limit,
                actual: device.size,
            });
        }
        debug!(device = %device.path.display(), size = size_limit, "configured loop device");
        Ok(device)
    }

    /// The device node, e.g. `/dev/loop3`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Major and minor number of the device (what dm tables reference).
    pub fn devnum(&self) -> DevNum {
        self.devnum
    }

    /// Size of the device in bytes (equal to the requested size limit).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Detaches the device now and reports failures (dropping detaches silently).
    pub fn detach(mut self) -> Result<(), MountError> {
        self.detach_inner()
    }

    fn detach_inner(&mut self) -> Result<(), MountError> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        match sys::clear_fd(&file) {
            // ENXIO: already unbound (autoclear ran first).
            Ok(()) | Err(Errno::ENXIO) => {
                debug!(device = %self.path.display(), "detached loop device");
                Ok(())
            }
            Err(errno) => Err(ioctl_err("LOOP_CLR_FD", &self.path, errno)),
        }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        if let Err(err) = self.detach_inner() {
            warn!("{err}");
        }
    }
}

/// How a device is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bind {
    /// `LOOP_CONFIGURE`, falling back to [`Bind::Legacy`] on kernels without it.
    Configure,
    /// `LOOP_SET_FD` + `LOOP_SET_STATUS64` + `LOOP_SET_BLOCK_SIZE`.
    Legacy,
}

/// Binds the device `next_free` names, retrying with the next one while the bind fails with
/// `EBUSY` (someone else took the device after `LOOP_CTL_GET_FREE`) or `ENXIO` (someone is
/// tearing it down).
fn attach_with(
    backing: &Path,
    size_limit: u64,
    method: Bind,
    mut next_free: impl FnMut() -> Result<u32, Errno>,
) -> Result<LoopDevice, MountError> {
    let backing_file = open_backing(backing)?;
    let backing_size = size_of(&backing_file, backing)?;
    check_range(backing, size_limit, backing_size)?;
    for attempt in 1..=BIND_ATTEMPTS {
        let number =
            next_free().map_err(|e| ioctl_err("LOOP_CTL_GET_FREE", sys::LOOP_CONTROL, e))?;
        let path = PathBuf::from(format!("/dev/loop{number}"));
        // ENXIO: the device is being torn down by another user right now.
        let file = match open_rw(&path) {
            Err(MountError::Io { source, .. }) if source.raw_os_error() == Some(libc::ENXIO) => {
                debug!(device = %path.display(), attempt, "loop device is being torn down, retrying");
                continue;
            }
            other => other?,
        };
        match bind(&file, &path, &backing_file, backing, size_limit, method) {
            Ok(()) => return LoopDevice::finish(file, path, size_limit),
            Err((_, Errno::EBUSY | Errno::ENXIO)) => {
                debug!(device = %path.display(), attempt, "loop device taken by another process, retrying");
            }
            Err((ioctl, errno)) => return Err(ioctl_err(ioctl, &path, errno)),
        }
    }
    Err(MountError::LoopBusy {
        attempts: BIND_ATTEMPTS,
    })
}

/// Binds `device` to `backing`; returns the failing ioctl and the raw errno so that `EBUSY` can
/// be retried.
fn bind(
    device: &File,
    path: &Path,
    backing_file: &File,
    backing: &Path,
    size_limit: u64,
    method: Bind,
) -> Result<(), (&'static str, Errno)> {
    let info = sys::LoopInfo64::read_only_autoclear(size_limit, backing);
    if method == Bind::Configure {
        return match sys::configure(device, backing_file, LOOP_BLOCK_SIZE, &info) {
            Err(Errno::EINVAL | Errno::ENOTTY) => {
                debug!(device = %path.display(), "LOOP_CONFIGURE unsupported, using LOOP_SET_FD");
                bind(
                    device,
                    path,
                    backing_file,
                    backing,
                    size_limit,
                    Bind::Legacy,
                )
            }
            other => other.map_err(|e| ("LOOP_CONFIGURE", e)),
        };
    }
    sys::set_fd(device, backing_file).map_err(|e| ("LOOP_SET_FD", e))?;
    let configured = sys::set_status(device, &info)
        .map_err(|e| ("LOOP_SET_STATUS64", e))
        .and_then(|()| {
            sys::set_block_size(device, LOOP_BLOCK_SIZE).map_err(|e| ("LOOP_SET_BLOCK_SIZE", e))
        });
    if let Err((ioctl, errno)) = configured {
        let _ = sys::clear_fd(device);
        // Never report EBUSY from here: the device is ours, so this is not the bind race.
        return Err((
            ioctl,
            if errno == Errno::EBUSY {
                Errno::EIO
            } else {
                errno
            },
        ));
    }
    Ok(())
}

/// Rejects a size limit that is zero, not block aligned or beyond the end of the backing file.
fn check_range(backing: &Path, size_limit: u64, backing_size: u64) -> Result<(), MountError> {
    if size_limit == 0
        || !size_limit.is_multiple_of(u64::from(LOOP_BLOCK_SIZE))
        || size_limit > backing_size
    {
        return Err(MountError::LoopRange {
            path: backing.to_path_buf(),
            size_limit,
            backing_size,
        });
    }
    Ok(())
}

fn open_backing(path: &Path) -> Result<File, MountError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| MountError::io("open", path, source))
}

fn open_rw(path: &Path) -> Result<File, MountError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| MountError::io("open", path, source))
}

/// Size of a regular file or block device (seeking to the end works for both).
fn size_of(mut file: &File, path: &Path) -> Result<u64, MountError> {
    file.seek(SeekFrom::End(0))
        .map_err(|source| MountError::io("seek to the end of", path, source))
}

fn ioctl_err(ioctl: &'static str, device: impl AsRef<Path>, errno: Errno) -> MountError {
    MountError::LoopIoctl {
        ioctl,
        device: device.as_ref().to_path_buf(),
        errno,
    }
}

/// A loop device that is currently bound, as listed in sysfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedLoop {
    /// The device node, e.g. `/dev/loop0`.
    pub device: PathBuf,
    /// The backing file as the kernel reports it.
    pub backing_file: String,
}

/// Lists every bound loop device (`/sys/block/loop*/loop/backing_file`).
///
/// Used to prove that a teardown left nothing behind.
pub fn attached() -> Result<Vec<AttachedLoop>, MountError> {
    let sys_block = Path::new("/sys/block");
    let entries =
        std::fs::read_dir(sys_block).map_err(|source| MountError::io("list", sys_block, source))?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        if let Ok(backing) = std::fs::read_to_string(entry.path().join("loop/backing_file")) {
            found.push(AttachedLoop {
                device: PathBuf::from(format!("/dev/{name}")),
                backing_file: backing.trim_end().to_string(),
            });
        }
    }
    found.sort_by(|a, b| a.device.cmp(&b.device));
    Ok(found)
}

/// Raw file descriptor helper for the `sys` module.
fn raw(file: &File) -> i32 {
    file.as_raw_fd()
}

#[cfg(test)]
mod tests;
