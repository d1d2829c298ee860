//! `signer resign` and `signer replace-signature`: a new CMS over the same payload.
//!
//! Unlike rauc 1.8 (which rebuilds the verity tree of a verity bundle and cannot resign crypt
//! bundles), the payload is kept byte for byte and the *external* manifest is signed again — the
//! behaviour of current RAUC. An encrypted bundle is decrypted first; the output then has an
//! unencrypted CMS, to be encrypted again with `signer encrypt`.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::Path;
use std::time::SystemTime;

use bundle::cms::signed::{self, Content};
use bundle::cms::verify::Keyring;
use bundle::manifest::BundleFormat;
use bundle::state::SignedBundle;

use crate::build::{append_signature, sha256_stream};
use crate::error::{Error, Result};
use crate::identity::SigningIdentity;
use crate::verify::{PostSignCheck, check_new_bundle, open_signed};
use bundle::atomic::{AtomicFile, Existing};

/// How the input is authenticated and the output checked.
pub struct ResignSettings<'a> {
    /// Keyring for the input; `None` = `--no-verify` (the input signature is not checked).
    pub input_keyring: Option<&'a Keyring>,
    /// Keyring for the output (`--signing-keyring`, else the input keyring); `None` = no check.
    pub output_keyring: Option<&'a Keyring>,
    /// Decryption key for an encrypted input CMS.
    pub key: Option<&'a dyn keymgr::Decryptor>,
    /// Largest CMS accepted and written.
    pub max_signature_size: u64,
}

/// Signs the bundle's manifest (verity/crypt) or payload (plain) again with `identity`.
pub fn resign(
    input: &Path,
    output: &Path,
    identity: &SigningIdentity,
    s: &ResignSettings<'_>,
) -> Result<Option<PostSignCheck>> {
    let signed = open_signed(input, s.key, s.max_signature_size)?;
    let encrypted = signed.was_encrypted();
    let (content, payload_size) = authenticated_content(signed, s.input_keyring)?;
    let mut source = File::open(input).map_err(|e| Error::io("failed to open", input, e))?;
    let (key, certs) = (identity.key.as_ref(), identity.certs());
    let cms = match content {
        Some(manifest) => signed::sign(Content::Inline(&manifest), key, certs, SystemTime::now())?,
        None => {
            let (sha256, _) =
                sha256_stream(std::io::Read::take(&mut source, payload_size), &|_| {})
                    .map_err(|e| Error::io("failed to read", input, e))?;
            signed::sign(Content::Detached { sha256 }, key, certs, SystemTime::now())?
        }
    };
    if encrypted {
        tracing::warn!(
            "the input CMS was encrypted; the output has an unencrypted CMS (run 'signer encrypt' again)"
        );
    }
    write_with_cms(input, &mut source, payload_size, &cms, output, s)
}

/// Replaces the bundle's CMS with `cms` (made elsewhere, e.g. by an external signing service)
/// and checks the result: the new signature must verify and describe this payload.
pub fn replace_signature(
    input: &Path,
    cms: &[u8],
    output: &Path,
    s: &ResignSettings<'_>,
) -> Result<Option<PostSignCheck>> {
    let signed = open_signed(input, s.key, s.max_signature_size)?;
    let (_, payload_size) = authenticated_content(signed, s.input_keyring)?;
    let mut source = File::open(input).map_err(|e| Error::io("failed to open", input, e))?;
    write_with_cms(input, &mut source, payload_size, cms, output, s)
}

/// Verifies the input (unless `--no-verify`) and returns the manifest bytes to sign again
/// (`None` for plain bundles, whose signature covers the payload) and the payload size.
fn authenticated_content(
    signed: SignedBundle<File>,
    keyring: Option<&Keyring>,
) -> Result<(Option<Vec<u8>>, u64)> {
    let Some(keyring) = keyring else {
        tracing::warn!("--no-verify: the input signature is not checked");
        let layout = signed.layout();
        let detached = signed.is_detached();
        let unverified = signed.inspect_unverified()?;
        let manifest = unverified.manifest.map(|m| m.bytes.to_vec());
        if detached != manifest.is_none() {
            return Err(Error::Refused(
                "the input CMS content does not match its type".into(),
            ));
        }
        return Ok((manifest, layout.payload_size));
    };
    let verified = signed.verify(keyring)?;
    let payload = verified.layout().payload_size;
    Ok(match verified.format() {
        BundleFormat::Plain => (None, payload),
        _ => (verified.manifest().map(|m| m.bytes.to_vec()), payload),
    })
}

/// Copies the payload (byte for byte) and appends `cms`; checks the result; renames it into
/// place.
fn write_with_cms(
    input: &Path,
    source: &mut File,
    payload_size: u64,
    cms: &[u8],
    output: &Path,
    s: &ResignSettings<'_>,
) -> Result<Option<PostSignCheck>> {
    let out = AtomicFile::create(output, Existing::Refuse)?;
    source
        .seek(SeekFrom::Start(0))
        .map_err(|e| Error::io("failed to read", input, e))?;
    let copied = std::io::copy(
        &mut std::io::Read::take(source, payload_size),
        &mut out.file(),
    )
    .map_err(|e| Error::io("failed to copy the payload to", out.temp_path(), e))?;
    if copied != payload_size {
        return Err(Error::Refused(format!(
            "{} changed while being read",
            input.display()
        )));
    }
    append_signature(out.file(), cms, s.max_signature_size)?;
    let check = match s.output_keyring {
        Some(keyring) => Some(check_new_bundle(
            out.temp_path(),
            keyring,
            s.key,
            s.max_signature_size,
            true,
        )?),
        None => {
            tracing::warn!("no keyring given: the new signature is not verified");
            None
        }
    };
    out.commit()?;
    Ok(check)
}
