//! EnvelopedData round trips, decryption errors, the size model and the structure we write.

mod enveloped_common;

use bundle::Error;
use bundle::cms::enveloped::{
    EncryptOptions, ListedId, RecipientIdKind, RecipientLayout, decrypt, encrypt, envelope_size,
    fit_per_layout, list_recipients, recipients_fitting,
};
use bundle::keys::RsaPadding;
use enveloped_common::{Alg, BrokenKey, FileKey, Pki, fake_signed_data, key_kind};

fn all_options() -> Vec<EncryptOptions> {
    let mut v = Vec::new();
    for layout in [RecipientLayout::Default, RecipientLayout::Compact] {
        for recipient_id in [
            RecipientIdKind::IssuerAndSerial,
            RecipientIdKind::SubjectKeyId,
        ] {
            for rsa_padding in [RsaPadding::Pkcs1v15, RsaPadding::OaepSha256] {
                v.push(EncryptOptions {
                    layout,
                    recipient_id,
                    rsa_padding,
                });
            }
        }
    }
    v
}

#[test]
fn every_recipient_decrypts_in_every_layout_with_one_key_operation() {
    let pki = Pki::new();
    let algs = [
        Alg::P256,
        Alg::Rsa(2048),
        Alg::P384,
        Alg::P256,
        Alg::Rsa(3072),
        Alg::P256,
    ];
    let people: Vec<_> = algs
        .iter()
        .enumerate()
        .map(|(i, a)| pki.recipient(*a, &format!("device {i}")))
        .collect();
    let recipients: Vec<_> = people.iter().map(|p| p.2.clone()).collect();
    let content = fake_signed_data(2010);
    for options in all_options() {
        let env = encrypt(&content, &recipients, &options).unwrap();
        assert_eq!(
            env.len() as u64,
            envelope_size(content.len() as u64, &recipients, &options).unwrap(),
            "size model for {options:?}"
        );
        for (key, cert, _) in &people {
            let k = FileKey::with_cert(key, cert);
            let out = decrypt(&env, &k).unwrap_or_else(|e| panic!("{options:?}: {e}"));
            assert_eq!(out.as_slice(), content.as_slice());
            assert_eq!(
                k.ops(),
                1,
                "exactly one private-key operation ({options:?})"
            );
            let bare = FileKey::bare(key);
            let out = decrypt(&env, &bare).unwrap_or_else(|e| panic!("bare {options:?}: {e}"));
            assert_eq!(out.as_slice(), content.as_slice());
            assert!(bare.ops() >= 1);
        }
    }
}

#[test]
fn compact_layout_needs_one_ecdh_without_certificate() {
    let pki = Pki::new();
    let people: Vec<_> = (0..20)
        .map(|i| pki.recipient(Alg::P256, &format!("dev {i}")))
        .collect();
    let recipients: Vec<_> = people.iter().map(|p| p.2.clone()).collect();
    let content = fake_signed_data(600);
    let env = encrypt(&content, &recipients, &EncryptOptions::compact_ski()).unwrap();
    let listing = list_recipients(&env).unwrap();
    assert_eq!(listing.layout, RecipientLayout::Compact);
    assert_eq!(listing.recipient_info_count, 1);
    assert_eq!(listing.recipient_count(), 20);
    let last = FileKey::bare(&people[19].0);
    assert_eq!(decrypt(&env, &last).unwrap().as_slice(), content.as_slice());
    assert_eq!(last.ops(), 1);
}

