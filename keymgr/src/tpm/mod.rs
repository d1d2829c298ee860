//! TPM-native keys through tss-esapi: ECDH (`TPM2_ECDH_ZGen`) for EC recipients, which
//! tpm2-pkcs11 cannot do, and the TPM's EK certificate.
//!
//! * Factory: [`create_persistent_ecdh_key`] creates an unrestricted P-256/P-384 ECDH key under
//!   the owner SRK, persists it at a handle and returns its SubjectPublicKeyInfo for the CA.
//! * Device: [`TpmEcdhKey::open`] opens it by a spec string such as
//!   `tpm2:handle=0x81000100;cert=/etc/ota/device.pem` and implements
//!   [`bundle::keys::RecipientKey`]: the bundle's KARI ephemeral point goes to the TPM, Z comes
//!   back, and the X9.63 KDF and key unwrap run in software (`bundle::cms::enveloped`).
//! * [`read_ek_certificate`] returns the EK certificate and its SHA-256 fingerprint.
//!
//! The TCTI comes from the spec's `tcti=`, else `TPM2TOOLS_TCTI`, else `TCTI`. Every operation
//! opens its own connection and flushes whatever it loaded: swtpm and TPMs without a resource
//! manager have only three object slots.

mod ek;
mod error;
mod key;
mod spec;

pub use ek::{EK_CERT_NV_ECC_P256, EK_CERT_NV_RSA_2048, EkCertificate, read_ek_certificate};
pub use error::TpmError;
pub use key::{TpmEcdhKey, create_persistent_ecdh_key, evict_persistent_key};
pub use spec::{DEFAULT_TCTI, SCHEME, TpmKeySpec, parse_persistent_handle, resolve_tcti};
