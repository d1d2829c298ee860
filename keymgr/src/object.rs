//! Objects: lookup by URI attributes, summaries with full URIs, attribute helpers.

use bundle::keys::KeyKind;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use serde::Serialize;

use crate::error::{Candidates, Error, Result};
use crate::keydata;
use crate::token::{TokenSession, serialize_uri};
use crate::uri::{ObjectType, Pkcs11Uri};

/// One object of a token, as listed by `keymgr objects` and in lookup errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectSummary {
    /// The object class.
    #[serde(rename = "type", serialize_with = "serialize_type")]
    pub object_type: ObjectType,
    /// `CKA_LABEL`.
    pub label: String,
    /// `CKA_ID`.
    #[serde(serialize_with = "serialize_hex")]
    pub id: Vec<u8>,
    /// The key type (`EC P-256`, `RSA 3072`) for keys and certificates, if known.
    pub key: Option<String>,
    /// The full object URI (token identity, id, object, type).
    #[serde(serialize_with = "serialize_uri")]
    pub uri: Pkcs11Uri,
}

fn serialize_type<S: serde::Serializer>(
    t: &ObjectType,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(t.as_str())
}

fn serialize_hex<S: serde::Serializer>(id: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(id))
}

impl ObjectSummary {
    /// One line for candidate lists: label, id in hex, type.
    pub fn candidate_line(&self) -> String {
        let key = self
            .key
            .as_deref()
            .map(|k| format!(" ({k})"))
            .unwrap_or_default();
        format!(
            "label {:?}, id {}, type {}{key}",
            self.label,
            if self.id.is_empty() {
                "(none)".to_string()
            } else {
                hex::encode(&self.id)
            },
            self.object_type
        )
    }
}

/// The PKCS#11 class of an object type.
pub fn class_of(t: ObjectType) -> ObjectClass {
    match t {
        ObjectType::Private => ObjectClass::PRIVATE_KEY,
        ObjectType::Public => ObjectClass::PUBLIC_KEY,
        ObjectType::Cert => ObjectClass::CERTIFICATE,
        ObjectType::SecretKey => ObjectClass::SECRET_KEY,
        ObjectType::Data => ObjectClass::DATA,
    }
}

fn type_of(class: ObjectClass) -> Option<ObjectType> {
    Some(match class {
        ObjectClass::PRIVATE_KEY => ObjectType::Private,
        ObjectClass::PUBLIC_KEY => ObjectType::Public,
        ObjectClass::CERTIFICATE => ObjectType::Cert,
        ObjectClass::SECRET_KEY => ObjectType::SecretKey,
        ObjectClass::DATA => ObjectType::Data,
        _ => return None,
    })
}

/// The search template for a URI's object attributes; `class` overrides the URI's `type`.
pub fn template(uri: &Pkcs11Uri, class: Option<ObjectType>) -> Vec<Attribute> {
    let mut t = Vec::new();
    if let Some(class) = class.or(uri.object_type) {
        t.push(Attribute::Class(class_of(class)));
    }
    if let Some(label) = &uri.object {
        t.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        t.push(Attribute::Id(id.clone()));
    }
    t
}

/// Finds the objects matching a template.
pub fn find(ts: &TokenSession, template: &[Attribute]) -> Result<Vec<ObjectHandle>> {
    ts.session().find_objects(template).map_err(|e| {
        Error::pkcs11(
            e,
            format!("searching objects in token `{}`", ts.token().label),
        )
    })
}

/// Finds exactly one object matching the URI (with `class` overriding its `type`). No match or
/// several matches give an error listing the candidates.
pub fn find_one(
    ts: &TokenSession,
    uri: &Pkcs11Uri,
    class: Option<ObjectType>,
) -> Result<ObjectHandle> {
    let mut found = find(ts, &template(uri, class))?;
    let shown = uri.redacted();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::ObjectNotFound {
            uri: shown,
            token: ts.token().label.clone(),
            candidates: Candidates(
                list_objects(ts, &Pkcs11Uri::default())?
                    .iter()
                    .map(ObjectSummary::candidate_line)
                    .collect(),
            ),
        }),
        _ => Err(Error::ObjectAmbiguous {
            uri: shown,
            token: ts.token().label.clone(),
            candidates: Candidates(
                summaries(ts, &found)?
                    .iter()
                    .map(ObjectSummary::candidate_line)
                    .collect(),
            ),
        }),
    }
}

