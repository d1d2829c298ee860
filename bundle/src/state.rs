//! Verification states of an opened bundle: `Bundle → EnvelopedBundle | SignedBundle →
//! VerifiedBundle` (`rauc-format.md` §1.5).
//!
//! Each state is a type and each transition consumes the previous state, so only a
//! [`VerifiedBundle`] gives access to the payload (readers, userspace verity check, the file for
//! device-mapper). [`SignedBundle::inspect_unverified`] is the explicitly named path for
//! `info --no-verify`: it yields an [`UnverifiedBundle`], which has no payload access at all.

use std::fs::File;
use std::io::{Cursor, Read, Seek};
use std::path::Path;
use std::time::SystemTime;

use openssl::x509::X509;
use zeroize::Zeroizing;

use crate::cms::verify::{self, Keyring};
use crate::cms::{self, CmsKind, SignedDataInfo};
use crate::container::{BundleFile, BundleSource, Layout, OpenOptions, Region};
use crate::crypt::DecryptingReader;
use crate::keys::RecipientKey;
use crate::manifest::{BundleFormat, CryptKey, ExternalParams, LoadedManifest, VerityParams};
use crate::{Error, Result};

/// Entry point: opening a bundle classifies its CMS.
pub struct Bundle;

/// An opened, not yet authenticated bundle.
pub enum OpenedBundle<R = File> {
    /// The CMS is an EnvelopedData (`rauc encrypt`): decrypt it first.
    Enveloped(EnvelopedBundle<R>),
    /// The CMS is a SignedData.
    Signed(SignedBundle<R>),
}

impl Bundle {
    /// Opens a bundle file with rauc 1.8's limits (CMS ≤ 64 KiB): trailer and bounds checks,
    /// then CMS classification.
    pub fn open(path: impl AsRef<Path>) -> Result<OpenedBundle<File>> {
        Self::open_with(path, OpenOptions::default())
    }

    /// Opens a bundle file with explicit options (e.g. `max-bundle-signature-size`).
    pub fn open_with(path: impl AsRef<Path>, options: OpenOptions) -> Result<OpenedBundle<File>> {
        let path = path.as_ref();
        let opened = OpenedBundle::classify(BundleFile::open(path, options)?)?;
        tracing::debug!(path = %path.display(), layout = ?opened.layout(), "opened bundle");
        Ok(opened)
    }

    /// Opens a bundle held in memory.
    pub fn from_bytes(
        bytes: Vec<u8>,
        options: OpenOptions,
    ) -> Result<OpenedBundle<Cursor<Vec<u8>>>> {
        OpenedBundle::classify(BundleFile::from_bytes(bytes, options)?)
    }
}

impl<R: BundleSource> OpenedBundle<R> {
    fn classify(file: BundleFile<R>) -> Result<Self> {
        match cms::classify(file.cms())? {
            CmsKind::Enveloped => Ok(OpenedBundle::Enveloped(EnvelopedBundle { file })),
            CmsKind::Signed => {
                let cms = file.cms().to_vec();
                SignedBundle::new(file, cms, false).map(OpenedBundle::Signed)
            }
        }
    }

    /// The signed bundle, or RAUC's error when it is encrypted and no key is at hand.
    pub fn require_signed(self) -> Result<SignedBundle<R>> {
        match self {
            OpenedBundle::Signed(s) => Ok(s),
            OpenedBundle::Enveloped(_) => Err(Error::NoDecryptionKey),
        }
    }

    /// The container layout.
    pub fn layout(&self) -> Layout {
        match self {
            OpenedBundle::Enveloped(e) => e.file.layout(),
            OpenedBundle::Signed(s) => s.file.layout(),
        }
    }
}

/// A bundle whose CMS is an EnvelopedData.
pub struct EnvelopedBundle<R = File> {
    file: BundleFile<R>,
}

