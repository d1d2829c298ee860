//! Which verified bundles may be used, as pure functions of facts (`rauc-format.md` §1.5 step 5,
//! §1.7 steps 2–3), in RAUC's wording:
//!
//! * the `[system] bundle-formats` mask applies to every use ("Bundle format 'X' not allowed");
//! * installation additionally enforces `require-manifest-hash` (plain bundles have no signed
//!   manifest and are refused when it is set) and refuses crypt bundles whose CMS was not
//!   encrypted ("Refusing to install unencrypted crypt bundles").

use bundle::manifest::BundleFormat;

use crate::config::BundleFormats;
use crate::error::{Error, Result};

/// What a bundle is opened for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Purpose {
    /// Installation: every check applies.
    #[default]
    Install,
    /// Showing or inspecting it (`info`, D-Bus `Info`/`InspectBundle`): no install-only checks.
    Inspect,
}

/// The facts about a verified bundle that the policy looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFacts {
    /// The bundle format (from the signed manifest, or `plain` for a detached signature).
    pub format: BundleFormat,
    /// Whether the CMS was an EnvelopedData.
    pub encrypted: bool,
    /// The manifest hash (lower-case hex) of the signed manifest; `None` for plain bundles,
    /// whose manifest is not signed on its own.
    pub manifest_hash: Option<String>,
}

/// The `[system] bundle-formats` check.
pub fn check_format_allowed(format: BundleFormat, allowed: &BundleFormats) -> Result<()> {
    let ok = match format {
        BundleFormat::Plain => allowed.plain,
        BundleFormat::Verity => allowed.verity,
        BundleFormat::Crypt => allowed.crypt,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Bundle(format!(
            "Bundle format '{}' not allowed",
            format.as_str()
        )))
    }
}

/// The checks of a verified bundle for `purpose`, in RAUC's order.
pub fn check(
    facts: &BundleFacts,
    allowed: &BundleFormats,
    purpose: Purpose,
    require_manifest_hash: Option<&str>,
) -> Result<()> {
    check_format_allowed(facts.format, allowed)?;
    if purpose == Purpose::Inspect {
        return Ok(());
    }
    if let Some(want) = require_manifest_hash {
        match &facts.manifest_hash {
            None => {
                return Err(Error::Bundle(
                    "Refusing to install plain bundle when using require-manifest-hash".into(),
                ));
            }
            Some(got) if !got.eq_ignore_ascii_case(want.trim()) => {
                return Err(Error::Bundle(format!(
                    "Refusing to install bundle with unexpected hash (expected {want}, got {got})"
                )));
            }
            Some(_) => {}
        }
    }
    if facts.format == BundleFormat::Crypt && !facts.encrypted {
        return Err(Error::Bundle(
            "Refusing to install unencrypted crypt bundles".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: BundleFormats = BundleFormats {
        plain: true,
        verity: true,
        crypt: true,
    };
    const NO_PLAIN: BundleFormats = BundleFormats {
        plain: false,
        verity: true,
        crypt: true,
    };

    fn facts(format: BundleFormat, encrypted: bool, hash: Option<&str>) -> BundleFacts {
        BundleFacts {
            format,
            encrypted,
            manifest_hash: hash.map(str::to_string),
        }
    }

    #[test]
    fn policy_table() {
        use BundleFormat::*;
        use Purpose::*;
        let h = "ab".repeat(32);
        let upper = "AB".repeat(32);
        type Case<'a> = (
            &'a str,
            BundleFacts,
            BundleFormats,
            Purpose,
            Option<&'a str>,
            Result<(), &'a str>,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                "encrypted crypt installs",
                facts(Crypt, true, Some(&h)),
                ALL,
                Install,
                None,
                Ok(()),
            ),
            (
                "verity installs",
                facts(Verity, false, Some(&h)),
                ALL,
                Install,
                None,
                Ok(()),
            ),
            (
                "plain installs when allowed",
                facts(Plain, false, None),
                ALL,
                Install,
                None,
                Ok(()),
            ),
            (
                "plain refused by the mask",
                facts(Plain, false, None),
                NO_PLAIN,
                Install,
                None,
                Err("Bundle format 'plain' not allowed"),
            ),
            (
                "the mask applies to inspection too",
                facts(Plain, false, None),
                NO_PLAIN,
                Inspect,
                None,
                Err("Bundle format 'plain' not allowed"),
            ),
            (
                "unencrypted crypt refused for install",
                facts(Crypt, false, Some(&h)),
                ALL,
                Install,
                None,
                Err("Refusing to install unencrypted crypt bundles"),
            ),
            (
                "unencrypted crypt fine for info",
                facts(Crypt, false, Some(&h)),
                ALL,
                Inspect,
                None,
                Ok(()),
            ),
            (
                "matching manifest hash (any case)",
                facts(Verity, false, Some(&h)),
                ALL,
                Install,
                Some(&upper),
                Ok(()),
            ),
            (
                "other manifest hash",
                facts(Verity, false, Some(&h)),
                ALL,
                Install,
                Some("00"),
                Err("Refusing to install bundle with unexpected hash (expected 00, got abab"),
            ),
            (
                "plain with a required hash",
                facts(Plain, false, None),
                ALL,
                Install,
                Some(&h),
                Err("Refusing to install plain bundle when using require-manifest-hash"),
            ),
            (
                "hash is checked before the crypt refusal (RAUC's order)",
                facts(Crypt, false, Some(&h)),
                ALL,
                Install,
                Some("00"),
                Err("unexpected hash"),
            ),
        ];
        for (name, f, allowed, purpose, hash, want) in cases {
            let got = check(&f, &allowed, purpose, hash);
            match (want, got) {
                (Ok(()), Ok(())) => {}
                (Err(w), Err(e)) => assert!(e.to_string().contains(w), "{name}: {e}"),
                (w, g) => panic!("{name}: want {w:?}, got {g:?}"),
            }
        }
    }
}
