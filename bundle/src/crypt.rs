//! The crypt payload cipher (`rauc-format.md` §4.1): AES-256-CBC without padding over
//! independent 4096-byte sectors, IV = `le64(sector × 8) ‖ 0^8` (dm-crypt `aes-cbc-plain64`
//! with `sector_size:4096`, without `iv_large_sectors`).
//!
//! Sectors are independent, so every function here spreads them over all cores. CBC encryption
//! of one sector is serial (each block needs the previous ciphertext), so encryption interleaves
//! many sectors: block `j` of a group of sectors is encrypted in one AES-ECB call, which lets
//! AES-NI pipeline them. [`encrypt_and_hash`] fuses encryption with the dm-verity leaf hashing so
//! a crypt bundle costs one pass over the data. [`DecryptingReader`] reads plaintext out of an
//! encrypted region without a temporary file.

use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

use openssl::cipher::Cipher;
use openssl::cipher_ctx::CipherCtx;
use rayon::prelude::*;
use zeroize::Zeroizing;

use crate::manifest::CryptKey;
use crate::verity::{self, BLOCK_SIZE, DIGEST_LEN, HASHES_PER_BLOCK, SALT_LEN, TreeGeometry};
use crate::{Error, Result};

/// The dm-crypt sector size RAUC uses.
pub const SECTOR_SIZE: usize = 4096;
const AES_BLOCK: usize = 16;
const BLOCKS_PER_SECTOR: usize = SECTOR_SIZE / AES_BLOCK;
/// Sectors whose CBC chains are interleaved in one ECB call.
const GROUP: usize = 8;

/// The plain64 IV of 4096-byte sector `sector`: the 512-byte sector number, little-endian.
pub fn sector_iv(sector: u64) -> [u8; AES_BLOCK] {
    let mut iv = [0u8; AES_BLOCK];
    iv[..8].copy_from_slice(&sector.wrapping_mul(8).to_le_bytes());
    iv
}

fn check_len(len: usize) -> Result<()> {
    if !len.is_multiple_of(SECTOR_SIZE) {
        return Err(Error::size(format!(
            "Incomplete read: Input size must be multiple of 4096 (got {len} bytes)"
        )));
    }
    Ok(())
}

fn ecb_encryptor(key: &CryptKey) -> Result<CipherCtx> {
    let mut ctx = CipherCtx::new().map_err(|e| Error::crypto("failed to create cipher", e))?;
    ctx.encrypt_init(Some(Cipher::aes_256_ecb()), Some(key.as_bytes()), None)
        .map_err(|e| Error::crypto("failed to set up AES-256-ECB", e))?;
    ctx.set_padding(false);
    Ok(ctx)
}

/// Encrypts up to [`GROUP`] consecutive sectors (`data`, whose first sector has number
/// `first_sector`) by interleaving their CBC chains: block `j` of every sector goes through one
/// AES-ECB call, so AES-NI pipelines the independent chains.
fn encrypt_group(ctx: &mut CipherCtx, data: &mut [u8], first_sector: u64) -> Result<()> {
    let n = data.len() / SECTOR_SIZE;
    let mut chain = [0u128; GROUP];
    for (s, c) in chain.iter_mut().enumerate().take(n) {
        *c = u128::from_ne_bytes(sector_iv(first_sector + s as u64));
    }
    let mut input = Zeroizing::new([0u8; GROUP * AES_BLOCK]);
    let mut output = [0u8; GROUP * AES_BLOCK];
    let len = n * AES_BLOCK;
    for j in 0..BLOCKS_PER_SECTOR {
        for (s, (dst, c)) in input
            .chunks_exact_mut(AES_BLOCK)
            .zip(&chain)
            .take(n)
            .enumerate()
        {
            let at = s * SECTOR_SIZE + j * AES_BLOCK;
            let block: [u8; AES_BLOCK] = data[at..at + AES_BLOCK].try_into().expect("16 bytes");
            dst.copy_from_slice(&(u128::from_ne_bytes(block) ^ c).to_ne_bytes());
        }
        // SAFETY: padding is off and every call passes whole blocks, so the context never
        // buffers a partial block and writes exactly `len` bytes, which `output` can hold.
        unsafe { ctx.cipher_update_unchecked(&input[..len], Some(&mut output[..len])) }
            .map_err(|e| Error::crypto("AES-256-CBC encryption failed", e))?;
        for (s, (out, c)) in output
            .chunks_exact(AES_BLOCK)
            .zip(chain.iter_mut())
            .take(n)
            .enumerate()
        {
            let at = s * SECTOR_SIZE + j * AES_BLOCK;
            data[at..at + AES_BLOCK].copy_from_slice(out);
            *c = u128::from_ne_bytes(out.try_into().expect("16 bytes"));
        }
    }
    Ok(())
}

