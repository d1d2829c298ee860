//! Opening bundles on the build host: decrypt when needed, verify against a keyring, and the
//! check of a freshly signed bundle.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, SystemTime};

use bundle::cms::verify::Keyring;
use bundle::container::OpenOptions;
use bundle::info::subject;
use bundle::state::{Bundle, OpenedBundle, SignedBundle, VerifiedBundle};
use openssl::asn1::Asn1Time;
use openssl::x509::X509Ref;

use crate::error::Result;

/// Certificates expiring within this window get a warning after signing (as `rauc bundle`).
const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// Opens a bundle and, if its CMS is encrypted, decrypts it with `key` (RAUC's error when no
/// key is given).
pub fn open_signed(
    path: &Path,
    key: Option<&dyn keymgr::Decryptor>,
    max_signature_size: u64,
) -> Result<SignedBundle<File>> {
    let opened = Bundle::open_with(path, OpenOptions { max_signature_size })?;
    Ok(match (opened, key) {
        (OpenedBundle::Enveloped(env), Some(key)) => env.decrypt(key)?,
        (opened, _) => opened.require_signed()?,
    })
}

/// Opens, decrypts if needed and verifies a bundle.
pub fn open_verified(
    path: &Path,
    keyring: &Keyring,
    key: Option<&dyn keymgr::Decryptor>,
    max_signature_size: u64,
) -> Result<VerifiedBundle<File>> {
    let verified = open_signed(path, key, max_signature_size)?.verify(keyring)?;
    for w in &verified.signature().warnings {
        tracing::warn!("{w}");
    }
    Ok(verified)
}

/// The result of verifying a bundle right after signing it.
#[derive(Debug, Clone)]
pub struct PostSignCheck {
    /// The signer's subject, as OpenSSL prints it (`O = x, CN = y`).
    pub signer: String,
    /// Length of the verified chain (signer to trust anchor).
    pub chain_len: usize,
    /// Verification warnings and certificates that expire within 30 days.
    pub warnings: Vec<String>,
}

/// Verifies the bundle at `path` (a finished but not yet renamed output); with `full_payload`
/// the whole payload is also checked against the verity tree of the signed manifest.
pub fn check_new_bundle(
    path: &Path,
    keyring: &Keyring,
    key: Option<&dyn keymgr::Decryptor>,
    max_signature_size: u64,
    full_payload: bool,
) -> Result<PostSignCheck> {
    let mut verified = open_verified(path, keyring, key, max_signature_size)?;
    if full_payload {
        verified.check_payload()?;
    }
    let sig = verified.signature();
    let mut warnings = sig.warnings.clone();
    warnings.extend(
        sig.chain
            .iter()
            .filter_map(|c| expiry_warning(c, SystemTime::now())),
    );
    Ok(PostSignCheck {
        signer: sig.chain.first().map(|c| subject(c)).unwrap_or_default(),
        chain_len: sig.chain.len(),
        warnings,
    })
}

fn expiry_warning(cert: &X509Ref, now: SystemTime) -> Option<String> {
    let soon = now + EXPIRY_WARNING;
    let secs = soon.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    let limit = Asn1Time::from_unix(i64::try_from(secs).ok()?).ok()?;
    (cert.not_after() <= limit).then(|| {
        format!(
            "certificate '{}' expires soon (not after {})",
            subject(cert),
            cert.not_after()
        )
    })
}
