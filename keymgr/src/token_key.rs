//! A private key inside a PKCS#11 token, opened from a `pkcs11:` URI. It signs
//! ([`crate::signer`]) and decrypts ([`crate::decryptor`]); the private key never leaves the
//! token.

use std::sync::{Mutex, MutexGuard};

use bundle::keys::KeyKind;
use cryptoki::object::{AttributeType, ObjectHandle};

use crate::error::{Error, Result};
use crate::key::{KeyInfo, OpenOptions, RsaSignaturePadding};
use crate::keydata;
use crate::object::{self, bytes, flag};
use crate::token::{Access, TokenSession};
use crate::uri::{ObjectType, Pkcs11Uri};

/// A token private key with its session (login done, object found, certificate and public key
/// read). Operations are serialized on the key's own session; for parallel work give each
/// worker its own [`TokenKey::duplicate`].
#[derive(Debug)]
pub struct TokenKey {
    session: Mutex<TokenSession>,
    pub(crate) handle: ObjectHandle,
    uri: Pkcs11Uri,
    pub(crate) kind: KeyKind,
    pub(crate) padding: RsaSignaturePadding,
    pub(crate) can_derive: bool,
    certificate: Option<Vec<u8>>,
    public_key: Option<Vec<u8>>,
}

impl TokenKey {
    /// Opens the private key a URI names: selects the module, finds the token, logs in (PIN from
    /// `pin-source`, `pin-value`, `RAUC_PKCS11_PIN` or a prompt), finds exactly one private key
    /// and reads its certificate (same `CKA_ID`) and public key. No private-key operation.
    pub fn open(uri: &Pkcs11Uri, options: &OpenOptions) -> Result<TokenKey> {
        if let Some(t) = uri.object_type.filter(|t| *t != ObjectType::Private) {
            return Err(Error::key(
                uri.redacted(),
                format!("names a `{t}` object; a key URI needs type=private or no type"),
            ));
        }
        let ts = TokenSession::open(uri, options.module.as_deref(), Access::ReadOnly)?;
        TokenKey::open_in(ts, uri, options)
    }

    /// Like [`TokenKey::open`], on a session the caller already has (e.g. from
    /// [`crate::token::TokenIndex::open`] or [`TokenSession::open_another`]): no token scan, and
    /// no new login if the session is logged in. The key takes the session over.
    pub fn open_in(
        mut ts: TokenSession,
        uri: &Pkcs11Uri,
        options: &OpenOptions,
    ) -> Result<TokenKey> {
        if let Some(t) = uri.object_type.filter(|t| *t != ObjectType::Private) {
            return Err(Error::key(
                uri.redacted(),
                format!("names a `{t}` object; a key URI needs type=private or no type"),
            ));
        }
        ts.login(uri)?;
        let handle = object::find_one(&ts, uri, Some(ObjectType::Private))?;
        let attrs = object::get(
            ts.session(),
            handle,
            &[
                AttributeType::Id,
                AttributeType::Label,
                AttributeType::Derive,
                AttributeType::Modulus,
                AttributeType::PublicExponent,
            ],
        )?;
        let id = bytes(&attrs, AttributeType::Id).unwrap_or_default();
        let label =
            String::from_utf8_lossy(&bytes(&attrs, AttributeType::Label).unwrap_or_default())
                .into_owned();
        let mut key_uri = ts.token().uri.clone().with_type(ObjectType::Private);
        key_uri.id = (!id.is_empty()).then(|| id.clone());
        key_uri.object = Some(label.clone());
        let certificate = match object::companion(&ts, ObjectType::Cert, &id, &label)? {
            Some(h) => Some(object::certificate_value(ts.session(), h)?),
            None => None,
        };
        let public_key = public_key(&ts, &id, &label, certificate.as_deref(), &attrs)?;
        // The private key's own attributes, else (tokens without CKA_EC_PARAMS on private keys)
        // the public key's type.
        let kind = match object::key_kind(ts.session(), handle)? {
            Some(kind) => Some(kind),
            None => public_key
                .as_deref()
                .and_then(|spki| keydata::kind_of_spki(spki).ok()),
        }
        .ok_or_else(|| {
            Error::key(
                key_uri.redacted(),
                "unsupported key type: keymgr uses RSA and EC P-256/P-384 keys",
            )
        })?;
        tracing::debug!(key = %key_uri, certificate = certificate.is_some(), "token key opened");
        Ok(TokenKey {
            session: Mutex::new(ts),
            handle,
            uri: key_uri,
            kind,
            padding: options.rsa_padding,
            // Refuse ECDH up front only when the token says CKA_DERIVE is false.
            can_derive: flag(&attrs, AttributeType::Derive).unwrap_or(true),
            certificate,
            public_key,
        })
    }

    /// The same key on a new session of the same token, for another worker thread (no new
    /// login: the login is shared by all sessions of the process on that token).
    pub fn duplicate(&self) -> Result<TokenKey> {
        let ts = self.session().open_another()?;
        Ok(TokenKey {
            session: Mutex::new(ts),
            handle: self.handle,
            uri: self.uri.clone(),
            kind: self.kind,
            padding: self.padding,
            can_derive: self.can_derive,
            certificate: self.certificate.clone(),
            public_key: self.public_key.clone(),
        })
    }

    /// The full URI of the key object (token identity, id, label, `type=private`).
    pub fn uri(&self) -> &Pkcs11Uri {
        &self.uri
    }

    /// The certificate stored with the key (same `CKA_ID`), DER.
    pub fn certificate_der(&self) -> Option<&[u8]> {
        self.certificate.as_deref()
    }

    /// The key's session, locked for one operation.
    pub(crate) fn session(&self) -> MutexGuard<'_, TokenSession> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The public key: the public key object paired with the key, else the certificate's key, else
/// (RSA) the private key's public attributes.
fn public_key(
    ts: &TokenSession,
    id: &[u8],
    label: &str,
    certificate: Option<&[u8]>,
    private_attrs: &[cryptoki::object::Attribute],
) -> Result<Option<Vec<u8>>> {
    if let Some(h) = object::companion(ts, ObjectType::Public, id, label)?
        && let Ok(spki) = object::public_key_spki(ts.session(), h)
    {
        return Ok(Some(spki));
    }
    if let Some(der) = certificate {
        let cert = openssl::x509::X509::from_der(der)
            .map_err(|e| Error::openssl("parsing the token's certificate", e))?;
        let spki = cert
            .public_key()
            .and_then(|k| k.public_key_to_der())
            .map_err(|e| Error::openssl("reading the certificate's public key", e))?;
        return Ok(Some(spki));
    }
    match (
        bytes(private_attrs, AttributeType::Modulus),
        bytes(private_attrs, AttributeType::PublicExponent),
    ) {
        (Some(n), Some(e)) => Ok(Some(keydata::rsa_spki(&n, &e)?)),
        _ => Ok(None),
    }
}

impl KeyInfo for TokenKey {
    fn description(&self) -> String {
        self.uri.redacted()
    }

    fn key_kind(&self) -> KeyKind {
        self.kind
    }

    fn public_key_der(&self) -> Result<Vec<u8>> {
        self.public_key.clone().ok_or_else(|| {
            Error::key(
                self.uri.redacted(),
                "the token has no public key object and no certificate for this key (same CKA_ID)",
            )
        })
    }
}
