//! Decryption latency through SoftHSM (a benchmark, not a test): an EnvelopedData for 5,000
//! P-256 devices plus one whose key lives in a SoftHSM token (imported with derive usage, its
//! certificate stored next to it) is decrypted in-process with the token key, the recipient
//! being the last of the set: the certificate is matched first (no key operation), then exactly
//! one `C_DeriveKey`. One row per layout; target: under 20 ms.
//!
//! `cargo bench -p pkcs11-tests --bench decrypt`; `DECRYPT_BENCH_DEVICES` (default 5000) sets
//! the number of other devices.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::SystemTime;

use bundle::cms::enveloped::{
    EncryptOptions, RecipientIdKind, RecipientLayout, decrypt, encrypt, load_recipients,
};
use bundle::keys::RsaPadding;
use common::{Alg, Env, PIN, Profile};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509Builder, X509Name, X509NameBuilder};
use pkcs11_tests::bench::{Table, time};

const RUNS: u32 = 20;

fn name(cn: &str) -> X509Name {
    let mut b = X509NameBuilder::new().unwrap();
    b.append_entry_by_text("CN", cn).unwrap();
    b.build()
}

fn p256() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

/// `n` P-256 device certificates (keyAgreement, SKI) from a throwaway CA, as one PEM file.
fn other_devices(path: &Path, n: u32) {
    let ca = p256();
    let mut pem = Vec::new();
    for i in 0..n {
        let key = p256();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        let serial = BigNum::from_u32(i + 1).unwrap().to_asn1_integer().unwrap();
        b.set_serial_number(&serial).unwrap();
        b.set_subject_name(&name(&format!("bench device {i}")))
            .unwrap();
        b.set_issuer_name(&name("bench CA")).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
            .unwrap();
        let usage = KeyUsage::new().key_agreement().build().unwrap();
        b.append_extension(usage).unwrap();
        let ski = SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(ski).unwrap();
        b.sign(&ca, MessageDigest::sha256()).unwrap();
        pem.extend(b.build().to_pem().unwrap());
    }
    std::fs::write(path, pem).unwrap();
}

fn main() {
    let others: u32 = std::env::var("DECRYPT_BENCH_DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    // The token key logs in in-process: PIN from the environment, as rauc does.
    // SAFETY: single-threaded at this point.
    unsafe { std::env::set_var("RAUC_PKCS11_PIN", PIN) };
    let env = Env::new();
    let (cert, key) = env
        .pki
        .file_leaf("device", Alg::P256, Profile::Recipient, None);
    let uri = env.import_key("device", &key, Some(&cert));
    let others_pem = env.path("others.pem");
    eprintln!("generating {others} P-256 device certificates ...");
    other_devices(&others_pem, others);
    let recipients = load_recipients(&[&others_pem, &cert], SystemTime::now()).unwrap();
    let token = keymgr::open_decryptor_with(
        &uri,
        &keymgr::OpenOptions::with_module(softhsm::SOFTHSM_MODULE),
    )
    .unwrap();
    // A stand-in for the SignedData: decryption cost does not depend on what is encrypted.
    let content = vec![0x5a; 1400];

    let mut t = Table::new(&["layout", "CMS bytes", "decrypt ms (mean of 20)", "target"]);
    for (label, layout, recipient_id) in [
        (
            "default",
            RecipientLayout::Default,
            RecipientIdKind::IssuerAndSerial,
        ),
        (
            "compact",
            RecipientLayout::Compact,
            RecipientIdKind::IssuerAndSerial,
        ),
        (
            "compact-ski",
            RecipientLayout::Compact,
            RecipientIdKind::SubjectKeyId,
        ),
    ] {
        let options = EncryptOptions {
            layout,
            recipient_id,
            rsa_padding: RsaPadding::Pkcs1v15,
        };
        let envelope = encrypt(&content, &recipients, &options).unwrap();
        let check = decrypt(&envelope, token.as_ref()).unwrap();
        assert_eq!(
            &check[..],
            &content[..],
            "{label}: decrypted content differs"
        );
        let (elapsed, _) = time(|| {
            for _ in 0..RUNS {
                drop(decrypt(&envelope, token.as_ref()).unwrap());
            }
        });
        let ms = elapsed.as_secs_f64() * 1000.0 / f64::from(RUNS);
        let verdict = if ms < 20.0 {
            "< 20 ms: met"
        } else {
            "< 20 ms: NOT met"
        };
        t.row(vec![
            label.into(),
            envelope.len().to_string(),
            format!("{ms:.2}"),
            verdict.into(),
        ]);
    }
    println!(
        "\nDecryption through SoftHSM (EC P-256 token key, C_DeriveKey), {} recipients, the token's \
         the last:\n",
        others + 1
    );
    print!("{}", t.render());
}
