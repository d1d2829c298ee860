//! Subject name templates: `/O=Example/OU=Devices/CN={serial}` (the `openssl req -subj` form).
//!
//! A template is parsed once when the configuration is loaded; rendering it for a device
//! replaces every `{serial}` with the (validated) device serial.

use der::asn1::{Any, SetOfVec};
use der::{Encode, Tag};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};

use crate::types::DeviceSerial;

/// The attribute types a subject may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnAttr {
    /// `C` (countryName, two letters, PrintableString).
    Country,
    /// `ST` (stateOrProvinceName).
    State,
    /// `L` (localityName).
    Locality,
    /// `O` (organizationName).
    Organization,
    /// `OU` (organizationalUnitName).
    OrganizationalUnit,
    /// `CN` (commonName).
    CommonName,
    /// `serialNumber` (PrintableString).
    SerialNumber,
}

impl DnAttr {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "C" => DnAttr::Country,
            "ST" => DnAttr::State,
            "L" => DnAttr::Locality,
            "O" => DnAttr::Organization,
            "OU" => DnAttr::OrganizationalUnit,
            "CN" => DnAttr::CommonName,
            "serialNumber" => DnAttr::SerialNumber,
            _ => return None,
        })
    }

    fn arc(self) -> u32 {
        match self {
            DnAttr::Country => 6,
            DnAttr::State => 8,
            DnAttr::Locality => 7,
            DnAttr::Organization => 10,
            DnAttr::OrganizationalUnit => 11,
            DnAttr::CommonName => 3,
            DnAttr::SerialNumber => 5,
        }
    }

    fn printable(self) -> bool {
        matches!(self, DnAttr::Country | DnAttr::SerialNumber)
    }

    fn rcgen_type(self) -> rcgen::DnType {
        use rcgen::DnType;
        match self {
            DnAttr::Country => DnType::CountryName,
            DnAttr::State => DnType::StateOrProvinceName,
            DnAttr::Locality => DnType::LocalityName,
            DnAttr::Organization => DnType::OrganizationName,
            DnAttr::OrganizationalUnit => DnType::OrganizationalUnitName,
            DnAttr::CommonName => DnType::CommonName,
            DnAttr::SerialNumber => DnType::CustomDnType(vec![2, 5, 4, 5]),
        }
    }
}

/// One piece of a template value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Serial,
}

/// A string with `{serial}` placeholders (used for subjects, token URIs and key labels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses a template. Only `{serial}` is a placeholder; any other `{` or `}` is an error.
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find(['{', '}']) {
            if !rest[open..].starts_with("{serial}") {
                return Err(format!(
                    "unexpected '{}' at byte {}: the only placeholder is {{serial}}",
                    &rest[open..open + 1],
                    source.len() - rest.len() + open
                ));
            }
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            pieces.push(Piece::Serial);
            rest = &rest[open + "{serial}".len()..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Self {
            source: source.to_string(),
            pieces,
        })
    }

    /// True if the template contains `{serial}`.
    pub fn has_serial(&self) -> bool {
        self.pieces.contains(&Piece::Serial)
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Replaces every `{serial}`.
    pub fn render(&self, serial: &DeviceSerial) -> String {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.as_str(),
                Piece::Serial => serial.as_str(),
            })
            .collect()
    }
}

/// A parsed subject template: attribute/value pairs in order (first = outermost RDN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectTemplate {
    source: String,
    attrs: Vec<(DnAttr, Template)>,
}

/// A concrete subject name: attribute/value pairs in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectName {
    attrs: Vec<(DnAttr, String)>,
}

impl SubjectTemplate {
    /// Parses `/TYPE=value/TYPE=value…`; `\/` and `\\` escape inside values.
    pub fn parse(source: &str) -> Result<Self, String> {
        let Some(body) = source.strip_prefix('/') else {
            return Err("a subject starts with '/', e.g. \"/O=Example/CN={serial}\"".into());
        };
        let mut attrs = Vec::new();
        for part in split_unescaped(body)? {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not TYPE=value"))?;
            let attr = DnAttr::parse(name).ok_or_else(|| {
                format!("unknown attribute '{name}' (use C, ST, L, O, OU, CN, serialNumber)")
            })?;
            if value.is_empty() {
                return Err(format!("attribute '{name}' has an empty value"));
            }
            attrs.push((attr, Template::parse(value)?));
        }
        if attrs.is_empty() {
            return Err("the subject is empty".into());
        }
        Ok(Self {
            source: source.to_string(),
            attrs,
        })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True if any value contains `{serial}`.
    pub fn has_serial(&self) -> bool {
        self.attrs.iter().any(|(_, t)| t.has_serial())
    }

    /// Renders the subject for a device.
    pub fn render(&self, serial: &DeviceSerial) -> SubjectName {
        SubjectName {
            attrs: self
                .attrs
                .iter()
                .map(|(a, t)| (*a, t.render(serial)))
                .collect(),
        }
    }

    /// The subject of a template without placeholders (a CA subject).
    pub fn fixed(&self) -> Option<SubjectName> {
        (!self.has_serial()).then(|| SubjectName {
            attrs: self
                .attrs
                .iter()
                .map(|(a, t)| (*a, t.source().to_string()))
                .collect(),
        })
    }
}

fn split_unescaped(body: &str) -> Result<Vec<String>, String> {
    let mut parts = vec![String::new()];
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('/' | '\\')) => parts.last_mut().unwrap().push(e),
                _ => return Err("'\\' escapes only '/' and '\\'".into()),
            },
            '/' => parts.push(String::new()),
            c => parts.last_mut().unwrap().push(c),
        }
    }
    Ok(parts)
}

