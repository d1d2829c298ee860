//! `signer info`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bundle::cms::enveloped::list_recipients;
use bundle::info::{BundleInfo, Dumps, OutputFormat, render};
use bundle::manifest::LoadedManifest;
use bundle::state::{Bundle, OpenedBundle};
use openssl::x509::X509;

use super::common::{Globals, MAX_CMS, TrustArgs, decryptor};

/// Show a bundle's manifest, format, signer chain and (with --dump-recipients) recipients.
///
/// The signature is verified against the keyring unless --no-verify is given. An encrypted CMS
/// needs --key: the device's decryption key (a `pkcs11:` URI or a PEM file); its recipient is
/// found from the key's certificate before the key is used once.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Decryption key for an encrypted bundle (PEM file or `pkcs11:` URI).
    #[arg(long, value_name = "PEMFILE|PKCS11-URI")]
    key: Option<String>,
    /// Do not verify the signature (nothing shown can then be trusted).
    #[arg(long)]
    no_verify: bool,
    /// Output format.
    #[arg(
        long,
        default_value = "readable",
        value_name = "readable|shell|json|json-pretty"
    )]
    output_format: OutputFormat,
    /// Print the signer certificate.
    #[arg(long)]
    dump_cert: bool,
    /// Print the recipients of an encrypted bundle (rauc's listing on stdout; the layout,
    /// default or compact, on stderr).
    #[arg(long)]
    dump_recipients: bool,
    #[command(flatten)]
    trust: TrustArgs,
    /// The bundle.
    bundle: PathBuf,
}

impl Args {
    pub fn run(self, globals: &Globals) -> Result<()> {
        let key = decryptor(self.key.as_deref(), globals)?;
        let opened = Bundle::open_with(
            &self.bundle,
            bundle::container::OpenOptions {
                max_signature_size: MAX_CMS,
            },
        )?;
        let recipients = match &opened {
            OpenedBundle::Enveloped(e) => Some(list_recipients(e.envelope())?),
            OpenedBundle::Signed(_) => None,
        };
        let signed = match (opened, key.as_deref()) {
            (OpenedBundle::Enveloped(e), Some(k)) => e.decrypt(k)?,
            (opened, _) => opened.require_signed()?,
        };
        let encrypted = signed.was_encrypted();
        let info = if self.no_verify {
            let first = first_certificate(signed.signed_data());
            let u = signed.inspect_unverified()?;
            let m = match u.manifest {
                Some(m) => m,
                None => unverified_plain_manifest(&self.bundle, u.layout.payload_size)?,
            };
            BundleInfo {
                format: m.manifest.bundle.format,
                encrypted,
                manifest: m.manifest,
                manifest_hash: m.hash,
                chain: None,
                first_certificate: first,
                recipients,
            }
        } else {
            let keyring = self.trust.require_keyring(globals)?;
            let first = first_certificate(signed.signed_data());
            let mut v = signed.verify(&keyring)?;
            if v.manifest_in_payload() {
                let bytes = signer::unpack::read_file(
                    v.squashfs_reader()?,
                    signer::squashfs::MANIFEST_NAME,
                )?;
                v.load_plain_manifest(bytes)?;
            }
            let m = v.manifest().expect("manifest loaded").clone();
            BundleInfo {
                format: v.format(),
                encrypted,
                manifest: m.manifest,
                manifest_hash: m.hash,
                chain: Some(v.signature().chain.clone()),
                first_certificate: first,
                recipients,
            }
        };
        let dumps = Dumps {
            cert: self.dump_cert,
            recipients: self.dump_recipients,
        };
        print!("{}", render(&info, self.output_format, dumps));
        if let Some(list) = info.recipients.as_ref().filter(|_| self.dump_recipients) {
            // stdout stays byte-identical to rauc's listing; the layout goes to stderr.
            eprintln!(
                "Recipient layout: {} ({} recipients in {} RecipientInfos)",
                list.layout,
                list.recipient_count(),
                list.recipient_info_count
            );
        }
        Ok(())
    }
}

/// The `manifest.raucm` of a plain bundle read from its squashfs WITHOUT any check, as
/// `rauc info --no-verify` shows it (nothing shown can be trusted).
fn unverified_plain_manifest(path: &Path, payload_size: u64) -> Result<LoadedManifest> {
    let file =
        std::fs::File::open(path).with_context(|| format!("failed to open {}", path.display()))?;
    let payload = bundle::container::Region::new(file, 0, payload_size);
    let bytes = signer::unpack::read_file(payload, signer::squashfs::MANIFEST_NAME)?;
    Ok(LoadedManifest::load(bytes)?)
}

fn first_certificate(signed_data: &[u8]) -> Option<X509> {
    let info = bundle::cms::inspect(signed_data).ok()?;
    info.certificates
        .first()
        .and_then(|der| X509::from_der(der).ok())
}
