//! An A/B test device for installation tests in the guest, and its host-side inputs.
//!
//! Host side ([`TestDevice::create`]): a test PKI (openssl CLI), a SoftHSM installation with the
//! token `device` (an EC P-256 key generated inside the token, certificate issued by the test
//! CA and written next to it) and the token `other` (a key that is no recipient), a raw
//! `rootfs.img` and an ext4 `appfs.ext4` image, bundles built with the real `signer bundle` and
//! `signer encrypt` ([`TestDevice::signed_bundle`], [`TestDevice::encrypt`]).
//!
//! Guest side ([`guest`]): the disks in a fixed order — bundles (a read-only squashfs), slot A,
//! slot B (raw `rootfs` slots), their `appfs` children (type ext4) and an ext4 data disk with the
//! central status file and a GRUB environment block (`bootloader=grub`, the real backend) — a
//! `system.conf` whose `[encryption] key` is a `pkcs11:` URI of the device token, and the
//! initramfs with `ota`, SoftHSM and the token directory. After a boot (or a kill), the host
//! reads the data disk back with `e2fsck` (journal replay, on a copy) and `debugfs`.

pub mod guest;

use std::path::{Path, PathBuf};
use std::process::Command;

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509NameBuilder};
use softhsm::SoftHsm;

use super::fixtures::TestPki;
use super::{VmError, require_tool, run_command};

/// User PIN of the test tokens.
pub const USER_PIN: &str = "1234";

/// Sizes of a test device.
#[derive(Debug, Clone, Copy)]
pub struct DeviceSpec {
    /// Bytes of the random `rootfs.img`.
    pub rootfs_image: usize,
    /// Bytes of each rootfs slot disk (≥ the image).
    pub rootfs_slot: u64,
    /// Bytes of the ext4 `appfs.ext4` image (and of each appfs slot disk).
    pub appfs_image: u64,
}

impl Default for DeviceSpec {
    fn default() -> Self {
        DeviceSpec {
            rootfs_image: 6 << 20,
            rootfs_slot: 8 << 20,
            appfs_image: 2 << 20,
        }
    }
}

/// The host files of a test device (see the module documentation).
pub struct TestDevice {
    /// Work directory.
    pub dir: PathBuf,
    /// The test PKI (root = keyring, signer with EKU codeSigning).
    pub pki: TestPki,
    hsm: SoftHsm,
    /// Certificate of the `device` token's key (PEM).
    pub device_cert: PathBuf,
    /// Certificate of the `other` token's key (PEM).
    pub other_cert: PathBuf,
    /// A PEM recipient key and certificate for rauc 1.8, which cannot use `pkcs11:` keys in
    /// `[encryption]`.
    pub pem_recipient: (PathBuf, PathBuf),
    /// The raw rootfs image.
    pub rootfs_image: PathBuf,
    /// The ext4 appfs image.
    pub appfs_image: PathBuf,
    /// The sizes.
    pub spec: DeviceSpec,
}

impl std::fmt::Debug for TestDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDevice")
            .field("dir", &self.dir)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

fn fixture<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> VmError + '_ {
    move |e| VmError::Fixture(format!("{what}: {e}"))
}

impl TestDevice {
    /// Creates PKI, tokens and images in `dir`.
    pub fn create(dir: &Path, spec: DeviceSpec) -> Result<TestDevice, VmError> {
        let pki_dir = dir.join("pki");
        std::fs::create_dir_all(&pki_dir).map_err(|e| VmError::io("create", &pki_dir, e))?;
        let pki = TestPki::create(&pki_dir)?;
        let hsm = SoftHsm::new_unexported().map_err(fixture("SoftHSM"))?;
        let device_cert = token_with_key(&hsm, &pki, "device", "Device 0001", dir)?;
        let other_cert = token_with_key(&hsm, &pki, "other", "Some Other Device", dir)?;
        let pem_recipient = pem_recipient(&pki, dir)?;
        let rootfs_image = dir.join("rootfs.img");
        std::fs::write(&rootfs_image, random(spec.rootfs_image)?)
            .map_err(|e| VmError::io("write", &rootfs_image, e))?;
        let appfs_image = ext4_image(dir, "appfs", spec.appfs_image)?;
        Ok(TestDevice {
            dir: dir.to_path_buf(),
            pki,
            hsm,
            device_cert,
            other_cert,
            pem_recipient,
            rootfs_image,
            appfs_image,
            spec,
        })
    }

