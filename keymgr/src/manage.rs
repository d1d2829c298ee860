//! Token object management for operators and the factory: generate key pairs inside a token,
//! import certificates and PEM private keys, export certificates and public keys, delete and
//! list objects. Methods of [`TokenSession`] (open it with [`crate::token::Access::ReadWrite`] and log in
//! first for anything that writes).

use std::fmt;
use std::str::FromStr;

use bundle::keys::{EcCurve, KeyKind};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};

use crate::error::{Error, Result};
use crate::keydata;
use crate::object::{self, ObjectSummary};
use crate::token::TokenSession;
use crate::uri::{ObjectType, Pkcs11Uri};

/// A key type `keymgr` generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// EC on a named curve.
    Ec(EcCurve),
    /// RSA with 2048, 3072 or 4096 bits.
    Rsa(u32),
}

impl KeyType {
    /// The [`KeyKind`] of keys of this type.
    pub fn kind(self) -> KeyKind {
        match self {
            KeyType::Ec(c) => KeyKind::Ec(c),
            KeyType::Rsa(bits) => KeyKind::Rsa { bits },
        }
    }
}

impl FromStr for KeyType {
    type Err = Error;

    /// `ec:prime256v1` (also `ec:secp256r1`, `ec:p-256`), `ec:secp384r1` (`ec:p-384`),
    /// `rsa:2048`, `rsa:3072`, `rsa:4096`; case-insensitive.
    fn from_str(s: &str) -> Result<KeyType> {
        let lower = s.to_ascii_lowercase();
        Ok(match lower.as_str() {
            "ec:prime256v1" | "ec:secp256r1" | "ec:p-256" | "ec:p256" => KeyType::Ec(EcCurve::P256),
            "ec:secp384r1" | "ec:p-384" | "ec:p384" => KeyType::Ec(EcCurve::P384),
            "rsa:2048" => KeyType::Rsa(2048),
            "rsa:3072" => KeyType::Rsa(3072),
            "rsa:4096" => KeyType::Rsa(4096),
            _ => {
                return Err(Error::Invalid(format!(
                    "unknown key type `{s}`: use ec:prime256v1, ec:secp384r1, rsa:2048, rsa:3072 or rsa:4096"
                )));
            }
        })
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyType::Ec(EcCurve::P256) => f.write_str("ec:prime256v1"),
            KeyType::Ec(EcCurve::P384) => f.write_str("ec:secp384r1"),
            KeyType::Rsa(bits) => write!(f, "rsa:{bits}"),
        }
    }
}

/// The result of [`TokenSession::generate_key_pair`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedKey {
    /// The private key's full URI (token identity, id, label, `type=private`).
    pub uri: Pkcs11Uri,
    /// The public key, SubjectPublicKeyInfo DER.
    pub public_key_der: Vec<u8>,
    /// The `CKA_ID` shared by the private and public key (and, later, the certificate).
    pub id: Vec<u8>,
    /// The `CKA_LABEL` shared likewise.
    pub label: String,
}

/// Length of generated random ids, in bytes.
pub const RANDOM_ID_LEN: usize = 8;

impl TokenSession {
    /// Generates a key pair inside the token. The private key is `CKA_TOKEN`, `CKA_PRIVATE`,
    /// `CKA_SENSITIVE`, not extractable, may sign and derive (EC) or sign and decrypt (RSA);
    /// the public key object has the same id and label. `id` is random when not given. Refuses
    /// when a key with the same id or label exists.
    pub fn generate_key_pair(
        &self,
        key_type: KeyType,
        label: &str,
        id: Option<&[u8]>,
    ) -> Result<GeneratedKey> {
        let id = match id {
            Some(id) => id.to_vec(),
            None => random_id()?,
        };
        self.refuse_existing(ObjectType::Private, label, &id)?;
        let common = |private: bool| {
            vec![
                Attribute::Token(true),
                Attribute::Private(private),
                Attribute::Id(id.clone()),
                Attribute::Label(label.as_bytes().to_vec()),
            ]
        };
        let mut public = common(false);
        let mut private = common(true);
        private.extend([
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
        ]);
        public.push(Attribute::Verify(true));
        let mechanism = match key_type {
            KeyType::Ec(curve) => {
                public.push(Attribute::EcParams(keydata::params_of(curve).to_vec()));
                private.push(Attribute::Derive(true));
                Mechanism::EccKeyPairGen
            }
            KeyType::Rsa(bits) => {
                public.extend([
                    Attribute::ModulusBits((bits as u64).into()),
                    Attribute::PublicExponent(vec![1, 0, 1]),
                    Attribute::Encrypt(true),
                ]);
                private.push(Attribute::Decrypt(true));
                Mechanism::RsaPkcsKeyPairGen
            }
        };
        let (pub_handle, _) = self
            .session()
            .generate_key_pair(&mechanism, &public, &private)
            .map_err(|e| {
                Error::pkcs11(e, format!("generating a {key_type} key pair `{label}`"))
                    .with_hint("the token must be writable and the user logged in")
            })?;
        let public_key_der = object::public_key_spki(self.session(), pub_handle)?;
        let uri = self.object_uri(ObjectType::Private, label, &id);
        tracing::info!(key = %uri, %key_type, "key pair generated in the token");
        Ok(GeneratedKey {
            uri,
            public_key_der,
            id,
            label: label.to_string(),
        })
    }

