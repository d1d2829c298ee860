//! The crypt payload cipher: AES-256-CBC, 4096-byte sectors, plain64 IVs.
