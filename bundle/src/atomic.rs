//! Output files and directories that appear only when complete — the one implementation every
//! crate of the suite writes its outputs with (bundles, certificates, CRLs, recipient lists,
//! status files, bootloader environments).
//!
//! Everything is written under a temporary name in the destination directory, synced, and
//! renamed into place at the end; readers see the old file or the complete new one. Whether an
//! existing destination may be replaced is the caller's choice ([`Existing`]): bundle outputs
//! never replace one (like `rauc bundle`), state files always do. If anything fails, or the
//! value is dropped before `commit`, the temporary is removed and the destination is untouched.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What to do when the destination already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Fail with [`Error::OutputExists`] (checked early and again, race-free, at the rename).
    Refuse,
    /// Replace it atomically.
    Replace,
}

/// A file being written under a temporary name next to its destination.
#[derive(Debug)]
pub struct AtomicFile {
    temp: tempfile::NamedTempFile,
    dest: PathBuf,
    existing: Existing,
}

impl AtomicFile {
    /// Creates the temporary file (mode 0666 less the umask, as any new file). With
    /// [`Existing::Refuse`] it fails early if `dest` already exists.
    pub fn create(dest: &Path, existing: Existing) -> Result<Self> {
        if existing == Existing::Refuse {
            refuse_existing(dest)?;
        }
        let dir = parent_dir(dest);
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{}.", file_name(dest)))
            .suffix(".partial")
            .permissions(std::fs::Permissions::from_mode(0o666))
            .tempfile_in(dir)
            .map_err(|e| Error::io("failed to create a temporary file in", dir, e))?;
        Ok(AtomicFile {
            temp,
            dest: dest.to_path_buf(),
            existing,
        })
    }

    /// The open temporary file.
    pub fn file(&self) -> &File {
        self.temp.as_file()
    }

    /// Writes all of `data` to the temporary file.
    pub fn write_all(&mut self, data: &[u8]) -> Result<()> {
        self.temp
            .write_all(data)
            .map_err(|e| Error::io("failed to write", &self.dest, e))
    }

    /// Path of the temporary file (for tools such as `mksquashfs` that write by name).
    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    /// The final destination.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Opens the temporary file again by name (after a tool such as `mksquashfs` wrote it).
    pub fn reopen(&self) -> Result<File> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.temp.path())
            .map_err(|e| Error::io("failed to open", self.temp.path(), e))
    }

    /// Flushes the data to disk and renames the file into place (replacing an existing
    /// destination only with [`Existing::Replace`]).
    pub fn commit(self) -> Result<PathBuf> {
        // Sync by name: a tool may have replaced the file behind our handle.
        self.reopen()?
            .sync_all()
            .map_err(|e| Error::io("failed to flush", self.temp.path(), e))?;
        match self.existing {
            Existing::Refuse => rename_noreplace(self.temp.path(), &self.dest)?,
            Existing::Replace => std::fs::rename(self.temp.path(), &self.dest).map_err(|e| {
                Error::io(
                    "failed to move the finished output into place at",
                    &self.dest,
                    e,
                )
            })?,
        }
        // The file now lives at `dest`; forget the temporary without deleting anything.
        let _ = self.temp.into_temp_path().keep();
        sync_dir(parent_dir(&self.dest));
        Ok(self.dest)
    }
}

/// A directory being filled under a temporary name next to its destination. The destination may
/// be absent or an empty directory (as `rauc extract` allows); it is replaced atomically.
#[derive(Debug)]
pub struct AtomicDir {
    temp: tempfile::TempDir,
    dest: PathBuf,
    replace_empty: bool,
}

impl AtomicDir {
    /// Creates the temporary directory. Fails early if `dest` exists and is not an empty directory.
    pub fn create(dest: &Path) -> Result<Self> {
        let replace_empty = is_empty_dir(dest);
        if !replace_empty {
            refuse_existing(dest)?;
        }
        let dir = parent_dir(dest);
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{}.", file_name(dest)))
            .suffix(".partial")
            .tempdir_in(dir)
            .map_err(|e| Error::io("failed to create a temporary directory in", dir, e))?;
        Ok(AtomicDir {
            temp,
            dest: dest.to_path_buf(),
            replace_empty,
        })
    }

