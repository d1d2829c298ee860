//! The container: `payload | CMS | u64 BE CMS length` (`rauc-format.md` §1.1).
//!
//! [`Layout::from_trailer`] is the pure decision (every size checked before use, RAUC's
//! messages); [`BundleFile`] applies it to a file or to in-memory bytes and reads the CMS;
//! [`append_cms`] writes the trailer.

use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Length of the trailer holding the CMS size.
pub const TRAILER_LEN: u64 = 8;

/// rauc 1.8's hard limit for the CMS (and latest's default `max-bundle-signature-size`).
pub const DEFAULT_MAX_SIGNATURE_SIZE: u64 = 0x10000;

/// Where payload and CMS lie in a bundle of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layout {
    /// Size of the whole bundle file.
    pub file_size: u64,
    /// Size of the payload (`P`): everything before the CMS.
    pub payload_size: u64,
    /// Size of the CMS (`S`), from the trailer.
    pub cms_size: u64,
}

impl Layout {
    /// Decides the layout from the file size and the last 8 bytes, with RAUC's checks: the CMS
    /// size is non-zero, fits in the file and is at most `max_signature_size`.
    pub fn from_trailer(file_size: u64, trailer: [u8; 8], max_signature_size: u64) -> Result<Self> {
        if file_size < TRAILER_LEN {
            return Err(Error::BundleTooSmall { size: file_size });
        }
        let cms_size = u64::from_be_bytes(trailer);
        if cms_size == 0 {
            return Err(Error::SignatureSizeZero);
        }
        let room = file_size - TRAILER_LEN;
        if cms_size > room {
            return Err(Error::SignatureExceedsBundle { size: cms_size });
        }
        if cms_size > max_signature_size {
            return Err(Error::SignatureTooLarge {
                size: cms_size,
                limit: max_signature_size,
            });
        }
        Ok(Layout {
            file_size,
            payload_size: room - cms_size,
            cms_size,
        })
    }

    /// Offset of the first CMS byte (= the payload size).
    pub fn cms_offset(&self) -> u64 {
        self.payload_size
    }

    /// Whether the payload is a whole number of 4 KiB blocks (required for verity/crypt).
    pub fn payload_aligned(&self) -> bool {
        self.payload_size.is_multiple_of(4096)
    }
}

/// Options for opening a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    /// Maximum CMS size (`[system] max-bundle-signature-size`; 64 KiB in rauc 1.8).
    pub max_signature_size: u64,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            max_signature_size: DEFAULT_MAX_SIGNATURE_SIZE,
        }
    }
}

/// An opened bundle container: its layout and its CMS bytes, over any seekable reader.
#[derive(Debug)]
pub struct BundleFile<R = File> {
    reader: R,
    path: Option<PathBuf>,
    layout: Layout,
    cms: Vec<u8>,
}

impl BundleFile<File> {
    /// Opens a bundle file, checks the trailer and reads the CMS.
    pub fn open(path: impl AsRef<Path>, options: OpenOptions) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io("failed to open bundle", path, e))?;
        let mut bundle = Self::from_reader(file, options).map_err(|e| match e {
            Error::Io { action, source, .. } => Error::io(action, path, source),
            other => other,
        })?;
        bundle.path = Some(path.to_path_buf());
        Ok(bundle)
    }
}

impl BundleFile<Cursor<Vec<u8>>> {
    /// Opens a bundle held in memory (tests, fuzzing, downloads).
    pub fn from_bytes(bytes: Vec<u8>, options: OpenOptions) -> Result<Self> {
        Self::from_reader(Cursor::new(bytes), options)
    }
}

impl<R: Read + Seek> BundleFile<R> {
    /// Reads the trailer and the CMS from `reader`.
    pub fn from_reader(mut reader: R, options: OpenOptions) -> Result<Self> {
        let io = |action| move |e| Error::io(action, "<bundle>", e);
        let file_size = reader
            .seek(SeekFrom::End(0))
            .map_err(io("failed to determine bundle size"))?;
        let mut trailer = [0u8; 8];
        if file_size >= TRAILER_LEN {
            reader
                .seek(SeekFrom::Start(file_size - TRAILER_LEN))
                .and_then(|_| reader.read_exact(&mut trailer))
                .map_err(io("failed to read signature size from bundle"))?;
        }
        let layout = Layout::from_trailer(file_size, trailer, options.max_signature_size)?;
        if !layout.payload_aligned() {
            tracing::info!(
                payload_size = layout.payload_size,
                "Payload size ({}) is not a multiple of 4KiB. \
                 See https://rauc.readthedocs.io/en/latest/faq.html#what-causes-a-payload-size-that-is-not-a-multiple-of-4kib",
                layout.payload_size
            );
        }
        // bounded by max_signature_size above
        let mut cms = vec![0u8; layout.cms_size as usize];
        reader
            .seek(SeekFrom::Start(layout.cms_offset()))
            .and_then(|_| reader.read_exact(&mut cms))
            .map_err(io("failed to read signature from bundle"))?;
        Ok(BundleFile {
            reader,
            path: None,
            layout,
            cms,
        })
    }