/// Lists the objects matching the URI's `object`, `id` and `type` (all objects for a
/// token-only URI) with their full URIs. Private objects appear only after login.
pub fn list_objects(ts: &TokenSession, uri: &Pkcs11Uri) -> Result<Vec<ObjectSummary>> {
    let handles = find(ts, &template(uri, None))?;
    let mut list = summaries(ts, &handles)?;
    list.sort_by_key(|o| (o.label.clone(), o.id.clone(), type_rank(o.object_type)));
    Ok(list)
}

fn type_rank(t: ObjectType) -> u8 {
    match t {
        ObjectType::Private => 0,
        ObjectType::Public => 1,
        ObjectType::Cert => 2,
        ObjectType::SecretKey => 3,
        ObjectType::Data => 4,
    }
}

fn summaries(ts: &TokenSession, handles: &[ObjectHandle]) -> Result<Vec<ObjectSummary>> {
    let mut out = Vec::new();
    for &h in handles {
        if let Some(summary) = summarize(ts, h)? {
            out.push(summary);
        }
    }
    Ok(out)
}

/// Reads `types` together, or, if the token refuses that, one by one, leaving out those it
/// cannot return: objects whose creation was cut short (SoftHSM writes a new object's file
/// before all its attributes) must still be listed, so that they can be found and removed.
fn get_tolerant(s: &Session, handle: ObjectHandle, types: &[AttributeType]) -> Vec<Attribute> {
    match s.get_attributes(handle, types) {
        Ok(attrs) => attrs,
        Err(e) => {
            tracing::debug!("reading object attributes together failed ({e}); one by one");
            types
                .iter()
                .filter_map(|t| s.get_attributes(handle, &[*t]).ok())
                .flatten()
                .collect()
        }
    }
}

/// The summary of one object (`None` for classes outside [`ObjectType`], or an object whose
/// class cannot be read). Unreadable attributes count as absent (an empty label or id).
pub fn summarize(ts: &TokenSession, handle: ObjectHandle) -> Result<Option<ObjectSummary>> {
    let s = ts.session();
    let attrs = get_tolerant(
        s,
        handle,
        &[
            AttributeType::Class,
            AttributeType::Label,
            AttributeType::Id,
        ],
    );
    let Some(object_type) = attrs.iter().find_map(|a| match a {
        Attribute::Class(c) => type_of(*c),
        _ => None,
    }) else {
        return Ok(None);
    };
    let label = bytes(&attrs, AttributeType::Label)
        .map(|l| String::from_utf8_lossy(&l).into_owned())
        .unwrap_or_default();
    let id = bytes(&attrs, AttributeType::Id).unwrap_or_default();
    let key = match object_type {
        ObjectType::Private | ObjectType::Public => key_kind(s, handle)
            .ok()
            .flatten()
            .map(keydata::describe_kind),
        ObjectType::Cert => certificate_value(s, handle)
            .ok()
            .and_then(|der| cert_kind(&der))
            .map(keydata::describe_kind),
        _ => None,
    };
    let mut uri = ts.token().uri.clone().with_type(object_type);
    uri.object = Some(label.clone());
    uri.id = Some(id.clone());
    Ok(Some(ObjectSummary {
        object_type,
        label,
        id,
        key,
        uri,
    }))
}

/// Reads attributes (absent, sensitive and invalid ones are left out of the result).
pub fn get(s: &Session, handle: ObjectHandle, types: &[AttributeType]) -> Result<Vec<Attribute>> {
    s.get_attributes(handle, types)
        .map_err(|e| Error::pkcs11(e, "reading object attributes"))
}

/// The byte value of one attribute type in a list.
pub fn bytes(attrs: &[Attribute], t: AttributeType) -> Option<Vec<u8>> {
    attrs.iter().find_map(|a| match (a, t) {
        (Attribute::Label(v), AttributeType::Label)
        | (Attribute::Id(v), AttributeType::Id)
        | (Attribute::Value(v), AttributeType::Value)
        | (Attribute::EcParams(v), AttributeType::EcParams)
        | (Attribute::EcPoint(v), AttributeType::EcPoint)
        | (Attribute::Modulus(v), AttributeType::Modulus)
        | (Attribute::PublicExponent(v), AttributeType::PublicExponent) => Some(v.clone()),
        _ => None,
    })
}