    /// Writes a DER certificate as a token object with the given label and id (use the key's id
    /// so the pair is found together). Returns the certificate's URI.
    pub fn write_certificate(&self, der: &[u8], label: &str, id: &[u8]) -> Result<Pkcs11Uri> {
        use der::{Decode, Encode};
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| Error::Invalid(format!("not a DER X.509 certificate: {e}")))?;
        let tbs = &cert.tbs_certificate;
        let enc = |r: der::Result<Vec<u8>>| {
            r.map_err(|e| Error::Invalid(format!("re-encoding the certificate: {e}")))
        };
        self.refuse_existing(ObjectType::Cert, label, id)?;
        let template = [
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(cryptoki::object::CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Id(id.to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Subject(enc(tbs.subject.to_der())?),
            Attribute::Issuer(enc(tbs.issuer.to_der())?),
            Attribute::SerialNumber(enc(tbs.serial_number.to_der())?),
            Attribute::Value(der.to_vec()),
        ];
        self.create(&template, "writing the certificate")?;
        let uri = self.object_uri(ObjectType::Cert, label, id);
        tracing::info!(certificate = %uri, "certificate written to the token");
        Ok(uri)
    }

    /// The id to file an object under for a URI: its `id=`, else the id of the key pair with
    /// the URI's label (`object=`).
    pub fn pairing_id(&self, uri: &Pkcs11Uri) -> Result<Option<Vec<u8>>> {
        if let Some(id) = &uri.id {
            return Ok(Some(id.clone()));
        }
        let Some(label) = &uri.object else {
            return Ok(None);
        };
        for class in [ObjectType::Private, ObjectType::Public] {
            let t = [
                Attribute::Class(object::class_of(class)),
                Attribute::Label(label.as_bytes().to_vec()),
            ];
            if let Some(h) = object::find(self, &t)?.first() {
                return Ok(object::summarize(self, *h)?.map(|s| s.id));
            }
        }
        Ok(None)
    }

    /// The DER certificate object the URI names (`type` is taken as `cert`).
    pub fn export_certificate(&self, uri: &Pkcs11Uri) -> Result<Vec<u8>> {
        let h = object::find_one(self, uri, Some(ObjectType::Cert))?;
        object::certificate_value(self.session(), h)
    }

    /// The public key (SubjectPublicKeyInfo DER) of the key the URI names: its public key
    /// object, else its certificate, else (RSA, after login) the private key's public part.
    pub fn export_public_key(&mut self, uri: &Pkcs11Uri) -> Result<Vec<u8>> {
        let pubs = object::find(self, &object::template(uri, Some(ObjectType::Public)))?;
        if pubs.len() > 1 {
            object::find_one(self, uri, Some(ObjectType::Public))?;
        }
        if let Some(h) = pubs.first() {
            return object::public_key_spki(self.session(), *h);
        }
        let certs = object::find(self, &object::template(uri, Some(ObjectType::Cert)))?;
        if let Some(h) = certs.first() {
            let der = object::certificate_value(self.session(), *h)?;
            return openssl::x509::X509::from_der(&der)
                .and_then(|c| c.public_key())
                .and_then(|k| k.public_key_to_der())
                .map_err(|e| Error::openssl("reading the certificate's public key", e));
        }
        self.login(uri)?;
        let h = object::find_one(self, uri, Some(ObjectType::Private))?;
        private_public_part(self, h, uri)
    }

    /// Deletes every object the URI names (it must give `object=` or `id=`). Returns what was
    /// deleted.
    pub fn delete_objects(&self, uri: &Pkcs11Uri) -> Result<Vec<ObjectSummary>> {
        if !uri.names_object() {
            return Err(Error::Invalid(format!(
                "refusing to delete without object= or id= in {}",
                uri.redacted()
            )));
        }
        let handles = object::find(self, &object::template(uri, None))?;
        let mut deleted = Vec::new();
        for h in handles {
            let summary = object::summarize(self, h)?;
            self.session().destroy_object(h).map_err(|e| {
                Error::pkcs11(e, format!("deleting an object of {}", uri.redacted()))
            })?;
            if let Some(s) = summary {
                tracing::info!(object = %s.uri, "object deleted");
                deleted.push(s);
            }
        }
        Ok(deleted)
    }

    /// Deletes the objects the URI's `object`, `id` and `type` select (every object for a
    /// token-only URI) for which `select` returns true; returns what was deleted. Unlike
    /// [`TokenSession::delete_objects`] the selection need not be expressible as a template:
    /// it reaches, e.g., objects whose creation was cut short and that lack attributes (a
    /// template with `id=` need not match an object without `CKA_ID`).
    pub fn delete_matching(
        &self,
        uri: &Pkcs11Uri,
        select: impl Fn(&ObjectSummary) -> bool,
    ) -> Result<Vec<ObjectSummary>> {
        let mut deleted = Vec::new();
        for h in object::find(self, &object::template(uri, None))? {
            let Some(summary) = object::summarize(self, h)? else {
                continue;
            };
            if select(&summary) {
                self.session().destroy_object(h).map_err(|e| {
                    Error::pkcs11(e, format!("deleting {}", summary.uri.redacted()))
                })?;
                tracing::info!(object = %summary.uri, "object deleted");
                deleted.push(summary);
            }
        }
        Ok(deleted)
    }

    /// Lists objects (see [`object::list_objects`]).
    pub fn list_objects(&self, uri: &Pkcs11Uri) -> Result<Vec<ObjectSummary>> {
        object::list_objects(self, uri)
    }

    /// The full URI of an object of this token.
    pub fn object_uri(&self, t: ObjectType, label: &str, id: &[u8]) -> Pkcs11Uri {
        self.token()
            .uri
            .clone()
            .with_id(id)
            .with_object(label)
            .with_type(t)
    }

    pub(crate) fn create(&self, template: &[Attribute], action: &str) -> Result<ObjectHandle> {
        self.session().create_object(template).map_err(|e| {
            Error::pkcs11(e, format!("{action} in token `{}`", self.token().label))
                .with_hint("the token must be writable (read/write session) and the user logged in")
        })
    }

    pub(crate) fn refuse_existing(&self, class: ObjectType, label: &str, id: &[u8]) -> Result<()> {
        let by_id = [
            Attribute::Class(object::class_of(class)),
            Attribute::Id(id.to_vec()),
        ];
        let by_label = [
            Attribute::Class(object::class_of(class)),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        if !object::find(self, &by_id)?.is_empty() || !object::find(self, &by_label)?.is_empty() {
            return Err(Error::Invalid(format!(
                "token `{}` already has a {class} object with id {} or label {label:?}; delete it \
                 first (keymgr delete) or choose another id/label",
                self.token().label,
                hex::encode(id)
            )));
        }
        Ok(())
    }
}

fn private_public_part(ts: &TokenSession, h: ObjectHandle, uri: &Pkcs11Uri) -> Result<Vec<u8>> {
    use cryptoki::object::AttributeType as T;
    let attrs = object::get(ts.session(), h, &[T::Modulus, T::PublicExponent])?;
    match (
        object::bytes(&attrs, T::Modulus),
        object::bytes(&attrs, T::PublicExponent),
    ) {
        (Some(n), Some(e)) => keydata::rsa_spki(&n, &e),
        _ => Err(Error::key(
            uri.redacted(),
            "no public key object and no certificate with this key's id or label",
        )),
    }
}

/// Random bytes for a `CKA_ID`.
pub fn random_id() -> Result<Vec<u8>> {
    let mut id = vec![0u8; RANDOM_ID_LEN];
    openssl::rand::rand_bytes(&mut id).map_err(|e| Error::openssl("generating a random id", e))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_types_parse_and_print() {
        for (s, t) in [
            ("ec:prime256v1", KeyType::Ec(EcCurve::P256)),
            ("EC:secp384r1", KeyType::Ec(EcCurve::P384)),
            ("rsa:3072", KeyType::Rsa(3072)),
        ] {
            let parsed: KeyType = s.parse().unwrap();
            assert_eq!(parsed, t);
            assert_eq!(parsed.to_string(), s.to_ascii_lowercase());
        }
        assert_eq!(
            "ec:p-256".parse::<KeyType>().unwrap(),
            KeyType::Ec(EcCurve::P256)
        );
        let err = "rsa:1024".parse::<KeyType>().unwrap_err().to_string();
        assert!(
            err.contains("rsa:1024") && err.contains("ec:prime256v1"),
            "{err}"
        );
    }
}
