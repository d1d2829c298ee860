//! dm table lines for a bundle payload, as pure functions of plain parameters (the plan).
//!
//! Formats (rauc-format.md §4.2):
//! * `verity 1 <dev> <dev> 4096 4096 <D/4096> <D/4096> sha256 <root> <salt>` over `D/512` sectors —
//!   the hash tree starts right after the data, so the hash start block equals the data block count;
//! * `aes-cbc-plain64 <key> 0 <dev> 0 1 sector_size:4096` over the same length.

use std::fmt;

use zeroize::Zeroizing;

use super::DevNum;
use crate::mount::MountError;

/// Data and hash block size of bundle payloads.
pub const VERITY_BLOCK_SIZE: u64 = 4096;
/// The 512-byte sector unit of dm tables.
pub const SECTOR_SIZE: u64 = 512;
/// SHA-256 digests per 4096-byte hash block.
const HASHES_PER_BLOCK: u64 = VERITY_BLOCK_SIZE / 32;

/// dm-verity parameters of a bundle payload (from the signed manifest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerityParams {
    /// Size D of the verity-protected data (the squashfs, or its ciphertext) in bytes.
    pub data_size: u64,
    /// `verity-hash`: the SHA-256 root hash.
    pub root_hash: [u8; 32],
    /// `verity-salt` (any length; empty means no salt).
    pub salt: Vec<u8>,
}

/// A 256-bit dm-crypt key (`crypt-key`), zeroized on drop and never printed.
#[derive(Clone)]
pub struct CryptKey(Zeroizing<[u8; 32]>);

impl CryptKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> CryptKey {
        CryptKey(Zeroizing::new(bytes))
    }

    /// Parses the manifest's 64-hex-digit `crypt-key`.
    pub fn from_hex(hex_key: &str) -> Result<CryptKey, MountError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex_key.trim(), &mut bytes[..]).map_err(|_| {
            MountError::InvalidParams("crypt key must be 64 hexadecimal digits".into())
        })?;
        Ok(CryptKey(bytes))
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn to_hex(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(64));
        for byte in self.0.iter() {
            out.push(char::from_digit(u32::from(byte >> 4), 16).expect("nibble"));
            out.push(char::from_digit(u32::from(byte & 0xf), 16).expect("nibble"));
        }
        out
    }
}

impl fmt::Debug for CryptKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CryptKey(<redacted>)")
    }
}

/// One dm table line: `start length target params` (start and length in 512-byte sectors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLine<P> {
    /// First sector.
    pub start: u64,
    /// Length in sectors.
    pub length: u64,
    /// Target type (`verity`, `crypt`).
    pub target: &'static str,
    /// Target parameters.
    pub params: P,
}

/// Checks that a data size can be mapped: non-zero and a multiple of 4096.
pub fn check_data_size(data_size: u64) -> Result<(), MountError> {
    if data_size == 0 || !data_size.is_multiple_of(VERITY_BLOCK_SIZE) {
        return Err(MountError::InvalidParams(format!(
            "verity data size {data_size} is not a non-zero multiple of {VERITY_BLOCK_SIZE}"
        )));
    }
    Ok(())
}

/// The verity line over `dev`, whose hash tree starts right after `data_size` bytes.
pub fn verity_line(dev: DevNum, params: &VerityParams) -> Result<TableLine<String>, MountError> {
    check_data_size(params.data_size)?;
    let blocks = params.data_size / VERITY_BLOCK_SIZE;
    let salt = if params.salt.is_empty() {
        "-".to_string()
    } else {
        hex::encode(&params.salt)
    };
    let root = hex::encode(params.root_hash);
    Ok(TableLine {
        start: 0,
        length: params.data_size / SECTOR_SIZE,
        target: "verity",
        params: format!("1 {dev} {dev} 4096 4096 {blocks} {blocks} sha256 {root} {salt}"),
    })
}

