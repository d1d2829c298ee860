//! PINs: the [`Pin`] secret and where it comes from.
//!
//! Order (first that applies wins): the URI's `pin-source` (a file; a trailing newline is
//! stripped), the URI's `pin-value` (with a warning: it is visible on command lines), the
//! environment variable `RAUC_PKCS11_PIN`, an interactive prompt without echo when standard input
//! is a terminal; otherwise an error that says how to provide one. The decision is the pure
//! function [`plan_pin`]; [`resolve_pin`] carries it out.

use std::fmt;
use std::io::IsTerminal;
use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::uri::Pkcs11Uri;

/// Environment variable with the user PIN (as rauc uses it).
pub const PIN_ENV: &str = "RAUC_PKCS11_PIN";

/// A token PIN. Zeroized on drop; `Debug` prints `Pin(<redacted>)`; it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// Wraps a PIN.
    pub fn new(pin: String) -> Pin {
        Pin(Zeroizing::new(pin))
    }

    /// The PIN text, for handing to `C_Login`. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The PIN as cryptoki's secret type (zeroized on drop as well).
    pub(crate) fn to_auth_pin(&self) -> cryptoki::types::AuthPin {
        cryptoki::types::AuthPin::new(self.0.as_str().into())
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

/// Where the PIN will be taken from: the outcome of [`plan_pin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinPlan {
    /// Read this file (from `pin-source`).
    File(PathBuf),
    /// Use the URI's `pin-value`.
    UriValue,
    /// Use `RAUC_PKCS11_PIN`.
    Env,
    /// Ask on the terminal.
    Prompt,
    /// No source available.
    Missing,
}

impl PinPlan {
    /// A description of the source for messages (never the PIN).
    pub fn origin(&self) -> String {
        match self {
            PinPlan::File(path) => format!("pin-source file {}", path.display()),
            PinPlan::UriValue => "pin-value in the URI".into(),
            PinPlan::Env => format!("environment variable {PIN_ENV}"),
            PinPlan::Prompt => "the terminal prompt".into(),
            PinPlan::Missing => "nowhere".into(),
        }
    }
}

/// Decides where the PIN comes from. `env_pin_set`: `RAUC_PKCS11_PIN` is set and non-empty;
/// `stdin_is_tty`: a prompt is possible.
pub fn plan_pin(uri: &Pkcs11Uri, env_pin_set: bool, stdin_is_tty: bool) -> Result<PinPlan> {
    if let Some(source) = &uri.pin_source {
        return Ok(PinPlan::File(pin_source_path(source)?));
    }
    Ok(if uri.pin_value.is_some() {
        PinPlan::UriValue
    } else if env_pin_set {
        PinPlan::Env
    } else if stdin_is_tty {
        PinPlan::Prompt
    } else {
        PinPlan::Missing
    })
}

/// The file named by a `pin-source` value: a plain path, `file:/path` or `file:///path`.
pub fn pin_source_path(source: &str) -> Result<PathBuf> {
    let path = if let Some(rest) = source.strip_prefix("file://") {
        if !rest.starts_with('/') {
            return Err(Error::Uri {
                part: format!("pin-source={source}"),
                problem: "only local files are supported: use file:/path or file:///path".into(),
            });
        }
        rest
    } else if let Some(rest) = source.strip_prefix("file:") {
        rest
    } else if source.starts_with('|') {
        return Err(Error::Uri {
            part: format!("pin-source={source}"),
            problem: "PIN commands are not supported; give a file holding the PIN".into(),
        });
    } else {
        source
    };
    if path.is_empty() {
        return Err(Error::Uri {
            part: format!("pin-source={source}"),
            problem: "empty file name".into(),
        });
    }
    Ok(PathBuf::from(path))
}

