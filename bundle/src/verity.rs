//! The dm-verity hash tree of verity and crypt bundles (`rauc-format.md` §6).
//!
//! Format 1, SHA-256, 4 KiB data and hash blocks, 32-byte salt hashed *before* each block, no
//! superblock, tree stored directly after the data with the top level first. The output is
//! byte-identical to `veritysetup format --no-superblock`.
//!
//! The work is pure over slices ([`build_tree`], [`verify_tree`]) and spread over every core with
//! rayon; [`append_tree`] and [`verify_file`] map a file and apply them. SHA-256 is OpenSSL's
//! (SHA-NI where the CPU has it).

use std::fs::File;
use std::os::unix::fs::FileExt;

use openssl::sha::Sha256;
use rayon::prelude::*;

use crate::manifest::VerityParams;
use crate::{Error, Progress, Result};

/// Data and hash block size.
pub const BLOCK_SIZE: usize = 4096;
/// SHA-256 digest length.
pub const DIGEST_LEN: usize = 32;
/// Digests per hash block.
pub const HASHES_PER_BLOCK: usize = BLOCK_SIZE / DIGEST_LEN;
/// Salt length used by RAUC.
pub const SALT_LEN: usize = 32;

/// The shape of a hash tree: how many blocks each level has and where it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeGeometry {
    data_blocks: u64,
    /// Block count per level, level 0 (the leaves' digests) first.
    level_blocks: Vec<u64>,
}

impl TreeGeometry {
    /// The geometry for `data_blocks` 4 KiB data blocks (at least 1).
    pub fn new(data_blocks: u64) -> Result<Self> {
        if data_blocks == 0 {
            return Err(Error::size("verity data area is empty"));
        }
        let mut level_blocks = Vec::new();
        let mut k = 0u32;
        // level count = number of k >= 0 with (n - 1) >> 7k != 0 (as cryptsetup's hash_levels);
        // level k has ceil(n / 128^(k+1)) blocks
        while 7 * k < 64 && (data_blocks - 1) >> (7 * k) != 0 {
            let shift = 7 * (k + 1);
            let blocks = if shift >= 64 {
                1
            } else {
                ((data_blocks - 1) >> shift) + 1
            };
            level_blocks.push(blocks);
            k += 1;
        }
        Ok(TreeGeometry {
            data_blocks,
            level_blocks,
        })
    }

    /// The geometry for a data area of `data_size` bytes (a non-zero multiple of 4096).
    pub fn for_data_size(data_size: u64) -> Result<Self> {
        if !data_size.is_multiple_of(BLOCK_SIZE as u64) {
            return Err(Error::size(format!(
                "verity data size {data_size} is not a multiple of 4096"
            )));
        }
        Self::new(data_size / BLOCK_SIZE as u64)
    }

    /// Number of data blocks.
    pub fn data_blocks(&self) -> u64 {
        self.data_blocks
    }

    /// Number of levels (0 for a single data block: the root is that block's digest).
    pub fn levels(&self) -> usize {
        self.level_blocks.len()
    }

    /// Blocks of level `i` (0 = digests of the data blocks).
    pub fn level_blocks(&self, level: usize) -> u64 {
        self.level_blocks[level]
    }

    /// Total hash blocks.
    pub fn tree_blocks(&self) -> u64 {
        self.level_blocks.iter().sum()
    }

    /// Size of the tree in bytes (`verity-size`).
    pub fn tree_size(&self) -> u64 {
        self.tree_blocks() * BLOCK_SIZE as u64
    }

    /// Byte offset of level `i` inside the tree (the top level comes first).
    pub fn level_offset(&self, level: usize) -> u64 {
        self.level_blocks[level + 1..].iter().sum::<u64>() * BLOCK_SIZE as u64
    }
}

/// `SHA256(salt ‖ block)`.
pub fn hash_block(salt: &[u8; SALT_LEN], block: &[u8]) -> [u8; DIGEST_LEN] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(block);
    h.finish()
}

/// Hashes every 4 KiB block of `input` into a zero-padded level buffer of `out_blocks` blocks,
/// in parallel (one task per output hash block).
fn hash_level(salt: &[u8; SALT_LEN], input: &[u8], out_blocks: u64, progress: Progress) -> Vec<u8> {
    let mut out = vec![0u8; out_blocks as usize * BLOCK_SIZE];
    hash_into(salt, input, &mut out, progress);
    out
}

/// Writes the digests of `input`'s 4 KiB blocks into `out` (one hash block per
/// `HASHES_PER_BLOCK` input blocks), in parallel; the rest of `out` is left as it is.
fn hash_into(salt: &[u8; SALT_LEN], input: &[u8], out: &mut [u8], progress: Progress) {
    out.par_chunks_mut(BLOCK_SIZE)
        .zip(input.par_chunks(BLOCK_SIZE * HASHES_PER_BLOCK))
        .for_each(|(dst, src)| {
            for (digest, block) in dst.chunks_exact_mut(DIGEST_LEN).zip(src.chunks(BLOCK_SIZE)) {
                digest.copy_from_slice(&hash_block(salt, block));
            }
            progress(src.len() as u64);
        });
}

