//! Inventory export and import as JSON lines, to back up an inventory or move it to another
//! station.
//!
//! ```text
//! {"type":"header","format":"factory-inventory","version":1,"exported_at":"…","crl_number":3}
//! {"type":"device","serial":"dev-0001",…,"certificate":"<base64 DER>",…}
//! {"type":"end","devices":1}
//! ```
//!
//! The end record makes a truncated file detectable. On import every derived field (issuer,
//! certificate serial, SKI, SPKI hash, validity, key type) is recomputed from the certificate
//! and must match; the whole file is imported in one transaction or not at all.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{FactoryError, Result};
use crate::inventory::{DeviceFilter, DeviceRecord, ImportItem, Inventory, Revocation};
use crate::types::{
    DeviceSerial, DeviceStatus, KeyId, KeyType, RevocationReason, check_label, parse_rfc3339,
    rfc3339,
};

/// The `format` value of the header.
pub const FORMAT: &str = "factory-inventory";
/// The current format version.
pub const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
enum Line {
    Header(Header),
    Device(Box<DeviceJson>),
    End(End),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    version: u32,
    exported_at: String,
    crl_number: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct End {
    devices: u64,
}

/// A device in JSON form (export lines, `list`/`show --output-format json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceJson {
    /// Device serial.
    pub serial: String,
    /// Group.
    pub group: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// `active`, `revoked`, `retired`.
    pub status: DeviceStatus,
    /// `ec-p256`, `ec-p384`, `rsa-3072`.
    pub key_type: KeyType,
    /// Base64 of the DER certificate.
    pub certificate: String,
    /// Issuer name.
    pub issuer: String,
    /// Certificate serial (upper-case hex).
    pub cert_serial: String,
    /// subjectKeyIdentifier (hex).
    pub ski: String,
    /// SPKI SHA-256 (hex).
    pub spki_sha256: String,
    /// notBefore (RFC 3339).
    pub not_before: String,
    /// notAfter (RFC 3339).
    pub not_after: String,
    /// Token URI.
    pub token_uri: String,
    /// Token description.
    pub token_description: String,
    /// `CKA_ID` (hex).
    pub key_id: String,
    /// `CKA_LABEL`.
    pub key_label: String,
    /// EK certificate SHA-256 (hex).
    pub ek_cert_sha256: Option<String>,
    /// Revocation reason.
    pub revocation_reason: Option<RevocationReason>,
    /// Revocation time (RFC 3339).
    pub revoked_at: Option<String>,
    /// Retirement time (RFC 3339).
    pub retired_at: Option<String>,
    /// Row creation time (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

impl From<&DeviceRecord> for DeviceJson {
    fn from(d: &DeviceRecord) -> Self {
        Self {
            serial: d.serial.to_string(),
            group: d.group.clone(),
            tags: d.tags.clone(),
            status: d.status,
            key_type: d.key_type,
            certificate: openssl::base64::encode_block(&d.certificate),
            issuer: d.issuer.clone(),
            cert_serial: d.cert_serial.clone(),
            ski: d.ski.clone(),
            spki_sha256: d.spki_sha256.clone(),
            not_before: rfc3339(d.not_before),
            not_after: rfc3339(d.not_after),
            token_uri: d.token_uri.clone(),
            token_description: d.token_description.clone(),
            key_id: d.key_id.to_hex(),
            key_label: d.key_label.clone(),
            ek_cert_sha256: d.ek_cert_sha256.clone(),
            revocation_reason: d.revocation.map(|r| r.reason),
            revoked_at: d.revocation.map(|r| rfc3339(r.at)),
            retired_at: d.retired_at.map(rfc3339),
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
        }
    }
}

fn time(field: &str, value: &str) -> std::result::Result<i64, String> {
    parse_rfc3339(value).ok_or_else(|| format!("{field} '{value}' is not an RFC 3339 time"))
}

impl DeviceJson {
    /// Converts back into a record, recomputing and checking every certificate-derived field.
    pub fn into_record(self) -> std::result::Result<DeviceRecord, String> {
        let serial = DeviceSerial::new(&self.serial).map_err(|e| e.to_string())?;
        if let Some(g) = &self.group {
            check_label("group", g).map_err(|e| e.to_string())?;
        }
        for t in &self.tags {
            check_label("tag", t).map_err(|e| e.to_string())?;
        }
        let cert = openssl::base64::decode_block(&self.certificate)
            .map_err(|_| "certificate is not base64".to_string())?;
        let origin = crate::inventory::DeviceOrigin {
            group: self.group,
            tags: self.tags,
            token_uri: self.token_uri,
            token_description: self.token_description,
            key_id: KeyId::from_hex(&self.key_id).map_err(|e| e.to_string())?,
            key_label: self.key_label,
            ek_cert_sha256: self.ek_cert_sha256,
        };
        let mut d = DeviceRecord::new_active(serial, cert, origin, 0).map_err(|e| e.to_string())?;
        let derived = [
            (
                "key_type",
                d.key_type.name().to_string(),
                self.key_type.name().to_string(),
            ),
            ("issuer", d.issuer.clone(), self.issuer),
            ("cert_serial", d.cert_serial.clone(), self.cert_serial),
            ("ski", d.ski.clone(), self.ski),
            ("spki_sha256", d.spki_sha256.clone(), self.spki_sha256),
            ("not_before", rfc3339(d.not_before), self.not_before),
            ("not_after", rfc3339(d.not_after), self.not_after),
        ];
        for (field, from_cert, given) in derived {
            if from_cert != given {
                return Err(format!(
                    "{field} '{given}' does not match the certificate ('{from_cert}')"
                ));
            }
        }
        d.status = self.status;
        d.revocation = match (self.revocation_reason, self.revoked_at) {
            (Some(reason), Some(at)) => Some(Revocation {
                reason,
                at: time("revoked_at", &at)?,
            }),
            (None, None) => None,
            _ => return Err("revocation_reason and revoked_at go together".into()),
        };
        d.retired_at = self
            .retired_at
            .map(|t| time("retired_at", &t))
            .transpose()?;
        let consistent = match d.status {
            DeviceStatus::Active => d.revocation.is_none() && d.retired_at.is_none(),
            DeviceStatus::Revoked => d.revocation.is_some() && d.retired_at.is_none(),
            DeviceStatus::Retired => d.retired_at.is_some(),
        };
        if !consistent {
            return Err(format!(
                "status {} does not match revoked_at/retired_at",
                d.status
            ));
        }
        d.created_at = time("created_at", &self.created_at)?;
        d.updated_at = time("updated_at", &self.updated_at)?;
        Ok(d)
    }
}

fn json_line(out: &mut dyn Write, line: &Line) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")
}

