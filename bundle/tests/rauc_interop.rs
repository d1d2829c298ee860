//! Bundles made by rauc 1.8 (`rauc bundle`) go through our verification states: signature,
//! external manifest, userspace payload check and squashfs access (decrypted for crypt).

mod common;

use std::path::Path;
use std::process::Command;

use bundle::cms::verify::Keyring;
use bundle::manifest::BundleFormat;
use bundle::state::Bundle;
use common::{Pki, noise, run};

fn rauc_bundle(pki: &Pki, dir: &Path, format: &str) -> std::path::PathBuf {
    let content = dir.join(format!("content-{format}"));
    std::fs::create_dir_all(&content).unwrap();
    std::fs::write(content.join("rootfs.img"), noise(40 * 1024, 9)).unwrap();
    std::fs::write(
        content.join("manifest.raucm"),
        format!(
            "[update]\ncompatible=Test Device\nversion=1.0\n\n[bundle]\nformat={format}\n\n\
             [image.rootfs]\nfilename=rootfs.img\n"
        ),
    )
    .unwrap();
    let out = dir.join(format!("rauc-{format}.raucb"));
    run(Command::new("rauc")
        .current_dir(&pki.dir)
        .args([
            "bundle",
            "--cert=ec.cert.pem",
            "--key=ec.key.pem",
            "--keyring=root.cert.pem",
        ])
        .arg("--intermediate=inter.cert.pem")
        .arg(&content)
        .arg(&out));
    out
}

fn squashfs_listing(dir: &Path, reader: &mut dyn std::io::Read) -> String {
    let path = dir.join("from-reader.squashfs");
    std::io::copy(reader, &mut std::fs::File::create(&path).unwrap()).unwrap();
    run(Command::new("unsquashfs").arg("-l").arg(&path))
}

#[test]
fn rauc_made_bundles_verify_and_read() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(&tmp.path().join("pki").tap());
    let keyring = Keyring::from_file(pki.path("root.cert.pem"));
    for (format, expected) in [
        ("verity", BundleFormat::Verity),
        ("crypt", BundleFormat::Crypt),
        ("plain", BundleFormat::Plain),
    ] {
        let path = rauc_bundle(&pki, tmp.path(), format);
        let signed = Bundle::open(&path).unwrap().require_signed().unwrap();
        let mut v = signed.verify(&keyring).unwrap();
        assert_eq!(v.format(), expected);
        v.check_payload().unwrap();
        let listing = squashfs_listing(tmp.path(), &mut v.squashfs_reader().unwrap());
        assert!(listing.contains("rootfs.img"), "{format}: {listing}");
        if expected != BundleFormat::Plain {
            let loaded = v.manifest().unwrap();
            let m = &loaded.manifest;
            // our serializer reproduces rauc 1.8's signed manifest byte for byte
            let ours = m.to_text(bundle::manifest::Vocabulary::Rauc18).unwrap();
            assert_eq!(ours.as_bytes(), loaded.bytes.as_slice(), "{format}");
            assert_eq!(m.update.compatible, "Test Device");
            assert_eq!(m.images[0].size, Some(40 * 1024));
            assert_eq!(v.crypt_key().is_some(), expected == BundleFormat::Crypt);
            assert_eq!(v.signature().chain.len(), 3);
        }
    }
}

trait Tap {
    fn tap(self) -> Self;
}
impl Tap for std::path::PathBuf {
    fn tap(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}
