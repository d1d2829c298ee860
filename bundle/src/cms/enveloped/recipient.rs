//! Recipient certificates: parsing, checking and the identifiers a RecipientInfo carries.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cms::cert::IssuerAndSerialNumber;
use der::{Decode, Encode};
use rayon::prelude::*;
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectKeyIdentifier;

use super::oids;
use super::pubkey::{RecipientPublicKey, from_spki};
use crate::cms::names::name_oneline;
use crate::keys::KeyKind;
use crate::{Error, Result};

/// The identifiers by which a RecipientInfo can name a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertIds {
    /// DER `IssuerAndSerialNumber`.
    pub issuer_serial: Vec<u8>,
    /// The subjectKeyIdentifier extension value, if present.
    pub ski: Option<Vec<u8>>,
}

/// One parsed recipient certificate with the key type we will encrypt to.
///
/// Build it with [`Recipient::from_der`] or load whole files with [`load_recipients`].
#[derive(Clone)]
pub struct Recipient {
    origin: String,
    subject_der: Vec<u8>,
    cert_der: Vec<u8>,
    ids: CertIds,
    key: RecipientPublicKey,
    not_before: Duration,
    not_after: Duration,
    validity_text: (String, String),
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recipient")
            .field("subject", &self.subject())
            .field("origin", &self.origin)
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}

impl Recipient {
    /// Parses a DER certificate. Checks the key type (RSA ≥ 2048 bits, EC P-256/P-384) but not
    /// the validity period (see [`Recipient::check_validity`]).
    pub fn from_der(cert_der: &[u8]) -> Result<Self> {
        Self::parse(cert_der.to_vec(), "certificate".to_owned())
    }

    pub(crate) fn parse(cert_der: Vec<u8>, origin: String) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidRecipientCertificate {
            origin: origin.clone(),
            reason,
        };
        let cert = Certificate::from_der(&cert_der).map_err(|e| invalid(e.to_string()))?;
        let tbs = &cert.tbs_certificate;
        let subject_der = tbs.subject.to_der().map_err(|e| invalid(e.to_string()))?;
        let ids = cert_ids(&cert).map_err(invalid)?;
        let key = from_spki(&tbs.subject_public_key_info).map_err(|key| {
            Error::UnsupportedRecipientKey {
                origin: origin.clone(),
                subject: subject_text(&subject_der),
                key,
            }
        })?;
        let v = &tbs.validity;
        Ok(Recipient {
            origin,
            subject_der,
            cert_der,
            ids,
            key,
            not_before: v.not_before.to_unix_duration(),
            not_after: v.not_after.to_unix_duration(),
            validity_text: (v.not_before.to_string(), v.not_after.to_string()),
        })
    }

    /// Fails if the certificate is not valid at `now`.
    pub fn check_validity(&self, now: SystemTime) -> Result<()> {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        if now < self.not_before {
            return Err(Error::RecipientNotYetValid {
                origin: self.origin.clone(),
                subject: self.subject(),
                not_before: self.validity_text.0.clone(),
            });
        }
        if now > self.not_after {
            return Err(Error::RecipientExpired {
                origin: self.origin.clone(),
                subject: self.subject(),
                not_after: self.validity_text.1.clone(),
            });
        }
        Ok(())
    }

    /// The key type of the certificate.
    pub fn kind(&self) -> KeyKind {
        match &self.key {
            RecipientPublicKey::Rsa { bits, .. } => KeyKind::Rsa { bits: *bits },
            RecipientPublicKey::Ec { curve, .. } => KeyKind::Ec(*curve),
        }
    }

    /// The subject, formatted like OpenSSL's one-line form (`O = x, CN = y`).
    pub fn subject(&self) -> String {
        subject_text(&self.subject_der)
    }

    /// Where the certificate came from (file and position), for messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The DER certificate.
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The subjectKeyIdentifier, if the certificate has one.
    pub fn subject_key_identifier(&self) -> Option<&[u8]> {
        self.ids.ski.as_deref()
    }

    /// The DER `IssuerAndSerialNumber` of the certificate.
    pub fn issuer_and_serial_der(&self) -> &[u8] {
        &self.ids.issuer_serial
    }

    pub(crate) fn public_key(&self) -> &RecipientPublicKey {
        &self.key
    }
}

