//! Exclusive access to a plain bundle (`rauc-format.md` §1.8).
//!
//! A plain bundle's payload is authenticated once, by its detached signature, and then mounted
//! from the same file, so nobody else may be able to change the file in between: it must be a
//! regular file owned by root (or us) with permissions within 0755, on the root file system, on
//! a file system prepared by root, or on a local file system whose device is owned by root — and
//! no other process may have it open (a read lease must be grantable). If the first check fails
//! and we run as root, ownership is taken (`fchown` to root, group/other write dropped) and the
//! check repeats. verity/crypt bundles do not need this: dm-verity checks every block read.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// How far a file system can be trusted for a bundle (by `statfs` magic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsTrust {
    /// Only root can set it up (tmpfs, ramfs, overlay, ubifs, zfs, hostfs).
    Trusted,
    /// Local: trusted when its backing device is owned by root.
    Local,
    /// FUSE and NFS: content may change under us.
    Unsafe,
    /// Anything else.
    Unknown,
}

/// Classifies a `statfs` `f_type`.
pub fn fs_trust(magic: u64) -> FsTrust {
    match magic {
        0x0102_1994 | 0x8584_58f6 | 0x794c_7630 | 0x2405_1905 | 0x2fc1_2fc1 | 0x00c0_ffee => {
            FsTrust::Trusted
        }
        0x6573_5546 | 0x6969 => FsTrust::Unsafe,
        0x5346_414f | 0x9123_683e | 0x28cd_3d45 | 0x2011_bab0 | 0xef53 | 0xf2f5_2010 | 0x9660
        | 0x72b6 | 0x4d44 | 0x5346_544e | 0x7366_746e | 0x7275 | 0x7371_7368 | 0x1501_3346
        | 0x5846_5342 => FsTrust::Local,
        _ => FsTrust::Unknown,
    }
}

/// What the check looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    /// A regular file.
    pub regular: bool,
    /// Owner.
    pub uid: u32,
    /// Our effective uid.
    pub euid: u32,
    /// Permission bits (`st_mode & 07777`).
    pub mode: u32,
    /// On the same device as `/`.
    pub on_root_fs: bool,
    /// The file system's trust class.
    pub fs: FsTrust,
    /// Owner of the block device the file system is mounted from, if one was found.
    pub device_owner: Option<u32>,
}

/// The ownership, permission and file-system part of the check (pure).
pub fn check_facts(f: &FileFacts) -> std::result::Result<(), String> {
    if !f.regular {
        return Err("unsafe bundle (not a regular file)".into());
    }
    if f.uid != 0 && f.uid != f.euid {
        return Err(format!("unsafe bundle uid {}", f.uid));
    }
    if f.mode & !0o755 != 0 {
        return Err(format!("unsafe bundle permissions 0{:o}", f.mode));
    }
    if f.on_root_fs {
        return Ok(());
    }
    match f.fs {
        FsTrust::Trusted => Ok(()),
        FsTrust::Unsafe => Err("bundle is stored on an unsafe filesystem".into()),
        FsTrust::Unknown => Err("bundle is stored on an unknown filesystem".into()),
        FsTrust::Local => match f.device_owner {
            Some(0) => Ok(()),
            Some(uid) => Err(format!(
                "unsafe uid 0{uid} for the mounted device of the bundle"
            )),
            None => Err("unable to find mounted device for bundle".into()),
        },
    }
}

/// Ensures exclusive access to the open bundle `file` (see the module documentation).
pub fn enforce_exclusive(file: &File, path: &Path) -> Result<()> {
    let first = check(file, path);
    if first.is_ok() {
        return Ok(());
    }
    tracing::debug!("initial bundle access check failed: {first:?}");
    if let Err(e) = take_ownership(file, path) {
        return Err(Error::Bundle(format!(
            "failed to take ownership of bundle: {e}"
        )));
    }
    check(file, path)
}

fn check(file: &File, path: &Path) -> Result<()> {
    let facts = gather(file, path)?;
    check_facts(&facts).map_err(Error::Bundle)?;
    lease_check(file)
}

fn gather(file: &File, path: &Path) -> Result<FileFacts> {
    let meta = file
        .metadata()
        .map_err(|e| Error::io("failed to stat bundle", path, e))?;
    let root = std::fs::metadata("/").map_err(|e| Error::io("failed to stat rootfs", "/", e))?;
    let statfs = nix::sys::statfs::fstatfs(file)
        .map_err(|e| Error::io("failed to fstatfs bundle", path, e.into()))?;
    let on_root_fs = root.dev() == meta.dev();
    let fs = fs_trust(statfs.filesystem_type().0 as u64);
    let device_owner = if !on_root_fs && fs == FsTrust::Local {
        mounted_device_owner(meta.dev())
    } else {
        None
    };
    Ok(FileFacts {
        regular: meta.file_type().is_file(),
        uid: meta.uid(),
        euid: nix::unistd::geteuid().as_raw(),
        mode: meta.permissions().mode() & 0o7777,
        on_root_fs,
        fs,
        device_owner,
    })
}

/// The owner of the device node in `/proc/self/mounts` whose `st_rdev` is `dev`.
fn mounted_device_owner(dev: u64) -> Option<u32> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let node = std::fs::metadata(line.split(' ').next()?).ok()?;
        (node.rdev() == dev).then(|| node.uid())
    })
}