    /// Path of the temporary directory to fill.
    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    /// Renames the directory into place. Only an empty destination directory is ever replaced.
    pub fn commit(self) -> Result<PathBuf> {
        if self.replace_empty {
            // rename(2) replaces a directory only if it is empty (else ENOTEMPTY).
            std::fs::rename(self.temp.path(), &self.dest).map_err(|e| match e.raw_os_error() {
                Some(libc::ENOTEMPTY | libc::EEXIST) => Error::OutputExists {
                    path: self.dest.clone(),
                },
                _ => Error::io(
                    "failed to move the finished output into place at",
                    &self.dest,
                    e,
                ),
            })?;
        } else {
            rename_noreplace(self.temp.path(), &self.dest)?;
        }
        let _ = self.temp.keep();
        sync_dir(parent_dir(&self.dest));
        Ok(self.dest)
    }
}

/// Writes `data` to `dest` atomically (see the module documentation).
pub fn write_file(dest: &Path, data: &[u8], existing: Existing) -> Result<()> {
    let mut out = AtomicFile::create(dest, existing)?;
    out.write_all(data)?;
    out.commit().map(drop)
}

fn is_empty_dir(path: &Path) -> bool {
    path.symlink_metadata().is_ok_and(|m| m.is_dir())
        && std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_none())
}

fn refuse_existing(dest: &Path) -> Result<()> {
    if dest.symlink_metadata().is_ok() {
        return Err(Error::OutputExists {
            path: dest.to_path_buf(),
        });
    }
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into())
}

fn rename_noreplace(from: &Path, to: &Path) -> Result<()> {
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).expect("paths contain no NUL");
    let (cfrom, cto) = (c(from), c(to));
    // SAFETY: both pointers are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            cfrom.as_ptr(),
            libc::AT_FDCWD,
            cto.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EEXIST) {
        return Err(Error::OutputExists {
            path: to.to_path_buf(),
        });
    }
    Err(Error::io(
        "failed to move the finished output into place at",
        to,
        err,
    ))
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_appears_only_on_commit_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.raucb");
        let mut out = AtomicFile::create(&dest, Existing::Refuse).unwrap();
        out.write_all(b"data").unwrap();
        assert!(!dest.exists());
        out.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"data");
        assert!(matches!(
            AtomicFile::create(&dest, Existing::Refuse),
            Err(Error::OutputExists { .. })
        ));
        // A refused race at the rename leaves the existing file alone.
        let out = AtomicFile::create(&dir.path().join("other"), Existing::Refuse).unwrap();
        std::fs::write(dir.path().join("other"), b"theirs").unwrap();
        assert!(matches!(out.commit(), Err(Error::OutputExists { .. })));
        assert_eq!(std::fs::read(dir.path().join("other")).unwrap(), b"theirs");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn replace_swaps_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("status");
        write_file(&dest, b"one", Existing::Replace).unwrap();
        write_file(&dest, b"two", Existing::Replace).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"two");
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        // SAFETY: umask is read and restored at once; nothing else here creates files.
        let umask = unsafe {
            let m = libc::umask(0o022);
            libc::umask(m);
            m
        };
        assert_eq!(mode, 0o666 & !umask);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn dropped_output_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        drop(AtomicFile::create(&dest, Existing::Refuse).unwrap());
        let d = AtomicDir::create(&dest).unwrap();
        std::fs::write(d.path().join("f"), b"x").unwrap();
        drop(d);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn directory_may_replace_an_empty_one_only() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        std::fs::create_dir(&dest).unwrap();
        let d = AtomicDir::create(&dest).unwrap();
        std::fs::write(d.path().join("f"), b"x").unwrap();
        d.commit().unwrap();
        assert_eq!(std::fs::read(dest.join("f")).unwrap(), b"x");
        assert!(matches!(
            AtomicDir::create(&dest),
            Err(Error::OutputExists { .. })
        ));
    }
}
