//! The error type of `keymgr`.
//!
//! Every message says what failed and, where possible, what to do. No variant ever carries a PIN,
//! a passphrase or key material: URIs appear only in their redacted form
//! ([`crate::uri::Pkcs11Uri::redacted`], without `pin-value`).

use std::fmt;
use std::path::PathBuf;

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};

/// Result type of `keymgr`.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong in `keymgr`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `pkcs11:` URI could not be parsed.
    #[error("invalid PKCS#11 URI: {problem} (at `{part}`)")]
    Uri {
        /// The offending part of the URI (a `pin-value` is never shown).
        part: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A PKCS#11 module could not be found.
    #[error(
        "PKCS#11 module `{name}` not found (searched {searched}); give its path with module-path= in the URI, --module or PKCS11_MODULE_PATH"
    )]
    ModuleNotFound {
        /// The module name or path asked for.
        name: String,
        /// Where it was looked for.
        searched: String,
    },
    /// A PKCS#11 module could not be loaded or initialized.
    #[error("cannot load PKCS#11 module {path}: {reason}")]
    ModuleLoad {
        /// The module path.
        path: PathBuf,
        /// Why (loader or `C_Initialize` error).
        reason: String,
    },
    /// A PKCS#11 function returned an error.
    #[error("{function} failed with {ckr} while {action}{hint}")]
    Pkcs11 {
        /// The PKCS#11 function, e.g. `C_Sign`.
        function: String,
        /// The return value, e.g. `CKR_KEY_FUNCTION_NOT_PERMITTED`.
        ckr: String,
        /// The return value as a typed code, when the module returned one.
        rv: Option<RvError>,
        /// What `keymgr` was doing.
        action: String,
        /// Advice for the user (starts with "; " when present).
        hint: String,
    },
    /// No token matched the URI.
    #[error("no PKCS#11 token matches {uri}; tokens present:{candidates}")]
    TokenNotFound {
        /// The redacted URI.
        uri: String,
        /// The tokens that exist (label, manufacturer, serial, URI).
        candidates: Candidates,
    },
    /// More than one token matched the URI.
    #[error(
        "{uri} matches several tokens; add token=, serial= or manufacturer= to select one:{candidates}"
    )]
    TokenAmbiguous {
        /// The redacted URI.
        uri: String,
        /// The matching tokens.
        candidates: Candidates,
    },
    /// No object matched the URI.
    #[error("no object matches {uri}; objects in token `{token}`:{candidates}")]
    ObjectNotFound {
        /// The redacted URI.
        uri: String,
        /// The token label.
        token: String,
        /// The objects that exist (label, id, type).
        candidates: Candidates,
    },
    /// More than one object matched the URI.
    #[error(
        "{uri} matches several objects in token `{token}`; add object=, id= or type= to select one:{candidates}"
    )]
    ObjectAmbiguous {
        /// The redacted URI.
        uri: String,
        /// The token label.
        token: String,
        /// The matching objects.
        candidates: Candidates,
    },
    /// `C_Login` rejected the PIN.
    #[error(
        "C_Login failed with CKR_PIN_INCORRECT: wrong user PIN for token `{token}` (from {origin}); check the PIN — repeated failures lock the token"
    )]
    PinIncorrect {
        /// The token label.
        token: String,
        /// Where the PIN came from (never the PIN itself).
        origin: String,
    },
    /// The user PIN is locked.
    #[error(
        "C_Login failed with CKR_PIN_LOCKED: the user PIN of token `{token}` is locked; unblock it with the SO PIN (e.g. pkcs11-tool --init-pin --login-type so)"
    )]
    PinLocked {
        /// The token label.
        token: String,
    },
    /// No PIN could be obtained.
    #[error(
        "no PIN for token `{token}`: add pin-source=<file> to the URI, set RAUC_PKCS11_PIN, or run on a terminal to be prompted"
    )]
    PinMissing {
        /// The token label.
        token: String,
    },
    /// A file could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was attempted (read, write, rename, …).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// OpenSSL failed (parsing keys or certificates, software signing, …).
    #[error("{context}: {source}")]
    OpenSsl {
        /// What was being done.
        context: String,
        /// The OpenSSL error stack.
        #[source]
        source: openssl::error::ErrorStack,
    },
    /// The key cannot do what was asked (wrong type, missing usage, unsupported curve).
    #[error("{key}: {problem}")]
    Key {
        /// The key (redacted URI or path).
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// An argument is invalid.
    #[error("{0}")]
    Invalid(String),
    /// A TPM-native key operation failed.
    #[error(transparent)]
    Tpm(#[from] crate::tpm::TpmError),
}

impl Error {
    /// A PKCS#11 error from a cryptoki call, with what was being done.
    pub(crate) fn pkcs11(source: CkError, action: impl Into<String>) -> Error {
        let (function, ckr, rv) = match &source {
            CkError::Pkcs11(rv, function) => (function_name(*function), ckr_name(*rv), Some(*rv)),
            other => ("PKCS#11 call".to_string(), other.to_string(), None),
        };
        Error::Pkcs11 {
            function,
            ckr,
            rv,
            action: action.into(),
            hint: String::new(),
        }
    }

    /// Adds advice to a [`Error::Pkcs11`] (no-op for other variants).
    pub(crate) fn with_hint(mut self, advice: &str) -> Error {
        if let Error::Pkcs11 { hint, .. } = &mut self {
            *hint = format!("; {advice}");
        }
        self
    }

    /// The PKCS#11 return value, if this error came from a PKCS#11 function.
    pub fn rv(&self) -> Option<RvError> {
        match self {
            Error::Pkcs11 { rv, .. } => *rv,
            _ => None,
        }
    }

    pub(crate) fn openssl(context: impl Into<String>, source: openssl::error::ErrorStack) -> Error {
        Error::OpenSsl {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn key(key: impl Into<String>, problem: impl Into<String>) -> Error {
        Error::Key {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// `C_Login` for `Function::Login`.
pub(crate) fn function_name(function: Function) -> String {
    format!("C_{function:?}")
}

/// `CKR_PIN_INCORRECT` for `RvError::PinIncorrect`.
pub(crate) fn ckr_name(rv: RvError) -> String {
    let debug = format!("{rv:?}");
    if debug.contains('(') {
        return rv.to_string();
    }
    let mut out = String::from("CKR");
    for c in debug.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// A list of candidates (tokens or objects) shown in lookup errors, one per line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Candidates(pub Vec<String>);

impl fmt::Display for Candidates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, " (none)");
        }
        for line in &self.0 {
            write!(f, "\n  - {line}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_pkcs11() {
        assert_eq!(ckr_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(
            ckr_name(RvError::KeyFunctionNotPermitted),
            "CKR_KEY_FUNCTION_NOT_PERMITTED"
        );
        assert_eq!(function_name(Function::DeriveKey), "C_DeriveKey");
        assert_eq!(function_name(Function::InitPIN), "C_InitPIN");
        let e = Error::pkcs11(
            CkError::Pkcs11(RvError::MechanismInvalid, Function::SignInit),
            "signing",
        )
        .with_hint("try another mechanism");
        assert_eq!(
            e.to_string(),
            "C_SignInit failed with CKR_MECHANISM_INVALID while signing; try another mechanism"
        );
        assert_eq!(e.rv(), Some(RvError::MechanismInvalid));
    }

    #[test]
    fn candidates_render_one_per_line() {
        assert_eq!(Candidates(vec![]).to_string(), " (none)");
        assert_eq!(
            Candidates(vec!["a".into(), "b".into()]).to_string(),
            "\n  - a\n  - b"
        );
    }
}
