//! `signer bundle`: content directory → squashfs → (crypt) encrypted payload → verity tree →
//! signed external manifest → `payload | CMS | u64 BE len`, written atomically.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bundle::cms::signed::{self, Content};
use bundle::cms::verify::Keyring;
use bundle::container;
use bundle::manifest::{BundleFormat, CryptKey, Manifest, VerityParams, Vocabulary};
use bundle::{crypt, verity};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::identity::SigningIdentity;
use crate::progress::Progress;
use crate::squashfs::{self, MANIFEST_NAME};
use crate::verify::{self, PostSignCheck};
use bundle::atomic::{AtomicFile, Existing};

/// Everything `signer bundle` needs.
pub struct BuildRequest<'a> {
    /// The content directory (manifest.raucm, images, hooks).
    pub content_dir: &'a Path,
    /// The bundle to create; must not exist and must not be inside the content directory.
    pub output: &'a Path,
    /// The signing key with its certificates.
    pub identity: &'a SigningIdentity,
    /// Extra `mksquashfs` arguments (`--mksquashfs-args`, split into words).
    pub mksquashfs_args: Vec<String>,
    /// Keyring for the check of the finished bundle (`--signing-keyring`, else `--keyring`).
    pub verify_with: Option<Keyring>,
    /// Allow the legacy `plain` format (`--dangerous-allow-plain`).
    pub allow_plain: bool,
    /// Which manifest vocabulary may be written.
    pub vocabulary: Vocabulary,
    /// Largest CMS to write (65536 for rauc 1.8 targets).
    pub max_signature_size: u64,
}

/// What was built.
#[derive(Debug)]
pub struct BuildReport {
    /// The finished bundle.
    pub path: PathBuf,
    /// Its format.
    pub format: BundleFormat,
    /// Payload bytes (squashfs + hash tree).
    pub payload_size: u64,
    /// CMS bytes.
    pub cms_size: u64,
    /// Number of images in the manifest.
    pub images: usize,
    /// The verity parameters (verity/crypt).
    pub verity: Option<VerityParams>,
    /// The post-sign verification, if a keyring was given.
    pub check: Option<PostSignCheck>,
}

/// Builds and signs a bundle; the output appears only when complete.
pub fn build_bundle(req: &BuildRequest<'_>, progress: &Progress) -> Result<BuildReport> {
    let mut manifest = load_input_manifest(req.content_dir)?;
    let format = decide_format(&manifest, req.allow_plain)?;
    check_output_location(req.content_dir, req.output)?;
    check_referenced_files(&manifest, req.content_dir)?;
    hash_images(&mut manifest, req.content_dir, progress)?;
    tracing::debug!(format = %format, images = manifest.images.len(), "creating bundle");

    let out = AtomicFile::create(req.output, Existing::Refuse)?;
    let internal = manifest.to_internal().to_text(req.vocabulary)?;
    {
        let _phase = progress.phase("Creating squashfs", None);
        squashfs::build(
            req.content_dir,
            &internal,
            out.temp_path(),
            &req.mksquashfs_args,
        )?;
    }
    let file = out.reopen()?;
    let data_size = squashfs_size(&file, format)?;
    let (cms, verity) = sign_payload(req, &file, data_size, &mut manifest, format, progress)?;
    append_signature(&file, &cms, req.max_signature_size)?;
    let check = match &req.verify_with {
        Some(keyring) => Some(verify::check_new_bundle(
            out.temp_path(),
            keyring,
            None,
            req.max_signature_size,
            false,
        )?),
        None => None,
    };
    let path = out.commit()?;
    Ok(BuildReport {
        path,
        format,
        payload_size: data_size + verity.as_ref().map_or(0, |v| v.tree_size),
        cms_size: cms.len() as u64,
        images: manifest.images.len(),
        verity,
        check,
    })
}

fn load_input_manifest(content_dir: &Path) -> Result<Manifest> {
    let path = content_dir.join(MANIFEST_NAME);
    let bytes = std::fs::read(&path).map_err(|e| Error::io("failed to read manifest", &path, e))?;
    let mut manifest = Manifest::parse_bytes(&bytes)?;
    // rauc 1.8 writes sha256/size back into the content directory's manifest; they are
    // recomputed here, so a directory rauc 1.8 has bundled before still works.
    for image in &mut manifest.images {
        if image.sha256.take().is_some() | image.size.take().is_some() {
            tracing::debug!(image = ?image.filename, "recomputing sha256/size from the input manifest");
        }
    }
    manifest.check_input()?;
    Ok(manifest)
}