fn encrypt_sectors(ctx: &mut CipherCtx, data: &mut [u8], first_sector: u64) -> Result<()> {
    for (g, group) in data.chunks_mut(GROUP * SECTOR_SIZE).enumerate() {
        encrypt_group(ctx, group, first_sector + (g * GROUP) as u64)?;
    }
    Ok(())
}

/// Encrypts `data` in place; its first sector has number `first_sector` (0 for a payload).
pub fn encrypt_in_place(data: &mut [u8], key: &CryptKey, first_sector: u64) -> Result<()> {
    check_len(data.len())?;
    data.par_chunks_mut(SECTOR_SIZE * HASHES_PER_BLOCK)
        .enumerate()
        .try_for_each(|(i, chunk)| {
            let mut ctx = ecb_encryptor(key)?;
            encrypt_sectors(
                &mut ctx,
                chunk,
                first_sector + (i * HASHES_PER_BLOCK) as u64,
            )
        })
}

fn decrypt_sectors(data: &mut [u8], key: &CryptKey, first_sector: u64) -> Result<()> {
    let err = |e| Error::crypto("AES-256-CBC decryption failed", e);
    let mut ctx = CipherCtx::new().map_err(err)?;
    ctx.decrypt_init(Some(Cipher::aes_256_cbc()), Some(key.as_bytes()), None)
        .map_err(err)?;
    ctx.set_padding(false);
    let mut out = Zeroizing::new(vec![0u8; SECTOR_SIZE + AES_BLOCK]);
    for (i, sector) in data.chunks_mut(SECTOR_SIZE).enumerate() {
        ctx.decrypt_init(None, None, Some(&sector_iv(first_sector + i as u64)))
            .map_err(err)?;
        ctx.cipher_update(sector, Some(&mut out[..])).map_err(err)?;
        sector.copy_from_slice(&out[..SECTOR_SIZE]);
    }
    Ok(())
}

/// Decrypts `data` in place; its first sector has number `first_sector`.
pub fn decrypt_in_place(data: &mut [u8], key: &CryptKey, first_sector: u64) -> Result<()> {
    check_len(data.len())?;
    data.par_chunks_mut(SECTOR_SIZE * 64)
        .enumerate()
        .try_for_each(|(i, chunk)| decrypt_sectors(chunk, key, first_sector + i as u64 * 64))
}

/// Encrypts one chunk of up to 128 sectors and writes the digests of the ciphertext blocks.
fn encrypt_hash_chunk(
    ctx: &mut CipherCtx,
    chunk: &mut [u8],
    first_sector: u64,
    digests: &mut [u8],
    salt: &[u8; SALT_LEN],
) -> Result<()> {
    for (g, group) in chunk.chunks_mut(GROUP * SECTOR_SIZE).enumerate() {
        encrypt_group(ctx, group, first_sector + (g * GROUP) as u64)?;
        let out = &mut digests[g * GROUP * DIGEST_LEN..];
        for (d, block) in out
            .chunks_exact_mut(DIGEST_LEN)
            .zip(group.chunks(BLOCK_SIZE))
        {
            d.copy_from_slice(&verity::hash_block(salt, block));
        }
    }
    Ok(())
}

