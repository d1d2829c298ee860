//! `signer encrypt`: a verified crypt bundle's SignedData wrapped in a CMS EnvelopedData for a
//! list of device certificates. The payload is reused byte for byte.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bundle::cms::enveloped::{self, EncryptOptions, LayoutFit, Recipient, fit_per_layout};
use bundle::cms::verify::Keyring;
use bundle::manifest::BundleFormat;

use crate::build::append_signature;
use crate::error::{Error, Result};
use crate::verify::open_verified;
use bundle::atomic::{AtomicFile, Existing};

/// What `signer encrypt` needs.
pub struct EncryptRequest<'a> {
    /// The crypt bundle with an unencrypted CMS.
    pub input: &'a Path,
    /// The encrypted bundle to create.
    pub output: &'a Path,
    /// PEM files with the recipients' certificates (several per file are fine).
    pub recipient_files: &'a [PathBuf],
    /// The keyring the input must verify against.
    pub keyring: &'a Keyring,
    /// Layout, recipient ids and RSA padding.
    pub options: EncryptOptions,
    /// Largest CMS to write (65536 for rauc 1.8 targets).
    pub max_cms_size: u64,
}

/// What was written.
#[derive(Debug)]
pub struct EncryptReport {
    /// The encrypted bundle.
    pub path: PathBuf,
    /// Number of recipients.
    pub recipients: usize,
    /// Size of the EnvelopedData.
    pub cms_size: u64,
    /// Size of the SignedData it encrypts (the part that does not grow with recipients).
    pub signed_size: u64,
    /// The options used.
    pub options: EncryptOptions,
}

/// Encrypts the bundle's CMS to every recipient; refuses inputs that are not verified crypt
/// bundles with an unencrypted CMS, bad recipient files, and envelopes above `max_cms_size`.
pub fn encrypt_bundle(req: &EncryptRequest<'_>) -> Result<EncryptReport> {
    let recipients = enveloped::load_recipients(req.recipient_files, SystemTime::now())?;
    let verified = open_verified(req.input, req.keyring, None, req.max_cms_size)?;
    if verified.format() != BundleFormat::Crypt {
        return Err(Error::Refused(
            "Refused to encrypt input bundle that is not in 'crypt' format.".into(),
        ));
    }
    if verified.was_encrypted() {
        return Err(Error::Refused(
            "the input bundle's CMS is already encrypted".into(),
        ));
    }
    let payload_size = verified.layout().payload_size;
    let signed = read_cms(req.input, payload_size, verified.layout().cms_size)?;
    let size = enveloped::envelope_size(signed.len() as u64, &recipients, &req.options)?;
    if size > req.max_cms_size {
        return Err(too_large(size, signed.len() as u64, &recipients, req));
    }
    let envelope = enveloped::encrypt(&signed, &recipients, &req.options)?;
    let out = AtomicFile::create(req.output, Existing::Refuse)?;
    let mut source =
        File::open(req.input).map_err(|e| Error::io("failed to open", req.input, e))?;
    let copied = std::io::copy(&mut (&mut source).take(payload_size), &mut out.file())
        .map_err(|e| Error::io("failed to copy the payload to", out.temp_path(), e))?;
    if copied != payload_size {
        return Err(Error::Refused(format!(
            "{} changed while being read",
            req.input.display()
        )));
    }
    append_signature(out.file(), &envelope, req.max_cms_size)?;
    let path = out.commit()?;
    Ok(EncryptReport {
        path,
        recipients: recipients.len(),
        cms_size: envelope.len() as u64,
        signed_size: signed.len() as u64,
        options: req.options,
    })
}

/// The input's CMS bytes (the SignedData that becomes the encrypted content).
fn read_cms(path: &Path, offset: u64, len: u64) -> Result<Vec<u8>> {
    let mut file = File::open(path).map_err(|e| Error::io("failed to open", path, e))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io("failed to read", path, e))?;
    let mut cms =
        vec![0u8; usize::try_from(len).map_err(|_| Error::Refused("CMS too large".into()))?];
    file.read_exact(&mut cms)
        .map_err(|e| Error::io("failed to read", path, e))?;
    Ok(cms)
}

/// The refusal for an envelope above the limit, with how many recipients each layout fits.
fn too_large(
    size: u64,
    content_len: u64,
    recipients: &[Recipient],
    req: &EncryptRequest<'_>,
) -> Error {
    let fits = fit_per_layout(
        content_len,
        recipients,
        req.options.rsa_padding,
        req.max_cms_size,
    );
    let per_layout: Vec<String> = fits.iter().map(describe_fit).collect();
    Error::Refused(format!(
        "the encrypted CMS for {} recipients would be {size} bytes, more than the {} bytes rauc \
         1.8 accepts. Recipients that fit: {}. Use a smaller layout (--recipient-layout compact \
         --recipient-id ski), split the recipients over several bundles, or raise the limit with \
         --max-cms-size for targets configured with a larger max-bundle-signature-size",
        recipients.len(),
        req.max_cms_size,
        per_layout.join("; ")
    ))
}

fn describe_fit(fit: &LayoutFit) -> String {
    let name = format!(
        "{} layout with {} ids",
        fit.options.layout,
        fit.options.recipient_id.name()
    );
    match (fit.fits, fit.size_all) {
        (Some(n), Some(all)) => format!("{name}: {n} ({all} bytes for all)"),
        _ => format!("{name}: not usable with these certificates"),
    }
}
