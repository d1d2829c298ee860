//! The guest kernel: Debian bookworm's distribution kernel, downloaded once and cached.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{VmError, require_tool, run_command};

/// The metapackage whose dependency names the real kernel package.
const METAPACKAGE: &str = "linux-image-amd64";
/// Marks a completely unpacked cache entry.
const COMPLETE: &str = ".complete";

/// An unpacked kernel package: the boot image and the module tree.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// Kernel release (`6.1.0-56-amd64`).
    pub release: String,
    /// What QEMU boots: the uncompressed `vmlinux` (PVH entry) if it could be extracted, else the bzImage.
    pub boot_image: PathBuf,
    /// The bzImage as shipped (`boot/vmlinuz-<release>`).
    pub bzimage: PathBuf,
    /// `lib/modules/<release>`.
    pub modules_dir: PathBuf,
}

impl Kernel {
    /// Returns the cached kernel, downloading and unpacking it first if needed.
    ///
    /// The package is `$OTA_VM_KERNEL_PKG` or the `linux-image-*` package that
    /// `linux-image-amd64` depends on. Concurrent callers (parallel tests) serialize on a lock
    /// file in the cache directory, so the download happens once. When a newer kernel has been
    /// unpacked, older cache entries are deleted; when the package cannot be resolved or
    /// downloaded (offline), a previously cached kernel is used with a warning.
    pub fn obtain() -> Result<Kernel, VmError> {
        let cache = cache_dir()?;
        let _lock = CacheLock::acquire(&cache.join("lock"))?;
        let wanted = match std::env::var("OTA_VM_KERNEL_PKG") {
            Ok(name) if !name.is_empty() => Ok(name),
            _ => resolve_package(),
        };
        let result = wanted.and_then(|package| {
            let entry = cache.join(&package);
            if !entry.join(COMPLETE).exists() {
                download_and_unpack(&package, &cache, &entry)?;
                prune_other_entries(&cache, &package);
            }
            Ok(entry)
        });
        match result {
            Ok(entry) => Kernel::from_unpacked(&entry),
            Err(err) => match cached_entries(&cache).into_iter().next() {
                Some(entry) => {
                    eprintln!("vm: {err}\nvm: using the cached kernel {}", entry.display());
                    Kernel::from_unpacked(&entry)
                }
                None => Err(err),
            },
        }
    }

    /// Uses an already unpacked kernel package directory (`boot/`, `lib/modules/`).
    pub fn from_unpacked(root: &Path) -> Result<Kernel, VmError> {
        let modules_root = root.join("lib/modules");
        let release = std::fs::read_dir(&modules_root)
            .map_err(|e| VmError::io("list", &modules_root, e))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .next()
            .ok_or_else(|| {
                VmError::Kernel(format!("no module tree below {}", modules_root.display()))
            })?;
        let bzimage = root.join(format!("boot/vmlinuz-{release}"));
        if !bzimage.is_file() {
            return Err(VmError::Kernel(format!("{} is missing", bzimage.display())));
        }
        let vmlinux = root.join("vmlinux");
        let boot_image = if vmlinux.is_file() {
            vmlinux
        } else {
            bzimage.clone()
        };
        Ok(Kernel {
            modules_dir: modules_root.join(&release),
            release,
            boot_image,
            bzimage,
        })
    }
}