    /// The SoftHSM token directory (copied into the guest).
    pub fn token_dir(&self) -> PathBuf {
        self.hsm.dir().join("tokens")
    }

    /// Builds a crypt (or verity) bundle of `rootfs.img` and `appfs.ext4` with
    /// `signer bundle` (file keys of the test PKI, verified against the root after signing).
    pub fn signed_bundle(
        &self,
        signer: &Path,
        name: &str,
        format: &str,
    ) -> Result<PathBuf, VmError> {
        let content = self.dir.join(format!("{name}.content"));
        std::fs::create_dir_all(&content).map_err(|e| VmError::io("create", &content, e))?;
        for (src, file) in [
            (&self.rootfs_image, "rootfs.img"),
            (&self.appfs_image, "appfs.ext4"),
        ] {
            std::fs::copy(src, content.join(file)).map_err(|e| VmError::io("copy", src, e))?;
        }
        let manifest = format!(
            "[update]\ncompatible=Test Device\nversion=2024.06.0\ndescription=vm install test\n\n\
             [bundle]\nformat={format}\n\n[image.rootfs]\nfilename=rootfs.img\n\n\
             [image.appfs]\nfilename=appfs.ext4\n"
        );
        std::fs::write(content.join("manifest.raucm"), manifest)
            .map_err(|e| VmError::io("write", &content, e))?;
        let out = self.dir.join(format!("{name}.raucb"));
        let _ = std::fs::remove_file(&out);
        run_command(
            Command::new(signer)
                .arg("bundle")
                .arg(format!("--cert={}", self.pki.sign_cert.display()))
                .arg(format!("--key={}", self.pki.sign_key.display()))
                .arg(format!("--keyring={}", self.pki.root_cert.display()))
                .args(["--check-purpose", "codesign"])
                .arg(&content)
                .arg(&out),
        )?;
        Ok(out)
    }

    /// Encrypts a crypt bundle to the certificates `to` with `signer encrypt`.
    pub fn encrypt(
        &self,
        signer: &Path,
        input: &Path,
        name: &str,
        to: &[&Path],
    ) -> Result<PathBuf, VmError> {
        let out = self.dir.join(format!("{name}.raucb"));
        let _ = std::fs::remove_file(&out);
        let mut cmd = Command::new(signer);
        cmd.arg("encrypt");
        for cert in to {
            cmd.arg(format!("--to={}", cert.display()));
        }
        cmd.arg(format!("--keyring={}", self.pki.root_cert.display()))
            .args(["--check-purpose", "codesign"])
            .arg(input)
            .arg(&out);
        run_command(&mut cmd)?;
        Ok(out)
    }
}

/// Random bytes from OpenSSL.
pub fn random(len: usize) -> Result<Vec<u8>, VmError> {
    let mut data = vec![0u8; len];
    openssl::rand::rand_bytes(&mut data).map_err(fixture("random bytes"))?;
    Ok(data)
}

/// An ext4 image of `size` bytes holding `/hello` (made with `mke2fs -d`, no mount needed).
fn ext4_image(dir: &Path, name: &str, size: u64) -> Result<PathBuf, VmError> {
    require_tool("mke2fs", "e2fsprogs")?;
    let src = dir.join(format!("{name}.src"));
    std::fs::create_dir_all(&src).map_err(|e| VmError::io("create", &src, e))?;
    std::fs::write(src.join("hello"), format!("hello from {name}\n"))
        .map_err(|e| VmError::io("write", &src, e))?;
    std::fs::write(src.join("blob"), random(64 << 10)?)
        .map_err(|e| VmError::io("write", &src, e))?;
    let image = dir.join(format!("{name}.ext4"));
    make_ext4(&image, &src, size)?;
    Ok(image)
}

