//! The token seam: what the station needs from a device token and from the station HSM.
//!
//! The PKCS#11 (SoftHSM, HSM, tpm2-pkcs11) and TPM-native implementations live in `keymgr` and
//! plug in here; nothing in this crate knows which one it talks to. A [`DeviceToken`] is one
//! logged-in session and is never shared between threads; parallel workers open their own.

use bundle::keys::{ContentSigner, KeyError};

use crate::types::{KeyId, KeyType};

/// Errors from token implementations (wrapped with the device and step by the station).
pub type TokenError = KeyError;

/// The key pair the station asks a device token to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceKeySpec {
    /// `CKA_ID` for the private key, public key and (later) the certificate.
    pub id: KeyId,
    /// `CKA_LABEL` for the same objects.
    pub label: String,
    /// Key type. The private key must be sensitive and never extractable, allowed to sign (for
    /// the CSR) and to derive (EC, for ECDH) or decrypt (RSA).
    pub key_type: KeyType,
}

/// The class of a token object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectClass {
    /// `CKO_PRIVATE_KEY` (or a TPM-native key).
    PrivateKey,
    /// `CKO_PUBLIC_KEY`.
    PublicKey,
    /// `CKO_CERTIFICATE`.
    Certificate,
    /// Anything else.
    Other,
}

/// One object in a device token, as far as reconciliation needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenObject {
    /// Object class.
    pub class: ObjectClass,
    /// `CKA_ID`.
    pub id: KeyId,
    /// `CKA_LABEL`.
    pub label: String,
    /// For keys: SHA-256 of the DER SubjectPublicKeyInfo, if the token exposes the public key.
    pub spki_sha256: Option<[u8; 32]>,
    /// For certificates: the DER value.
    pub certificate: Option<Vec<u8>>,
}

/// Which objects under a key id to delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectSelection {
    /// Private key, public key and certificates.
    All,
    /// Only certificates.
    Certificates,
}

/// A logged-in session on one device's token.
pub trait DeviceToken {
    /// Human description recorded in the inventory (model, manufacturer, serial, label).
    fn description(&self) -> String;

    /// The token's address as the inventory records it (`pkcs11:` URI or `tpm2:` spec): what
    /// `verify` opens later and what the device decrypts with. Never contains a PIN.
    fn uri(&self) -> String;

    /// The key id for a new device key, decided before the intent is recorded. PKCS#11 tokens
    /// draw a random `CKA_ID`; a TPM-native key is identified by its persistent handle (and
    /// refuses a handle that is taken, so a rollback never removes a key it did not make).
    fn allocate_key_id(&mut self) -> Result<KeyId, TokenError> {
        Ok(KeyId::random()?)
    }

    /// Generates a key pair inside the token; returns the DER SubjectPublicKeyInfo.
    fn generate_key_pair(&mut self, spec: &DeviceKeySpec) -> Result<Vec<u8>, TokenError>;

    /// The private key with `id` as a signer, for the CSR (proof of possession). `None` for
    /// keys that cannot sign (a TPM ECDH key): the CA then certifies the public key the token
    /// returned from its own key generation in this session.
    fn csr_signer(&self, id: &KeyId) -> Result<Option<Box<dyn ContentSigner + '_>>, TokenError>;

    /// Stores a certificate under `id` and `label` (`CKO_CERTIFICATE`, `CKC_X_509`).
    fn write_certificate(&mut self, id: &KeyId, label: &str, der: &[u8]) -> Result<(), TokenError>;

    /// Lists the token's objects.
    fn list_objects(&mut self) -> Result<Vec<TokenObject>, TokenError>;

    /// Deletes objects under `id`; returns how many were deleted.
    fn delete_objects(&mut self, id: &KeyId, which: ObjectSelection) -> Result<usize, TokenError>;

    /// Deletes the debris of an object creation cut short: keys and certificates without
    /// `CKA_ID` whose label is empty or `label` (see [`super::plan::is_debris`]); returns how
    /// many were deleted. Tokens that cannot have such objects keep the default.
    fn delete_debris(&mut self, label: &str) -> Result<usize, TokenError> {
        let _ = label;
        Ok(0)
    }

    /// The TPM's endorsement-key certificate (DER), if the token is a TPM that has one.
    fn ek_certificate(&mut self) -> Result<Option<Vec<u8>>, TokenError>;
}

/// Opens device tokens by URI (one session per call; used by every worker).
pub trait DeviceTokens: Sync {
    /// Opens and logs into the token at `uri`.
    fn open(&self, uri: &str) -> Result<Box<dyn DeviceToken + Send>, TokenError>;
}

/// The station HSM holding the CA key (`[ca] key`) and certificate (`[ca] cert`).
pub trait StationHsm: Sync {
    /// Generates the CA key pair inside the HSM; returns the DER SubjectPublicKeyInfo.
    fn generate_ca_key(&self, key_type: KeyType) -> Result<Vec<u8>, TokenError>;

    /// The CA public key (DER SubjectPublicKeyInfo).
    fn ca_public_key(&self) -> Result<Vec<u8>, TokenError>;

    /// A new session's signer for the CA key (each worker opens its own).
    fn open_ca_signer(&self) -> Result<Box<dyn ContentSigner + Send>, TokenError>;

    /// The CA certificate (DER), if stored.
    fn ca_certificate(&self) -> Result<Option<Vec<u8>>, TokenError>;

    /// Stores the CA certificate next to the CA key.
    fn store_ca_certificate(&self, der: &[u8]) -> Result<(), TokenError>;
}
