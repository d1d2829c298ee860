//! Everything that touches a private key: `pkcs11:` URIs, PINs, PKCS#11 modules and sessions,
//! key generation, token signers and decryptors (RSA, ECDH), PEM file keys and the TPM backend.

pub mod tpm;
