//! RFC 7512 `pkcs11:` URIs: parser ([`Pkcs11Uri::parse`]) and canonical formatter.
//!
//! Path attributes identify a library, slot, token and object; query attributes say how to get
//! there (PIN, module). Values are percent-decoded on parsing (labels may contain NUL padding,
//! as tpm2-pkcs11's `model` does) and re-encoded canonically on formatting, so
//! `parse(format(u)) == u` for every URI and `format(parse(s)) == s` for canonical strings.
//!
//! `Display` never shows the `pin-value`; [`Pkcs11Uri::to_string_with_pin`] does.

mod format;
mod parse;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::pin::Pin;

/// The `type=` path attribute: which class of object a URI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectType {
    /// `type=private`: a private key (`CKO_PRIVATE_KEY`).
    Private,
    /// `type=public`: a public key (`CKO_PUBLIC_KEY`).
    Public,
    /// `type=cert`: a certificate (`CKO_CERTIFICATE`).
    Cert,
    /// `type=secret-key`: a secret key (`CKO_SECRET_KEY`).
    SecretKey,
    /// `type=data`: a data object (`CKO_DATA`).
    Data,
}

impl ObjectType {
    /// The attribute value as written in a URI.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Private => "private",
            ObjectType::Public => "public",
            ObjectType::Cert => "cert",
            ObjectType::SecretKey => "secret-key",
            ObjectType::Data => "data",
        }
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ObjectType {
    type Err = Error;

    fn from_str(s: &str) -> Result<ObjectType> {
        Ok(match s {
            "private" => ObjectType::Private,
            "public" => ObjectType::Public,
            "cert" => ObjectType::Cert,
            "secret-key" => ObjectType::SecretKey,
            "data" => ObjectType::Data,
            other => {
                return Err(Error::Uri {
                    part: format!("type={other}"),
                    problem: "unknown object type; use private, public, cert, secret-key or data"
                        .into(),
                });
            }
        })
    }
}

/// The `library-version=` path attribute: `major[.minor]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LibraryVersion {
    /// Major version.
    pub major: u8,
    /// Minor version, if given.
    pub minor: Option<u8>,
}

/// A parsed `pkcs11:` URI. Every field is optional; an absent attribute matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// `token=`: the token label (`CK_TOKEN_INFO.label`).
    pub token: Option<String>,
    /// `manufacturer=`: the token manufacturer.
    pub manufacturer: Option<String>,
    /// `serial=`: the token serial number.
    pub serial: Option<String>,
    /// `model=`: the token model.
    pub model: Option<String>,
    /// `library-manufacturer=`: `CK_INFO.manufacturerID`.
    pub library_manufacturer: Option<String>,
    /// `library-description=`: `CK_INFO.libraryDescription`.
    pub library_description: Option<String>,
    /// `library-version=`: `CK_INFO.libraryVersion`.
    pub library_version: Option<LibraryVersion>,
    /// `slot-id=`: the decimal `CK_SLOT_ID`.
    pub slot_id: Option<u64>,
    /// `slot-description=`: `CK_SLOT_INFO.slotDescription`.
    pub slot_description: Option<String>,
    /// `slot-manufacturer=`: `CK_SLOT_INFO.manufacturerID`.
    pub slot_manufacturer: Option<String>,
    /// `object=`: the object label (`CKA_LABEL`).
    pub object: Option<String>,
    /// `id=`: the raw `CKA_ID` bytes.
    pub id: Option<Vec<u8>>,
    /// `type=`: the object class.
    pub object_type: Option<ObjectType>,
    /// `?pin-value=`: the PIN itself (discouraged; redacted in `Debug` and `Display`).
    pub pin_value: Option<Pin>,
    /// `?pin-source=`: a file (path or `file:` URI) holding the PIN.
    pub pin_source: Option<String>,
    /// `?module-path=`: the PKCS#11 module file.
    pub module_path: Option<String>,
    /// `?module-name=`: the PKCS#11 module name (e.g. `softhsm2` for `libsofthsm2.so`).
    pub module_name: Option<String>,
}

impl Pkcs11Uri {
    /// Parses a `pkcs11:` URI. Errors name the offending part (never a PIN).
    pub fn parse(s: &str) -> Result<Pkcs11Uri> {
        parse::parse(s)
    }

    /// `pkcs11:token=<label>`.
    pub fn for_token(label: &str) -> Pkcs11Uri {
        Pkcs11Uri {
            token: Some(label.to_string()),
            ..Pkcs11Uri::default()
        }
    }

    /// This URI with `object=` set.
    pub fn with_object(mut self, label: &str) -> Pkcs11Uri {
        self.object = Some(label.to_string());
        self
    }

    /// This URI with `id=` set.
    pub fn with_id(mut self, id: &[u8]) -> Pkcs11Uri {
        self.id = Some(id.to_vec());
        self
    }

    /// This URI with `type=` set.
    pub fn with_type(mut self, object_type: ObjectType) -> Pkcs11Uri {
        self.object_type = Some(object_type);
        self
    }

    /// The token part only (library, slot and token attributes, and the query): no object.
    pub fn token_part(&self) -> Pkcs11Uri {
        Pkcs11Uri {
            object: None,
            id: None,
            object_type: None,
            ..self.clone()
        }
    }

    /// True if the URI names an object (`object=` or `id=`).
    pub fn names_object(&self) -> bool {
        self.object.is_some() || self.id.is_some()
    }

    /// The canonical URI without `pin-value` (the same as `Display`); safe for logs and errors.
    pub fn redacted(&self) -> String {
        format::format(self, false)
    }

    /// The canonical URI including `pin-value`. Keep it out of logs.
    pub fn to_string_with_pin(&self) -> Zeroizing<String> {
        Zeroizing::new(format::format(self, true))
    }
}

impl fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format::format(self, false))
    }
}

impl FromStr for Pkcs11Uri {
    type Err = Error;

    fn from_str(s: &str) -> Result<Pkcs11Uri> {
        Pkcs11Uri::parse(s)
    }
}