fn subject_text(name_der: &[u8]) -> String {
    name_oneline(name_der).unwrap_or_else(|| "<unprintable name>".to_owned())
}

/// Extracts `IssuerAndSerialNumber` and the subjectKeyIdentifier from a certificate.
pub(crate) fn cert_ids(cert: &Certificate) -> std::result::Result<CertIds, String> {
    let tbs = &cert.tbs_certificate;
    let issuer_serial = IssuerAndSerialNumber {
        issuer: tbs.issuer.clone(),
        serial_number: tbs.serial_number.clone(),
    }
    .to_der()
    .map_err(|e| e.to_string())?;
    let mut ski = None;
    for ext in tbs.extensions.iter().flatten() {
        if ext.extn_id == oids::SUBJECT_KEY_IDENTIFIER {
            let id = SubjectKeyIdentifier::from_der(ext.extn_value.as_bytes())
                .map_err(|e| format!("bad subjectKeyIdentifier extension: {e}"))?;
            ski = Some(id.0.as_bytes().to_vec());
        }
    }
    Ok(CertIds { issuer_serial, ski })
}

/// Identifiers of a DER certificate (used for the decrypting key's own certificate).
pub(crate) fn cert_ids_from_der(cert_der: &[u8]) -> std::result::Result<CertIds, String> {
    let cert = Certificate::from_der(cert_der).map_err(|e| e.to_string())?;
    cert_ids(&cert)
}

/// One `-----BEGIN …-----` … `-----END …-----` block of a PEM file.
struct PemBlock<'a> {
    label: &'a str,
    text: &'a [u8],
}

/// Splits PEM text into blocks; text outside blocks is ignored, as OpenSSL does.
fn pem_blocks(pem: &[u8]) -> Vec<PemBlock<'_>> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    let mut blocks = Vec::new();
    let mut pos = 0;
    while let Some(start) = find(&pem[pos..], BEGIN).map(|i| pos + i) {
        let label_start = start + BEGIN.len();
        let Some(label_end) = find(&pem[label_start..], b"-----").map(|i| label_start + i) else {
            break;
        };
        let label = std::str::from_utf8(&pem[label_start..label_end]).unwrap_or("?");
        let end_marker = format!("-----END {label}-----");
        let Some(end) = find(&pem[label_end..], end_marker.as_bytes()).map(|i| label_end + i)
        else {
            // A truncated block: hand it on so the certificate parser reports it.
            blocks.push(PemBlock {
                label,
                text: &pem[start..],
            });
            break;
        };
        let stop = end + end_marker.len();
        blocks.push(PemBlock {
            label,
            text: &pem[start..stop],
        });
        pos = stop;
    }
    blocks
}

