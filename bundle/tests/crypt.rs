//! crypt payload cipher: RAUC's dummy.unencrypted/dummy.encrypted vector, a per-sector
//! reference, the fused encrypt+hash pass and the decrypting reader.

use std::io::{Cursor, Read, Seek, SeekFrom};

use bundle::crypt::{self, DecryptingReader, sector_iv};
use bundle::manifest::CryptKey;
use bundle::verity;
use openssl::sha::sha256;
use openssl::symm::{Cipher, Crypter, Mode};

fn vector_key() -> CryptKey {
    CryptKey::from_hex("761305cf2de9a8ff1708eac74676c606630425b22bb8212e5e2314e3e61e8ab5").unwrap()
}

/// `dummy.unencrypted`: 12288 bytes of a big-endian u32 counter.
fn dummy_unencrypted() -> Vec<u8> {
    (0u32..3072).flat_map(u32::to_be_bytes).collect()
}

/// Pseudo-random bytes (xorshift), deterministic.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Straightforward per-sector AES-256-CBC, the reference for the interleaved implementation.
fn reference_encrypt(data: &[u8], key: &CryptKey, first_sector: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for (i, sector) in data.chunks(4096).enumerate() {
        let iv = sector_iv(first_sector + i as u64);
        let mut c = Crypter::new(
            Cipher::aes_256_cbc(),
            Mode::Encrypt,
            key.as_bytes(),
            Some(&iv),
        )
        .unwrap();
        c.pad(false);
        let mut buf = vec![0u8; 4096 + 16];
        let n = c.update(sector, &mut buf).unwrap();
        assert_eq!(n, 4096);
        out.extend_from_slice(&buf[..4096]);
    }
    out
}

#[test]
fn rauc_dummy_encrypted_vector() {
    let mut data = dummy_unencrypted();
    assert_eq!(
        hex::encode(sha256(&data)),
        "af1fde9c3e05262f15c5a1dc29a1c78b499536cdb886cf22d6fa38d0f994d547"
    );
    crypt::encrypt_in_place(&mut data, &vector_key(), 0).unwrap();
    assert_eq!(
        hex::encode(sha256(&data)),
        "94d7d5b345a19361538d1189285dfc4d5e28b0420da771f8d21213cbb30d05e9"
    );
    let firsts: Vec<String> = data.chunks(4096).map(|s| hex::encode(&s[..16])).collect();
    assert_eq!(
        firsts,
        [
            "8f4c0147599c96e32d97abd0c213ff8c",
            "d0c18b2419d6172308127bc602f8812a",
            "8bbe3978be214c52edc0f213fa8fd94d"
        ]
    );
    crypt::decrypt_in_place(&mut data, &vector_key(), 0).unwrap();
    assert_eq!(data, dummy_unencrypted());
}

#[test]
fn interleaved_encryption_matches_per_sector_reference() {
    let key = CryptKey::from_bytes(noise(32, 9).try_into().unwrap());
    // 301 sectors: not a multiple of any group or chunk size; several start sectors
    for first in [0u64, 7, 1 << 40] {
        let plain = noise(301 * 4096, first + 1);
        let mut data = plain.clone();
        crypt::encrypt_in_place(&mut data, &key, first).unwrap();
        assert!(
            data == reference_encrypt(&plain, &key, first),
            "first sector {first}"
        );
        crypt::decrypt_in_place(&mut data, &key, first).unwrap();
        assert!(data == plain);
    }
}

#[test]
fn fused_encrypt_and_hash_equals_encrypt_then_tree() {
    let key = CryptKey::from_bytes([3; 32]);
    let salt = [5u8; 32];
    let plain = noise(300 * 4096, 77);
    let mut fused = plain.clone();
    let leaves = crypt::encrypt_and_hash(&mut fused, &key, &salt).unwrap();
    let geometry = verity::TreeGeometry::new(300).unwrap();
    let tree = verity::build_from_leaves(&geometry, leaves, &salt);
    let mut separate = plain.clone();
    crypt::encrypt_in_place(&mut separate, &key, 0).unwrap();
    assert!(fused == separate);
    assert_eq!(tree, verity::build_tree(&separate, &salt).unwrap());
}

#[test]
fn file_pass_builds_a_payload_veritysetup_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("payload");
    let plain = noise(130 * 4096, 5);
    std::fs::write(&path, &plain).unwrap();
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let key = CryptKey::from_bytes([8; 32]);
    let salt = [6u8; 32];
    let params =
        crypt::encrypt_file_and_append_tree(&file, plain.len() as u64, &key, &salt, &|_| {})
            .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, plain.len() as u64 + params.tree_size);
    assert!(bytes[..plain.len()] == reference_encrypt(&plain, &key, 0)[..]);
    let status = std::process::Command::new("veritysetup")
        .args(["verify", "--no-superblock", "--data-blocks=130"])
        .arg(format!("--hash-offset={}", plain.len()))
        .arg(format!("--salt={}", params.salt_hex()))
        .arg(&path)
        .arg(&path)
        .arg(params.root_hash_hex())
        .status()
        .unwrap();
    assert!(status.success());
    verity::verify_file(&file, bytes.len() as u64, &params).unwrap();
}

#[test]
fn decrypting_reader_reads_and_seeks_anywhere() {
    let key = CryptKey::from_bytes([4; 32]);
    let plain = noise(40 * 4096, 11);
    let mut enc = plain.clone();
    crypt::encrypt_in_place(&mut enc, &key, 0).unwrap();
    // region at offset 100 inside a larger buffer, followed by trailing bytes
    let mut container = vec![0xEE; 100];
    container.extend_from_slice(&enc);
    container.extend_from_slice(&[0xDD; 500]);
    let mut r = DecryptingReader::new(Cursor::new(container), key, 100, enc.len() as u64).unwrap();
    let mut all = Vec::new();
    r.read_to_end(&mut all).unwrap();
    assert!(all == plain);
    for (pos, len) in [
        (0u64, 10usize),
        (4090, 20),
        (8192, 8192),
        (12345, 70000),
        (163830, 100),
    ] {
        r.seek(SeekFrom::Start(pos)).unwrap();
        let mut buf = vec![0u8; len];
        let mut got = 0;
        while got < len {
            let n = r.read(&mut buf[got..]).unwrap();
            if n == 0 {
                break;
            }
            got += n;
        }
        let end = (pos as usize + len).min(plain.len());
        assert_eq!(&buf[..got], &plain[pos as usize..end], "at {pos}+{len}");
    }
    assert_eq!(r.seek(SeekFrom::End(-1)).unwrap(), plain.len() as u64 - 1);
    assert!(
        r.seek(SeekFrom::Current(-(plain.len() as i64) - 5))
            .is_err()
    );
    assert!(
        DecryptingReader::new(Cursor::new(vec![]), CryptKey::from_bytes([0; 32]), 0, 10).is_err()
    );
}