/// The boolean value of one attribute type in a list.
pub fn flag(attrs: &[Attribute], t: AttributeType) -> Option<bool> {
    attrs.iter().find_map(|a| match (a, t) {
        (Attribute::Derive(v), AttributeType::Derive)
        | (Attribute::Sign(v), AttributeType::Sign)
        | (Attribute::Decrypt(v), AttributeType::Decrypt) => Some(*v),
        _ => None,
    })
}

/// The key type of a key object (`None` for key types other than RSA and EC P-256/P-384).
pub fn key_kind(s: &Session, handle: ObjectHandle) -> Result<Option<KeyKind>> {
    let attrs = get(
        s,
        handle,
        &[
            AttributeType::KeyType,
            AttributeType::EcParams,
            AttributeType::Modulus,
        ],
    )?;
    let key_type = attrs.iter().find_map(|a| match a {
        Attribute::KeyType(k) => Some(*k),
        _ => None,
    });
    Ok(match key_type {
        Some(KeyType::RSA) => {
            bytes(&attrs, AttributeType::Modulus).map(|m| KeyKind::Rsa { bits: rsa_bits(&m) })
        }
        Some(KeyType::EC) => bytes(&attrs, AttributeType::EcParams)
            .and_then(|p| keydata::curve_from_params(&p))
            .map(KeyKind::Ec),
        _ => None,
    })
}

fn rsa_bits(modulus: &[u8]) -> u32 {
    let trimmed = modulus.iter().skip_while(|b| **b == 0).count();
    (trimmed * 8) as u32
}

/// `CKA_VALUE` of a certificate object (the DER certificate).
pub fn certificate_value(s: &Session, handle: ObjectHandle) -> Result<Vec<u8>> {
    bytes(
        &get(s, handle, &[AttributeType::Value])?,
        AttributeType::Value,
    )
    .ok_or_else(|| Error::Invalid("the certificate object has no CKA_VALUE".into()))
}

fn cert_kind(der: &[u8]) -> Option<KeyKind> {
    let cert = openssl::x509::X509::from_der(der).ok()?;
    keydata::kind_of_pkey(&cert.public_key().ok()?).ok()
}

/// The SubjectPublicKeyInfo DER of a public key object.
pub fn public_key_spki(s: &Session, handle: ObjectHandle) -> Result<Vec<u8>> {
    let kind = key_kind(s, handle)?.ok_or_else(|| {
        Error::Invalid("unsupported public key type (need RSA or EC P-256/P-384)".into())
    })?;
    let attrs = get(
        s,
        handle,
        &[
            AttributeType::EcPoint,
            AttributeType::Modulus,
            AttributeType::PublicExponent,
        ],
    )?;
    let missing = |what: &str| Error::Invalid(format!("the public key object has no {what}"));
    match kind {
        KeyKind::Ec(curve) => {
            let value =
                bytes(&attrs, AttributeType::EcPoint).ok_or_else(|| missing("CKA_EC_POINT"))?;
            keydata::ec_spki(curve, &keydata::ec_point_from_attribute(&value, curve)?)
        }
        KeyKind::Rsa { .. } => {
            let n = bytes(&attrs, AttributeType::Modulus).ok_or_else(|| missing("CKA_MODULUS"))?;
            let e = bytes(&attrs, AttributeType::PublicExponent)
                .ok_or_else(|| missing("CKA_PUBLIC_EXPONENT"))?;
            keydata::rsa_spki(&n, &e)
        }
    }
}

/// The first object of `class` sharing the key's `CKA_ID` (or, when the id is empty, its
/// label): how a key's certificate and public key are paired with it.
pub fn companion(
    ts: &TokenSession,
    class: ObjectType,
    id: &[u8],
    label: &str,
) -> Result<Option<ObjectHandle>> {
    let mut t = vec![Attribute::Class(class_of(class))];
    if id.is_empty() {
        t.push(Attribute::Label(label.as_bytes().to_vec()));
    } else {
        t.push(Attribute::Id(id.to_vec()));
    }
    Ok(find(ts, &t)?.into_iter().next())
}
