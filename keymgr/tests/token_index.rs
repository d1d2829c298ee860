//! `TokenIndex`: many tokens opened by URI from one scan (as the factory station opens one
//! token per device), a rescan for tokens that appear later, and a key opened on an existing
//! session (`TokenKey::open_in`) that signs without another token scan or login.

mod common;

use bundle::keys::ContentSigner;
use common::{Fixture, SO_PIN, USER_PIN};
use keymgr::{Access, Error, KeyType, OpenOptions, Pkcs11Uri, TokenIndex, TokenKey};
use softhsm::SOFTHSM_MODULE;

fn uri(fx: &Fixture, label: &str) -> Pkcs11Uri {
    let mut u = Pkcs11Uri::for_token(label);
    u.pin_source = Some(fx.pin_file.display().to_string());
    u
}

#[test]
fn index_opens_tokens_by_uri_and_rescans_for_new_ones() {
    let fx = Fixture::new("dev-0");
    for i in 1..4 {
        fx.hsm
            .init_token(&format!("dev-{i}"), SO_PIN, USER_PIN)
            .unwrap();
    }
    let index = TokenIndex::new(SOFTHSM_MODULE.as_ref()).unwrap();
    let labels: Vec<String> = index
        .tokens()
        .into_iter()
        .filter(|t| t.initialized)
        .map(|t| t.label)
        .collect();
    assert_eq!(labels.len(), 4, "{labels:?}");
    for i in [3, 0, 2] {
        let label = format!("dev-{i}");
        let mut ts = index.open(&uri(&fx, &label), Access::ReadWrite).unwrap();
        assert_eq!(ts.token().label, label);
        ts.login(&uri(&fx, &label)).unwrap();
        ts.generate_key_pair(KeyType::Ec(bundle::keys::EcCurve::P256), "k", Some(&[i]))
            .unwrap();
    }
    // Unknown tokens fail as TokenSession::open does, listing the candidates.
    let err = index
        .open(&Pkcs11Uri::for_token("nope"), Access::ReadOnly)
        .unwrap_err();
    assert!(matches!(err, Error::TokenNotFound { .. }), "{err}");
    assert!(err.to_string().contains("label \"dev-2\""), "{err}");

    // A token initialized after the scan is found by the rescan.
    fx.hsm.init_token("late", SO_PIN, USER_PIN).unwrap();
    match index.open(&uri(&fx, "late"), Access::ReadOnly) {
        Ok(ts) => assert_eq!(ts.token().label, "late"),
        // SoftHSM may not show tokens initialized by another process after C_Initialize;
        // then the rescan must still report a clear "not found".
        Err(e) => assert!(matches!(e, Error::TokenNotFound { .. }), "{e}"),
    }
}

#[test]
fn key_opened_on_an_existing_session_signs() {
    let fx = Fixture::new("signing");
    let index = TokenIndex::new(SOFTHSM_MODULE.as_ref()).unwrap();
    let token = uri(&fx, "signing");
    let mut ts = index.open(&token, Access::ReadWrite).unwrap();
    ts.login(&token).unwrap();
    let generated = ts
        .generate_key_pair(KeyType::Rsa(2048), "rsa", Some(&[7]))
        .unwrap();
    // A second session of the same token shares the login.
    let other = ts.open_another().unwrap();
    let key_uri = token.clone().with_id(&[7]);
    let key = TokenKey::open_in(other, &key_uri, &OpenOptions::default()).unwrap();
    assert_eq!(
        keymgr::KeyInfo::public_key_der(&key).unwrap(),
        generated.public_key_der
    );
    let sig = key.sign(b"data").unwrap();
    let pkey = openssl::pkey::PKey::public_key_from_der(&generated.public_key_der).unwrap();
    let mut v =
        openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &pkey).unwrap();
    assert!(v.verify_oneshot(&sig, b"data").unwrap());
    // The first session still works after the key took the second one over.
    assert_eq!(ts.list_objects(&token).unwrap().len(), 2);
    // A non-key URI is refused before any lookup.
    let cert_uri = key_uri.with_type(keymgr::ObjectType::Cert);
    let err = TokenKey::open_in(ts, &cert_uri, &OpenOptions::default()).unwrap_err();
    assert!(err.to_string().contains("needs type=private"), "{err}");
}
