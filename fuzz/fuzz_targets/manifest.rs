//! Manifest parser: arbitrary bytes must never panic; whatever parses must serialize and parse
//! back to the same manifest, and the checks must not panic either.
#![no_main]

use bundle::manifest::{Manifest, Vocabulary};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = Manifest::parse_bytes(data) else {
        return;
    };
    let _ = manifest.check_input();
    let _ = manifest.check_internal();
    let _ = manifest.check_external();
    let _ = manifest.to_text(Vocabulary::Rauc18);
    let text = manifest.to_text(Vocabulary::Latest).expect("latest vocabulary writes anything");
    let mut expected = manifest.clone();
    // RAUC never writes min-rauc-version back; empty [meta.*] groups vanish
    expected.update.min_rauc_version = None;
    expected.meta.retain(|m| !m.entries.is_empty());
    let reparsed = Manifest::parse(&text).expect("serialized manifest parses");
    assert_eq!(reparsed, expected, "round trip changed the manifest:\n{text}");
});
