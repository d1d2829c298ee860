//! Verification states over real bundles (mksquashfs + our writer), plain, verity and crypt.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::Command;

use bundle::Error;
use bundle::cms::signed::Content;
use bundle::cms::verify::Keyring;
use bundle::container::{self, OpenOptions};
use bundle::keys::{KeyKind, RecipientKey, RsaPadding, SignatureScheme};
use bundle::manifest::{BundleFormat, Vocabulary};
use bundle::state::{Bundle, OpenedBundle};
use common::{Kind, Pki, build_bundle, run, sign_with};

fn setup(
    kind: Kind,
) -> (
    tempfile::TempDir,
    Pki,
    std::path::PathBuf,
    bundle::manifest::Manifest,
) {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(&tmp.path().join("pki").tap_mkdir());
    let (path, manifest) = build_bundle(tmp.path(), kind, |c| {
        sign_with(&pki, "ec", SignatureScheme::EcdsaSha256, c)
    });
    (tmp, pki, path, manifest)
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}
impl TapMkdir for std::path::PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

fn keyring(pki: &Pki) -> Keyring {
    Keyring::from_file(pki.path("root.cert.pem"))
}

/// Copies a reader into a file and lists it with unsquashfs.
fn unsquashfs_list(dir: &Path, reader: &mut dyn Read) -> String {
    let out = dir.join("extracted.squashfs");
    let mut f = std::fs::File::create(&out).unwrap();
    std::io::copy(reader, &mut f).unwrap();
    run(Command::new("unsquashfs").arg("-l").arg(&out))
}

fn replace_cms(path: &Path, cms: &[u8]) {
    let layout = container::BundleFile::open(path, OpenOptions::default())
        .unwrap()
        .layout();
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(layout.payload_size).unwrap();
    container::append_cms_to_file(path, cms, 65536).unwrap();
}

/// Re-signs the bundle at `path` with `manifest_text` as its inline manifest and returns the
/// error verification must give.
fn verify_with_inline_manifest(pki: &Pki, path: &Path, manifest_text: &str) -> bundle::Error {
    let cms = sign_with(
        pki,
        "ec",
        SignatureScheme::EcdsaSha256,
        Content::Inline(manifest_text.as_bytes()),
    );
    replace_cms(path, &cms);
    Bundle::open(path)
        .unwrap()
        .require_signed()
        .unwrap()
        .verify(&keyring(pki))
        .err()
        .expect("verification fails")
}

#[test]
fn verity_bundle_verifies_and_exposes_everything() {
    let (tmp, pki, path, manifest) = setup(Kind::Verity);
    let signed = Bundle::open(&path).unwrap().require_signed().unwrap();
    assert!(!signed.is_detached());
    let mut v = signed.verify(&keyring(&pki)).unwrap();
    assert_eq!(v.format(), BundleFormat::Verity);
    let loaded = v.manifest().unwrap();
    assert_eq!(loaded.manifest, manifest);
    assert_eq!(
        loaded.bytes.as_slice(),
        manifest.to_text(Vocabulary::Rauc18).unwrap().as_bytes()
    );
    assert_eq!(loaded.hash, openssl::sha::sha256(&loaded.bytes));
    assert_eq!(v.signature().chain.len(), 3);
    assert_eq!(v.signature().spki_hashes.len(), 3);
    assert!(!v.was_encrypted());
    let verity = v.verity().unwrap().clone();
    assert_eq!(v.data_size() + verity.tree_size, v.layout().payload_size);
    assert!(v.crypt_key().is_none());
    v.check_payload().unwrap();
    let listing = unsquashfs_list(tmp.path(), &mut v.squashfs_reader().unwrap());
    assert!(listing.contains("rootfs.img"), "{listing}");
}

#[test]
fn crypt_bundle_decrypts_on_the_fly() {
    let (tmp, pki, path, manifest) = setup(Kind::Crypt);
    let mut v = Bundle::open(&path)
        .unwrap()
        .require_signed()
        .unwrap()
        .verify(&keyring(&pki))
        .unwrap();
    assert_eq!(v.format(), BundleFormat::Crypt);
    assert_eq!(
        v.crypt_key().unwrap(),
        &manifest.check_external().unwrap().crypt_key.unwrap()
    );
    v.check_payload().unwrap();
    let listing = unsquashfs_list(tmp.path(), &mut v.squashfs_reader().unwrap());
    assert!(listing.contains("manifest.raucm"), "{listing}");
}

#[test]
fn plain_bundle_manifest_comes_from_the_squashfs() {
    let (tmp, pki, path, _) = setup(Kind::Plain);
    let signed = Bundle::open(&path).unwrap().require_signed().unwrap();
    assert!(signed.is_detached());
    let mut v = signed.verify(&keyring(&pki)).unwrap();
    assert_eq!(v.format(), BundleFormat::Plain);
    assert!(v.manifest_in_payload());
    assert!(v.manifest().is_none());
    v.check_payload().unwrap();
    unsquashfs_list(tmp.path(), &mut v.squashfs_reader().unwrap());
    let text = run(Command::new("unsquashfs")
        .arg("-cat")
        .arg(tmp.path().join("extracted.squashfs"))
        .arg("manifest.raucm"));
    let loaded = v.load_plain_manifest(text.into_bytes()).unwrap();
    assert_eq!(loaded.manifest.update.compatible, "Test Device");
    let err = v
        .load_plain_manifest(b"[update]\ncompatible=x\n[bundle]\nformat=verity\n".to_vec())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plain bundles can only contain plain manifests"
    );
}