/// No other open file descriptors: a read lease is only granted when nobody has the file open
/// for writing (and, for a non-owner, at all).
fn lease_check(file: &File) -> Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a file descriptor we own, with integer arguments only.
    let set = unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) };
    if set != 0 {
        let err = std::io::Error::last_os_error();
        let message = match err.raw_os_error() {
            Some(libc::EAGAIN) => "EAGAIN: existing open file descriptor".to_string(),
            Some(libc::EACCES) => "EACCES: missing capability CAP_LEASE?".to_string(),
            _ => err.to_string(),
        };
        return Err(Error::Bundle(format!(
            "could not ensure exclusive bundle access (F_SETLEASE): {message}"
        )));
    }
    // SAFETY: as above.
    let held = unsafe { libc::fcntl(fd, libc::F_GETLEASE) };
    // SAFETY: as above.
    let released = unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
    if held != libc::F_RDLCK {
        return Err(Error::Bundle(
            "could not ensure exclusive bundle access (F_GETLEASE)".into(),
        ));
    }
    if released != 0 {
        return Err(Error::Bundle(format!(
            "failed to remove file lease on bundle: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

fn take_ownership(file: &File, path: &Path) -> Result<()> {
    let meta = file
        .metadata()
        .map_err(|e| Error::io("failed to stat bundle", path, e))?;
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != euid {
        if euid != 0 {
            return Err(Error::Bundle(format!(
                "cannot take file ownership of bundle when running as user ({euid})"
            )));
        }
        nix::unistd::fchown(file, Some(nix::unistd::Uid::from_raw(0)), None)
            .map_err(|e| Error::io("failed to chown bundle to root", path, e.into()))?;
    }
    let mode = meta.permissions().mode() & 0o7777;
    let wanted = mode & 0o755;
    if wanted != mode {
        file.set_permissions(std::fs::Permissions::from_mode(wanted))
            .map_err(|e| Error::io("failed to chmod bundle", path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_facts() -> FileFacts {
        FileFacts {
            regular: true,
            uid: 0,
            euid: 0,
            mode: 0o644,
            on_root_fs: false,
            fs: FsTrust::Trusted,
            device_owner: None,
        }
    }

    #[test]
    fn access_table() {
        let cases: Vec<(&str, FileFacts, Result<(), &str>)> = vec![
            ("root-owned on tmpfs", ok_facts(), Ok(())),
            (
                "not regular",
                FileFacts {
                    regular: false,
                    ..ok_facts()
                },
                Err("not a regular file"),
            ),
            (
                "other owner",
                FileFacts {
                    uid: 1000,
                    ..ok_facts()
                },
                Err("unsafe bundle uid 1000"),
            ),
            (
                "own file as user",
                FileFacts {
                    uid: 1000,
                    euid: 1000,
                    ..ok_facts()
                },
                Ok(()),
            ),
            (
                "group writable",
                FileFacts {
                    mode: 0o664,
                    ..ok_facts()
                },
                Err("permissions 0664"),
            ),
            (
                "setuid",
                FileFacts {
                    mode: 0o4755,
                    ..ok_facts()
                },
                Err("permissions 04755"),
            ),
            (
                "fuse",
                FileFacts {
                    fs: FsTrust::Unsafe,
                    ..ok_facts()
                },
                Err("unsafe filesystem"),
            ),
            (
                "root fs beats fs type",
                FileFacts {
                    fs: FsTrust::Unknown,
                    on_root_fs: true,
                    ..ok_facts()
                },
                Ok(()),
            ),
            (
                "unknown fs",
                FileFacts {
                    fs: FsTrust::Unknown,
                    ..ok_facts()
                },
                Err("unknown filesystem"),
            ),
            (
                "ext4 on a root-owned disk",
                FileFacts {
                    fs: FsTrust::Local,
                    device_owner: Some(0),
                    ..ok_facts()
                },
                Ok(()),
            ),
            (
                "ext4 on a user's disk",
                FileFacts {
                    fs: FsTrust::Local,
                    device_owner: Some(1000),
                    ..ok_facts()
                },
                Err("unsafe uid"),
            ),
            (
                "ext4 without a device",
                FileFacts {
                    fs: FsTrust::Local,
                    ..ok_facts()
                },
                Err("unable to find mounted device"),
            ),
        ];
        for (name, facts, want) in cases {
            match (want, check_facts(&facts)) {
                (Ok(()), Ok(())) => {}
                (Err(w), Err(e)) => assert!(e.contains(w), "{name}: {e}"),
                (w, g) => panic!("{name}: want {w:?}, got {g:?}"),
            }
        }
        assert_eq!(fs_trust(0x0102_1994), FsTrust::Trusted);
        assert_eq!(fs_trust(0x6573_5546), FsTrust::Unsafe);
        assert_eq!(fs_trust(0xef53), FsTrust::Local);
    }

    #[test]
    fn lease_fails_while_another_writer_has_the_file_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.raucb");
        std::fs::write(&path, b"x").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let file = File::open(&path).unwrap();
        lease_check(&file).unwrap();
        let writer = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let e = lease_check(&file).unwrap_err().to_string();
        assert!(e.contains("existing open file descriptor"), "{e}");
        drop(writer);
        lease_check(&file).unwrap();
    }
}
