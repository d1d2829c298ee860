//! Byte-level work on bundle files: the trailer, the CMS, flipped bytes, truncation, and a CMS
//! put in by hand.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use bundle::keyfile::KeyFile;

use super::run::ok;

/// Where the parts of a bundle are (rauc-format.md §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    /// File size.
    pub file_size: u64,
    /// P: bytes before the CMS.
    pub payload_size: u64,
    /// S: CMS bytes.
    pub cms_size: u64,
}

/// Reads the trailer of a bundle.
pub fn parts(path: &Path) -> Parts {
    let mut f = std::fs::File::open(path).unwrap();
    let file_size = f.metadata().unwrap().len();
    f.seek(SeekFrom::End(-8)).unwrap();
    let mut len = [0u8; 8];
    f.read_exact(&mut len).unwrap();
    let cms_size = u64::from_be_bytes(len);
    Parts {
        file_size,
        payload_size: file_size - 8 - cms_size,
        cms_size,
    }
}

/// The CMS bytes of a bundle.
pub fn cms(path: &Path) -> Vec<u8> {
    let p = parts(path);
    let data = std::fs::read(path).unwrap();
    data[p.payload_size as usize..(p.payload_size + p.cms_size) as usize].to_vec()
}

/// The payload bytes of a bundle.
pub fn payload(path: &Path) -> Vec<u8> {
    let p = parts(path);
    let mut data = std::fs::read(path).unwrap();
    data.truncate(p.payload_size as usize);
    data
}

/// Copies `from` to `to` with the byte at `offset` inverted.
pub fn flip_copy(from: &Path, to: &Path, offset: u64) {
    let mut data = std::fs::read(from).unwrap();
    data[offset as usize] = !data[offset as usize];
    std::fs::write(to, data).unwrap();
}

/// Copies the first `len` bytes of `from` to `to`.
pub fn truncate_copy(from: &Path, to: &Path, len: u64) {
    let data = std::fs::read(from).unwrap();
    std::fs::write(to, &data[..len as usize]).unwrap();
}

/// Writes `to` = payload of `from` + `cms` + its length, by hand.
pub fn with_cms(from: &Path, cms: &[u8], to: &Path) {
    let mut out = std::fs::File::create(to).unwrap();
    out.write_all(&payload(from)).unwrap();
    out.write_all(cms).unwrap();
    out.write_all(&(cms.len() as u64).to_be_bytes()).unwrap();
}

/// The signed manifest of a verity/crypt bundle with an unencrypted CMS, as
/// `openssl cms -verify -noverify -binary` prints it (signature checked, chain not).
pub fn signed_manifest(bundle: &Path, scratch: &Path) -> String {
    let cms_path = scratch.join("manifest-cms.der");
    std::fs::write(&cms_path, cms(bundle)).unwrap();
    let out = ok(Command::new("openssl")
        .args([
            "cms",
            "-verify",
            "-noverify",
            "-inform",
            "DER",
            "-binary",
            "-in",
        ])
        .arg(&cms_path));
    std::fs::remove_file(&cms_path).unwrap();
    out.stdout_text()
}

/// The verity parameters of a manifest: (root hash, salt, tree size).
pub fn verity_params(manifest: &str) -> (String, String, u64) {
    let mut kf = KeyFile::parse(manifest).unwrap();
    let mut g = kf.take_group("bundle").unwrap();
    (
        g.require_string("verity-hash").unwrap(),
        g.require_string("verity-salt").unwrap(),
        g.take_u64("verity-size").unwrap().unwrap(),
    )
}

/// `veritysetup verify --no-superblock` of the bundle's hash tree against `root`; returns
/// whether it passed.
pub fn veritysetup_verify(bundle: &Path, root: &str, salt: &str, tree_size: u64) -> bool {
    let p = parts(bundle);
    let data = p.payload_size - tree_size;
    let out = super::run::run(
        Command::new("veritysetup")
            .args(["verify", "--no-superblock"])
            .arg(format!("--hash-offset={data}"))
            .arg(format!("--data-blocks={}", data / 4096))
            .arg(format!("--salt={salt}"))
            .arg(bundle)
            .arg(bundle)
            .arg(root),
    );
    out.status.success()
}