/// Encrypts `data` (a whole payload, sector 0 first) in place and returns level 0 of its
/// dm-verity tree (the zero-padded digests of the *ciphertext* blocks), in one pass: each chunk
/// is hashed while it is still in the cache. Complete the tree with
/// [`verity::build_from_leaves`].
pub fn encrypt_and_hash(data: &mut [u8], key: &CryptKey, salt: &[u8; SALT_LEN]) -> Result<Vec<u8>> {
    check_len(data.len())?;
    let geometry = TreeGeometry::for_data_size(data.len() as u64)?;
    let leaf_blocks = if geometry.levels() == 0 {
        1
    } else {
        geometry.level_blocks(0)
    };
    let mut leaves = vec![0u8; leaf_blocks as usize * BLOCK_SIZE];
    leaves
        .par_chunks_mut(BLOCK_SIZE)
        .zip(data.par_chunks_mut(SECTOR_SIZE * HASHES_PER_BLOCK))
        .enumerate()
        .try_for_each(|(i, (digests, chunk))| {
            let mut ctx = ecb_encryptor(key)?;
            encrypt_hash_chunk(
                &mut ctx,
                chunk,
                (i * HASHES_PER_BLOCK) as u64,
                digests,
                salt,
            )
        })?;
    Ok(leaves)
}

/// Encrypts the first `data_size` bytes of `file` in place, appends the dm-verity tree over the
/// ciphertext and returns the verity parameters: the whole crypt payload in one pass.
/// `progress` receives the data bytes encrypted and hashed.
pub fn encrypt_file_and_append_tree(
    file: &std::fs::File,
    data_size: u64,
    key: &CryptKey,
    salt: &[u8; SALT_LEN],
    progress: crate::Progress,
) -> Result<crate::manifest::VerityParams> {
    let geometry = TreeGeometry::for_data_size(data_size)?;
    let tree = if geometry.levels() == 0 {
        let mut block = Zeroizing::new(vec![0u8; SECTOR_SIZE]);
        let io = |e| Error::io("failed to encrypt payload", "<bundle>", e);
        file.read_exact_at(&mut block, 0).map_err(io)?;
        encrypt_in_place(&mut block, key, 0)?;
        file.write_all_at(&block, 0).map_err(io)?;
        verity::build_tree(&block, salt)?
    } else {
        let leaves = encrypt_and_hash_file(file, data_size, &geometry, key, salt, progress)?;
        verity::build_from_leaves(&geometry, leaves, salt)
    };
    verity::write_tree(file, data_size, &geometry, &tree)?;
    Ok(crate::manifest::VerityParams {
        root_hash: tree.root_hash,
        salt: *salt,
        tree_size: geometry.tree_size(),
    })
}

/// The file variant of [`encrypt_and_hash`]: chunks of 128 sectors are read, encrypted, hashed
/// and written back by every core in parallel (positioned I/O through the page cache, which is
/// cheaper than faulting in a writable mapping).
fn encrypt_and_hash_file(
    file: &std::fs::File,
    data_size: u64,
    geometry: &TreeGeometry,
    key: &CryptKey,
    salt: &[u8; SALT_LEN],
    progress: crate::Progress,
) -> Result<Vec<u8>> {
    const CHUNK: u64 = (SECTOR_SIZE * HASHES_PER_BLOCK) as u64;
    let io = |e| Error::io("failed to encrypt payload", "<bundle>", e);
    let mut leaves = vec![0u8; geometry.level_blocks(0) as usize * BLOCK_SIZE];
    leaves
        .par_chunks_mut(BLOCK_SIZE)
        .enumerate()
        .try_for_each_init(
            || Zeroizing::new(vec![0u8; CHUNK as usize]),
            |buf, (i, digests)| {
                let offset = i as u64 * CHUNK;
                let len = CHUNK.min(data_size - offset) as usize;
                let chunk = &mut buf[..len];
                file.read_exact_at(chunk, offset).map_err(io)?;
                let mut ctx = ecb_encryptor(key)?;
                encrypt_hash_chunk(
                    &mut ctx,
                    chunk,
                    i as u64 * HASHES_PER_BLOCK as u64,
                    digests,
                    salt,
                )?;
                file.write_all_at(chunk, offset).map_err(io)?;
                progress(len as u64);
                Ok::<(), Error>(())
            },
        )?;
    Ok(leaves)
}

