//! `signer encrypt`.

use std::path::PathBuf;

use anyhow::Result;
use bundle::cms::enveloped::{EncryptOptions, RecipientIdKind, RecipientLayout};
use bundle::keys::RsaPadding;
use signer::encrypt::{EncryptRequest, encrypt_bundle};

use super::common::{Globals, MAX_CMS, TrustArgs};

/// Encrypt a crypt bundle to device certificates (CMS EnvelopedData); the payload is reused.
///
/// The input must verify against the keyring and have an unencrypted CMS (as `signer bundle`
/// writes crypt bundles). Every certificate of every --to file becomes a recipient: RSA keys
/// get key transport (PKCS#1 v1.5 as rauc, or --rsa-oaep), EC P-256/P-384 keys key agreement.
///
/// Layouts: `default` writes one KeyAgreeRecipientInfo per EC device exactly as `rauc encrypt`
/// does (about 212 bytes per P-256 device; every rauc 1.8 device decrypts with its key alone).
/// `compact` puts all EC devices of a curve in one KeyAgreeRecipientInfo with one ephemeral key
/// (about 68 bytes per device with --recipient-id ski, 95 with issuer-serial). Stock
/// OpenSSL/rauc 1.8 decrypt `compact` ONLY when the device also knows its own certificate
/// (`[encryption] cert=` in system.conf); our installer always does.
///
/// rauc 1.8 accepts at most 65536 bytes of CMS: larger envelopes are refused with the number of
/// recipients that fit each layout, unless --max-cms-size raises the limit.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// PEM file with one or more recipient certificates (repeatable).
    #[arg(long = "to", value_name = "PEMFILE", required = true)]
    to: Vec<PathBuf>,
    /// How EC recipients are arranged.
    #[arg(long, value_enum, default_value = "default")]
    recipient_layout: Layout,
    /// How recipients are identified (ski needs a subjectKeyIdentifier in every certificate).
    #[arg(long, value_enum, default_value = "issuer-serial")]
    recipient_id: IdKind,
    /// Use RSAES-OAEP (SHA-256) instead of PKCS#1 v1.5 for RSA recipients.
    #[arg(long)]
    rsa_oaep: bool,
    /// Largest CMS to write, in bytes (rauc 1.8: 65536).
    #[arg(long, value_name = "BYTES", default_value_t = MAX_CMS)]
    max_cms_size: u64,
    #[command(flatten)]
    trust: TrustArgs,
    /// The crypt bundle to encrypt.
    input: PathBuf,
    /// The encrypted bundle to create.
    output: PathBuf,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Layout {
    Default,
    Compact,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum IdKind {
    IssuerSerial,
    Ski,
}

impl Args {
    pub fn run(self, globals: &Globals) -> Result<()> {
        let keyring = self.trust.require_keyring(globals)?;
        let options = EncryptOptions {
            layout: match self.recipient_layout {
                Layout::Default => RecipientLayout::Default,
                Layout::Compact => RecipientLayout::Compact,
            },
            recipient_id: match self.recipient_id {
                IdKind::IssuerSerial => RecipientIdKind::IssuerAndSerial,
                IdKind::Ski => RecipientIdKind::SubjectKeyId,
            },
            rsa_padding: if self.rsa_oaep {
                RsaPadding::OaepSha256
            } else {
                RsaPadding::Pkcs1v15
            },
        };
        let report = encrypt_bundle(&EncryptRequest {
            input: &self.input,
            output: &self.output,
            recipient_files: &self.to,
            keyring: &keyring,
            options,
            max_cms_size: self.max_cms_size,
        })?;
        let n = report.recipients;
        println!(
            "Encrypted for {n} recipient{}: CMS {} bytes (signed data {} + about {:.0} bytes per recipient), {} layout, {} ids, wrote {}",
            if n == 1 { "" } else { "s" },
            report.cms_size,
            report.signed_size,
            report.cms_size.saturating_sub(report.signed_size) as f64 / n as f64,
            report.options.layout,
            report.options.recipient_id.name(),
            report.path.display()
        );
        Ok(())
    }
}