#[test]
fn corruption_is_caught_where_rauc_catches_it() {
    // verity: the signature covers the manifest; the payload check finds the flipped byte
    let (_t, pki, path, _) = setup(Kind::Verity);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[5000] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let mut v = Bundle::open(&path)
        .unwrap()
        .require_signed()
        .unwrap()
        .verify(&keyring(&pki))
        .unwrap();
    let err = v.check_payload().unwrap_err().to_string();
    assert!(err.contains("data block 1 is corrupted"), "{err}");
    // plain: the signature covers the payload itself
    let (_t, pki, path, _) = setup(Kind::Plain);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 1;
    let opened = Bundle::from_bytes(bytes, OpenOptions::default()).unwrap();
    let err = opened
        .require_signed()
        .unwrap()
        .verify(&keyring(&pki))
        .err()
        .unwrap();
    assert!(
        err.to_string().starts_with("signature verification failed"),
        "{err}"
    );
}

#[test]
fn in_memory_bundles_and_wrong_keyrings() {
    let (_t, pki, path, _) = setup(Kind::Verity);
    let bytes = std::fs::read(&path).unwrap();
    let opened = Bundle::from_bytes(bytes.clone(), OpenOptions::default()).unwrap();
    let mut v = opened
        .require_signed()
        .unwrap()
        .verify(&keyring(&pki))
        .unwrap();
    v.check_payload().unwrap();
    let err = Bundle::from_bytes(bytes.clone(), OpenOptions::default())
        .unwrap()
        .require_signed()
        .unwrap()
        .verify(&Keyring::from_file(pki.path("other.cert.pem")))
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("unable to get local issuer certificate")
    );
    // the unverified path parses the manifest but offers no payload access
    let u = Bundle::from_bytes(bytes, OpenOptions::default())
        .unwrap()
        .require_signed()
        .unwrap()
        .inspect_unverified()
        .unwrap();
    assert_eq!(
        u.manifest.unwrap().manifest.bundle.format,
        BundleFormat::Verity
    );
    assert_eq!(u.certificates.len(), 2);
}

#[test]
fn signed_manifest_must_fit_the_payload() {
    let (_t, pki, path, manifest) = setup(Kind::Verity);
    let layout = container::BundleFile::open(&path, OpenOptions::default())
        .unwrap()
        .layout();
    let mut bad = manifest.clone();
    bad.bundle.verity_size = Some(layout.payload_size + 4096);
    let text = bad.to_text(Vocabulary::Rauc18).unwrap();
    let err = verify_with_inline_manifest(&pki, &path, &text);
    assert!(
        err.to_string().contains("does not fit verity size"),
        "{err}"
    );
    // a plain external manifest is refused with RAUC's message
    let err = verify_with_inline_manifest(&pki, &path, "[update]\ncompatible=x\n");
    assert_eq!(
        err.to_string(),
        "Bundle format 'plain' not allowed for external manifest"
    );
}

/// A recipient key that can do nothing: the EnvelopedData code path is exercised up to the
/// private-key operation. (Named as a mock: no real key is needed to test classification.)
struct MockRecipientKey;

impl RecipientKey for MockRecipientKey {
    fn kind(&self) -> KeyKind {
        KeyKind::Rsa { bits: 2048 }
    }
    fn certificate_der(&self) -> Option<Vec<u8>> {
        None
    }
    fn ecdh(&self, _: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, bundle::keys::KeyError> {
        Err("mock".into())
    }
    fn rsa_decrypt(
        &self,
        _: &[u8],
        _: RsaPadding,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, bundle::keys::KeyError> {
        Err("mock".into())
    }
}

#[test]
fn enveloped_bundles_need_a_key() {
    let (tmp, pki, path, _) = setup(Kind::Crypt);
    let signed_cms = container::BundleFile::open(&path, OpenOptions::default())
        .unwrap()
        .cms()
        .to_vec();
    std::fs::write(tmp.path().join("signed.der"), &signed_cms).unwrap();
    run(Command::new("openssl")
        .current_dir(tmp.path())
        .args([
            "cms",
            "-encrypt",
            "-binary",
            "-aes-256-cbc",
            "-outform",
            "DER",
            "-in",
            "signed.der",
            "-out",
            "env.der",
        ])
        .arg(pki.path("rsa.cert.pem")));
    replace_cms(&path, &std::fs::read(tmp.path().join("env.der")).unwrap());
    let opened = Bundle::open(&path).unwrap();
    let OpenedBundle::Enveloped(env) = opened else {
        panic!("expected an EnvelopedData bundle");
    };
    assert!(env.decrypt(&MockRecipientKey).is_err());
    let err = Bundle::open(&path).unwrap().require_signed().err().unwrap();
    assert!(matches!(err, Error::NoDecryptionKey));
    assert_eq!(
        err.to_string(),
        "Encrypted bundle detected, but no decryption key given"
    );
}