/// A `Read + Seek` view of the plaintext of an encrypted region `[offset, offset + len)` of an
/// inner reader (e.g. the squashfs inside a crypt bundle). Whole aligned sectors are decrypted
/// straight into the caller's buffer; partial reads go through a one-sector cache.
pub struct DecryptingReader<R> {
    inner: R,
    key: CryptKey,
    offset: u64,
    len: u64,
    pos: u64,
    cached: Option<u64>,
    sector: Zeroizing<Vec<u8>>,
}

impl<R: Read + Seek> DecryptingReader<R> {
    /// Wraps the region `[offset, offset + len)` of `inner`; `len` must be a multiple of 4096.
    pub fn new(inner: R, key: CryptKey, offset: u64, len: u64) -> Result<Self> {
        if !len.is_multiple_of(SECTOR_SIZE as u64) {
            return Err(Error::size(format!(
                "Incomplete read: Input size must be multiple of 4096 (got {len} bytes)"
            )));
        }
        Ok(DecryptingReader {
            inner,
            key,
            offset,
            len,
            pos: 0,
            cached: None,
            sector: Zeroizing::new(vec![0u8; SECTOR_SIZE]),
        })
    }

    /// Gives back the inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn read_raw(&mut self, sector: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner
            .seek(SeekFrom::Start(self.offset + sector * SECTOR_SIZE as u64))?;
        self.inner.read_exact(buf)
    }

    fn to_io(e: Error) -> io::Error {
        io::Error::other(e.to_string())
    }
}

impl<R: Read + Seek> Read for DecryptingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let sector = self.pos / SECTOR_SIZE as u64;
        let within = (self.pos % SECTOR_SIZE as u64) as usize;
        let remaining = self.len - self.pos;
        let whole = (buf.len() as u64).min(remaining) as usize / SECTOR_SIZE;
        if within == 0 && whole > 0 {
            let n = whole.min(256) * SECTOR_SIZE;
            self.read_raw(sector, &mut buf[..n])?;
            decrypt_in_place(&mut buf[..n], &self.key, sector).map_err(Self::to_io)?;
            self.pos += n as u64;
            return Ok(n);
        }
        if self.cached != Some(sector) {
            let mut raw = std::mem::take(&mut self.sector);
            self.cached = None;
            self.read_raw(sector, &mut raw)?;
            decrypt_sectors(&mut raw, &self.key, sector).map_err(Self::to_io)?;
            self.sector = raw;
            self.cached = Some(sector);
        }
        let n = (SECTOR_SIZE - within)
            .min(buf.len())
            .min(remaining as usize);
        buf[..n].copy_from_slice(&self.sector[within..within + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for DecryptingReader<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let target = target.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "seek before start of region")
        })?;
        self.pos = target;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain64_iv_counts_512_byte_sectors() {
        assert_eq!(sector_iv(0), [0; 16]);
        assert_eq!(sector_iv(1)[..8], 8u64.to_le_bytes());
        assert_eq!(sector_iv(2)[..8], 16u64.to_le_bytes());
        assert_eq!(sector_iv(1)[8..], [0; 8]);
    }

    #[test]
    fn unaligned_input_is_refused() {
        let key = CryptKey::from_bytes([1; 32]);
        let err = encrypt_in_place(&mut [0u8; 100], &key, 0).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("Incomplete read: Input size must be multiple of 4096")
        );
        assert!(decrypt_in_place(&mut [0u8; 4095], &key, 0).is_err());
    }
}