/// Resolves the user PIN for `token_label` following [`plan_pin`], and says where it came from
/// (for messages).
pub fn resolve_pin(uri: &Pkcs11Uri, token_label: &str) -> Result<(Pin, PinPlan)> {
    let env_pin = std::env::var(PIN_ENV).ok().map(Zeroizing::new);
    let env_set = env_pin.as_ref().is_some_and(|p| !p.is_empty());
    let plan = plan_pin(uri, env_set, std::io::stdin().is_terminal())?;
    let pin = match &plan {
        PinPlan::File(path) => read_pin_file(path)?,
        PinPlan::UriValue => {
            tracing::warn!(
                token = token_label,
                "using the PIN from pin-value in the URI: it is visible to other users (process \
                 list, shell history); prefer pin-source=<file> or {PIN_ENV}"
            );
            uri.pin_value.clone().expect("planned from pin-value")
        }
        PinPlan::Env => Pin::new(env_pin.as_deref().cloned().unwrap_or_default()),
        PinPlan::Prompt => prompt(token_label)?,
        PinPlan::Missing => {
            return Err(Error::PinMissing {
                token: token_label.to_string(),
            });
        }
    };
    tracing::debug!(token = token_label, source = %plan.origin(), "PIN resolved");
    Ok((pin, plan))
}

/// Reads a PIN file; trailing `\n` / `\r\n` are stripped.
pub fn read_pin_file(path: &std::path::Path) -> Result<Pin> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|source| Error::Io {
        action: "read the PIN file",
        path: path.to_path_buf(),
        source,
    })?);
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        Error::Invalid(format!(
            "the PIN file {} is not valid UTF-8 text",
            path.display()
        ))
    })?;
    let text = text.trim_end_matches(['\n', '\r']);
    if text.is_empty() {
        return Err(Error::Invalid(format!(
            "the PIN file {} is empty",
            path.display()
        )));
    }
    Ok(Pin::new(text.to_string()))
}

fn prompt(token_label: &str) -> Result<Pin> {
    let text = rpassword::prompt_password(format!("Enter PKCS#11 token PIN for {token_label}: "))
        .map_err(|source| Error::Io {
        action: "read the PIN from",
        path: PathBuf::from("/dev/tty"),
        source,
    })?;
    Ok(Pin::new(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Pkcs11Uri {
        Pkcs11Uri::parse(s).unwrap()
    }

    #[test]
    fn plan_follows_the_documented_order() {
        let cases = [
            (
                "pkcs11:token=t?pin-source=/p&pin-value=1",
                true,
                true,
                PinPlan::File("/p".into()),
            ),
            ("pkcs11:token=t?pin-value=1", true, true, PinPlan::UriValue),
            ("pkcs11:token=t", true, true, PinPlan::Env),
            ("pkcs11:token=t", false, true, PinPlan::Prompt),
            ("pkcs11:token=t", false, false, PinPlan::Missing),
        ];
        for (s, env, tty, want) in cases {
            assert_eq!(
                plan_pin(&uri(s), env, tty).unwrap(),
                want,
                "{s} env={env} tty={tty}"
            );
        }
    }

    #[test]
    fn pin_source_forms() {
        assert_eq!(pin_source_path("/a/b").unwrap(), PathBuf::from("/a/b"));
        assert_eq!(pin_source_path("file:/a/b").unwrap(), PathBuf::from("/a/b"));
        assert_eq!(
            pin_source_path("file:///a/b").unwrap(),
            PathBuf::from("/a/b")
        );
        assert!(pin_source_path("file://host/a").is_err());
        assert!(pin_source_path("|/bin/ask").is_err());
        assert!(pin_source_path("file:").is_err());
    }

    #[test]
    fn pin_file_strips_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pin");
        std::fs::write(&path, "12 34\r\n").unwrap();
        assert_eq!(read_pin_file(&path).unwrap().expose(), "12 34");
        std::fs::write(&path, "\n").unwrap();
        assert!(read_pin_file(&path).is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let pin = Pin::new("super-secret".into());
        assert_eq!(format!("{pin:?}"), "Pin(<redacted>)");
        let u = uri("pkcs11:token=t?pin-value=super-secret");
        assert!(!format!("{u:?}").contains("super-secret"));
        assert!(!u.to_string().contains("super-secret"));
    }
}