#[test]
fn trial_decryption_tries_only_keys_of_the_same_type() {
    let pki = Pki::new();
    let mut people: Vec<_> = (0..6)
        .map(|i| pki.recipient(Alg::P256, &format!("ec {i}")))
        .collect();
    people.push(pki.recipient(Alg::Rsa(2048), "rsa"));
    people.push(pki.recipient(Alg::P384, "p384"));
    let recipients: Vec<_> = people.iter().map(|p| p.2.clone()).collect();
    let content = fake_signed_data(300);
    let env = encrypt(&content, &recipients, &EncryptOptions::default()).unwrap();
    let rsa = FileKey::bare(&people[6].0);
    decrypt(&env, &rsa).unwrap();
    assert_eq!(rsa.ops(), 1, "one KTRI of this size: one RSA operation");
    let p384 = FileKey::bare(&people[7].0);
    decrypt(&env, &p384).unwrap();
    assert_eq!(p384.ops(), 1, "one KARI on P-384: one ECDH");
    let p256 = FileKey::bare(&people[3].0);
    decrypt(&env, &p256).unwrap();
    assert!(
        (1..=6).contains(&p256.ops()),
        "only the six P-256 KARIs are tried"
    );
}

#[test]
fn errors_are_distinct() {
    let pki = Pki::new();
    let (ec_key, ec_cert, ec) = pki.recipient(Alg::P256, "ec");
    let (rsa_key, rsa_cert, rsa) = pki.recipient(Alg::Rsa(2048), "rsa");
    let (other_key, other_cert, _) = pki.recipient(Alg::P256, "stranger");
    let content = fake_signed_data(500);
    let env = encrypt(
        &content,
        &[ec.clone(), rsa.clone()],
        &EncryptOptions::default(),
    )
    .unwrap();

    // Not a recipient: found out without touching the key.
    let stranger = FileKey::with_cert(&other_key, &other_cert);
    assert!(matches!(
        decrypt(&env, &stranger),
        Err(Error::NotARecipient { .. })
    ));
    assert_eq!(stranger.ops(), 0);
    let stranger = FileKey::bare(&other_key);
    assert!(matches!(
        decrypt(&env, &stranger),
        Err(Error::NotARecipient { .. })
    ));

    // The certificate of one recipient with the key of another: unwrap integrity fails.
    let mixed = FileKey::with_cert(&other_key, &ec_cert);
    let e = decrypt(&env, &mixed).unwrap_err();
    assert!(matches!(e, Error::EnvelopeTampered { .. }), "{e}");

    // A key operation that fails carries the key's error (EC).
    let broken = BrokenKey(key_kind(&ec_key), ec_cert.to_der().unwrap());
    let e = decrypt(&env, &broken).unwrap_err();
    assert!(matches!(e, Error::KeyOperation { .. }), "{e}");
    assert!(
        std::error::Error::source(&e)
            .unwrap()
            .to_string()
            .contains("CKR_DEVICE_REMOVED")
    );

    // RSA: a failing decryption looks exactly like a wrong key (Bleichenbacher).
    let broken = BrokenKey(key_kind(&rsa_key), rsa_cert.to_der().unwrap());
    let e1 = decrypt(&env, &broken).unwrap_err().to_string();
    // The KTRI's AlgorithmIdentifier ends with NULL, followed by the 256-byte encryptedKey.
    let mut bad = env.clone();
    let ek = find(&bad, &[0x05, 0x00, 0x04, 0x82, 0x01, 0x00]) + 6;
    bad[ek + 10] ^= 0x55;
    let e2 = decrypt(&bad, &FileKey::with_cert(&rsa_key, &rsa_cert))
        .unwrap_err()
        .to_string();
    assert_eq!(e1, e2);

    // Tampered content: bad padding after a genuine unwrap.
    let mut bad = env.clone();
    let n = bad.len();
    bad[n - 20] ^= 1;
    let e = decrypt(&bad, &FileKey::with_cert(&ec_key, &ec_cert)).unwrap_err();
    assert!(matches!(e, Error::EnvelopeTampered { .. }), "{e}");
    // Without a certificate an RSA key cannot tell "not mine" from "damaged": the message says so.
    let e = decrypt(&bad, &FileKey::bare(&rsa_key)).unwrap_err();
    assert!(matches!(e, Error::NotARecipient { .. }), "{e}");
    assert!(
        e.to_string().contains("(RSA-2048)") && e.to_string().contains("damaged"),
        "{e}"
    );

    // Structure damage.
    let e = decrypt(
        &env[..env.len() - 3],
        &FileKey::with_cert(&ec_key, &ec_cert),
    )
    .unwrap_err();
    assert!(matches!(e, Error::EnvelopeTampered { .. }), "{e}");
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("pattern present")
}

