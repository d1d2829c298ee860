//! Output files written to a temporary file in the destination directory, synced and renamed
//! into place: readers see the old file or the complete new one, never a half-written one.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{FactoryError, Result};

/// A file being written; [`AtomicFile::commit`] puts it in place, dropping it discards it.
pub struct AtomicFile {
    dest: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
}

impl std::fmt::Debug for AtomicFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtomicFile")
            .field("dest", &self.dest)
            .finish_non_exhaustive()
    }
}

impl AtomicFile {
    /// Starts writing `dest` (mode 0644).
    pub fn create(dest: &Path) -> Result<Self> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest.file_name().ok_or_else(|| {
            FactoryError::io(
                "cannot write",
                dest,
                std::io::ErrorKind::InvalidInput.into(),
            )
        })?;
        let mut suffix = [0u8; 6];
        openssl::rand::rand_bytes(&mut suffix)
            .map_err(|e| FactoryError::openssl("drawing a temp name", e))?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            hex::encode(suffix)
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(|e| FactoryError::io("failed to create a temporary file", &tmp, e))?;
        Ok(Self {
            dest: dest.to_path_buf(),
            tmp,
            out: Some(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    /// The writer.
    pub fn writer(&mut self) -> &mut BufWriter<File> {
        self.out.as_mut().expect("writer present until commit")
    }

    /// Maps a write error to a station error naming the destination.
    pub fn write_error(&self, e: std::io::Error) -> FactoryError {
        FactoryError::io("failed to write", &self.dest, e)
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(mut self) -> Result<()> {
        let out = self.out.take().expect("commit once");
        let file = out
            .into_inner()
            .map_err(|e| FactoryError::io("failed to write", &self.dest, e.into_error()))?;
        file.sync_all()
            .map_err(|e| FactoryError::io("failed to sync", &self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.dest)
            .map_err(|e| FactoryError::io("failed to rename into place", &self.dest, e))?;
        if let Some(dir) = self.dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Make the rename itself durable; failure here is not worth failing the command.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.out.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `dest` atomically.
pub fn write_file(dest: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(dest)?;
    f.writer()
        .write_all(bytes)
        .map_err(|e| FactoryError::io("failed to write", dest, e))?;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_and_discard() {
        let dir = std::env::temp_dir().join(format!("factory-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("out.pem");
        write_file(&dest, b"one").unwrap();
        {
            let mut f = AtomicFile::create(&dest).unwrap();
            f.writer().write_all(b"half").unwrap();
            // dropped without commit
        }
        assert_eq!(std::fs::read(&dest).unwrap(), b"one");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "temp file removed"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
