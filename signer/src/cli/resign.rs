//! `signer resign` and `signer replace-signature`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use bundle::cms::verify::Keyring;
use signer::identity::SigningIdentity;
use signer::resign::{ResignSettings, replace_signature, resign};
use signer::verify::PostSignCheck;

use super::common::{Globals, MAX_CMS, TrustArgs, decryptor};

/// Sign a bundle again with another key, keeping the payload byte for byte.
///
/// verity and crypt bundles get a new signature over the same signed manifest; plain bundles a
/// new signature over the payload. An encrypted bundle needs --decryption-key, and the output
/// then has an unencrypted CMS (encrypt it again with `signer encrypt`).
#[derive(Debug, clap::Args)]
pub struct ResignArgs {
    /// New signer certificate: a PEM file or a `pkcs11:` URI.
    #[arg(long, value_name = "PEMFILE|PKCS11-URI")]
    cert: String,
    /// New signing key: a PEM file or a `pkcs11:` URI.
    #[arg(long, value_name = "PEMFILE|PKCS11-URI")]
    key: String,
    /// Intermediate certificate to embed (repeatable).
    #[arg(long, value_name = "PEMFILE|PKCS11-URI")]
    intermediate: Vec<String>,
    /// Decryption key for an encrypted input (PEM file or `pkcs11:` URI).
    #[arg(long, value_name = "PEMFILE|PKCS11-URI")]
    decryption_key: Option<String>,
    #[command(flatten)]
    check: CheckArgs,
    /// The bundle to resign.
    input: PathBuf,
    /// The bundle to create.
    output: PathBuf,
}

/// How input and output are checked.
#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// Do not verify the input signature (e.g. its certificate expired).
    #[arg(long)]
    no_verify: bool,
    /// Keyring for checking the output (default: --keyring).
    #[arg(long, value_name = "PEMFILE")]
    signing_keyring: Option<PathBuf>,
    #[command(flatten)]
    trust: TrustArgs,
}

impl CheckArgs {
    fn keyrings(&self, globals: &Globals) -> Result<(Option<Keyring>, Option<Keyring>)> {
        let input = if self.no_verify {
            None
        } else {
            Some(self.trust.require_keyring(globals)?)
        };
        let output = match &self.signing_keyring {
            Some(path) => Some(Keyring {
                path: Some(path.clone()),
                ..self.trust.keyring(globals)?.unwrap_or_default()
            }),
            None => self.trust.keyring(globals)?,
        };
        Ok((input, output))
    }
}

impl ResignArgs {
    pub fn run(self, globals: &Globals) -> Result<()> {
        let identity = SigningIdentity::open(
            &self.cert,
            &self.key,
            &self.intermediate,
            &globals.open_options(),
        )
        .context("cannot load the signing identity")?;
        let key = decryptor(self.decryption_key.as_deref(), globals)?;
        let (input, output) = self.check.keyrings(globals)?;
        let settings = ResignSettings {
            input_keyring: input.as_ref(),
            output_keyring: output.as_ref(),
            key: key.as_deref(),
            max_signature_size: MAX_CMS,
        };
        let check = resign(&self.input, &self.output, &identity, &settings)?;
        report(check, &self.output);
        Ok(())
    }
}

/// Replace a bundle's signature with a CMS made elsewhere (e.g. by `openssl cms` in an
/// external signing room), keeping the payload byte for byte.
///
/// With a keyring (--signing-keyring or --keyring) the new bundle must verify and its signed
/// manifest must match the payload (dm-verity root) before it is written.
#[derive(Debug, clap::Args)]
pub struct ReplaceArgs {
    /// Decryption key for an encrypted input (PEM file or `pkcs11:` URI).
    #[arg(long, value_name = "PEMFILE|PKCS11-URI")]
    key: Option<String>,
    #[command(flatten)]
    check: CheckArgs,
    /// The bundle whose signature is replaced.
    input: PathBuf,
    /// The new CMS (DER).
    signature: PathBuf,
    /// The bundle to create.
    output: PathBuf,
}

impl ReplaceArgs {
    pub fn run(self, globals: &Globals) -> Result<()> {
        let cms = std::fs::read(&self.signature)
            .with_context(|| format!("cannot read {}", self.signature.display()))?;
        let key = decryptor(self.key.as_deref(), globals)?;
        let (input, output) = self.check.keyrings(globals)?;
        let settings = ResignSettings {
            input_keyring: input.as_ref(),
            output_keyring: output.as_ref(),
            key: key.as_deref(),
            max_signature_size: MAX_CMS,
        };
        let check = replace_signature(&self.input, &cms, &self.output, &settings)?;
        report(check, &self.output);
        Ok(())
    }
}

fn report(check: Option<PostSignCheck>, output: &std::path::Path) {
    if let Some(check) = check {
        for w in &check.warnings {
            tracing::warn!("{w}");
        }
        eprintln!("Verified signature by '{}'", check.signer);
    }
    eprintln!("Wrote {}", output.display());
}