/// verity and crypt are the safe formats; plain (RAUC's default when `[bundle] format` is absent)
/// needs the dangerous flag.
fn decide_format(manifest: &Manifest, allow_plain: bool) -> Result<BundleFormat> {
    let format = manifest.bundle.format;
    if format == BundleFormat::Plain && !allow_plain {
        let why = if manifest.bundle.format_explicit {
            "the manifest asks for format=plain"
        } else {
            "the manifest has no [bundle] format, and RAUC's default is 'plain'"
        };
        return Err(Error::Refused(format!(
            "refusing to create a 'plain' bundle: {why}. Plain bundles are only protected by a \
             signature checked once before installation; set '[bundle] format=verity' (or crypt) \
             in manifest.raucm, or pass --dangerous-allow-plain"
        )));
    }
    Ok(format)
}

fn check_output_location(content_dir: &Path, output: &Path) -> Result<()> {
    let content = content_dir
        .canonicalize()
        .map_err(|e| Error::io("failed to open content directory", content_dir, e))?;
    let parent = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let parent = parent
        .canonicalize()
        .map_err(|e| Error::io("failed to open output directory", parent, e))?;
    if parent.starts_with(&content) {
        return Err(Error::Usage(format!(
            "the output '{}' must not be inside the content directory '{}'",
            output.display(),
            content_dir.display()
        )));
    }
    Ok(())
}

/// The hook script and the handler must be in the content directory.
fn check_referenced_files(manifest: &Manifest, content_dir: &Path) -> Result<()> {
    for (what, name) in [
        ("hook", &manifest.hooks.filename),
        ("handler", &manifest.handler.filename),
    ] {
        if let Some(name) = name
            && !content_dir.join(name).is_file()
        {
            return Err(Error::Usage(format!(
                "{what} file '{name}' named in the manifest is missing from '{}'",
                content_dir.display()
            )));
        }
    }
    Ok(())
}

/// Computes `sha256` and `size` of every image file, all images in parallel.
fn hash_images(manifest: &mut Manifest, content_dir: &Path, progress: &Progress) -> Result<()> {
    let paths: Vec<Option<PathBuf>> = manifest
        .images
        .iter()
        .map(|i| i.filename.as_ref().map(|f| content_dir.join(f)))
        .collect();
    let mut total = 0;
    for path in paths.iter().flatten() {
        let meta =
            std::fs::metadata(path).map_err(|e| Error::io("failed to open image", path, e))?;
        if !meta.is_file() {
            return Err(Error::Usage(format!(
                "image '{}' is not a regular file",
                path.display()
            )));
        }
        total += meta.len();
    }
    let phase = progress.phase("Hashing images", Some(total));
    let digests: Vec<Option<([u8; 32], u64)>> = paths
        .par_iter()
        .map(|p| {
            p.as_deref()
                .map(|p| sha256_file(p, &|n| phase.inc(n)))
                .transpose()
        })
        .collect::<Result<_>>()?;
    for (image, digest) in manifest.images.iter_mut().zip(digests) {
        if let Some((sha, size)) = digest {
            image.sha256 = Some(hex::encode(sha));
            image.size = Some(size);
        }
    }
    Ok(())
}

/// Streams a file through SHA-256; returns the digest and the byte count.
pub fn sha256_file(path: &Path, progress: bundle::Progress) -> Result<([u8; 32], u64)> {
    let file = File::open(path).map_err(|e| Error::io("failed to open image", path, e))?;
    sha256_stream(file, progress).map_err(|e| Error::io("failed to read image", path, e))
}