/// Complete kernel entries in the cache.
fn cached_entries(cache: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(cache)
        .map(|dir| {
            dir.flatten()
                .map(|e| e.path())
                .filter(|p| p.join(COMPLETE).exists())
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    entries.reverse();
    entries
}

/// Deletes cache entries of other kernel packages (each is about 400 MB).
fn prune_other_entries(cache: &Path, keep: &str) {
    for entry in cached_entries(cache) {
        if entry.file_name().is_some_and(|name| name != keep) {
            let _ = std::fs::remove_dir_all(&entry);
        }
    }
}

/// `$OTA_VM_CACHE`, else `$XDG_CACHE_HOME/ota-vm`, else `/var/cache/ota-vm`, else `~/.cache/ota-vm`.
fn cache_dir() -> Result<PathBuf, VmError> {
    let env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let candidates: Vec<PathBuf> = [
        env("OTA_VM_CACHE"),
        env("XDG_CACHE_HOME").map(|d| d.join("ota-vm")),
        Some(PathBuf::from("/var/cache/ota-vm")),
        env("HOME").map(|d| d.join(".cache/ota-vm")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut last_error = None;
    for dir in &candidates {
        match std::fs::create_dir_all(dir) {
            Ok(()) => return Ok(dir.clone()),
            Err(e) => last_error = Some(VmError::io("create the kernel cache directory", dir, e)),
        }
    }
    Err(last_error
        .unwrap_or_else(|| VmError::Kernel("no cache directory; set OTA_VM_CACHE".into())))
}

/// The package `linux-image-amd64` depends on (`apt-cache depends`; needs `apt-get update` once).
fn resolve_package() -> Result<String, VmError> {
    require_tool("apt-cache", "apt")?;
    let out = run_command(Command::new("apt-cache").args(["depends", METAPACKAGE]))?;
    String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Depends: "))
        .find(|dep| dep.starts_with("linux-image-") && dep.as_bytes().get(12).is_some_and(u8::is_ascii_digit))
        .map(str::to_string)
        .ok_or_else(|| {
            VmError::Kernel(format!(
                "apt-cache does not know which kernel {METAPACKAGE} depends on; run 'apt-get update' \
                 or set OTA_VM_KERNEL_PKG"
            ))
        })
}

/// `apt-get download` + `dpkg-deb -x` into a temporary directory, then rename into place.
fn download_and_unpack(package: &str, cache: &Path, entry: &Path) -> Result<(), VmError> {
    require_tool("apt-get", "apt")?;
    require_tool("dpkg-deb", "dpkg")?;
    let work = tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(cache)
        .map_err(|e| VmError::io("create a directory in", cache, e))?;
    eprintln!("vm: downloading {package} into {} (once)", cache.display());
    run_command(
        Command::new("apt-get")
            .arg("download")
            .arg(package)
            .current_dir(work.path()),
    )?;
    let deb = std::fs::read_dir(work.path())
        .map_err(|e| VmError::io("list", work.path(), e))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| VmError::Kernel(format!("apt-get download {package} produced no .deb")))?;
    let tree = work.path().join("tree");
    run_command(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree))?;
    let _ = std::fs::remove_file(&deb);
    let kernel = Kernel::from_unpacked(&tree)?;
    match extract_vmlinux(&kernel.bzimage, &tree.join("vmlinux")) {
        Ok(()) => {}
        Err(err) => {
            eprintln!("vm: booting the bzImage (slower under TCG): cannot extract vmlinux: {err}")
        }
    }
    std::fs::write(tree.join(COMPLETE), package)
        .map_err(|e| VmError::io("write", tree.join(COMPLETE), e))?;
    if entry.exists() {
        std::fs::remove_dir_all(entry)
            .map_err(|e| VmError::io("remove the stale cache entry", entry, e))?;
    }
    std::fs::rename(&tree, entry).map_err(|e| VmError::io("move the unpacked kernel to", entry, e))
}

/// Cuts the compressed kernel out of a bzImage and decompresses it to an ELF `vmlinux`.
///
/// Boot protocol header: `HdrS` at 0x202, `setup_sects` at 0x1f1, `payload_offset` and
/// `payload_length` at 0x248/0x24c (relative to the protected-mode code at
/// `(setup_sects + 1) * 512`). The payload ends with the uncompressed size as a le32.
pub fn extract_vmlinux(bzimage: &Path, out: &Path) -> Result<(), VmError> {
    let image = std::fs::read(bzimage).map_err(|e| VmError::io("read", bzimage, e))?;
    let (payload, expected_size) = bzimage_payload(&image).map_err(VmError::Kernel)?;
    let tool = match payload {
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => "xz",
        [0x1f, 0x8b, ..] => "gzip",
        [0x28, 0xb5, 0x2f, 0xfd, ..] => "zstd",
        _ => return Err(VmError::Kernel("unsupported kernel compression".into())),
    };
    let program = require_tool(tool, "xz-utils / gzip / zstd")?;
    let partial = out.with_extension("partial");
    let output = File::create(&partial).map_err(|e| VmError::io("create", &partial, e))?;
    let mut child = Command::new(program)
        .args(["-dc"])
        .stdin(Stdio::piped())
        .stdout(output)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| VmError::io("run", tool, e))?;
    let mut stdin = child.stdin.take().expect("piped");
    let written = stdin.write_all(payload);
    drop(stdin);
    let status = child.wait().map_err(|e| VmError::io("wait for", tool, e))?;
    let size = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    let mut head = [0u8; 4];
    let _ = File::open(&partial).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head));
    if written.is_err()
        || !status.success()
        || size != u64::from(expected_size)
        || &head != b"\x7fELF"
    {
        let _ = std::fs::remove_file(&partial);
        return Err(VmError::Kernel(format!(
            "{tool} -dc of the bzImage payload gave {size} bytes (expected an ELF of {expected_size}); status {status}"
        )));
    }
    std::fs::rename(&partial, out).map_err(|e| VmError::io("rename to", out, e))
}

