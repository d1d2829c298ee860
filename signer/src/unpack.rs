//! Reading files out of a bundle's squashfs in user space (no mount, no root, no `unsquashfs`).

use std::io::{Read, Seek};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use backhand::{FilesystemReader, InnerNode};

use crate::error::{Error, Result};

/// Largest manifest we read into memory.
const MAX_MANIFEST: u64 = 1 << 20;

fn open<'b, R: Read + Seek + Send + 'b>(reader: R) -> Result<FilesystemReader<'b>> {
    FilesystemReader::from_reader(std::io::BufReader::new(reader))
        .map_err(|e| Error::Squashfs(format!("failed to read the bundle's squashfs: {e}")))
}

/// Extracts every directory, regular file and symlink of the squashfs in `reader` below `dest`
/// (which must exist). Device nodes, FIFOs and sockets are skipped with a warning. Returns the
/// number of regular files written.
pub fn extract_all<R: Read + Seek + Send>(reader: R, dest: &Path) -> Result<usize> {
    let fs = open(reader)?;
    let mut files = 0;
    for node in fs.files() {
        let Some(rel) = safe_relative(&node.fullpath) else {
            return Err(Error::Squashfs(format!(
                "unsafe path in squashfs: {}",
                node.fullpath.display()
            )));
        };
        let target = dest.join(&rel);
        let mode = u32::from(node.header.permissions) & 0o7777;
        match &node.inner {
            InnerNode::Dir(_) => {
                if !rel.as_os_str().is_empty() {
                    std::fs::create_dir(&target)
                        .map_err(|e| Error::io("failed to create", &target, e))?;
                    set_mode(&target, mode)?;
                }
            }
            InnerNode::File(file) => {
                let mut src = fs
                    .file(file)
                    .reader_checked()
                    .map_err(|e| squash_err(&rel, e))?;
                let mut out = std::fs::File::create(&target)
                    .map_err(|e| Error::io("failed to create", &target, e))?;
                std::io::copy(&mut src, &mut out)
                    .map_err(|e| Error::io("failed to write", &target, e))?;
                set_mode(&target, mode)?;
                files += 1;
            }
            InnerNode::Symlink(link) => {
                std::os::unix::fs::symlink(&link.link, &target)
                    .map_err(|e| Error::io("failed to create symlink", &target, e))?;
            }
            _ => {
                tracing::warn!(path = %rel.display(), "skipping special file (device, FIFO or socket)")
            }
        }
    }
    Ok(files)
}

/// Reads one regular file (e.g. `manifest.raucm`) from the squashfs root, at most 1 MiB.
pub fn read_file<R: Read + Seek + Send>(reader: R, name: &str) -> Result<Vec<u8>> {
    let fs = open(reader)?;
    let wanted = Path::new("/").join(name);
    for node in fs.files() {
        if node.fullpath != wanted {
            continue;
        }
        let InnerNode::File(file) = &node.inner else {
            break;
        };
        let mut data = Vec::new();
        let src = fs
            .file(file)
            .reader_checked()
            .map_err(|e| squash_err(Path::new(name), e))?;
        src.take(MAX_MANIFEST + 1)
            .read_to_end(&mut data)
            .map_err(|e| {
                Error::Squashfs(format!("failed to read {name} from the squashfs: {e}"))
            })?;
        if data.len() as u64 > MAX_MANIFEST {
            return Err(Error::Squashfs(format!(
                "{name} in the squashfs is larger than 1 MiB"
            )));
        }
        return Ok(data);
    }
    Err(Error::Squashfs(format!(
        "no file '{name}' in the bundle's squashfs"
    )))
}

fn squash_err(path: &Path, e: backhand::BackhandError) -> Error {
    Error::Squashfs(format!(
        "failed to read {} from the squashfs: {e}",
        path.display()
    ))
}

/// The node path relative to the root, or `None` if it would escape the destination.
fn safe_relative(full: &Path) -> Option<PathBuf> {
    let mut rel = PathBuf::new();
    for c in full.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(part) => rel.push(part),
            _ => return None,
        }
    }
    Some(rel)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("failed to set permissions of", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn squashfs_of(dir: &Path, out: &Path) {
        let st = Command::new("mksquashfs")
            .arg(dir)
            .arg(out)
            .args(["-all-root", "-noappend", "-no-progress", "-quiet"])
            .status()
            .unwrap();
        assert!(st.success());
    }

    #[test]
    fn extracts_a_real_squashfs() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        std::fs::create_dir_all(src.join("d")).unwrap();
        let big: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        std::fs::write(src.join("d/big.img"), &big).unwrap();
        std::fs::write(src.join("manifest.raucm"), b"[update]\ncompatible=x\n").unwrap();
        std::os::unix::fs::symlink("d/big.img", src.join("link")).unwrap();
        let img = t.path().join("img.sqfs");
        squashfs_of(&src, &img);

        let out = t.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let n = extract_all(std::fs::File::open(&img).unwrap(), &out).unwrap();
        assert_eq!(n, 2);
        assert_eq!(std::fs::read(out.join("d/big.img")).unwrap(), big);
        assert_eq!(
            std::fs::read_link(out.join("link")).unwrap(),
            Path::new("d/big.img")
        );
        let m = read_file(std::fs::File::open(&img).unwrap(), "manifest.raucm").unwrap();
        assert_eq!(m, b"[update]\ncompatible=x\n");
        assert!(read_file(std::fs::File::open(&img).unwrap(), "nope").is_err());
    }

    #[test]
    fn garbage_is_an_error() {
        let err = extract_all(
            std::io::Cursor::new(vec![0u8; 8192]),
            Path::new("/nonexistent"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("squashfs"), "{err}");
    }

    #[test]
    fn rejects_escaping_paths() {
        assert!(safe_relative(Path::new("/a/../b")).is_none());
        assert_eq!(safe_relative(Path::new("/a/b")).unwrap(), Path::new("a/b"));
    }
}
