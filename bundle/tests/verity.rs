//! dm-verity tree: byte identity with `veritysetup`, RAUC's `dummy.verity` vector, and
//! detection of every kind of corruption.

use std::fs::{self, File};
use std::path::Path;
use std::process::Command;

use bundle::verity::{self, TreeGeometry, append_tree, verify_file};

const SALT_HEX: &str = "799ea94008bbdc6555d7895d1b647e2abfd213171f0e8b670e1da951406f4691";

fn salt() -> [u8; 32] {
    hex::decode(SALT_HEX).unwrap().try_into().unwrap()
}

/// Block `i` = 1024 big-endian u32 values all equal to `i` (RAUC's `dummy.verity` data).
fn counter_blocks(n: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(n as usize * 4096);
    for i in 0..n {
        let word = i.to_be_bytes();
        let block: Vec<u8> = word.repeat(1024);
        out.extend_from_slice(&block);
    }
    out
}

/// Runs `veritysetup format` exactly as rauc-format.md §6 and returns the root hash.
fn veritysetup_format(img: &Path, data_size: u64, salt_hex: &str) -> String {
    let out = Command::new("veritysetup")
        .arg("format")
        .arg(img)
        .arg(img)
        .args(["--no-superblock", "--format=1", "--hash=sha256"])
        .args(["--data-block-size=4096", "--hash-block-size=4096"])
        .arg(format!("--hash-offset={data_size}"))
        .arg(format!("--salt={salt_hex}"))
        .output()
        .expect("veritysetup runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .expect("root hash line")
        .trim()
        .to_string()
}

fn check_against_veritysetup(blocks: u32) {
    let dir = tempfile::tempdir().unwrap();
    let data = counter_blocks(blocks);
    let ours = dir.path().join("ours.img");
    let theirs = dir.path().join("theirs.img");
    fs::write(&ours, &data).unwrap();
    fs::write(&theirs, &data).unwrap();
    let root = veritysetup_format(&theirs, data.len() as u64, SALT_HEX);
    let file = File::options().read(true).write(true).open(&ours).unwrap();
    let params = append_tree(&file, data.len() as u64, &salt(), &|_| {}).unwrap();
    assert_eq!(
        params.root_hash_hex(),
        root,
        "root hash for {blocks} blocks"
    );
    let (a, b) = (fs::read(&ours).unwrap(), fs::read(&theirs).unwrap());
    assert_eq!(a.len(), b.len(), "file size for {blocks} blocks");
    assert!(a == b, "tree bytes differ for {blocks} blocks");
    assert_eq!(
        params.tree_size,
        TreeGeometry::new(blocks.into()).unwrap().tree_size()
    );
    verify_file(&file, a.len() as u64, &params).unwrap();
}

#[test]
fn identical_to_veritysetup_1_block() {
    check_against_veritysetup(1);
}

#[test]
fn identical_to_veritysetup_128_blocks() {
    check_against_veritysetup(128);
}

#[test]
fn identical_to_veritysetup_129_blocks() {
    check_against_veritysetup(129);
}

#[test]
fn identical_to_veritysetup_16385_blocks() {
    check_against_veritysetup(16385);
}

#[test]
fn identical_to_veritysetup_across_mapping_windows() {
    // 64 MiB windows: 16384 blocks each; this data spans three windows, the last partial.
    check_against_veritysetup(2 * 16384 + 129);
}

#[test]
fn rauc_dummy_verity_vector() {
    let data = counter_blocks(129);
    assert_eq!(data.len(), 528384);
    let tree = verity::build_tree(&data, &salt()).unwrap();
    assert_eq!(data.len() + tree.bytes.len(), 540672);
    assert_eq!(
        hex::encode(tree.root_hash),
        "3049cbffaa49c6dc12e9cd1dd4604ef5a290e3d13b379c5a50d356e68423de23"
    );
}

#[test]
fn every_corruption_is_detected() {
    let n = 16385u32;
    let data = counter_blocks(n);
    let s = salt();
    let tree = verity::build_tree(&data, &s).unwrap();
    let g = TreeGeometry::new(n.into()).unwrap();
    verity::verify_tree(&data, &tree.bytes, &s, &tree.root_hash).unwrap();

    let expect_err = |d: &[u8], t: &[u8], want: &str| {
        let err = verity::verify_tree(d, t, &s, &tree.root_hash)
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "expected '{want}' in '{err}'");
    };
    // a data byte in the last block
    let mut d = data.clone();
    *d.last_mut().unwrap() ^= 1;
    expect_err(&d, &tree.bytes, "data block 16384 is corrupted");
    // a digest in every level, and the spare area of every level's last block
    for level in 0..g.levels() {
        let start = g.level_offset(level) as usize;
        let mut t = tree.bytes.clone();
        t[start + 5] ^= 0x80;
        expect_err(&data, &t, "corrupted");
        let end = start + g.level_blocks(level) as usize * 4096;
        let mut t = tree.bytes.clone();
        t[end - 1] = 1;
        expect_err(&data, &t, &format!("spare area of level {level}"));
    }
    // the top block's first digest: caught as a level-(L-1) mismatch; a wrong root
    let mut wrong_root = tree.root_hash;
    wrong_root[0] ^= 1;
    let err = verity::verify_tree(&data, &tree.bytes, &s, &wrong_root).unwrap_err();
    assert!(err.to_string().contains("root hash mismatch"));
    // a wrong salt or a truncated tree
    assert!(verity::verify_tree(&data, &tree.bytes, &[0; 32], &tree.root_hash).is_err());
    assert!(verity::verify_tree(&data, &tree.bytes[4096..], &s, &tree.root_hash).is_err());
}