/// Streams a reader through SHA-256; returns the digest and the byte count. A second thread
/// reads ahead into a few reused buffers, so reading overlaps hashing (one hash stream cannot
/// be split across cores).
pub(crate) fn sha256_stream(
    mut reader: impl Read + Send,
    progress: bundle::Progress,
) -> std::io::Result<([u8; 32], u64)> {
    const CHUNK: usize = 4 << 20;
    const BUFFERS: usize = 3;
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<(Vec<u8>, usize)>(BUFFERS);
    let (empty_tx, empty_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(BUFFERS);
    for _ in 0..BUFFERS {
        empty_tx
            .send(vec![0u8; CHUNK])
            .expect("room for every buffer");
    }
    std::thread::scope(|scope| {
        let read_ahead = scope.spawn(move || -> std::io::Result<()> {
            for mut buf in empty_rx {
                let n = read_full(&mut reader, &mut buf)?;
                if n == 0 || full_tx.send((buf, n)).is_err() {
                    break;
                }
            }
            Ok(())
        });
        let mut hasher = openssl::sha::Sha256::new();
        let mut size = 0u64;
        for (buf, n) in full_rx {
            hasher.update(&buf[..n]);
            size += n as u64;
            progress(n as u64);
            // The reader may have finished; then the buffer is simply dropped.
            let _ = empty_tx.send(buf);
        }
        drop(empty_tx);
        read_ahead.join().expect("the read-ahead thread panicked")?;
        Ok((hasher.finish(), size))
    })
}

/// Reads until `buf` is full or the end of the input; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Appends the CMS and its length at the end of the payload file.
pub(crate) fn append_signature(file: &File, cms: &[u8], max_signature_size: u64) -> Result<()> {
    let mut end = file;
    end.seek(SeekFrom::End(0))
        .map_err(|e| Error::io("failed to seek in", "<bundle>", e))?;
    container::append_cms(&mut end, cms, max_signature_size)?;
    Ok(())
}

/// The squashfs size, checked as `rauc bundle` does (4 KiB aligned; > 4096 for verity/crypt).
fn squashfs_size(file: &File, format: BundleFormat) -> Result<u64> {
    let size = file
        .metadata()
        .map_err(|e| Error::io("failed to stat squashfs", "<bundle>", e))?
        .len();
    if format != BundleFormat::Plain {
        if size % 4096 != 0 {
            return Err(Error::Usage(format!(
                "squashfs size ({size}) is not a multiple of 4096 bytes; do not pass -nopad to mksquashfs"
            )));
        }
        if size <= 4096 {
            return Err(Error::Usage(format!(
                "squashfs size ({size}) must be larger than 4096 bytes"
            )));
        }
    }
    Ok(size)
}

/// Encrypts (crypt), appends the hash tree (verity/crypt) and signs. Returns the CMS.
fn sign_payload(
    req: &BuildRequest<'_>,
    file: &File,
    data_size: u64,
    manifest: &mut Manifest,
    format: BundleFormat,
    progress: &Progress,
) -> Result<(Vec<u8>, Option<VerityParams>)> {
    let (key, certs) = (req.identity.key.as_ref(), req.identity.certs());
    if format == BundleFormat::Plain {
        let phase = progress.phase("Hashing payload", Some(data_size));
        let (sha256, _) = sha256_stream(file, &|n| phase.inc(n))
            .map_err(|e| Error::io("failed to read payload", "<bundle>", e))?;
        drop(phase);
        let cms = signed::sign(Content::Detached { sha256 }, key, certs, SystemTime::now())?;
        return Ok((cms, None));
    }
    let salt = verity::random_salt()?;
    let params = if format == BundleFormat::Crypt {
        let key = CryptKey::generate()?;
        let phase = progress.phase("Encrypting and hashing", Some(data_size));
        let params =
            crypt::encrypt_file_and_append_tree(file, data_size, &key, &salt, &|n| phase.inc(n))?;
        manifest.set_crypt_key(&key);
        params
    } else {
        let phase = progress.phase("Computing verity tree", Some(data_size));
        verity::append_tree(file, data_size, &salt, &|n| phase.inc(n))?
    };
    manifest.set_verity(&params);
    let text = zeroize::Zeroizing::new(manifest.to_text(req.vocabulary)?);
    let cms = signed::sign(
        Content::Inline(text.as_bytes()),
        key,
        certs,
        SystemTime::now(),
    )?;
    Ok((cms, Some(params)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out at most 1000 bytes per read, then fails if `fail` is set.
    struct Trickle {
        left: usize,
        fail: bool,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.left == 0 && self.fail {
                return Err(std::io::Error::other("medium error"));
            }
            let n = self.left.min(buf.len()).min(1000);
            buf[..n].fill(0xab);
            self.left -= n;
            Ok(n)
        }
    }

    #[test]
    fn read_ahead_hash_matches_a_plain_hash() {
        for len in [0, 1, 4 << 20, (9 << 20) + 7] {
            let seen = std::sync::atomic::AtomicU64::new(0);
            let (digest, size) = sha256_stream(
                Trickle {
                    left: len,
                    fail: false,
                },
                &|n| {
                    seen.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                },
            )
            .unwrap();
            assert_eq!(size, len as u64);
            assert_eq!(seen.into_inner(), len as u64);
            assert_eq!(digest, openssl::sha::sha256(&vec![0xab; len]));
        }
        let err = sha256_stream(
            Trickle {
                left: 5 << 20,
                fail: true,
            },
            &|_| {},
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "medium error");
    }
}