#[test]
fn size_model_is_exact_across_length_thresholds() {
    let pki = Pki::new();
    let many: Vec<_> = (0..70)
        .map(|i| pki.recipient(Alg::P256, &format!("d{i}")).2)
        .collect();
    let rsa = pki.recipient(Alg::Rsa(2048), "r").2;
    for n in [1usize, 2, 3, 9, 10, 11, 69] {
        let mut set: Vec<_> = many[..n].to_vec();
        set.push(rsa.clone());
        for content_len in [300usize, 4000, 70_000] {
            let content = fake_signed_data(content_len);
            for options in all_options() {
                let env = encrypt(&content, &set, &options).unwrap();
                let model = envelope_size(content_len as u64, &set, &options).unwrap();
                assert_eq!(
                    env.len() as u64,
                    model,
                    "n={n} len={content_len} {options:?}"
                );
            }
        }
    }
}

#[test]
fn fitting_counts_match_the_model() {
    let pki = Pki::new();
    let set: Vec<_> = (0..40)
        .map(|i| pki.recipient(Alg::P256, &format!("d{i}")).2)
        .collect();
    let content_len = 2000u64;
    for options in all_options() {
        let limit = envelope_size(content_len, &set[..25], &options).unwrap();
        assert_eq!(
            recipients_fitting(content_len, &set, &options, limit).unwrap(),
            25
        );
        assert_eq!(
            recipients_fitting(content_len, &set, &options, limit - 1).unwrap(),
            24
        );
        assert_eq!(
            recipients_fitting(content_len, &set, &options, 10).unwrap(),
            0
        );
        assert_eq!(
            recipients_fitting(content_len, &set, &options, u64::MAX).unwrap(),
            40
        );
    }
    let fits = fit_per_layout(content_len, &set, RsaPadding::Pkcs1v15, 65536);
    assert_eq!(fits.len(), 3);
    assert!(fits.iter().all(|f| f.fits == Some(40)));
    assert!(fits[1].size_all.unwrap() < fits[2].size_all.unwrap());
    assert!(fits[2].size_all.unwrap() < fits[0].size_all.unwrap());
}

#[test]
fn per_recipient_sizes_match_the_issue() {
    // The issue quotes about 212 (default), 68 (compact, SKI) and 95 (compact, issuer+serial)
    // bytes per P-256 device; the last two depend on the issuer name and serial length.
    let pki = Pki::new();
    let set: Vec<_> = (0..101)
        .map(|i| pki.recipient(Alg::P256, &format!("d{i}")).2)
        .collect();
    let per = |o: &EncryptOptions| {
        let a = envelope_size(2000, &set[..1], o).unwrap();
        let b = envelope_size(2000, &set, o).unwrap();
        (b - a) / 100
    };
    let default = per(&EncryptOptions::default());
    let ski = per(&EncryptOptions::compact_ski());
    let ias = per(&EncryptOptions {
        layout: RecipientLayout::Compact,
        ..EncryptOptions::default()
    });
    println!("bytes per P-256 device: default {default}, compact/ski {ski}, compact/issuer {ias}");
    assert!((180..=260).contains(&default), "default {default}");
    assert_eq!(ski, 68, "compact ski (20-byte SKI)");
    // Issuer name (here 43 bytes) + 20-byte serial instead of the 24-byte rKeyId.
    assert_eq!(ias, ski - 24 + 2 + 43 + 24);
}

