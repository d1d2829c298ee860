//! The seam between the installer and the bundle pipeline: "open + verify + mount a bundle, give
//! me its images, its compatible and its mount directory".
//!
//! [`VerifiedOpener`] is the real implementation (`rauc-format.md` §1.5, §1.7): trailer and CMS
//! size (≤ 64 KiB) → decryption of an EnvelopedData with the `[encryption]` key → signature
//! verification against `[keyring]` → the format and install policy ([`policy`]) → the mount
//! stack below `mountprefix` (loop → dm-verity → dm-crypt → squashfs; plain: loop → squashfs).
//! Only a [`bundle::state::VerifiedBundle`] can be mounted: the mount parameters are made from
//! one ([`crate::mount::BundleMountParams::from_verified`]).
//!
//! [`DirectoryBundleOpener`] is a **test double** that takes an unpacked bundle directory as
//! verified and mounted; the `ota` binary uses it only with `--dangerous-unverified-directory`.

mod access;
mod convert;
mod directory;
pub mod info;
mod mounted;
pub mod policy;
mod verified;

use std::path::PathBuf;

pub use convert::{bundle_input, spki_hash_text};
pub use directory::DirectoryBundleOpener;
pub use info::InfoOptions;
pub use policy::Purpose;

pub use verified::{KeyOverride, VerifiedOpener};

use crate::config::SystemConfig;
use crate::error::Result;
use crate::install::write::Hashing;
use crate::plan::BundleInput;

/// Options for opening a bundle (from `InstallBundle` arguments or `ota install` flags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// What the bundle is opened for; [`Purpose::Install`] adds RAUC's install-only refusals.
    pub purpose: Purpose,
    /// `require-manifest-hash`: refuse bundles whose manifest hash differs (and plain bundles).
    pub require_manifest_hash: Option<String>,
}

/// How the images of an opened bundle are protected while the installer reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageProtection {
    /// verity/crypt: every block read is checked by dm-verity against the root hash of the
    /// signed manifest; the installer checks image sizes only (as RAUC).
    DmVerity,
    /// Nothing checks blocks as they are read (a plain bundle after its one-time signature
    /// check, or a test double): the installer hashes every image while writing it and compares
    /// the digest with the manifest.
    Unchecked,
}

impl ImageProtection {
    /// The hashing the slot writer needs.
    pub fn hashing(self) -> Hashing {
        match self {
            ImageProtection::DmVerity => Hashing::CoveredByDmVerity,
            ImageProtection::Unchecked => Hashing::Sha256,
        }
    }
}

/// A verified, mounted bundle. Dropping it unmounts and removes every layer (through `guard`).
pub struct OpenedBundle {
    /// Manifest facts the planner and executor use.
    pub info: BundleInput,
    /// Where the bundle's payload is mounted (images and hook script live here).
    pub mount_dir: PathBuf,
    /// How the images are protected while they are read.
    pub protection: ImageProtection,
    /// Keeps the mount (and loop and device-mapper devices) alive; dropping it tears them down.
    pub guard: Option<Box<dyn Send>>,
}

impl std::fmt::Debug for OpenedBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedBundle")
            .field("info", &self.info)
            .field("mount_dir", &self.mount_dir)
            .field("protection", &self.protection)
            .finish_non_exhaustive()
    }
}

/// Opens, verifies and mounts a bundle.
pub trait BundleOpener: Send + Sync {
    /// Opens the bundle at `source` (a path; URLs need streaming, which is not supported) and
    /// returns it verified and mounted below `config.mount_prefix`.
    fn open(&self, source: &str, config: &SystemConfig, opts: &OpenOptions)
    -> Result<OpenedBundle>;

    /// Verifies the bundle and returns its manifest facts without keeping anything mounted
    /// (D-Bus `Info` and `InspectBundle`). The default opens and drops the bundle.
    fn inspect(&self, source: &str, config: &SystemConfig) -> Result<BundleInput> {
        let opts = OpenOptions {
            purpose: Purpose::Inspect,
            ..OpenOptions::default()
        };
        Ok(self.open(source, config, &opts)?.info)
    }
}
