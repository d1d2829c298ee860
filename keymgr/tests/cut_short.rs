//! Objects whose creation was cut short (what a SIGKILL during SoftHSM's C_CreateObject leaves:
//! an object file holding only its first attributes) are listed, with unreadable attributes as
//! absent, and can be deleted with `delete_matching`.

mod common;

use common::Fixture;
use keymgr::{ObjectType, Pkcs11Uri};

/// Cuts a SoftHSM object file before the first attribute of type `stop` or higher. The file is
/// a u64 header and then, sorted by type, entries of u64 type, u64 kind and a value: one byte
/// (kind 1, bool), eight bytes (kind 2, number) or a u64 length and bytes (kind 3).
fn cut_object_file(path: &std::path::Path, stop: u64) {
    let data = std::fs::read(path).unwrap();
    let u64_at = |i: usize| u64::from_be_bytes(data[i..i + 8].try_into().unwrap());
    let mut i = 8;
    while i < data.len() && u64_at(i) < stop {
        i += 16
            + match u64_at(i + 8) {
                1 => 1,
                2 => 8,
                _ => 8 + u64_at(i + 16) as usize,
            };
    }
    std::fs::write(path, &data[..i]).unwrap();
}

#[test]
fn an_object_without_id_is_listed_and_deleted() {
    let fx = Fixture::new("cut");
    let ca = common::ca_key();
    let cert = common::certificate_for(&ca.public_key_to_der().unwrap(), "cut short", &ca);
    fx.token
        .write_certificate(&cert.to_der().unwrap(), "0a", "lab")
        .unwrap();
    // Another object that must survive.
    fx.token
        .generate_key("EC:prime256v1", "0b", "keep")
        .unwrap();
    let tokens = fx.dir().join("tokens");
    let object_file = std::fs::read_dir(&tokens)
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .map(|f| f.path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "object")
                && !p.ends_with("token.object")
                && std::fs::read(p).unwrap().windows(3).any(|w| w == b"lab")
        })
        .expect("the certificate's object file");
    cut_object_file(&object_file, 0x102); // CKA_ID and everything after it are missing

    let ts = fx.session();
    let token = Pkcs11Uri::for_token("cut");
    let objects = ts.list_objects(&token).unwrap();
    let cut = objects
        .iter()
        .find(|o| o.object_type == ObjectType::Cert)
        .expect("the cut-short certificate is listed");
    assert!(cut.id.is_empty(), "{cut:?}");
    assert_eq!(cut.label, "lab");
    assert_eq!(objects.len(), 3, "{objects:?}");
    let deleted = ts
        .delete_matching(&token, |o| o.id.is_empty() && o.label == "lab")
        .unwrap();
    assert_eq!(deleted.len(), 1);
    let left = ts.list_objects(&token).unwrap();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|o| o.label == "keep"));
}
