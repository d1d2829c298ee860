//! Writing an image into a slot: exclusive open, size check and (where nothing else
//! authenticates the bytes as they are read) a streaming SHA-256 check, fsync.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use openssl::sha::Sha256;

use crate::error::{Error, Result};

const CHUNK: usize = 1 << 20;

/// Whether the bytes of an image are hashed while they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hashing {
    /// Hash every byte and compare with the manifest's `sha256`.
    Sha256,
    /// Do not hash: every block read is already checked by dm-verity against the signed root
    /// hash (verity and crypt bundles, as RAUC). The size is still checked.
    CoveredByDmVerity,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Lower-case hex SHA-256 of the bytes written (`None` with [`Hashing::CoveredByDmVerity`]).
    pub sha256: Option<String>,
    /// Number of bytes written.
    pub size: u64,
}

/// Size of a block device (`BLKGETSIZE64`), `None` for other files.
fn block_device_size(file: &std::fs::File) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let meta = file.metadata().ok()?;
    if !meta.file_type().is_block_device() {
        return None;
    }
    nix::ioctl_read!(blkgetsize64, 0x12, 114, u64);
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 to the pointer; the fd is open for the call.
    unsafe { blkgetsize64(file.as_raw_fd(), &mut size) }.ok()?;
    Some(size)
}

/// Copies `image` into `device`: the device is opened write-only with `O_EXCL` (exclusive for
/// block devices; it must exist — slots are never created), the image must fit, bytes are
/// hashed while streaming (per `hashing`), and the device is fsynced. Returns what was
/// written; the caller compares it with the manifest via [`check_written`].
pub fn copy_image(image: &Path, device: &Path, hashing: Hashing) -> Result<Written> {
    let mut src =
        std::fs::File::open(image).map_err(|e| Error::io("failed to open image", image, e))?;
    let src_len = src
        .metadata()
        .map_err(|e| Error::io("failed to stat image", image, e))?
        .len();
    let mut dst = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_EXCL | libc::O_CLOEXEC)
        .open(device)
        .map_err(|e| Error::io("failed to open slot device exclusively", device, e))?;
    if let Some(cap) = block_device_size(&dst)
        && src_len > cap
    {
        return Err(Error::Install(format!(
            "Image '{}' ({src_len} bytes) does not fit into slot device '{}' ({cap} bytes)",
            image.display(),
            device.display()
        )));
    }
    let mut hasher = (hashing == Hashing::Sha256).then(Sha256::new);
    let mut buf = vec![0u8; CHUNK];
    let mut size: u64 = 0;
    loop {
        let n = src
            .read(&mut buf)
            .map_err(|e| Error::io("failed to read image", image, e))?;
        if n == 0 {
            break;
        }
        if let Some(h) = hasher.as_mut() {
            h.update(&buf[..n]);
        }
        dst.write_all(&buf[..n])
            .map_err(|e| Error::io("failed to write slot device", device, e))?;
        size += n as u64;
    }
    dst.sync_all()
        .map_err(|e| Error::io("failed to sync slot device", device, e))?;
    Ok(Written {
        sha256: hasher.map(|h| hex::encode(h.finish())),
        size,
    })
}

/// Compares what was written with the manifest's sha256 (when it was hashed) and size.
pub fn check_written(
    slot: &str,
    image: &Path,
    written: &Written,
    expected_sha256: Option<&str>,
    expected_size: u64,
) -> Result<()> {
    let sha_ok = match (expected_sha256, &written.sha256) {
        (Some(e), Some(got)) => e.eq_ignore_ascii_case(got),
        _ => true,
    };
    let size_ok = expected_size == 0 || expected_size == written.size;
    if sha_ok && size_ok {
        return Ok(());
    }
    Err(Error::ChecksumMismatch {
        slot: slot.to_string(),
        image: image.to_path_buf(),
        expected: expected_sha256.unwrap_or("(none)").to_string(),
        actual: written
            .sha256
            .clone()
            .unwrap_or_else(|| "(not hashed)".into()),
        expected_size,
        actual_size: written.size,
    })
}

/// Whether `device` (or the device it resolves to) is mounted, from `/proc/self/mounts`.
pub fn mount_point_of(device: &Path) -> Option<String> {
    let real = std::fs::canonicalize(device).unwrap_or_else(|_| device.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut f = l.split(' ');
        let dev = f.next()?;
        let mp = f.next()?;
        (Path::new(dev) == real || Path::new(dev) == device).then(|| mp.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_and_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("a.img");
        let dev = dir.path().join("slot");
        std::fs::write(&img, b"hello").unwrap();
        std::fs::write(&dev, vec![0u8; 16]).unwrap();
        let w = copy_image(&img, &dev, Hashing::Sha256).unwrap();
        assert_eq!(w.size, 5);
        let want = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert_eq!(w.sha256.as_deref(), Some(want));
        check_written("s", &img, &w, Some(want), 5).unwrap();
        assert!(check_written("s", &img, &w, Some("00"), 5).is_err());
        assert!(check_written("s", &img, &w, Some(want), 6).is_err());
        assert_eq!(&std::fs::read(&dev).unwrap()[..6], b"hello\0");
        assert!(copy_image(&img, &dir.path().join("missing"), Hashing::Sha256).is_err());
        // dm-verity covered: no hash, but the size still counts
        let w = copy_image(&img, &dev, Hashing::CoveredByDmVerity).unwrap();
        assert_eq!(w.sha256, None);
        check_written("s", &img, &w, Some("00"), 5).unwrap();
        assert!(check_written("s", &img, &w, Some(want), 6).is_err());
    }
}
