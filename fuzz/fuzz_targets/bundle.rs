//! Container + CMS reader: open arbitrary bytes as a bundle, classify the CMS and parse what can
//! be parsed without keys (signer info, inline manifest). Must never panic.
#![no_main]

use bundle::container::OpenOptions;
use bundle::state::{Bundle, OpenedBundle};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bundle::cms::inspect(data);
    let Ok(opened) = Bundle::from_bytes(data.to_vec(), OpenOptions::default()) else {
        return;
    };
    let _ = opened.layout();
    match opened {
        OpenedBundle::Enveloped(env) => {
            let _ = bundle::cms::classify(env.envelope());
        }
        OpenedBundle::Signed(signed) => {
            let _ = signed.is_detached();
            if let Ok(unverified) = signed.inspect_unverified() {
                if let Some(m) = unverified.manifest {
                    let _ = m.manifest.check_external();
                }
            }
        }
    }
});
