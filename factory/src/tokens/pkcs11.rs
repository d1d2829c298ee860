//! A device token reached through PKCS#11 (SoftHSM, an HSM, tpm2-pkcs11).

use bundle::keys::ContentSigner;
use keymgr::manage::KeyType as KeymgrKeyType;
use keymgr::object::ObjectSummary;
use keymgr::{Access, ObjectType, OpenOptions, Pkcs11Uri, TokenIndex, TokenKey, TokenSession};

use crate::provision::plan::is_debris;
use crate::provision::{
    DeviceKeySpec, DeviceToken, ObjectClass, ObjectSelection, TokenError, TokenObject,
};
use crate::types::{KeyId, KeyType};

/// One logged-in read/write session on a device's PKCS#11 token.
#[derive(Debug)]
pub struct Pkcs11DeviceToken {
    session: TokenSession,
    /// The token part of the URI as given, with the PIN source used for logins.
    login_uri: Pkcs11Uri,
    /// What the inventory records (no PIN, no object attributes).
    recorded_uri: String,
    /// The EK certificate of a TPM token, read before the module was loaded.
    ek_certificate: Option<Option<Vec<u8>>>,
}

/// The keymgr key type of a station key type.
pub(crate) fn keymgr_key_type(key_type: KeyType) -> KeymgrKeyType {
    use bundle::keys::EcCurve;
    match key_type {
        KeyType::EcP256 => KeymgrKeyType::Ec(EcCurve::P256),
        KeyType::EcP384 => KeymgrKeyType::Ec(EcCurve::P384),
        KeyType::Rsa3072 => KeymgrKeyType::Rsa(3072),
    }
}

impl Pkcs11DeviceToken {
    /// Opens the token `given` names (through `index`) and logs in with `login_uri`'s PIN.
    pub(crate) fn open(
        index: &TokenIndex,
        given: &Pkcs11Uri,
        login_uri: &Pkcs11Uri,
        ek_certificate: Option<Option<Vec<u8>>>,
    ) -> Result<Self, TokenError> {
        let login_uri = login_uri.token_part();
        let mut session = index.open(&login_uri, Access::ReadWrite)?;
        session.login(&login_uri)?;
        let mut recorded = given.token_part();
        recorded.pin_value = None;
        Ok(Self {
            session,
            login_uri,
            recorded_uri: recorded.to_string(),
            ek_certificate,
        })
    }

    fn object_uri(&self, id: &KeyId, object_type: Option<ObjectType>) -> Pkcs11Uri {
        let mut uri = self.login_uri.clone().with_id(id.as_bytes());
        uri.object_type = object_type;
        uri
    }
}

/// The seam's view of a listed object (without the values, which need further reads).
fn token_object(s: &ObjectSummary) -> TokenObject {
    TokenObject {
        class: match s.object_type {
            ObjectType::Private => ObjectClass::PrivateKey,
            ObjectType::Public => ObjectClass::PublicKey,
            ObjectType::Cert => ObjectClass::Certificate,
            _ => ObjectClass::Other,
        },
        id: KeyId::from_bytes(s.id.clone()),
        label: s.label.clone(),
        spki_sha256: None,
        certificate: None,
    }
}

fn trim(s: &str) -> &str {
    s.trim_end_matches([' ', '\0'])
}

impl DeviceToken for Pkcs11DeviceToken {
    fn description(&self) -> String {
        let t = self.session.token();
        format!(
            "PKCS#11 token '{}' ({} {}, serial {}) via {}",
            trim(&t.label),
            trim(&t.manufacturer),
            trim(&t.model),
            trim(&t.serial),
            self.session.module_path().display()
        )
    }

    fn uri(&self) -> String {
        self.recorded_uri.clone()
    }

    fn generate_key_pair(&mut self, spec: &DeviceKeySpec) -> Result<Vec<u8>, TokenError> {
        let key = self.session.generate_key_pair(
            keymgr_key_type(spec.key_type),
            &spec.label,
            Some(spec.id.as_bytes()),
        )?;
        Ok(key.public_key_der)
    }

    fn csr_signer(&self, id: &KeyId) -> Result<Option<Box<dyn ContentSigner + '_>>, TokenError> {
        let session = self.session.open_another()?;
        let uri = self.object_uri(id, Some(ObjectType::Private));
        let key = TokenKey::open_in(session, &uri, &OpenOptions::default())?;
        Ok(Some(Box::new(key)))
    }

    fn write_certificate(&mut self, id: &KeyId, label: &str, der: &[u8]) -> Result<(), TokenError> {
        self.session.write_certificate(der, label, id.as_bytes())?;
        Ok(())
    }

    fn list_objects(&mut self) -> Result<Vec<TokenObject>, TokenError> {
        let summaries = self.session.list_objects(&self.login_uri)?;
        let mut objects = Vec::with_capacity(summaries.len());
        for s in summaries {
            let mut object = token_object(&s);
            // Values are read through the object's URI (id and label); objects lacking them
            // (a creation cut short) keep none. Only the public key object's own value counts:
            // a private key's SPKI is matched through its public key, never through a
            // certificate that may belong to another key.
            match object.class {
                ObjectClass::PublicKey => {
                    object.spki_sha256 = self
                        .session
                        .export_public_key(&s.uri)
                        .ok()
                        .map(|spki| openssl::sha::sha256(&spki))
                }
                ObjectClass::Certificate => {
                    object.certificate = self.session.export_certificate(&s.uri).ok()
                }
                _ => {}
            }
            objects.push(object);
        }
        Ok(objects)
    }

    fn delete_objects(&mut self, id: &KeyId, which: ObjectSelection) -> Result<usize, TokenError> {
        let object_type = match which {
            ObjectSelection::All => None,
            ObjectSelection::Certificates => Some(ObjectType::Cert),
        };
        let deleted = self
            .session
            .delete_objects(&self.object_uri(id, object_type))?;
        Ok(deleted.len())
    }

    fn delete_debris(&mut self, label: &str) -> Result<usize, TokenError> {
        let deleted = self
            .session
            .delete_matching(&self.login_uri, |o| is_debris(&token_object(o), label))?;
        Ok(deleted.len())
    }

    fn ek_certificate(&mut self) -> Result<Option<Vec<u8>>, TokenError> {
        Ok(self.ek_certificate.clone().flatten())
    }
}
