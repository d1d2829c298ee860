//! TPM-native keys through tss-esapi: ECDH (`TPM2_ECDH_ZGen`) for EC recipients, which tpm2-pkcs11 cannot do.