/// The crypt line over `dev` (the verity device); the parameters hold the key in hex.
pub fn crypt_line(
    dev: DevNum,
    data_size: u64,
    key: &CryptKey,
) -> Result<TableLine<Zeroizing<String>>, MountError> {
    check_data_size(data_size)?;
    let mut params = Zeroizing::new(String::with_capacity(128));
    params.push_str("aes-cbc-plain64 ");
    params.push_str(&key.to_hex());
    params.push_str(&format!(" 0 {dev} 0 1 sector_size:4096"));
    Ok(TableLine {
        start: 0,
        length: data_size / SECTOR_SIZE,
        target: "crypt",
        params,
    })
}

/// Size in bytes of the smallest dm-verity hash tree (SHA-256, 4096-byte blocks, no superblock)
/// over `data_size` bytes: the lower bound for a payload's `verity-size`.
pub fn min_hash_tree_size(data_size: u64) -> u64 {
    let mut level_blocks = data_size.div_ceil(VERITY_BLOCK_SIZE);
    let mut total = 0u64;
    loop {
        level_blocks = level_blocks.div_ceil(HASHES_PER_BLOCK);
        total += level_blocks;
        if level_blocks <= 1 {
            return total * VERITY_BLOCK_SIZE;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: DevNum = DevNum { major: 7, minor: 0 };

    #[test]
    fn verity_line_matches_rauc_layout() {
        let params = VerityParams {
            data_size: 1_052_672,
            root_hash: [0xab; 32],
            salt: vec![0x01, 0x02],
        };
        let line = verity_line(DEV, &params).unwrap();
        assert_eq!(line.start, 0);
        assert_eq!(line.length, 2056);
        assert_eq!(line.target, "verity");
        assert_eq!(
            line.params,
            format!(
                "1 7:0 7:0 4096 4096 257 257 sha256 {} 0102",
                "ab".repeat(32)
            )
        );
    }

    #[test]
    fn empty_salt_is_a_dash() {
        let params = VerityParams {
            data_size: 8192,
            root_hash: [0; 32],
            salt: vec![],
        };
        assert!(verity_line(DEV, &params).unwrap().params.ends_with(" -"));
    }

    #[test]
    fn crypt_line_matches_rauc_layout() {
        let key = CryptKey::from_hex(&"0f".repeat(32)).unwrap();
        let line = crypt_line(
            DevNum {
                major: 254,
                minor: 0,
            },
            1_052_672,
            &key,
        )
        .unwrap();
        assert_eq!(line.length, 2056);
        assert_eq!(line.target, "crypt");
        assert_eq!(
            *line.params,
            format!(
                "aes-cbc-plain64 {} 0 254:0 0 1 sector_size:4096",
                "0f".repeat(32)
            )
        );
    }

    #[test]
    fn bad_sizes_and_keys_are_rejected() {
        for size in [0, 4095, 4097, 1_052_673] {
            let params = VerityParams {
                data_size: size,
                root_hash: [0; 32],
                salt: vec![1],
            };
            assert!(
                matches!(verity_line(DEV, &params), Err(MountError::InvalidParams(_))),
                "{size}"
            );
        }
        assert!(CryptKey::from_hex("abcd").is_err());
        assert!(CryptKey::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn crypt_key_debug_is_redacted() {
        let key = CryptKey::from_hex(&"5a".repeat(32)).unwrap();
        let text = format!("{key:?}");
        assert!(!text.contains("5a5a"), "{text}");
    }

    #[test]
    fn hash_tree_sizes() {
        // 1 MiB image bundle from environment.md §6.6: 257 data blocks -> 4 hash blocks.
        assert_eq!(min_hash_tree_size(1_052_672), 16384);
        assert_eq!(min_hash_tree_size(4096), 4096);
        assert_eq!(min_hash_tree_size(128 * 4096), 4096);
        assert_eq!(min_hash_tree_size(129 * 4096), 3 * 4096);
        // 128*128 data blocks: 128 leaf hash blocks + 1 root block.
        assert_eq!(min_hash_tree_size(128 * 128 * 4096), 129 * 4096);
    }
}
