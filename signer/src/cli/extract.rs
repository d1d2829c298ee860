//! `signer extract` and `signer extract-signature`.

use std::path::PathBuf;

use anyhow::Result;
use signer::extract::{OpenSettings, extract, extract_signature};

use super::common::{Globals, MAX_CMS, TrustArgs, decryptor};

/// Extract a bundle's files into a directory, without root and without mounting.
///
/// The signature is verified, the whole payload is checked against the dm-verity tree (and
/// decrypted for crypt bundles), then the squashfs is unpacked in user space. DIR must not exist
/// or be empty; it appears only when complete.
#[derive(Debug, clap::Args)]
pub struct ExtractArgs {
    /// Decryption key for an encrypted bundle (PEM file or `pkcs11:` URI).
    #[arg(long, value_name = "PEMFILE|PKCS11-URI")]
    key: Option<String>,
    #[command(flatten)]
    trust: TrustArgs,
    /// The bundle.
    bundle: PathBuf,
    /// The output directory.
    dir: PathBuf,
}

impl ExtractArgs {
    pub fn run(self, globals: &Globals) -> Result<()> {
        let files = with_settings(self.key.as_deref(), &self.trust, globals, |settings| {
            Ok(extract(&self.bundle, &self.dir, settings)?)
        })?;
        eprintln!("Extracted {files} files to {}", self.dir.display());
        Ok(())
    }
}

/// Write a bundle's CMS signature (decrypted, for an encrypted bundle) to a file, after
/// verifying it — e.g. to have it countersigned or inspected with `openssl cms`.
#[derive(Debug, clap::Args)]
pub struct ExtractSignatureArgs {
    /// Decryption key for an encrypted bundle (PEM file or `pkcs11:` URI).
    #[arg(long, value_name = "PEMFILE|PKCS11-URI")]
    key: Option<String>,
    #[command(flatten)]
    trust: TrustArgs,
    /// The bundle.
    bundle: PathBuf,
    /// The DER file to write.
    output: PathBuf,
}

impl ExtractSignatureArgs {
    pub fn run(self, globals: &Globals) -> Result<()> {
        let size = with_settings(self.key.as_deref(), &self.trust, globals, |settings| {
            Ok(extract_signature(&self.bundle, &self.output, settings)?)
        })?;
        eprintln!("Wrote {size}-byte signature to {}", self.output.display());
        Ok(())
    }
}

/// Runs `f` with the keyring and decryption key the options name.
fn with_settings<T>(
    key: Option<&str>,
    trust: &TrustArgs,
    globals: &Globals,
    f: impl FnOnce(&OpenSettings<'_>) -> Result<T>,
) -> Result<T> {
    let keyring = trust.require_keyring(globals)?;
    let key = decryptor(key, globals)?;
    f(&OpenSettings {
        keyring: &keyring,
        key: key.as_deref(),
        max_signature_size: MAX_CMS,
    })
}
