//! Typed bundle parameters: the dm-verity parameters and the crypt key.

use std::fmt;

use zeroize::Zeroizing;

/// Size of the verity root hash, the verity salt and the crypt key, in bytes.
pub const PARAM_LEN: usize = 32;

/// The dm-verity parameters of a verity or crypt bundle (`[bundle] verity-*`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VerityParams {
    /// Root hash of the tree (`verity-hash`).
    pub root_hash: [u8; PARAM_LEN],
    /// The salt (`verity-salt`), prepended to every hashed block.
    pub salt: [u8; PARAM_LEN],
    /// Size of the hash tree in bytes (`verity-size`), a non-zero multiple of 4096.
    pub tree_size: u64,
}

impl VerityParams {
    /// The root hash as lower-case hex, as written in the manifest.
    pub fn root_hash_hex(&self) -> String {
        hex::encode(self.root_hash)
    }

    /// The salt as lower-case hex, as written in the manifest.
    pub fn salt_hex(&self) -> String {
        hex::encode(self.salt)
    }
}

impl fmt::Debug for VerityParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerityParams")
            .field("root_hash", &self.root_hash_hex())
            .field("salt", &self.salt_hex())
            .field("tree_size", &self.tree_size)
            .finish()
    }
}

/// The AES-256 key of a crypt bundle's payload (`[bundle] crypt-key`).
///
/// Zeroized on drop; `Debug` prints `<redacted>`. The hex form is only produced on request, for
/// the signed manifest and the dm-crypt table.
#[derive(Clone, PartialEq, Eq)]
pub struct CryptKey(Zeroizing<[u8; PARAM_LEN]>);

impl CryptKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; PARAM_LEN]) -> Self {
        CryptKey(Zeroizing::new(bytes))
    }

    /// Draws a fresh random key from OpenSSL's CSPRNG.
    pub fn generate() -> crate::Result<Self> {
        let mut key = Zeroizing::new([0u8; PARAM_LEN]);
        openssl::rand::rand_bytes(key.as_mut())
            .map_err(|e| crate::Error::crypto("failed to draw a random crypt key", e))?;
        Ok(CryptKey(key))
    }

    /// Parses 64 hex digits (either case). `None` for anything else.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut key = Zeroizing::new([0u8; PARAM_LEN]);
        hex::decode_to_slice(text, key.as_mut()).ok()?;
        Some(CryptKey(key))
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; PARAM_LEN] {
        &self.0
    }

    /// The key as lower-case hex in a zeroizing buffer.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.as_ref()))
    }
}

impl fmt::Debug for CryptKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CryptKey(<redacted>)")
    }
}

/// A manifest string that holds a secret (the crypt key as written): zeroized on drop, redacted
/// in `Debug`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wraps a string.
    pub fn new(value: String) -> Self {
        SecretString(Zeroizing::new(value))
    }

    /// The secret text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Decodes exactly 32 bytes of hex (either case), as RAUC's `r_hex_decode(s, 32)`.
pub(crate) fn decode32(text: &str) -> Option<[u8; PARAM_LEN]> {
    let mut out = [0u8; PARAM_LEN];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crypt_key_is_redacted_and_round_trips() {
        let hex = "380551e66849063ce8863c7075f47aa024ebdc935e31cae3e1d7ac3fd7a54026";
        let key = CryptKey::from_hex(hex).unwrap();
        assert_eq!(key.to_hex().as_str(), hex);
        let dbg = format!("{key:?}");
        assert!(!dbg.contains("3805"), "{dbg}");
        assert!(CryptKey::from_hex(&hex[2..]).is_none());
        assert!(CryptKey::from_hex(&format!("{}zz", &hex[2..])).is_none());
        assert_eq!(format!("{:?}", SecretString::new(hex.into())), "<redacted>");
    }

    #[test]
    fn decode32_accepts_upper_case_only_with_exact_length() {
        assert!(decode32(&"AB".repeat(32)).is_some());
        assert!(decode32(&"ab".repeat(31)).is_none());
        assert!(decode32(&"ab".repeat(33)).is_none());
    }
}