/// Writes the whole inventory as JSON lines; returns the number of devices. `now` is the
/// export time recorded in the header.
pub fn export(inventory: &Inventory, out: &mut dyn Write, now: i64, dest: &Path) -> Result<u64> {
    let io = |e| FactoryError::io("failed to write", dest, e);
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        exported_at: rfc3339(now),
        crl_number: inventory.crl_number()?,
    };
    json_line(out, &Line::Header(header)).map_err(io)?;
    let n = inventory.for_each_device(&DeviceFilter::default(), |d| {
        json_line(out, &Line::Device(Box::new(DeviceJson::from(&d)))).map_err(io)
    })?;
    json_line(out, &Line::End(End { devices: n })).map_err(io)?;
    out.flush().map_err(io)?;
    Ok(n)
}

/// Imports JSON lines (as written by [`export`]) in one transaction; `path` names the input in
/// messages. Returns the number of devices imported.
pub fn import(
    inventory: &mut Inventory,
    input: impl BufRead,
    path: &Path,
    now: i64,
) -> Result<u64> {
    let mut reader = LineReader {
        lines: input.lines(),
        path: path.to_path_buf(),
        line: 0,
        devices: 0,
        done: false,
    };
    let header = match reader.next_line()? {
        Some(Line::Header(h)) if h.format == FORMAT && h.version == VERSION => h,
        Some(Line::Header(h)) => {
            return Err(reader.err(format!(
                "unsupported export format '{}' version {} (expected '{FORMAT}' version {VERSION})",
                h.format, h.version
            )));
        }
        _ => return Err(reader.err("the first line must be the export header")),
    };
    inventory.import_devices(&mut reader, header.crl_number, now)
}

struct LineReader<R> {
    lines: std::io::Lines<R>,
    path: PathBuf,
    line: u64,
    devices: u64,
    done: bool,
}

impl<R: BufRead> LineReader<R> {
    fn err(&self, message: impl Into<String>) -> FactoryError {
        FactoryError::Input {
            path: self.path.clone(),
            line: self.line,
            message: message.into(),
        }
    }

    fn next_line(&mut self) -> Result<Option<Line>> {
        let Some(text) = self.lines.next() else {
            return Ok(None);
        };
        self.line += 1;
        let text = text.map_err(|e| FactoryError::io("failed to read", &self.path, e))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| self.err(e.to_string()))
    }

    fn next_item(&mut self) -> Result<Option<ImportItem>> {
        match self.next_line()? {
            Some(Line::Device(d)) => {
                let record = d.into_record().map_err(|m| self.err(m))?;
                self.devices += 1;
                Ok(Some(ImportItem {
                    line: self.line,
                    record,
                }))
            }
            Some(Line::End(end)) if end.devices == self.devices => match self.next_line()? {
                None => Ok(None),
                Some(_) => Err(self.err("data after the end record")),
            },
            Some(Line::End(end)) => Err(self.err(format!(
                "the end record counts {} devices but {} were read",
                end.devices, self.devices
            ))),
            Some(Line::Header(_)) => Err(self.err("a second header")),
            None => Err(self.err("the file ends without the end record (truncated?)")),
        }
    }
}

impl<R: BufRead> Iterator for &mut LineReader<R> {
    type Item = Result<ImportItem>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.next_item().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}
