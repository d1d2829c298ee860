use super::*;
use crate::error::Error;

fn parse(s: &str) -> Pkcs11Uri {
    Pkcs11Uri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn error(s: &str) -> (String, String) {
    match Pkcs11Uri::parse(s) {
        Err(Error::Uri { part, problem }) => (part, problem),
        other => panic!("{s}: expected a URI error, got {other:?}"),
    }
}

/// The URIs of environment.md §5, as p11tool prints them and as written by hand.
#[test]
fn environment_uris_parse() {
    let token = "pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=2a86ca5fe8ecd4ef;token=rauc-test";
    let u = parse(token);
    assert_eq!(u.model.as_deref(), Some("SoftHSM v2"));
    assert_eq!(u.manufacturer.as_deref(), Some("SoftHSM project"));
    assert_eq!(u.serial.as_deref(), Some("2a86ca5fe8ecd4ef"));
    assert_eq!(u.token.as_deref(), Some("rauc-test"));
    assert_eq!(u.to_string(), token);

    let key = format!("{token};id=%01;object=ec-sign;type=private");
    let u = parse(&key);
    assert_eq!(u.id.as_deref(), Some(&[1u8][..]));
    assert_eq!(u.object.as_deref(), Some("ec-sign"));
    assert_eq!(u.object_type, Some(ObjectType::Private));
    assert_eq!(u.to_string(), key);
    for t in ["public", "cert"] {
        let s = format!("{token};id=%01;object=ec-sign;type={t}");
        assert_eq!(parse(&s).to_string(), s);
    }

    let u = parse("pkcs11:token=rauc-test;id=%30%31;type=private");
    assert_eq!(u.id.as_deref(), Some(&b"01"[..]));
    let u = parse("pkcs11:token=rauc-test;object=ec-sign;type=private?pin-value=1234");
    assert_eq!(u.pin_value.as_ref().map(|p| p.expose()), Some("1234"));
    assert_eq!(
        u.to_string_with_pin().as_str(),
        "pkcs11:token=rauc-test;object=ec-sign;type=private?pin-value=1234"
    );
    assert_eq!(
        u.to_string(),
        "pkcs11:token=rauc-test;object=ec-sign;type=private"
    );
    let u = parse("pkcs11:token=rauc;object=enc-rsa-000");
    assert_eq!(u.object_type, None);
}

#[test]
fn tpm2_pkcs11_model_keeps_nul_padding() {
    let s = "pkcs11:model=SW%20%20%20TPM%00%00%00%00%00%00%00%00;manufacturer=IBM;serial=0000000000000000;token=tpm-token";
    let u = parse(s);
    assert_eq!(u.model.as_deref(), Some("SW   TPM\0\0\0\0\0\0\0\0"));
    assert_eq!(u.to_string(), s);
}

#[test]
fn all_attributes_round_trip() {
    let s = "pkcs11:library-manufacturer=OpenSC%20Project;library-description=Lib%3Bdesc;\
             library-version=2.6;slot-manufacturer=SoftHSM;slot-description=Slot%20%231;\
             slot-id=1760351471;model=m;manufacturer=x;serial=42;token=a%26b;id=%DE%AD;\
             object=k%3Fey;type=secret-key?pin-source=file:/run/pin%26x&pin-value=p%26w&\
             module-name=softhsm2&module-path=/usr/lib/softhsm/libsofthsm2.so";
    let u = parse(s);
    assert_eq!(u.slot_id, Some(1_760_351_471));
    assert_eq!(
        u.library_version,
        Some(LibraryVersion {
            major: 2,
            minor: Some(6)
        })
    );
    assert_eq!(u.token.as_deref(), Some("a&b"));
    assert_eq!(u.object.as_deref(), Some("k?ey"));
    assert_eq!(u.pin_source.as_deref(), Some("file:/run/pin&x"));
    assert_eq!(u.pin_value.as_ref().unwrap().expose(), "p&w");
    assert_eq!(u.to_string_with_pin().as_str(), s);
    assert_eq!(parse(&u.to_string_with_pin()), u);
}

#[test]
fn formatter_is_canonical_and_round_trips() {
    // Non-canonical input: lower-case hex, unneeded escapes, attribute order.
    let u = parse("pkcs11:type=cert;object=%61b%20c;token=t;id=%0a");
    assert_eq!(
        u.to_string(),
        "pkcs11:token=t;id=%0A;object=ab%20c;type=cert"
    );
    assert_eq!(parse(&u.to_string()), u);
    // Arbitrary bytes in labels and ids survive.
    let built = Pkcs11Uri::for_token("x;y?z&w=v/%")
        .with_object("ünï cödé\u{0}")
        .with_id(&[0, 255, 7, b'%'])
        .with_type(ObjectType::Data);
    assert_eq!(parse(&built.to_string()), built);
    assert_eq!(parse("pkcs11:"), Pkcs11Uri::default());
    assert_eq!(Pkcs11Uri::default().to_string(), "pkcs11:");
    assert_eq!(parse("PKCS11:token=a").token.as_deref(), Some("a"));
    assert_eq!(parse("pkcs11:token=").token.as_deref(), Some(""));
    assert_eq!(
        parse("pkcs11:library-version=3").to_string(),
        "pkcs11:library-version=3"
    );
}

#[test]
fn malformed_uris_name_the_offending_part() {
    let cases: &[(&str, &str, &str)] = &[
        ("pkcs11:token=a%2", "token=a%2", "two hex digits"),
        ("pkcs11:token=a%zz", "token=a%zz", "bad percent escape"),
        ("pkcs11:tokn=a", "tokn=a", "unknown attribute `tokn`"),
        (
            "pkcs11:token=a;token=b",
            "token=b",
            "duplicate attribute `token`",
        ),
        ("pkcs11:id=%01;id=%02", "id=%02", "duplicate"),
        ("pkcs11:type=secret", "type=secret", "unknown object type"),
        ("pkcs11:slot-id=12a", "slot-id=12a", "decimal"),
        (
            "pkcs11:slot-id=99999999999999999999",
            "slot-id=99999999999999999999",
            "range",
        ),
        (
            "pkcs11:library-version=1.x",
            "library-version=1.x",
            "major.minor",
        ),
        ("pkcs11:token=a?object=b", "object=b", "path attribute"),
        ("pkcs11:module-path=/x", "module-path=/x", "query attribute"),
        ("pkcs11:token=a;;object=b", "", "empty attribute"),
        ("pkcs11:token=a;object", "object", "without `=value`"),
        (
            "pkcs11:token=a?module-name=x&&pin-source=y",
            "",
            "empty attribute",
        ),
        ("pkcs11:token=%ff", "token=%ff", "UTF-8"),
        ("/etc/key.pem", "/etc/key.pem", "pkcs11:"),
    ];
    for (uri, part, problem) in cases {
        let (got_part, got_problem) = error(uri);
        assert_eq!(&got_part, part, "{uri}");
        assert!(got_problem.contains(problem), "{uri}: {got_problem}");
    }
}

#[test]
fn errors_never_echo_a_pin_value() {
    for uri in [
        "pkcs11:token=a;pin-value=hunter22",
        "pkcs11:token=a?pin-value=hunter22%zz",
        "pkcs11:token=a?pin-value=hunter22&pin-value=hunter22",
        "pkcs11:token=a?pin-value=hunter22%",
    ] {
        let err = Pkcs11Uri::parse(uri).unwrap_err();
        assert!(!err.to_string().contains("hunter"), "{err}");
        assert!(!format!("{err:?}").contains("hunter"), "{err:?}");
    }
}