/// `mke2fs -t ext4 -d src image size` (4 KiB blocks).
pub(crate) fn make_ext4(image: &Path, src: &Path, size: u64) -> Result<(), VmError> {
    let _ = std::fs::remove_file(image);
    run_command(
        Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-b", "4096", "-d"])
            .arg(src)
            .arg(image)
            .arg(format!("{}k", size / 1024)),
    )?;
    Ok(())
}

/// A token `label` with an EC P-256 key generated inside it (id 01, label `label`) and a
/// certificate for it issued by the test CA, written to the token with the same id and label
/// and to `<dir>/<label>.cert.pem`.
fn token_with_key(
    hsm: &SoftHsm,
    pki: &TestPki,
    label: &str,
    cn: &str,
    dir: &Path,
) -> Result<PathBuf, VmError> {
    let token = hsm
        .init_token(label, "12345678", USER_PIN)
        .map_err(fixture("init token"))?;
    token
        .generate_key("EC:prime256v1", "01", label)
        .map_err(fixture("generate key"))?;
    let spki = token
        .read_public_key_der("01")
        .map_err(fixture("read public key"))?;
    let public = PKey::public_key_from_der(&spki).map_err(fixture("public key"))?;
    let cert = issue_recipient_cert(pki, &public, cn)?;
    let der = cert.to_der().map_err(fixture("certificate"))?;
    token
        .write_certificate(&der, "01", label)
        .map_err(fixture("write certificate"))?;
    let path = dir.join(format!("{label}.cert.pem"));
    std::fs::write(&path, cert.to_pem().map_err(fixture("certificate"))?)
        .map_err(|e| VmError::io("write", &path, e))?;
    Ok(path)
}

/// A software EC key and its certificate as PEM files (the recipient rauc 1.8 can use).
fn pem_recipient(pki: &TestPki, dir: &Path) -> Result<(PathBuf, PathBuf), VmError> {
    let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
        .map_err(fixture("EC group"))?;
    let key = PKey::from_ec_key(openssl::ec::EcKey::generate(&group).map_err(fixture("EC key"))?)
        .map_err(fixture("EC key"))?;
    let cert = issue_recipient_cert(pki, &key, "Device 0001 (PEM)")?;
    let key_path = dir.join("pem-recipient.key.pem");
    let cert_path = dir.join("pem-recipient.cert.pem");
    std::fs::write(
        &key_path,
        key.private_key_to_pem_pkcs8().map_err(fixture("key"))?,
    )
    .map_err(|e| VmError::io("write", &key_path, e))?;
    std::fs::write(&cert_path, cert.to_pem().map_err(fixture("certificate"))?)
        .map_err(|e| VmError::io("write", &cert_path, e))?;
    Ok((key_path, cert_path))
}

/// A one-year recipient certificate (keyAgreement, keyEncipherment) issued by the test root.
fn issue_recipient_cert<T: openssl::pkey::HasPublic>(
    pki: &TestPki,
    public: &PKey<T>,
    cn: &str,
) -> Result<X509, VmError> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| VmError::io("read", p, e));
    let ca = X509::from_pem(&read(&pki.root_cert)?).map_err(fixture("CA certificate"))?;
    let ca_key: PKey<Private> =
        PKey::private_key_from_pem(&read(&pki.root_key)?).map_err(fixture("CA key"))?;
    let build = || -> Result<X509, openssl::error::ErrorStack> {
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_text("O", "Test")?;
        name.append_entry_by_text("CN", cn)?;
        let name = name.build();
        let mut b = X509::builder()?;
        b.set_version(2)?;
        let mut serial = BigNum::new()?;
        serial.rand(64, openssl::bn::MsbOption::MAYBE_ZERO, false)?;
        let serial = Asn1Integer::from_bn(&serial)?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(ca.subject_name())?;
        let (not_before, not_after) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(365)?);
        b.set_not_before(&not_before)?;
        b.set_not_after(&not_after)?;
        b.set_pubkey(public)?;
        b.append_extension(BasicConstraints::new().critical().build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_agreement()
                .key_encipherment()
                .build()?,
        )?;
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(&ca), None))?;
        b.append_extension(ski)?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(Some(&ca), None))?;
        b.append_extension(aki)?;
        b.sign(&ca_key, MessageDigest::sha256())?;
        Ok(b.build())
    };
    build().map_err(fixture("issue certificate"))
}
