//! `signer bundle`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use bundle::manifest::Vocabulary;
use signer::build::{BuildRequest, build_bundle};
use signer::identity::SigningIdentity;
use signer::progress::Progress;

use super::common::{Globals, MAX_CMS, TrustArgs};

/// Create a signed bundle (format verity or crypt, from the manifest) from a content directory.
///
/// The content directory holds `manifest.raucm` and the files it names; it is not modified.
/// crypt bundles get a random payload key and an unencrypted CMS: encrypt them to devices with
/// `signer encrypt`. With a keyring, the finished bundle is verified before the command
/// succeeds. The output appears only when complete and is never overwritten.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Signer certificate: a PEM file (first certificate) or a `pkcs11:` URI.
    #[arg(long, value_name = "PEMFILE|PKCS11-URI")]
    cert: String,
    /// Signing key: a PEM file (RAUC_KEY_PASSPHRASE for encrypted ones) or a `pkcs11:` URI.
    #[arg(long, value_name = "PEMFILE|PKCS11-URI")]
    key: String,
    /// Intermediate certificate to embed (repeatable).
    #[arg(long, value_name = "PEMFILE|PKCS11-URI")]
    intermediate: Vec<String>,
    /// Keyring used only for the check of the new bundle (instead of --keyring).
    #[arg(long, value_name = "PEMFILE")]
    signing_keyring: Option<PathBuf>,
    /// Extra arguments for mksquashfs, e.g. "-comp xz -b 64k".
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    mksquashfs_args: Option<String>,
    /// Sign RSA keys with RSASSA-PSS instead of PKCS#1 v1.5.
    #[arg(long)]
    rsa_pss: bool,
    /// Allow the legacy 'plain' format, whose payload is checked only once, before installation.
    #[arg(long)]
    dangerous_allow_plain: bool,
    /// Allow manifest keys newer than rauc 1.8 (such bundles are rejected by rauc 1.8 targets).
    #[arg(long)]
    allow_newer_manifest: bool,
    #[command(flatten)]
    trust: TrustArgs,
    /// The content directory.
    input_dir: PathBuf,
    /// The bundle to create.
    output: PathBuf,
}

impl Args {
    pub fn run(self, globals: &Globals) -> Result<()> {
        let mut options = globals.open_options();
        if self.rsa_pss {
            options.rsa_padding = keymgr::RsaSignaturePadding::Pss;
        }
        let identity = SigningIdentity::open(&self.cert, &self.key, &self.intermediate, &options)
            .context("cannot load the signing identity")?;
        let verify_with = match &self.signing_keyring {
            Some(path) => Some(bundle::cms::verify::Keyring {
                path: Some(path.clone()),
                ..self.trust.keyring(globals)?.unwrap_or_default()
            }),
            None => self.trust.keyring(globals)?,
        };
        if verify_with.is_none() {
            tracing::info!("No keyring given, skipping signature verification");
        }
        let request = BuildRequest {
            content_dir: &self.input_dir,
            output: &self.output,
            identity: &identity,
            mksquashfs_args: signer::squashfs::split_args(
                self.mksquashfs_args.as_deref().unwrap_or(""),
            )?,
            verify_with,
            allow_plain: self.dangerous_allow_plain,
            vocabulary: if self.allow_newer_manifest {
                Vocabulary::Latest
            } else {
                Vocabulary::Rauc18
            },
            max_signature_size: MAX_CMS,
        };
        let report = build_bundle(&request, &Progress::terminal()).map_err(|e| {
            if matches!(e, signer::Error::Bundle(bundle::Error::Vocabulary { .. })) {
                anyhow::anyhow!("{e}; --allow-newer-manifest allows it for targets with newer RAUC")
            } else {
                e.into()
            }
        })?;
        if let Some(check) = &report.check {
            for w in &check.warnings {
                tracing::warn!("{w}");
            }
            eprintln!("Verified signature by '{}'", check.signer);
        }
        eprintln!(
            "Created '{}' format bundle {} ({} images, payload {} bytes, CMS {} bytes)",
            report.format,
            report.path.display(),
            report.images,
            report.payload_size,
            report.cms_size
        );
        Ok(())
    }
}
