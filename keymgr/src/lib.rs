//! Everything that touches a private key: `pkcs11:` URIs, PINs, PKCS#11 modules and sessions,
//! key generation, token signers and decryptors (RSA, ECDH), PEM file keys and the TPM backend.
//!
//! Keys are values behind traits, chosen once from a string:
//!
//! * [`open_signer`]`("pkcs11:token=…;object=…", &options)` → a token key; a path → a PEM key;
//! * [`open_decryptor`] likewise for CMS recipients (ECDH or RSA key transport);
//! * [`load_certificate`] / [`load_certificates`] for the certificates that go with them.
//!
//! Operators and the factory manage token objects through a [`token::TokenSession`]
//! (generate, import, export, delete, list; see [`manage`]).
//!
//! PKCS#11 sessions are RAII values and never shared between threads: a token key serializes its
//! operations on its own session; parallel work opens one key (or session) per worker. PINs are
//! [`pin::Pin`] values: zeroized, redacted in `Debug`, absent from logs and errors.

pub mod decryptor;
pub mod error;
pub mod file_key;
pub mod import;
pub mod key;
pub mod keydata;
pub mod manage;
pub mod module;
pub mod oaep;
pub mod object;
pub mod pin;
pub mod signer;
pub mod spec;
pub mod token;
pub mod token_key;
pub mod tpm;
pub mod uri;

pub use error::{Error, Result};
pub use file_key::FileKey;
pub use key::{Decryptor, KeyInfo, OpenOptions, RsaSignaturePadding, Signer, WithCertificate};
pub use manage::{GeneratedKey, KeyType};
pub use pin::Pin;
pub use spec::{
    KeySpec, load_certificate, load_certificate_with, load_certificates, load_certificates_with,
    open_decryptor, open_decryptor_with, open_decryptor_with_certificate, open_signer,
};
pub use token::{Access, TokenIndex, TokenSession, TokenSummary};
pub use token_key::TokenKey;
pub use uri::{ObjectType, Pkcs11Uri};
