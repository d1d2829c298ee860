//! PKCS#11 URIs, tokens, token and file keys (sign, decrypt, ECDH), TPM backend.
