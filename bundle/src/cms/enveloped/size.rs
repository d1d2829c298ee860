//! The exact size of the EnvelopedData [`encrypt`](super::encrypt) writes, without any
//! cryptography, and how many recipients fit under a size limit.

use super::encode;
use super::encrypt::{check_recipients, rid};
use super::pubkey::RecipientPublicKey;
use super::recipient::Recipient;
use super::{EncryptOptions, RecipientIdKind, RecipientLayout, oids};
use crate::Result;
use crate::keys::{EcCurve, RsaPadding};

/// Running sums of the RecipientInfo bytes of a prefix of the recipient list.
#[derive(Debug, Default, Clone)]
struct Tally {
    /// KTRIs and (default layout) single-recipient KARIs.
    independent: usize,
    /// Compact layout: RecipientEncryptedKey bytes per curve (P-256, P-384).
    shared_reks: [usize; 2],
}

impl Tally {
    fn add(&mut self, r: &Recipient, options: &EncryptOptions) {
        let id = rid(r, options.recipient_id);
        match r.public_key() {
            RecipientPublicKey::Rsa { bits, .. } => {
                let alg = match options.rsa_padding {
                    RsaPadding::Pkcs1v15 => oids::ALG_RSA_ENCRYPTION,
                    RsaPadding::OaepSha256 => oids::ALG_RSAES_OAEP_SHA256,
                };
                self.independent += encode::ktri_len(id, alg, (*bits as usize).div_ceil(8));
            }
            RecipientPublicKey::Ec { curve, .. } => match options.layout {
                RecipientLayout::Default => {
                    self.independent += encode::kari_len(point_len(*curve), encode::rek_len(id));
                }
                RecipientLayout::Compact => {
                    self.shared_reks[curve_index(*curve)] += encode::rek_len(id);
                }
            },
        }
    }

    fn recipient_infos_len(&self) -> usize {
        let shared: usize = [EcCurve::P256, EcCurve::P384]
            .into_iter()
            .filter(|c| self.shared_reks[curve_index(*c)] > 0)
            .map(|c| encode::kari_len(point_len(c), self.shared_reks[curve_index(c)]))
            .sum();
        self.independent + shared
    }

    fn total(&self, content_len: usize) -> u64 {
        let ct = encode::ciphertext_len(content_len);
        encode::content_info_len(self.recipient_infos_len(), ct) as u64
    }
}

fn curve_index(curve: EcCurve) -> usize {
    match curve {
        EcCurve::P256 => 0,
        EcCurve::P384 => 1,
    }
}

/// Length of an uncompressed point (`04 ‖ X ‖ Y`).
fn point_len(curve: EcCurve) -> usize {
    1 + 2 * curve.field_bytes()
}

/// The exact size in bytes of the EnvelopedData that [`encrypt`](super::encrypt) writes for a
/// content of `content_len` bytes. Fails like `encrypt` on recipients that cannot be used with
/// `options` (none, duplicates, a missing subjectKeyIdentifier).
pub fn envelope_size(
    content_len: u64,
    recipients: &[Recipient],
    options: &EncryptOptions,
) -> Result<u64> {
    check_recipients(recipients, options.recipient_id)?;
    let mut tally = Tally::default();
    for r in recipients {
        tally.add(r, options);
    }
    Ok(tally.total(usize::try_from(content_len).unwrap_or(usize::MAX / 2)))
}

/// How many of `recipients`, taken in order, fit into an EnvelopedData of at most `limit`
/// bytes (0 if not even the first one does). Fails like [`envelope_size`].
pub fn recipients_fitting(
    content_len: u64,
    recipients: &[Recipient],
    options: &EncryptOptions,
    limit: u64,
) -> Result<usize> {
    check_recipients(recipients, options.recipient_id)?;
    let content_len = usize::try_from(content_len).unwrap_or(usize::MAX / 2);
    let mut tally = Tally::default();
    for (i, r) in recipients.iter().enumerate() {
        tally.add(r, options);
        if tally.total(content_len) > limit {
            return Ok(i);
        }
    }
    Ok(recipients.len())
}

/// The size of one layout and how many recipients it fits, for a refusal message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutFit {
    /// The layout and id kind measured.
    pub options: EncryptOptions,
    /// Size of the envelope for all recipients; `None` if the layout cannot be used with these
    /// recipients (e.g. a certificate without subjectKeyIdentifier for SKI ids).
    pub size_all: Option<u64>,
    /// How many recipients (in order) fit under the limit; `None` as above.
    pub fits: Option<usize>,
}

/// [`envelope_size`] and [`recipients_fitting`] for the three useful layouts: default with
/// issuerAndSerialNumber, compact with subjectKeyIdentifier, compact with
/// issuerAndSerialNumber.
pub fn fit_per_layout(
    content_len: u64,
    recipients: &[Recipient],
    rsa_padding: RsaPadding,
    limit: u64,
) -> Vec<LayoutFit> {
    let variants = [
        (RecipientLayout::Default, RecipientIdKind::IssuerAndSerial),
        (RecipientLayout::Compact, RecipientIdKind::SubjectKeyId),
        (RecipientLayout::Compact, RecipientIdKind::IssuerAndSerial),
    ];
    variants
        .into_iter()
        .map(|(layout, recipient_id)| {
            let options = EncryptOptions {
                layout,
                recipient_id,
                rsa_padding,
            };
            LayoutFit {
                options,
                size_all: envelope_size(content_len, recipients, &options).ok(),
                fits: recipients_fitting(content_len, recipients, &options, limit).ok(),
            }
        })
        .collect()
}
