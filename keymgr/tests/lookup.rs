//! Token and object lookup errors list the candidates; a wrong PIN is a clear error.

mod common;

use common::{Fixture, SO_PIN, USER_PIN, softhsm_options};
use keymgr::{
    Access, Error, OpenOptions, Pkcs11Uri, TokenSession, open_decryptor_with, open_signer,
};

fn open(uri: &str) -> Result<TokenSession, Error> {
    let uri = Pkcs11Uri::parse(uri).unwrap();
    TokenSession::open(
        &uri,
        Some(softhsm::SOFTHSM_MODULE.as_ref()),
        Access::ReadOnly,
    )
}

#[test]
fn token_errors_list_the_tokens() {
    let fx = Fixture::new("alpha");
    fx.hsm.init_token("beta", SO_PIN, USER_PIN).unwrap();
    assert_eq!(open("pkcs11:token=beta").unwrap().token().label, "beta");

    let err = open("pkcs11:token=gamma").unwrap_err();
    assert!(matches!(err, Error::TokenNotFound { .. }), "{err:?}");
    let text = err.to_string();
    for want in [
        "pkcs11:token=gamma",
        "label \"alpha\"",
        "label \"beta\"",
        "SoftHSM project",
        ";token=alpha",
    ] {
        assert!(text.contains(want), "missing {want:?} in: {text}");
    }

    let err = open("pkcs11:manufacturer=SoftHSM%20project").unwrap_err();
    assert!(matches!(err, Error::TokenAmbiguous { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("alpha") && text.contains("beta") && text.contains("serial"),
        "{text}"
    );
    // The token serial shown in the candidate list selects exactly one token.
    let serial = open("pkcs11:token=alpha").unwrap().token().serial.clone();
    let by_serial = format!("pkcs11:manufacturer=SoftHSM%20project;serial={serial}");
    assert_eq!(open(&by_serial).unwrap().token().label, "alpha");
}

#[test]
fn object_errors_list_label_id_and_type() {
    let fx = Fixture::new("objects");
    fx.token.generate_key("EC:prime256v1", "0a", "dup").unwrap();
    fx.token.generate_key("EC:prime256v1", "0b", "dup").unwrap();
    fx.token.generate_key("rsa:2048", "c0ffee", "rsa").unwrap();

    let err = open_signer(&fx.key_uri("nope"), &OpenOptions::default())
        .err()
        .unwrap();
    assert!(matches!(err, Error::ObjectNotFound { .. }), "{err:?}");
    let text = err.to_string();
    for want in [
        "object=nope",
        "token `objects`",
        "label \"rsa\", id c0ffee, type private (RSA 2048)",
        "label \"dup\", id 0a, type public (EC P-256)",
    ] {
        assert!(text.contains(want), "missing {want:?} in: {text}");
    }

    let err = open_signer(&fx.key_uri("dup"), &OpenOptions::default())
        .err()
        .unwrap();
    assert!(matches!(err, Error::ObjectAmbiguous { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("id 0a, type private") && text.contains("id 0b, type private"),
        "{text}"
    );
    // Adding the id from the candidate list resolves it.
    let by_id = fx
        .key_uri("dup")
        .replacen("object=dup", "object=dup;id=%0B", 1);
    assert!(open_signer(&by_id, &OpenOptions::default()).is_ok());

    // A cert URI is not a key.
    let cert = fx
        .key_uri("rsa")
        .replacen("object=rsa", "object=rsa;type=cert", 1);
    let err = open_decryptor_with(&cert, &softhsm_options())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("type=private"), "{err}");
}

#[test]
fn wrong_pin_is_a_clear_error() {
    let fx = Fixture::new("wrong-pin");
    fx.token.generate_key("EC:prime256v1", "01", "k").unwrap();
    let pin_file = fx.write("wrong.pin", b"0000-wrong\n");
    let uri = format!(
        "{}?pin-source={}&module-path={}",
        fx.token.object_uri("k", Some("private")),
        pin_file.display(),
        softhsm::SOFTHSM_MODULE
    );
    let err = open_signer(&uri, &OpenOptions::default()).err().unwrap();
    assert!(matches!(err, Error::PinIncorrect { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("CKR_PIN_INCORRECT") && text.contains("wrong-pin"),
        "{text}"
    );
    assert!(
        text.contains(&format!("pin-source file {}", pin_file.display())),
        "{text}"
    );
    assert!(!text.contains("0000-wrong"));
    // The right PIN still works (SoftHSM does not lock after one failure).
    assert!(open_signer(&fx.key_uri("k"), &OpenOptions::default()).is_ok());
}