impl<R: BundleSource> EnvelopedBundle<R> {
    /// The EnvelopedData bytes (for recipient listing).
    pub fn envelope(&self) -> &[u8] {
        self.file.cms()
    }

    /// The container layout.
    pub fn layout(&self) -> Layout {
        self.file.layout()
    }

    /// Decrypts the envelope with one recipient key; the content must be a SignedData.
    pub fn decrypt(self, key: &dyn RecipientKey) -> Result<SignedBundle<R>> {
        let inner = crate::cms::enveloped::decrypt(self.file.cms(), key)?;
        if cms::classify(&inner)? != CmsKind::Signed {
            return Err(Error::cms(
                "Expected CMS of type 'pkcs7-signedData' but got 'pkcs7-envelopedData'",
            ));
        }
        SignedBundle::new(self.file, inner.to_vec(), true)
    }
}

/// A bundle with a SignedData (possibly decrypted from an envelope), not yet verified.
pub struct SignedBundle<R = File> {
    file: BundleFile<R>,
    /// Zeroized on drop: a decrypted SignedData carries the crypt key in its manifest.
    cms: Zeroizing<Vec<u8>>,
    encrypted: bool,
    info: SignedDataInfo,
}

impl<R: BundleSource> SignedBundle<R> {
    fn new(file: BundleFile<R>, cms: Vec<u8>, encrypted: bool) -> Result<Self> {
        let info = cms::inspect(&cms)?;
        Ok(SignedBundle {
            file,
            cms: Zeroizing::new(cms),
            encrypted,
            info,
        })
    }

    /// The SignedData (decrypted if the bundle was encrypted), for `extract-signature`.
    pub fn signed_data(&self) -> &[u8] {
        &self.cms
    }

    /// Whether the SignedData came out of an EnvelopedData.
    pub fn was_encrypted(&self) -> bool {
        self.encrypted
    }

    /// Whether the signature is detached (a plain bundle).
    pub fn is_detached(&self) -> bool {
        self.info.detached
    }

    /// The container layout.
    pub fn layout(&self) -> Layout {
        self.file.layout()
    }

    /// Verifies the signature against the keyring, then parses and checks the manifest.
    pub fn verify(mut self, keyring: &Keyring) -> Result<VerifiedBundle<R>> {
        let layout = self.file.layout();
        let signature = if self.info.detached {
            let path = self.path_buf();
            let map = self
                .file
                .reader()
                .map_prefix(layout.payload_size)
                .map_err(|e| Error::io("failed to map payload", path, e))?;
            verify::verify(&self.cms, Some(&map), keyring)?
        } else {
            verify::verify(&self.cms, None, keyring)?
        };
        let contents = if self.info.detached {
            Contents::Plain { manifest: None }
        } else {
            Contents::external(signature.content.to_vec(), layout)?
        };
        tracing::debug!(
            signers = signature.chain.len(),
            encrypted = self.encrypted,
            "bundle signature verified"
        );
        let signature =
            SignatureInfo::new(signature.chain, signature.signing_time, signature.warnings)?;
        Ok(VerifiedBundle {
            file: self.file,
            encrypted: self.encrypted,
            signature,
            contents,
        })
    }

    /// Parses what can be parsed **without** verifying the signature, for `info --no-verify`.
    /// The result gives no access to the payload and cannot become a [`VerifiedBundle`].
    pub fn inspect_unverified(self) -> Result<UnverifiedBundle> {
        let manifest = match &self.info.econtent {
            Some(bytes) => Some(LoadedManifest::load(bytes.to_vec())?),
            None => None,
        };
        Ok(UnverifiedBundle {
            layout: self.file.layout(),
            encrypted: self.encrypted,
            manifest,
            certificates: self.info.certificates,
            signing_time: self.info.signing_time,
        })
    }

    fn path_buf(&self) -> std::path::PathBuf {
        self.file.path().map(Path::to_path_buf).unwrap_or_default()
    }
}