impl SubjectName {
    /// Checks value types: `C` must be two letters, PrintableString attributes must use the
    /// PrintableString alphabet.
    pub fn check(&self) -> Result<(), String> {
        for (attr, value) in &self.attrs {
            if *attr == DnAttr::Country
                && !(value.len() == 2 && value.bytes().all(|b| b.is_ascii_alphabetic()))
            {
                return Err(format!(
                    "C must be a two-letter country code, not '{value}'"
                ));
            }
            if attr.printable() && !value.bytes().all(is_printable) {
                return Err(format!("'{value}' is not a PrintableString"));
            }
        }
        Ok(())
    }

    /// The rcgen form, for certificates.
    pub fn to_rcgen(&self) -> Result<rcgen::DistinguishedName, String> {
        let mut dn = rcgen::DistinguishedName::new();
        for (attr, value) in &self.attrs {
            let v = if attr.printable() {
                rcgen::DnValue::PrintableString(
                    value.clone().try_into().map_err(|e| format!("{e}"))?,
                )
            } else {
                rcgen::DnValue::Utf8String(value.clone())
            };
            dn.push(attr.rcgen_type(), v);
        }
        Ok(dn)
    }

    /// The X.509 `Name` form, for CSRs.
    pub fn to_x509_name(&self) -> Result<Name, String> {
        let mut rdns = Vec::new();
        for (attr, value) in &self.attrs {
            let tag = if attr.printable() {
                Tag::PrintableString
            } else {
                Tag::Utf8String
            };
            let oid = der::asn1::ObjectIdentifier::new(&format!("2.5.4.{}", attr.arc()))
                .map_err(|e| e.to_string())?;
            let value = Any::new(tag, value.as_bytes()).map_err(|e| e.to_string())?;
            let atv = AttributeTypeAndValue { oid, value };
            let set = SetOfVec::try_from(vec![atv]).map_err(|e| e.to_string())?;
            rdns.push(RelativeDistinguishedName(set));
        }
        let name = RdnSequence(rdns);
        // Round-trip once so encoding problems surface here, not in the token.
        name.to_der().map_err(|e| e.to_string())?;
        Ok(name)
    }
}

fn is_printable(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serial() -> DeviceSerial {
        DeviceSerial::new("dev-42").unwrap()
    }

    #[test]
    fn templates() {
        let t = Template::parse("pkcs11:token=dev-{serial};object={serial}").unwrap();
        assert!(t.has_serial());
        assert_eq!(t.render(&serial()), "pkcs11:token=dev-dev-42;object=dev-42");
        assert!(Template::parse("a{seriel}").is_err());
        assert!(Template::parse("a}").is_err());
        assert!(!Template::parse("fixed").unwrap().has_serial());
    }

    #[test]
    fn subjects() {
        let t = SubjectTemplate::parse("/C=DE/O=Ex\\/ample/CN={serial}").unwrap();
        let s = t.render(&serial());
        assert_eq!(
            s.attrs,
            vec![
                (DnAttr::Country, "DE".into()),
                (DnAttr::Organization, "Ex/ample".into()),
                (DnAttr::CommonName, "dev-42".into()),
            ]
        );
        s.check().unwrap();
        s.to_rcgen().unwrap();
        let name = s.to_x509_name().unwrap();
        assert_eq!(name.to_string(), "CN=dev-42,O=Ex/ample,C=DE");
        assert!(t.fixed().is_none());
        for bad in ["O=x", "/", "/X=1", "/CN=", "/CN=a\\b", "/CN"] {
            assert!(SubjectTemplate::parse(bad).is_err(), "{bad}");
        }
        let c = SubjectTemplate::parse("/C=Germany")
            .unwrap()
            .fixed()
            .unwrap();
        assert!(c.check().is_err());
    }
}