/// Data bytes mapped at a time by [`append_tree`] (a multiple of the data one hash block
/// covers, 512 KiB), so that a large payload never has more than this mapped and resident.
const WINDOW: u64 = 64 << 20;

/// Level 0 of the tree over the first `data_size` bytes of `file`, mapped window by window.
fn file_leaves(
    file: &File,
    geometry: &TreeGeometry,
    salt: &[u8; SALT_LEN],
    progress: Progress,
) -> Result<Vec<u8>> {
    let data_size = geometry.data_blocks() * BLOCK_SIZE as u64;
    let covered = (BLOCK_SIZE * HASHES_PER_BLOCK) as u64;
    let mut leaves = vec![0u8; geometry.level_blocks(0) as usize * BLOCK_SIZE];
    let mut offset = 0;
    while offset < data_size {
        let len = WINDOW.min(data_size - offset);
        let map = map_region(file, offset, len)?;
        let first = (offset / covered) as usize * BLOCK_SIZE;
        let out_len = len.div_ceil(covered) as usize * BLOCK_SIZE;
        hash_into(salt, &map, &mut leaves[first..first + out_len], progress);
        offset += len;
    }
    Ok(leaves)
}

/// A computed hash tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// The tree bytes in on-disk order (top level first), `geometry.tree_size()` long.
    pub bytes: Vec<u8>,
    /// The root hash.
    pub root_hash: [u8; DIGEST_LEN],
}

/// Builds the tree over `data` (a non-zero multiple of 4 KiB).
pub fn build_tree(data: &[u8], salt: &[u8; SALT_LEN]) -> Result<Tree> {
    build_tree_reporting(data, salt, &|_| {})
}

/// [`build_tree`], reporting the data bytes hashed.
fn build_tree_reporting(data: &[u8], salt: &[u8; SALT_LEN], progress: Progress) -> Result<Tree> {
    let geometry = TreeGeometry::for_data_size(data.len() as u64)?;
    if geometry.levels() == 0 {
        return Ok(Tree {
            bytes: Vec::new(),
            root_hash: hash_block(salt, data),
        });
    }
    let leaves = hash_level(salt, data, geometry.level_blocks(0), progress);
    Ok(build_from_leaves(&geometry, leaves, salt))
}

/// Completes a tree from its level 0 (the zero-padded digests of the data blocks, e.g. computed
/// while encrypting, see [`crate::crypt::encrypt_and_hash`]).
pub fn build_from_leaves(geometry: &TreeGeometry, leaves: Vec<u8>, salt: &[u8; SALT_LEN]) -> Tree {
    debug_assert_eq!(
        leaves.len() as u64,
        geometry.level_blocks(0) * BLOCK_SIZE as u64
    );
    let mut levels = vec![leaves];
    for i in 1..geometry.levels() {
        let next = hash_level(salt, &levels[i - 1], geometry.level_blocks(i), &|_| {});
        levels.push(next);
    }
    let root_hash = hash_block(salt, levels.last().expect("at least one level"));
    let mut bytes = Vec::with_capacity(geometry.tree_size() as usize);
    for level in levels.iter().rev() {
        bytes.extend_from_slice(level);
    }
    Tree { bytes, root_hash }
}

/// Checks a stored tree against the data, as RAUC's `r_verity_hash_verify`: every level is
/// recomputed and compared (digests and zero spare areas), then the root.
pub fn verify_tree(
    data: &[u8],
    tree: &[u8],
    salt: &[u8; SALT_LEN],
    root_hash: &[u8; DIGEST_LEN],
) -> Result<()> {
    let geometry = TreeGeometry::for_data_size(data.len() as u64)?;
    if tree.len() as u64 != geometry.tree_size() {
        return Err(Error::size(format!(
            "verity tree size {} does not match {} data blocks (expected {})",
            tree.len(),
            geometry.data_blocks(),
            geometry.tree_size()
        )));
    }
    let mut below: &[u8] = data;
    for level in 0..geometry.levels() {
        let offset = geometry.level_offset(level) as usize;
        let len = geometry.level_blocks(level) as usize * BLOCK_SIZE;
        let stored = &tree[offset..offset + len];
        let computed = hash_level(salt, below, geometry.level_blocks(level), &|_| {});
        compare_level(level, &computed, stored, below.len() / BLOCK_SIZE)?;
        below = stored;
    }
    if &hash_block(salt, below) != root_hash {
        return Err(Error::Verity {
            what: "root hash mismatch".into(),
        });
    }
    Ok(())
}