/// The result of `info --no-verify`: the unauthenticated manifest and certificates. Nothing in
/// it may be trusted, and it offers no way to read, mount or extract the payload.
#[derive(Debug, Clone)]
pub struct UnverifiedBundle {
    /// The container layout.
    pub layout: Layout,
    /// Whether the CMS was encrypted.
    pub encrypted: bool,
    /// The inline manifest (verity/crypt); `None` for plain bundles.
    pub manifest: Option<LoadedManifest>,
    /// The certificates embedded in the CMS (DER), unverified.
    pub certificates: Vec<Vec<u8>>,
    /// The claimed signing time.
    pub signing_time: Option<SystemTime>,
}

/// Facts about a verified signature.
#[derive(Debug, Clone)]
pub struct SignatureInfo {
    /// The verified chain, signer first.
    pub chain: Vec<X509>,
    /// The signer's `signingTime`.
    pub signing_time: Option<SystemTime>,
    /// SHA-256 of each chain certificate's SubjectPublicKeyInfo (`RAUC_BUNDLE_SPKI_HASHES`).
    pub spki_hashes: Vec<[u8; 32]>,
    /// Warnings from verification (e.g. CRLs present but not checked).
    pub warnings: Vec<String>,
}

impl SignatureInfo {
    fn new(
        chain: Vec<X509>,
        signing_time: Option<SystemTime>,
        warnings: Vec<String>,
    ) -> Result<Self> {
        let spki_hashes = chain
            .iter()
            .map(verify::spki_sha256)
            .collect::<Result<_>>()?;
        Ok(SignatureInfo {
            chain,
            signing_time,
            spki_hashes,
            warnings,
        })
    }
}

/// Where the authenticated manifest is.
enum Contents {
    /// verity/crypt: the manifest signed inside the CMS, with its checked parameters.
    External {
        manifest: LoadedManifest,
        params: ExternalParams,
        data_size: u64,
    },
    /// plain: the manifest is `manifest.raucm` inside the (authenticated) squashfs.
    Plain { manifest: Option<LoadedManifest> },
}

impl Contents {
    fn external(bytes: Vec<u8>, layout: Layout) -> Result<Self> {
        let manifest = LoadedManifest::load(bytes)?;
        if manifest.manifest.bundle.format == BundleFormat::Plain {
            return Err(Error::Format {
                message: "Bundle format 'plain' not allowed for external manifest".into(),
            });
        }
        let params = manifest.manifest.check_external()?;
        let data_size = layout
            .payload_size
            .checked_sub(params.verity.tree_size)
            .filter(|&d| d > 0 && d % 4096 == 0 && layout.payload_aligned())
            .ok_or_else(|| {
                Error::size(format!(
                    "payload size {} does not fit verity size {} (both must be multiples of 4096, data non-empty)",
                    layout.payload_size, params.verity.tree_size
                ))
            })?;
        Ok(Contents::External {
            manifest,
            params,
            data_size,
        })
    }
}

/// A bundle whose signature verified against the keyring. Only this state gives access to the
/// payload.
pub struct VerifiedBundle<R = File> {
    file: BundleFile<R>,
    encrypted: bool,
    signature: SignatureInfo,
    contents: Contents,
}

/// A readable and seekable stream that can move between threads.
pub trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

impl<R: BundleSource + Send> VerifiedBundle<R> {
    /// The bundle format.
    pub fn format(&self) -> BundleFormat {
        match &self.contents {
            Contents::External { params, .. } => params.format,
            Contents::Plain { .. } => BundleFormat::Plain,
        }
    }

    /// The authenticated manifest: the signed external manifest (verity/crypt), or for plain
    /// bundles the squashfs manifest once [`Self::load_plain_manifest`] has been called.
    pub fn manifest(&self) -> Option<&LoadedManifest> {
        match &self.contents {
            Contents::External { manifest, .. } => Some(manifest),
            Contents::Plain { manifest } => manifest.as_ref(),
        }
    }

