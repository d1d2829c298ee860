//! A writer for `newc` cpio archives (the initramfs format the kernel unpacks).
//!
//! Each entry is a 110-byte ASCII header (`070701` and 13 eight-digit hex fields), the
//! NUL-terminated name padded to a multiple of 4, then the data padded to a multiple of 4. The
//! archive ends with an entry named `TRAILER!!!`.

use std::io::{self, Write};

/// File type bits of `st_mode`.
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// Streams entries into a `newc` archive.
pub struct CpioWriter<W: Write> {
    out: W,
    next_ino: u32,
    written: u64,
}

impl<W: Write> CpioWriter<W> {
    /// Starts an archive on `out`.
    pub fn new(out: W) -> CpioWriter<W> {
        CpioWriter {
            out,
            next_ino: 1,
            written: 0,
        }
    }

    /// Adds a directory (`name` without a leading slash, e.g. `usr/lib`).
    pub fn directory(&mut self, name: &str, perm: u32) -> io::Result<()> {
        self.entry(name, S_IFDIR | (perm & 0o7777), 2, (0, 0), &[])
    }

    /// Adds a regular file.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(name, S_IFREG | (perm & 0o7777), 1, (0, 0), data)
    }

    /// Adds a symbolic link pointing at `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        self.entry(name, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes())
    }

    /// Adds a character device node.
    pub fn char_device(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        self.entry(name, S_IFCHR | (perm & 0o7777), 1, (major, minor), &[])
    }

    /// Writes the trailer and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.next_ino = 0;
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[])?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> io::Result<()> {
        let size = u32::try_from(data.len())
            .map_err(|_| io::Error::other(format!("{name}: larger than 4 GiB")))?;
        let ino = self.next_ino;
        self.next_ino += 1;
        let header = format!(
            "070701{ino:08x}{mode:08x}{:08x}{:08x}{nlink:08x}{:08x}{size:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            0, // uid
            0, // gid
            0, // mtime: fixed, for reproducible images
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name.len() + 1,
            0, // check
        );
        self.write_padded(&[header.as_bytes(), name.as_bytes(), b"\0"].concat())?;
        self.write_padded(data)
    }

    fn write_padded(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        let pad = (4 - (self.written % 4) as usize) % 4;
        self.out.write_all(&[0u8; 3][..pad])?;
        self.written += pad as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn header_layout() {
        let mut w = CpioWriter::new(Vec::new());
        w.file("init", 0o755, b"abcde").unwrap();
        let out = w.finish().unwrap();
        assert_eq!(&out[..6], b"070701");
        // mode field (second field): regular file 0755
        assert_eq!(&out[14..22], b"000081ed");
        // filesize field (seventh field)
        assert_eq!(&out[54..62], b"00000005");
        // namesize includes the NUL
        assert_eq!(&out[94..102], b"00000005");
        // 110-byte header + "init\0" = 115 -> padded to 116, then data 5 -> padded to 8
        assert_eq!(&out[110..115], b"init\0");
        assert_eq!(&out[116..121], b"abcde");
        assert_eq!(out.len() % 4, 0);
        assert!(out.windows(10).any(|w| w == b"TRAILER!!!"));
    }

    /// The archive is readable by a real cpio implementation (busybox, as in the guest).
    #[test]
    fn busybox_cpio_lists_and_extracts_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = CpioWriter::new(Vec::new());
        w.directory("etc", 0o755).unwrap();
        w.file("etc/hello", 0o644, b"hello\n").unwrap();
        w.symlink("etc/link", "hello").unwrap();
        w.file("odd", 0o600, b"123").unwrap();
        let archive = w.finish().unwrap();
        let path = dir.path().join("a.cpio");
        std::fs::write(&path, archive).unwrap();
        let out = Command::new("busybox")
            .args(["cpio", "-i", "-d", "-F"])
            .arg(&path)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read(dir.path().join("etc/hello")).unwrap(),
            b"hello\n"
        );
        assert_eq!(
            std::fs::read_link(dir.path().join("etc/link"))
                .unwrap()
                .to_str(),
            Some("hello")
        );
        assert_eq!(std::fs::read(dir.path().join("odd")).unwrap(), b"123");
    }
}