    /// The layout (payload and CMS sizes).
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The CMS bytes as stored (DER or BER).
    pub fn cms(&self) -> &[u8] {
        &self.cms
    }

    /// The path the bundle was opened from, if it is a file.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The underlying reader.
    pub fn reader(&mut self) -> &mut R {
        &mut self.reader
    }

    /// Reads `len` payload bytes at `offset`, checking that they lie inside the payload.
    pub fn read_payload_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        offset
            .checked_add(buf.len() as u64)
            .filter(|&end| end <= self.layout.payload_size)
            .ok_or_else(|| {
                Error::size(format!(
                    "read of {} bytes at offset {offset} exceeds the payload size {}",
                    buf.len(),
                    self.layout.payload_size
                ))
            })?;
        self.reader
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.reader.read_exact(buf))
            .map_err(|e| {
                Error::io(
                    "failed to read payload",
                    self.path.clone().unwrap_or_default(),
                    e,
                )
            })
    }

    /// Gives back the reader, the path and the layout.
    pub fn into_parts(self) -> (R, Option<PathBuf>, Layout, Vec<u8>) {
        (self.reader, self.path, self.layout, self.cms)
    }
}

/// A seekable source a bundle can be read from, which can also expose the payload as one slice
/// (a read-only mapping for files; the buffer itself for in-memory bundles).
pub trait BundleSource: Read + Seek {
    /// The first `len` bytes as one slice.
    fn map_prefix(&mut self, len: u64) -> std::io::Result<PayloadMap<'_>>;
}

/// The payload of a bundle as one slice.
pub enum PayloadMap<'a> {
    /// A read-only mapping of a file.
    Mapped(memmap2::Mmap),
    /// Borrowed from an in-memory bundle.
    Borrowed(&'a [u8]),
}

impl std::ops::Deref for PayloadMap<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            PayloadMap::Mapped(m) => m,
            PayloadMap::Borrowed(b) => b,
        }
    }
}

impl BundleSource for File {
    fn map_prefix(&mut self, len: u64) -> std::io::Result<PayloadMap<'_>> {
        if len == 0 {
            return Ok(PayloadMap::Borrowed(&[]));
        }
        let len = usize::try_from(len).map_err(std::io::Error::other)?;
        // SAFETY: read-only mapping of a bundle that callers do not modify while it is open
        // (RAUC's exclusive-access checks on the target ensure this for installs).
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(&*self) }?;
        Ok(PayloadMap::Mapped(map))
    }
}

impl BundleSource for Cursor<Vec<u8>> {
    fn map_prefix(&mut self, len: u64) -> std::io::Result<PayloadMap<'_>> {
        let bytes = self.get_ref();
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= bytes.len())
            .ok_or_else(|| std::io::Error::other("prefix beyond the end of the buffer"))?;
        Ok(PayloadMap::Borrowed(&bytes[..len]))
    }
}

/// A `Read + Seek` view of the region `[offset, offset + len)` of an inner reader.
pub struct Region<R> {
    inner: R,
    offset: u64,
    len: u64,
    pos: u64,
}

impl<R: Read + Seek> Region<R> {
    /// Wraps `[offset, offset + len)` of `inner`.
    pub fn new(inner: R, offset: u64, len: u64) -> Self {
        Region {
            inner,
            offset,
            len,
            pos: 0,
        }
    }
}

impl<R: Read + Seek> Read for Region<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let remaining = self.len.saturating_sub(self.pos);
        let n = (buf.len() as u64).min(remaining) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.inner.seek(SeekFrom::Start(self.offset + self.pos))?;
        let n = self.inner.read(&mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for Region<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        }
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before start")
        })?;
        self.pos = target;
        Ok(target)
    }
}