/// Decodes the base64 body of one PEM block (between its BEGIN and END lines).
fn pem_body(block: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(block).ok()?;
    let mut lines = text.lines();
    lines.next()?; // BEGIN line
    let mut b64 = String::with_capacity(block.len());
    for line in lines {
        if line.starts_with("-----END ") {
            return openssl::base64::decode_block(&b64)
                .ok()
                .filter(|d| !d.is_empty());
        }
        if line.contains(':') {
            continue; // RFC 1421 headers (not used for certificates)
        }
        b64.extend(line.chars().filter(|c| !c.is_whitespace()));
    }
    None // no END line: truncated
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses every certificate of one PEM file, rejecting keys and foreign blocks, and checks each
/// certificate's key type and validity at `now`. `path` is used for messages only.
pub fn parse_recipients_pem(pem: &[u8], path: &Path, now: SystemTime) -> Result<Vec<Recipient>> {
    let blocks = pem_blocks(pem);
    let mut certs = Vec::new();
    for block in &blocks {
        match block.label {
            "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => certs.push(block),
            l if l.contains("PRIVATE KEY") => {
                return Err(Error::PrivateKeyAsRecipient {
                    path: path.to_owned(),
                    label: l.to_owned(),
                });
            }
            l => {
                return Err(Error::UnexpectedPemBlock {
                    path: path.to_owned(),
                    label: l.to_owned(),
                });
            }
        }
    }
    if certs.is_empty() {
        return Err(Error::NoRecipientCertificate {
            path: path.to_owned(),
        });
    }
    let many = certs.len() > 1;
    certs
        .par_iter()
        .enumerate()
        .map(|(i, block)| {
            let origin = if many {
                format!("'{}', certificate {}", path.display(), i + 1)
            } else {
                format!("'{}'", path.display())
            };
            let der = pem_body(block.text).ok_or_else(|| Error::InvalidRecipientCertificate {
                origin: origin.clone(),
                reason: "bad PEM encoding (truncated or invalid base64)".to_owned(),
            })?;
            let r = Recipient::parse(der, origin)?;
            r.check_validity(now)?;
            Ok(r)
        })
        .collect()
}

/// Loads every certificate of every file (as `--to` does), checks each one (key type,
/// validity at `now`) and rejects duplicates (same certificate or same issuer and serial).
pub fn load_recipients<P: AsRef<Path>>(paths: &[P], now: SystemTime) -> Result<Vec<Recipient>> {
    let mut all = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let pem =
            std::fs::read(path).map_err(|e| Error::io("failed to read recipient file", path, e))?;
        all.extend(parse_recipients_pem(&pem, path, now)?);
    }
    reject_duplicates(
        &all,
        |r| Some(r.ids.issuer_serial.as_slice()),
        "same issuer and serial number",
    )?;
    tracing::debug!(count = all.len(), "loaded recipient certificates");
    Ok(all)
}

/// Fails on the first two recipients that share the identifier returned by `id`.
pub(crate) fn reject_duplicates<'a>(
    recipients: &'a [Recipient],
    id: impl Fn(&'a Recipient) -> Option<&'a [u8]>,
    reason: &'static str,
) -> Result<()> {
    let mut seen: HashMap<&[u8], &Recipient> = HashMap::with_capacity(recipients.len());
    for r in recipients {
        let Some(key) = id(r) else { continue };
        if let Some(first) = seen.insert(key, r) {
            let reason = if first.cert_der == r.cert_der {
                "the same certificate"
            } else {
                reason
            };
            return Err(Error::DuplicateRecipient {
                subject: r.subject(),
                first: first.origin.clone(),
                second: r.origin.clone(),
                reason,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_skip_text_and_find_labels() {
        let pem = b"junk\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\ntext\n\
                    -----BEGIN EC PRIVATE KEY-----\nBBBB\n-----END EC PRIVATE KEY-----\n";
        let blocks = pem_blocks(pem);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].label, "CERTIFICATE");
        assert!(blocks[0].text.ends_with(b"-----END CERTIFICATE-----"));
        assert_eq!(blocks[1].label, "EC PRIVATE KEY");
    }

    #[test]
    fn empty_and_key_files_are_rejected() {
        let p = Path::new("x.pem");
        let now = SystemTime::now();
        assert!(matches!(
            parse_recipients_pem(b"hello", p, now),
            Err(Error::NoRecipientCertificate { .. })
        ));
        let key = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(matches!(
            parse_recipients_pem(key, p, now),
            Err(Error::PrivateKeyAsRecipient { .. })
        ));
        let crl = b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n";
        assert!(matches!(
            parse_recipients_pem(crl, p, now),
            Err(Error::UnexpectedPemBlock { .. })
        ));
    }
}
