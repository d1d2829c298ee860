//! The recipient listing of `rauc info --dump-recipients`, plus the layout name.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::RecipientLayout;
use super::envelope::{RecipientInfoView, RidView, normalize, parse_envelope, view};
use super::oids::openssl_long_name;
use crate::Result;
use crate::cms::names::{name_oneline, serial_text};

/// How a listed recipient is identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListedId {
    /// `issuerAndSerialNumber`, formatted as rauc prints it.
    IssuerSerial {
        /// Issuer in OpenSSL's one-line form (`O = x, CN = y`).
        issuer: String,
        /// Serial: decimal below 128 bits, else `0x` and upper-case hex.
        serial: String,
    },
    /// A subjectKeyIdentifier.
    KeyId(Vec<u8>),
}

/// One recipient (a KTRI, or one RecipientEncryptedKey of a KARI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRecipient {
    /// Index of the RecipientInfo in the SET (all keys of one KARI share it).
    pub index: usize,
    /// The recipient id.
    pub id: ListedId,
    /// The key-encryption algorithm's OpenSSL name, e.g. `rsaEncryption`.
    pub algorithm: String,
}

/// All recipients of an EnvelopedData.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientListing {
    /// `Compact` if some KeyAgreeRecipientInfo carries more than one key, else `Default`.
    pub layout: RecipientLayout,
    /// Number of RecipientInfos (what rauc prints as "N Recipients:").
    pub recipient_info_count: usize,
    /// The recipients, in SET order.
    pub entries: Vec<ListedRecipient>,
}

impl RecipientListing {
    /// The text `rauc info --dump-recipients` prints, byte for byte (including its quirk of
    /// printing a key-identified recipient as `<keyid>` without a newline).
    pub fn to_rauc_text(&self) -> String {
        let mut out = format!("{} Recipients:\n", self.recipient_info_count);
        for e in &self.entries {
            match &e.id {
                ListedId::KeyId(_) => {
                    let _ = write!(out, "{:3}   <keyid>", e.index);
                }
                ListedId::IssuerSerial { issuer, serial } => {
                    let _ = write!(
                        out,
                        "{:3}   Issuer:    {issuer}\n      Serial:    {serial}\n      Algorithm: {}\n",
                        e.index, e.algorithm
                    );
                }
            }
        }
        out
    }

    /// Number of recipients (keys), which exceeds the RecipientInfo count in the compact
    /// layout.
    pub fn recipient_count(&self) -> usize {
        self.entries.len()
    }
}

/// Lists the recipients of a DER `ContentInfo(EnvelopedData)` without decrypting anything.
pub fn list_recipients(envelope_der: &[u8]) -> Result<RecipientListing> {
    let der = normalize(envelope_der)?;
    let env = parse_envelope(&der)?;
    let mut entries = Vec::new();
    let mut layout = RecipientLayout::Default;
    // Fleets share a few issuers: format each issuer name once.
    let mut issuers: HashMap<&[u8], String> = HashMap::new();
    let mut algorithms: HashMap<&[u8], String> = HashMap::new();
    let mut alg_name = |oid| {
        algorithms
            .entry(oid)
            .or_insert_with(|| openssl_long_name(oid))
            .clone()
    };
    for (index, ri) in env.recipient_infos.iter().enumerate() {
        match view(*ri)? {
            RecipientInfoView::Ktri(k) => entries.push(ListedRecipient {
                index,
                id: listed_id(&k.rid, &mut issuers),
                algorithm: alg_name(k.alg_oid),
            }),
            RecipientInfoView::Kari(k) => {
                if k.reks.len() > 1 {
                    layout = RecipientLayout::Compact;
                }
                let algorithm = alg_name(k.alg_oid);
                for (rid, _) in &k.reks {
                    entries.push(ListedRecipient {
                        index,
                        id: listed_id(rid, &mut issuers),
                        algorithm: algorithm.clone(),
                    });
                }
            }
            RecipientInfoView::Other => {}
        }
    }
    Ok(RecipientListing {
        layout,
        recipient_info_count: env.recipient_infos.len(),
        entries,
    })
}

fn listed_id<'a>(rid: &RidView<'a>, issuers: &mut HashMap<&'a [u8], String>) -> ListedId {
    match rid {
        RidView::IssuerSerial { issuer, serial, .. } => ListedId::IssuerSerial {
            issuer: issuers
                .entry(issuer)
                .or_insert_with(|| name_oneline(issuer).unwrap_or_else(|| "?".to_owned()))
                .clone(),
            serial: serial_text(serial),
        },
        RidView::KeyId(k) => ListedId::KeyId(k.to_vec()),
    }
}
