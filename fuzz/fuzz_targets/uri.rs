//! Fuzz target: the RFC 7512 `pkcs11:` URI parser. Anything it accepts must format to a URI
//! that parses back to the same value, and no input may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(uri) = keymgr::Pkcs11Uri::parse(text) {
        let again = keymgr::Pkcs11Uri::parse(&uri.to_string_with_pin())
            .expect("a formatted URI parses again");
        assert_eq!(again.to_string_with_pin(), uri.to_string_with_pin());
    }
});
