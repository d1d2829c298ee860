//! CMS EnvelopedData: encryption to many recipients and decryption with one
//! [`RecipientKey`](crate::keys::RecipientKey).
//!
//! A `crypt` bundle's CMS may be an EnvelopedData whose encrypted content is the DER SignedData
//! (`rauc-format.md` §1.4, §5). This module writes and reads it:
//!
//! * [`load_recipients`] / [`parse_recipients_pem`] / [`Recipient::from_der`]: recipient
//!   certificates (RSA → KeyTransRecipientInfo, EC P-256/P-384 → KeyAgreeRecipientInfo), with
//!   the checks `rauc encrypt` lacks (no certificate, a private key, expired, duplicates,
//!   unsupported keys).
//! * [`encrypt`]: DER `ContentInfo(EnvelopedData)` with AES-256-CBC content, in one of two
//!   [`RecipientLayout`]s. `Default` is byte-for-byte the structure OpenSSL/`rauc encrypt`
//!   writes (one KARI with its own ephemeral key per EC recipient); `Compact` puts all EC
//!   recipients of a curve into one KARI with a single ephemeral key and one
//!   RecipientEncryptedKey each, which stock OpenSSL/rauc 1.8 decrypt only when the device also
//!   knows its own certificate (`[encryption] cert=`).
//! * [`envelope_size`], [`recipients_fitting`], [`fit_per_layout`]: the exact size model, for the
//!   64 KiB limit of rauc 1.8 ([`RAUC_MAX_CMS_SIZE`]).
//! * [`list_recipients`]: the `--dump-recipients` listing in rauc's format plus the layout.
//! * [`decrypt`]: finds the recipient by the key's certificate without touching the key, then
//!   performs exactly one private-key operation.

mod decrypt;
mod ecdh;
mod encode;
mod encrypt;
mod envelope;
mod kdf;
mod listing;
mod oids;
mod pubkey;
mod recipient;
mod size;
mod tlv;

pub use decrypt::decrypt;
pub use encrypt::encrypt;
pub use listing::{ListedId, ListedRecipient, RecipientListing, list_recipients};
pub use pubkey::MIN_RSA_BITS;
pub use recipient::{Recipient, load_recipients, parse_recipients_pem};
pub use size::{LayoutFit, envelope_size, fit_per_layout, recipients_fitting};

use crate::keys::RsaPadding;

/// The largest CMS rauc 1.8 accepts (`MAX_BUNDLE_SIGNATURE_SIZE`, "Signature size (N) exceeds
/// 64KiB").
pub const RAUC_MAX_CMS_SIZE: u64 = 65536;

/// How EC recipients are arranged in the RecipientInfos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RecipientLayout {
    /// One KeyAgreeRecipientInfo per EC recipient, each with its own ephemeral key, as
    /// OpenSSL/`rauc encrypt` write it. Every rauc 1.8 device decrypts with its key alone.
    #[default]
    Default,
    /// All EC recipients of one curve in one KeyAgreeRecipientInfo with a single ephemeral key
    /// and one RecipientEncryptedKey each. Stock OpenSSL/rauc 1.8 decrypt this only when the
    /// device also knows its own certificate (`[encryption] cert=`); our decryption always
    /// works.
    Compact,
}

impl RecipientLayout {
    /// The name used on the command line and in listings: `default` or `compact`.
    pub fn name(self) -> &'static str {
        match self {
            RecipientLayout::Default => "default",
            RecipientLayout::Compact => "compact",
        }
    }
}

impl std::fmt::Display for RecipientLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a RecipientInfo identifies the recipient's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RecipientIdKind {
    /// `issuerAndSerialNumber` (what OpenSSL/rauc write by default).
    #[default]
    IssuerAndSerial,
    /// The certificate's subjectKeyIdentifier (KTRI `[0]`, KARI `rKeyId`); shorter. Every
    /// certificate needs the extension.
    SubjectKeyId,
}

impl RecipientIdKind {
    /// The name used on the command line: `issuer-serial` or `ski`.
    pub fn name(self) -> &'static str {
        match self {
            RecipientIdKind::IssuerAndSerial => "issuer-serial",
            RecipientIdKind::SubjectKeyId => "ski",
        }
    }
}

/// Options of [`encrypt`] and of the size model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EncryptOptions {
    /// Arrangement of EC recipients.
    pub layout: RecipientLayout,
    /// Recipient identifier kind, for every RecipientInfo.
    pub recipient_id: RecipientIdKind,
    /// Padding for RSA recipients: PKCS#1 v1.5 (as rauc) or OAEP with SHA-256.
    pub rsa_padding: RsaPadding,
}

impl Default for EncryptOptions {
    /// The `rauc encrypt` structure: default layout, issuerAndSerialNumber, PKCS#1 v1.5.
    fn default() -> Self {
        EncryptOptions {
            layout: RecipientLayout::Default,
            recipient_id: RecipientIdKind::IssuerAndSerial,
            rsa_padding: RsaPadding::Pkcs1v15,
        }
    }
}

impl EncryptOptions {
    /// The compact layout with subjectKeyIdentifier ids (the smallest envelope).
    pub fn compact_ski() -> Self {
        EncryptOptions {
            layout: RecipientLayout::Compact,
            recipient_id: RecipientIdKind::SubjectKeyId,
            ..Self::default()
        }
    }
}