/// The compressed payload of a bzImage without its trailing size, and that size.
fn bzimage_payload(image: &[u8]) -> Result<(&[u8], u32), String> {
    if image.get(0x202..0x206) != Some(b"HdrS".as_slice()) {
        return Err("not a bzImage (no HdrS signature)".into());
    }
    let setup_sects = match image[0x1f1] {
        0 => 4,
        n => usize::from(n),
    };
    let le32 = |at: usize| -> Result<usize, String> {
        image
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4")) as usize)
            .ok_or("truncated header".into())
    };
    let start = (setup_sects + 1) * 512 + le32(0x248)?;
    let length = le32(0x24c)?;
    let payload = image
        .get(start..start + length)
        .ok_or("payload beyond the end of the bzImage")?;
    let (data, size) = payload.split_at(length.checked_sub(4).ok_or("empty payload")?);
    Ok((data, u32::from_le_bytes(size.try_into().expect("4"))))
}

/// An exclusive `flock` on the cache lock file, released on drop.
struct CacheLock(File);

impl CacheLock {
    fn acquire(path: &Path) -> Result<CacheLock, VmError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| VmError::io("open", path, e))?;
        // SAFETY: flock on a descriptor we own; blocks until the lock is free.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(VmError::io("lock", path, std::io::Error::last_os_error()));
        }
        Ok(CacheLock(file))
    }
}

impl Drop for CacheLock {
    fn drop(&mut self) {
        // SAFETY: unlocking our own descriptor.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bzimage_header_parsing() {
        let mut image = vec![0u8; 0x1000];
        image[0x1f1] = 2; // setup_sects -> protected-mode code at 3 * 512
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
        image[0x24c..0x250].copy_from_slice(&10u32.to_le_bytes());
        let start = 3 * 512 + 16;
        image[start..start + 6].copy_from_slice(b"abcdef");
        image[start + 6..start + 10].copy_from_slice(&1234u32.to_le_bytes());
        let (payload, size) = bzimage_payload(&image).unwrap();
        assert_eq!(payload, b"abcdef");
        assert_eq!(size, 1234);
        image[0x24c..0x250].copy_from_slice(&0x10000u32.to_le_bytes());
        assert!(bzimage_payload(&image).is_err());
        assert!(bzimage_payload(&[0u8; 100]).is_err());
    }
}
