//! `signer extract` and `signer extract-signature`: contents and CMS out of a verified bundle,
//! in user space (no mount, no root).

use std::path::Path;

use bundle::cms::verify::Keyring;

use crate::error::Result;
use crate::unpack;
use crate::verify::{open_signed, open_verified};
use bundle::atomic::{self, AtomicDir, Existing};

/// Where the keys and limits for opening a bundle come from.
pub struct OpenSettings<'a> {
    /// The keyring to verify against.
    pub keyring: &'a Keyring,
    /// The decryption key for an encrypted CMS.
    pub key: Option<&'a dyn keymgr::Decryptor>,
    /// Largest CMS accepted.
    pub max_signature_size: u64,
}

/// Verifies the bundle, checks the whole payload against the verity tree (decrypting crypt
/// bundles on the fly) and unpacks the squashfs into `dest` (absent or an empty directory).
/// Returns the number of files written.
pub fn extract(bundle: &Path, dest: &Path, settings: &OpenSettings<'_>) -> Result<usize> {
    let mut verified = open_verified(
        bundle,
        settings.keyring,
        settings.key,
        settings.max_signature_size,
    )?;
    verified.check_payload()?;
    let out = AtomicDir::create(dest)?;
    let files = unpack::extract_all(verified.squashfs_reader()?, out.path())?;
    out.commit()?;
    Ok(files)
}

/// Writes the bundle's CMS SignedData (decrypted, for an encrypted bundle) to `dest`, after
/// verifying it. Returns its size.
pub fn extract_signature(bundle: &Path, dest: &Path, settings: &OpenSettings<'_>) -> Result<u64> {
    let signed = open_signed(bundle, settings.key, settings.max_signature_size)?;
    let cms = signed.signed_data().to_vec();
    signed.verify(settings.keyring)?;
    atomic::write_file(dest, &cms, Existing::Refuse)?;
    Ok(cms.len() as u64)
}
