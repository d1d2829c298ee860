//! Verification states of an opened bundle: `Bundle → SignedBundle → VerifiedBundle`.
