//! CMS SignedData verification with OpenSSL, with the semantics of RAUC targets.