fn compare_level(level: usize, computed: &[u8], stored: &[u8], covered: usize) -> Result<()> {
    if computed == stored {
        return Ok(());
    }
    let pos = computed
        .iter()
        .zip(stored)
        .position(|(a, b)| a != b)
        .unwrap_or(0);
    let entry = pos / DIGEST_LEN;
    let what = if entry < covered {
        let below = if level == 0 {
            "data block"
        } else {
            "hash block of level"
        };
        if level == 0 {
            format!("{below} {entry} is corrupted")
        } else {
            format!("{below} {} entry {entry} is corrupted", level - 1)
        }
    } else {
        format!(
            "spare area of level {level} hash block {} is not zero",
            pos / BLOCK_SIZE
        )
    };
    Err(Error::Verity { what })
}

/// Draws a random 32-byte salt.
pub fn random_salt() -> Result<[u8; SALT_LEN]> {
    let mut salt = [0u8; SALT_LEN];
    openssl::rand::rand_bytes(&mut salt)
        .map_err(|e| Error::crypto("failed to draw a random verity salt", e))?;
    Ok(salt)
}

fn map_region(file: &File, offset: u64, len: u64) -> Result<memmap2::Mmap> {
    let len = usize::try_from(len).map_err(|_| Error::size("data area too large to map"))?;
    // SAFETY: the mapping is read-only; the bundle file is not modified while it is mapped
    // (the writer appends the tree through `write_all_at` after the data region, and callers
    // must not truncate a bundle they are verifying).
    unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(len)
            .map(file)
    }
    .map_err(|e| Error::io("failed to map bundle", "<bundle>", e))
}

/// Builds the tree over the first `data_size` bytes of `file`, writes it right after them
/// (truncating anything beyond) and returns the verity parameters. `progress` receives the data
/// bytes hashed.
pub fn append_tree(
    file: &File,
    data_size: u64,
    salt: &[u8; SALT_LEN],
    progress: Progress,
) -> Result<VerityParams> {
    let geometry = TreeGeometry::for_data_size(data_size)?;
    let file_len = file
        .metadata()
        .map_err(|e| Error::io("failed to stat bundle", "<bundle>", e))?
        .len();
    if file_len < data_size {
        return Err(Error::size(format!(
            "file has {file_len} bytes, fewer than the data size {data_size}"
        )));
    }
    let tree = if geometry.levels() == 0 {
        let map = map_region(file, 0, data_size)?;
        build_tree_reporting(&map, salt, progress)?
    } else {
        build_from_leaves(
            &geometry,
            file_leaves(file, &geometry, salt, progress)?,
            salt,
        )
    };
    write_tree(file, data_size, &geometry, &tree)?;
    Ok(VerityParams {
        root_hash: tree.root_hash,
        salt: *salt,
        tree_size: geometry.tree_size(),
    })
}

/// Writes a computed tree at `data_size` and sets the file length to data + tree.
pub fn write_tree(file: &File, data_size: u64, geometry: &TreeGeometry, tree: &Tree) -> Result<()> {
    let io = |e| Error::io("failed to write verity tree", "<bundle>", e);
    file.set_len(data_size + geometry.tree_size()).map_err(io)?;
    file.write_all_at(&tree.bytes, data_size).map_err(io)
}

/// Verifies the payload of a verity/crypt bundle in userspace: the first `payload_size` bytes of
/// `file` are data (`payload_size − tree_size`) followed by the tree.
pub fn verify_file(file: &File, payload_size: u64, params: &VerityParams) -> Result<()> {
    let data_size = payload_size.checked_sub(params.tree_size).ok_or_else(|| {
        Error::size(format!(
            "verity size {} exceeds the payload size {payload_size}",
            params.tree_size
        ))
    })?;
    let map = map_region(file, 0, payload_size)?;
    let (data, tree) = map.split_at(data_size as usize);
    verify_tree(data, tree, &params.salt, &params.root_hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_matches_rauc_format_examples() {
        let blocks = |n| TreeGeometry::new(n).unwrap().tree_blocks();
        assert_eq!(blocks(1), 0);
        assert_eq!(blocks(2), 1);
        assert_eq!(blocks(5), 1);
        assert_eq!(blocks(128), 1);
        assert_eq!(blocks(129), 3);
        assert_eq!(blocks(257), 4);
        assert_eq!(blocks(16385), 129 + 2 + 1);
        let g = TreeGeometry::new(16385).unwrap();
        assert_eq!(g.levels(), 3);
        assert_eq!(g.level_offset(2), 0);
        assert_eq!(g.level_offset(1), 4096);
        assert_eq!(g.level_offset(0), 3 * 4096);
        assert!(TreeGeometry::new(0).is_err());
        assert!(TreeGeometry::for_data_size(4097).is_err());
        // huge counts do not overflow
        assert!(TreeGeometry::new(u64::MAX / 4096).unwrap().levels() <= 9);
    }
}