#[test]
fn structure_is_what_openssl_writes() {
    use cms::content_info::ContentInfo;
    use cms::enveloped_data::{EnvelopedData, RecipientInfo};
    use der::{Decode, Encode};

    let pki = Pki::new();
    let ec = pki.recipient(Alg::P256, "ec").2;
    let rsa = pki.recipient(Alg::Rsa(2048), "rsa").2;
    let content = fake_signed_data(1000);
    let env = encrypt(
        &content,
        &[ec.clone(), rsa.clone()],
        &EncryptOptions::default(),
    )
    .unwrap();
    let ci = ContentInfo::from_der(&env).unwrap();
    assert_eq!(ci.content_type.to_string(), "1.2.840.113549.1.7.3");
    let ed: EnvelopedData = ci.content.decode_as().unwrap();
    assert_eq!(ed.version, cms::content_info::CmsVersion::V2);
    assert!(ed.originator_info.is_none() && ed.unprotected_attrs.is_none());
    let ris: Vec<_> = ed.recip_infos.0.iter().collect();
    assert_eq!(ris.len(), 2);
    // KTRI (0x30) sorts before KARI (0xa1).
    let RecipientInfo::Ktri(ktri) = ris[0] else {
        panic!("KTRI first")
    };
    assert_eq!(ktri.version, cms::content_info::CmsVersion::V0);
    assert_eq!(ktri.key_enc_alg.oid.to_string(), "1.2.840.113549.1.1.1");
    let RecipientInfo::Kari(kari) = ris[1] else {
        panic!("KARI second")
    };
    assert_eq!(kari.version, cms::content_info::CmsVersion::V3);
    assert!(kari.ukm.is_none());
    assert_eq!(kari.recipient_enc_keys.len(), 1);
    assert_eq!(kari.recipient_enc_keys[0].enc_key.as_bytes().len(), 40);
    assert_eq!(
        kari.key_enc_alg.to_der().unwrap(),
        hex::decode("301806092b81051086483f0002300b060960864801650304012d").unwrap()
    );
    let eci = &ed.encrypted_content;
    assert_eq!(
        eci.content_enc_alg.oid.to_string(),
        "2.16.840.1.101.3.4.1.42"
    );
    assert_eq!(
        eci.encrypted_content.as_ref().unwrap().as_bytes().len(),
        1008
    );

    // RSA only: version 0.
    let env = encrypt(&content, &[rsa], &EncryptOptions::default()).unwrap();
    let ed: EnvelopedData = ContentInfo::from_der(&env)
        .unwrap()
        .content
        .decode_as()
        .unwrap();
    assert_eq!(ed.version, cms::content_info::CmsVersion::V0);
}

#[test]
fn listing_prints_like_rauc() {
    let pki = Pki::new();
    let rsa = pki.recipient(Alg::Rsa(2048), "rsa").2;
    let ec = pki.recipient(Alg::P256, "ec").2;
    let env = encrypt(
        &fake_signed_data(300),
        &[ec, rsa],
        &EncryptOptions::default(),
    )
    .unwrap();
    let l = list_recipients(&env).unwrap();
    assert_eq!(l.layout, RecipientLayout::Default);
    let text = l.to_rauc_text();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines[0], "2 Recipients:");
    assert_eq!(
        lines[1],
        "  0   Issuer:    O = Test, CN = Test Recipient CA"
    );
    assert!(lines[2].starts_with("      Serial:    0x"));
    assert_eq!(lines[3], "      Algorithm: rsaEncryption");
    assert_eq!(
        lines[1 + 3],
        "  1   Issuer:    O = Test, CN = Test Recipient CA"
    );
    assert_eq!(
        lines[3 + 3],
        "      Algorithm: dhSinglePass-stdDH-sha1kdf-scheme"
    );

    let l2 = list_recipients(
        &encrypt(
            &fake_signed_data(300),
            &[pki.recipient(Alg::P256, "a").2],
            &EncryptOptions::compact_ski(),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(matches!(l2.entries[0].id, ListedId::KeyId(_)));
    assert_eq!(l2.to_rauc_text(), "1 Recipients:\n  0   <keyid>");
    assert!(matches!(
        list_recipients(&fake_signed_data(300)),
        Err(Error::EnvelopeTampered { .. })
    ));
}