/// Appends `cms` and its length (u64 big-endian) to a writer positioned at the end of the
/// payload. Refuses a CMS above `max_signature_size` (use [`DEFAULT_MAX_SIGNATURE_SIZE`] for
/// rauc 1.8 targets) or an empty one.
pub fn append_cms<W: Write>(writer: &mut W, cms: &[u8], max_signature_size: u64) -> Result<()> {
    let size = cms.len() as u64;
    if size == 0 {
        return Err(Error::SignatureSizeZero);
    }
    if size > max_signature_size {
        return Err(Error::SignatureTooLarge {
            size,
            limit: max_signature_size,
        });
    }
    writer
        .write_all(cms)
        .and_then(|_| writer.write_all(&size.to_be_bytes()))
        .map_err(|e| Error::io("failed to append signature to bundle", "<bundle>", e))
}

/// Appends the CMS to the bundle file at `path` (which holds only the payload so far).
pub fn append_cms_to_file(path: &Path, cms: &[u8], max_signature_size: u64) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| Error::io("failed to open bundle for appending", path, e))?;
    append_cms(&mut file, cms, max_signature_size).map_err(|e| match e {
        Error::Io { action, source, .. } => Error::io(action, path, source),
        other => other,
    })?;
    file.sync_all()
        .map_err(|e| Error::io("failed to sync bundle", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(payload: usize, cms: &[u8]) -> Vec<u8> {
        let mut v = vec![0xAA; payload];
        append_cms(&mut v, cms, DEFAULT_MAX_SIGNATURE_SIZE).unwrap();
        v
    }

    #[test]
    fn round_trip_in_memory() {
        let b = BundleFile::from_bytes(bundle(4096, b"cms!"), OpenOptions::default()).unwrap();
        assert_eq!(b.cms(), b"cms!");
        assert_eq!(
            b.layout(),
            Layout {
                file_size: 4108,
                payload_size: 4096,
                cms_size: 4
            }
        );
    }

    #[test]
    fn trailer_checks_use_rauc_messages() {
        let msg = |bytes: Vec<u8>, max| {
            BundleFile::from_bytes(
                bytes,
                OpenOptions {
                    max_signature_size: max,
                },
            )
            .unwrap_err()
            .to_string()
        };
        let mut zero = vec![1u8; 100];
        zero.extend_from_slice(&0u64.to_be_bytes());
        assert_eq!(msg(zero, 65536), "Signature size is 0");
        let mut big = vec![1u8; 100];
        big.extend_from_slice(&101u64.to_be_bytes());
        assert_eq!(msg(big, 65536), "Signature size (101) exceeds bundle size");
        let mut huge = vec![1u8; 100];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(
            msg(huge, 65536),
            format!("Signature size ({}) exceeds bundle size", u64::MAX)
        );
        // built by hand: append_cms refuses a CMS this large
        let mut over = vec![0u8; 70010];
        over.extend_from_slice(&70000u64.to_be_bytes());
        assert_eq!(
            msg(over.clone(), 65536),
            "Signature size (70000) exceeds 64KiB"
        );
        assert_eq!(
            msg(over.clone(), 1000),
            "Signature size (70000) exceeds the maximum of 1000 bytes"
        );
        assert!(
            BundleFile::from_bytes(
                over,
                OpenOptions {
                    max_signature_size: 70000
                }
            )
            .is_ok()
        );
        assert!(matches!(
            BundleFile::from_bytes(vec![1, 2, 3], OpenOptions::default()),
            Err(Error::BundleTooSmall { size: 3 })
        ));
    }

    #[test]
    fn writer_refuses_oversized_cms() {
        let mut v = Vec::new();
        assert!(matches!(
            append_cms(&mut v, &[1u8; 65537], DEFAULT_MAX_SIGNATURE_SIZE),
            Err(Error::SignatureTooLarge { size: 65537, .. })
        ));
        assert!(append_cms(&mut v, &[1u8; 65536], DEFAULT_MAX_SIGNATURE_SIZE).is_ok());
    }

    #[test]
    fn payload_reads_are_bounds_checked() {
        let mut b = BundleFile::from_bytes(bundle(8192, b"x"), OpenOptions::default()).unwrap();
        let mut buf = [0u8; 16];
        b.read_payload_at(8176, &mut buf).unwrap();
        assert!(b.read_payload_at(8177, &mut buf).is_err());
        assert!(b.read_payload_at(u64::MAX, &mut buf).is_err());
    }
}