    /// Whether the manifest lives in the payload (plain bundle) and must be read from the
    /// squashfs ([`Self::squashfs_reader`], `manifest.raucm`) and handed to
    /// [`Self::load_plain_manifest`].
    pub fn manifest_in_payload(&self) -> bool {
        matches!(self.contents, Contents::Plain { .. })
    }

    /// Records the `manifest.raucm` read from a plain bundle's squashfs after checking it
    /// (plain format, RAUC's internal-manifest rules).
    pub fn load_plain_manifest(&mut self, bytes: Vec<u8>) -> Result<&LoadedManifest> {
        let Contents::Plain { manifest } = &mut self.contents else {
            return Err(Error::Format {
                message: "only plain bundles carry their manifest in the payload".into(),
            });
        };
        let loaded = LoadedManifest::load(bytes)?;
        if loaded.manifest.bundle.format != BundleFormat::Plain {
            return Err(Error::Format {
                message: "plain bundles can only contain plain manifests".into(),
            });
        }
        loaded.manifest.check_internal()?;
        Ok(manifest.insert(loaded))
    }

    /// The verified signature: chain, signing time, SPKI hashes.
    pub fn signature(&self) -> &SignatureInfo {
        &self.signature
    }

    /// Whether the CMS was encrypted (EnvelopedData). RAUC refuses to install crypt bundles
    /// whose CMS was not.
    pub fn was_encrypted(&self) -> bool {
        self.encrypted
    }

    /// The container layout (payload size `P`).
    pub fn layout(&self) -> Layout {
        self.file.layout()
    }

    /// Size of the squashfs (data) area: `P − verity-size`, or `P` for plain.
    pub fn data_size(&self) -> u64 {
        match &self.contents {
            Contents::External { data_size, .. } => *data_size,
            Contents::Plain { .. } => self.file.layout().payload_size,
        }
    }

    /// The dm-verity parameters (verity/crypt).
    pub fn verity(&self) -> Option<&VerityParams> {
        match &self.contents {
            Contents::External { params, .. } => Some(&params.verity),
            Contents::Plain { .. } => None,
        }
    }

    /// The payload key (crypt).
    pub fn crypt_key(&self) -> Option<&CryptKey> {
        match &self.contents {
            Contents::External { params, .. } => params.crypt_key.as_ref(),
            Contents::Plain { .. } => None,
        }
    }

    /// Checks the whole payload in userspace as `rauc extract` does: for verity/crypt every
    /// hash-tree level and the root (the plain payload is already covered by its signature).
    pub fn check_payload(&mut self) -> Result<()> {
        let Contents::External {
            params, data_size, ..
        } = &self.contents
        else {
            return Ok(());
        };
        let (verity, data_size) = (params.verity.clone(), *data_size);
        let payload_size = self.file.layout().payload_size;
        let path = self.file.path().map(Path::to_path_buf).unwrap_or_default();
        let map = self
            .file
            .reader()
            .map_prefix(payload_size)
            .map_err(|e| Error::io("failed to map payload", path, e))?;
        let (data, tree) = map.split_at(data_size as usize);
        crate::verity::verify_tree(data, tree, &verity.salt, &verity.root_hash)
    }

    /// A reader over the squashfs: the data area, decrypted on the fly for crypt bundles.
    /// Call [`Self::check_payload`] first unless the data is authenticated otherwise.
    pub fn squashfs_reader(&mut self) -> Result<Box<dyn ReadSeek + '_>> {
        let data_size = self.data_size();
        let key = self.crypt_key().cloned();
        let inner = Region::new(self.file.reader(), 0, data_size);
        match key {
            Some(key) => Ok(Box::new(DecryptingReader::new(inner, key, 0, data_size)?)),
            None => Ok(Box::new(inner)),
        }
    }

    /// The underlying file or buffer (e.g. to set up a loop device), and its path.
    pub fn source(&self) -> (Option<&Path>, Layout) {
        (self.file.path(), self.file.layout())
    }
}
