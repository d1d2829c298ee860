//! Tokens: listing, matching a URI to exactly one token, sessions and login.
//!
//! A [`TokenSession`] is one PKCS#11 session (RAII: closed on drop). It is `Send` but not
//! `Sync`: never share one between threads; a parallel worker calls
//! [`TokenSession::open_another`] for its own session (the login is shared by all sessions of
//! the process on that token).

use std::path::{Path, PathBuf};

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use serde::Serialize;

use crate::error::{Candidates, Error, Result};
use crate::module;
use crate::pin::{self, Pin};
use crate::uri::{LibraryVersion, Pkcs11Uri};

/// What identifies a token: shown by `keymgr tokens` and in lookup errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenSummary {
    /// The slot id (random on every SoftHSM init: match tokens by label, not slot).
    pub slot_id: u64,
    /// The token label.
    pub label: String,
    /// The token manufacturer.
    pub manufacturer: String,
    /// The token model.
    pub model: String,
    /// The token serial number.
    pub serial: String,
    /// The token is initialized.
    pub initialized: bool,
    /// Login is required for private objects.
    pub login_required: bool,
    /// The full token URI (model, manufacturer, serial, token).
    #[serde(serialize_with = "serialize_uri")]
    pub uri: Pkcs11Uri,
}

pub(crate) fn serialize_uri<S: serde::Serializer>(
    uri: &Pkcs11Uri,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&uri.redacted())
}

impl TokenSummary {
    /// One line for candidate lists.
    pub fn candidate_line(&self) -> String {
        format!(
            "label {:?}, manufacturer {:?}, serial {:?}: {}",
            self.label, self.manufacturer, self.serial, self.uri
        )
    }
}

/// Everything a token URI can be matched against (library, slot and token facts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenFacts {
    /// `CK_INFO.manufacturerID`.
    pub library_manufacturer: String,
    /// `CK_INFO.libraryDescription`.
    pub library_description: String,
    /// `CK_INFO.libraryVersion` (major, minor).
    pub library_version: (u8, u8),
    /// The slot id.
    pub slot_id: u64,
    /// `CK_SLOT_INFO.slotDescription`.
    pub slot_description: String,
    /// `CK_SLOT_INFO.manufacturerID`.
    pub slot_manufacturer: String,
    /// Token label, manufacturer, model, serial.
    pub token: [String; 4],
}

/// True if every attribute the URI gives matches. Blank (space) and NUL padding is ignored on
/// both sides, so `model=SW%20%20%20TPM` and the NUL-padded form both match tpm2-pkcs11.
pub fn token_matches(uri: &Pkcs11Uri, facts: &TokenFacts) -> bool {
    let eq = |want: &Option<String>, have: &str| {
        want.as_deref()
            .is_none_or(|w| trim_padding(w) == trim_padding(have))
    };
    let version_ok = uri
        .library_version
        .is_none_or(|LibraryVersion { major, minor }| {
            major == facts.library_version.0 && minor.is_none_or(|m| m == facts.library_version.1)
        });
    eq(&uri.library_manufacturer, &facts.library_manufacturer)
        && eq(&uri.library_description, &facts.library_description)
        && version_ok
        && uri.slot_id.is_none_or(|id| id == facts.slot_id)
        && eq(&uri.slot_description, &facts.slot_description)
        && eq(&uri.slot_manufacturer, &facts.slot_manufacturer)
        && eq(&uri.token, &facts.token[0])
        && eq(&uri.manufacturer, &facts.token[1])
        && eq(&uri.model, &facts.token[2])
        && eq(&uri.serial, &facts.token[3])
}

fn trim_padding(s: &str) -> &str {
    s.trim_end_matches([' ', '\0'])
}

/// One slot with a token, as found in a module.
struct SlotToken {
    slot: Slot,
    facts: TokenFacts,
    summary: TokenSummary,
}

/// Pauses between attempts of [`retry_busy`].
const BUSY_PAUSES: [std::time::Duration; 5] = [
    std::time::Duration::from_millis(2),
    std::time::Duration::from_millis(5),
    std::time::Duration::from_millis(10),
    std::time::Duration::from_millis(25),
    std::time::Duration::from_millis(50),
];

/// Runs a token read, retrying it a few times on `CKR_GENERAL_ERROR`: SoftHSM rewrites a
/// token's `token.object` in place on every `C_Login` (truncate, then write), and another
/// process that reads the token in that moment (`C_GetTokenInfo`, `C_Login`) gets
/// `CKR_GENERAL_ERROR`. Other errors return at once.
pub(crate) fn retry_busy<T>(
    mut f: impl FnMut() -> cryptoki::error::Result<T>,
) -> cryptoki::error::Result<T> {
    for pause in BUSY_PAUSES {
        match f() {
            Err(CkError::Pkcs11(RvError::GeneralError, function)) => {
                tracing::debug!(?function, "CKR_GENERAL_ERROR; retrying");
                std::thread::sleep(pause);
            }
            other => return other,
        }
    }
    f()
}

fn scan(ctx: &Pkcs11) -> Result<Vec<SlotToken>> {
    let info = ctx
        .get_library_info()
        .map_err(|e| Error::pkcs11(e, "reading the module information"))?;
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| Error::pkcs11(e, "listing slots"))?;
    let mut out = Vec::new();
    for slot in slots {
        let s = retry_busy(|| ctx.get_slot_info(slot))
            .map_err(|e| Error::pkcs11(e, format!("reading slot {}", slot.id())))?;
        let t = retry_busy(|| ctx.get_token_info(slot))
            .map_err(|e| Error::pkcs11(e, format!("reading the token in slot {}", slot.id())))?;
        let token =
            [t.label(), t.manufacturer_id(), t.model(), t.serial_number()].map(|s| s.to_string());
        let uri = Pkcs11Uri {
            model: Some(token[2].clone()),
            manufacturer: Some(token[1].clone()),
            serial: Some(token[3].clone()),
            token: Some(token[0].clone()),
            ..Pkcs11Uri::default()
        };
        let summary = TokenSummary {
            slot_id: slot.id(),
            label: token[0].clone(),
            manufacturer: token[1].clone(),
            model: token[2].clone(),
            serial: token[3].clone(),
            initialized: t.token_initialized(),
            login_required: t.login_required(),
            uri,
        };
        let lib_version = info.library_version();
        let facts = TokenFacts {
            library_manufacturer: info.manufacturer_id().to_string(),
            library_description: info.library_description().to_string(),
            library_version: (lib_version.major(), lib_version.minor()),
            slot_id: slot.id(),
            slot_description: s.slot_description().to_string(),
            slot_manufacturer: s.manufacturer_id().to_string(),
            token,
        };
        out.push(SlotToken {
            slot,
            facts,
            summary,
        });
    }
    Ok(out)
}

/// Lists the tokens of a module (including uninitialized ones).
pub fn list_tokens(module_path: &Path) -> Result<Vec<TokenSummary>> {
    let ctx = module::context(module_path)?;
    Ok(scan(&ctx)?.into_iter().map(|t| t.summary).collect())
}

/// Read-only or read/write session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Enough for signing, decrypting, ECDH and reading objects.
    ReadOnly,
    /// Needed to create or destroy token objects.
    ReadWrite,
}

/// An open session on the one token a URI names.
#[derive(Debug)]
pub struct TokenSession {
    ctx: Pkcs11,
    slot: Slot,
    session: Session,
    token: TokenSummary,
    module: PathBuf,
    access: Access,
    logged_in: bool,
}

impl TokenSession {
    /// Selects the module (see [`crate::module`]), finds exactly one initialized token matching
    /// the URI's token attributes and opens a session. No login yet.
    pub fn open(uri: &Pkcs11Uri, default_module: Option<&Path>, access: Access) -> Result<Self> {
        let module = module::resolve_module(Some(uri), default_module)?;
        let ctx = module::context(&module)?;
        let tokens = scan(&ctx)?;
        let (slot, token) = select_token(uri, &tokens)?;
        TokenSession::on_slot(ctx, slot, token, module, access)
    }

    fn on_slot(
        ctx: Pkcs11,
        slot: Slot,
        token: TokenSummary,
        module: PathBuf,
        access: Access,
    ) -> Result<Self> {
        let session = open_session(&ctx, slot, access, &token.label)?;
        tracing::debug!(token = %token.label, slot = slot.id(), "PKCS#11 session opened");
        Ok(TokenSession {
            ctx,
            slot,
            session,
            token,
            module,
            access,
            logged_in: false,
        })
    }

    /// A new session on the same token, for another thread. The login state is shared.
    pub fn open_another(&self) -> Result<TokenSession> {
        let session = open_session(&self.ctx, self.slot, self.access, &self.token.label)?;
        Ok(TokenSession {
            ctx: self.ctx.clone(),
            slot: self.slot,
            session,
            token: self.token.clone(),
            module: self.module.clone(),
            access: self.access,
            logged_in: self.logged_in,
        })
    }

    /// Logs the user in if the token requires it, with the PIN resolved from the URI and the
    /// environment ([`crate::pin`]).
    pub fn login(&mut self, uri: &Pkcs11Uri) -> Result<()> {
        if self.logged_in || !self.token.login_required {
            return Ok(());
        }
        let (pin, plan) = pin::resolve_pin(uri, &self.token.label)?;
        self.login_with(&pin, &plan.origin())
    }

    /// Logs the user in with a given PIN; `origin` says where it came from (for errors).
    pub fn login_with(&mut self, pin: &Pin, origin: &str) -> Result<()> {
        let label = &self.token.label;
        let auth = pin.to_auth_pin();
        match retry_busy(|| self.session.login(UserType::User, Some(&auth))) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
                tracing::warn!(token = %label, "login failed: incorrect PIN");
                return Err(Error::PinIncorrect {
                    token: label.clone(),
                    origin: origin.to_string(),
                });
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
                return Err(Error::PinLocked {
                    token: label.clone(),
                });
            }
            Err(e) => return Err(Error::pkcs11(e, format!("logging in to token `{label}`"))),
        }
        tracing::debug!(token = %label, "logged in");
        self.logged_in = true;
        Ok(())
    }

    /// The cryptoki session (for operations `keymgr` does not wrap).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The token this session is on.
    pub fn token(&self) -> &TokenSummary {
        &self.token
    }

    /// The module file in use.
    pub fn module_path(&self) -> &Path {
        &self.module
    }

    /// The module context.
    pub fn context(&self) -> &Pkcs11 {
        &self.ctx
    }
}

/// The tokens of one module, scanned once, for opening many tokens by URI.
///
/// [`TokenSession::open`] reads the slot and token information of every slot to find the one
/// token a URI names. With many tokens in one module (a factory station with a SoftHSM token per
/// device) that scan dominates; a `TokenIndex` scans once and matches later URIs against the
/// snapshot. A URI that matches no token triggers one rescan (tokens initialized since), so
/// results equal those of [`TokenSession::open`]. `Sync`: share one index between worker
/// threads; every [`TokenIndex::open`] returns a new session.
#[derive(Debug)]
pub struct TokenIndex {
    ctx: Pkcs11,
    module: PathBuf,
    tokens: std::sync::RwLock<Vec<SlotToken>>,
}

impl std::fmt::Debug for SlotToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotToken")
            .field("slot", &self.slot.id())
            .field("label", &self.summary.label)
            .finish()
    }
}

impl TokenIndex {
    /// Loads (once per process) and scans the module at `module_path`.
    pub fn new(module_path: &Path) -> Result<TokenIndex> {
        let ctx = module::context(module_path)?;
        let tokens = scan(&ctx)?;
        Ok(TokenIndex {
            ctx,
            module: module_path.to_path_buf(),
            tokens: std::sync::RwLock::new(tokens),
        })
    }

    /// The module file this index scanned.
    pub fn module_path(&self) -> &Path {
        &self.module
    }

    /// The tokens of the snapshot.
    pub fn tokens(&self) -> Vec<TokenSummary> {
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        tokens.iter().map(|t| t.summary.clone()).collect()
    }

    /// Opens a session on the one initialized token the URI's token attributes match (the
    /// URI's module attributes are not consulted: this index is one module). No login yet.
    pub fn open(&self, uri: &Pkcs11Uri, access: Access) -> Result<TokenSession> {
        let found = {
            let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
            select_token(uri, &tokens)
        };
        let (slot, token) = match found {
            Err(Error::TokenNotFound { .. }) => {
                let fresh = scan(&self.ctx)?;
                let selected = select_token(uri, &fresh);
                *self.tokens.write().unwrap_or_else(|e| e.into_inner()) = fresh;
                selected?
            }
            other => other?,
        };
        TokenSession::on_slot(self.ctx.clone(), slot, token, self.module.clone(), access)
    }
}

fn open_session(ctx: &Pkcs11, slot: Slot, access: Access, label: &str) -> Result<Session> {
    let result = match access {
        Access::ReadOnly => ctx.open_ro_session(slot),
        Access::ReadWrite => ctx.open_rw_session(slot),
    };
    result.map_err(|e| Error::pkcs11(e, format!("opening a session on token `{label}`")))
}

fn select_token(uri: &Pkcs11Uri, tokens: &[SlotToken]) -> Result<(Slot, TokenSummary)> {
    let matching: Vec<&SlotToken> = tokens
        .iter()
        .filter(|t| t.summary.initialized && token_matches(uri, &t.facts))
        .collect();
    match matching.len() {
        1 => Ok((matching[0].slot, matching[0].summary.clone())),
        0 => Err(Error::TokenNotFound {
            uri: uri.token_part().redacted(),
            // Listed only for the error: formatting a thousand token URIs for every lookup of
            // a station's device token took 7 % of a provisioning batch's CPU time.
            candidates: Candidates(tokens.iter().map(|t| t.summary.candidate_line()).collect()),
        }),
        _ => Err(Error::TokenAmbiguous {
            uri: uri.token_part().redacted(),
            candidates: Candidates(
                matching
                    .iter()
                    .map(|t| t.summary.candidate_line())
                    .collect(),
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(label: &str, model: &str) -> TokenFacts {
        TokenFacts {
            library_manufacturer: "SoftHSM".into(),
            library_description: "Implementation of PKCS11".into(),
            library_version: (2, 6),
            slot_id: 7,
            slot_description: "SoftHSM slot ID 0x7".into(),
            slot_manufacturer: "SoftHSM project".into(),
            token: [
                label.into(),
                "SoftHSM project".into(),
                model.into(),
                "abc".into(),
            ],
        }
    }

    #[test]
    fn matching_is_by_every_given_attribute() {
        let f = facts("rauc-test", "SoftHSM v2");
        let yes = [
            "pkcs11:",
            "pkcs11:token=rauc-test",
            "pkcs11:token=rauc-test;serial=abc;model=SoftHSM%20v2",
            "pkcs11:library-version=2",
            "pkcs11:library-version=2.6;slot-id=7",
            "pkcs11:token=rauc-test;object=whatever;type=cert",
        ];
        for s in yes {
            assert!(token_matches(&Pkcs11Uri::parse(s).unwrap(), &f), "{s}");
        }
        let no = [
            "pkcs11:token=other",
            "pkcs11:serial=abd",
            "pkcs11:library-version=2.5",
            "pkcs11:slot-id=8",
            "pkcs11:slot-manufacturer=x",
        ];
        for s in no {
            assert!(!token_matches(&Pkcs11Uri::parse(s).unwrap(), &f), "{s}");
        }
    }

    #[test]
    fn general_errors_are_retried_others_not() {
        use cryptoki::context::Function;
        let mut calls = 0;
        let r = retry_busy(|| {
            calls += 1;
            if calls < 3 {
                Err(CkError::Pkcs11(
                    RvError::GeneralError,
                    Function::GetTokenInfo,
                ))
            } else {
                Ok(calls)
            }
        });
        assert_eq!(r.unwrap(), 3);
        let mut calls = 0;
        let r: cryptoki::error::Result<()> = retry_busy(|| {
            calls += 1;
            Err(CkError::Pkcs11(RvError::PinIncorrect, Function::Login))
        });
        assert!(r.is_err());
        assert_eq!(calls, 1, "a wrong PIN is never tried again");
        let mut calls = 0;
        let r: cryptoki::error::Result<()> = retry_busy(|| {
            calls += 1;
            Err(CkError::Pkcs11(RvError::GeneralError, Function::Login))
        });
        assert!(r.is_err());
        assert_eq!(calls, BUSY_PAUSES.len() + 1);
    }

    #[test]
    fn padding_is_ignored() {
        let f = facts("tpm-token", "SW   TPM\0\0\0\0\0\0\0\0");
        for s in [
            "pkcs11:model=SW%20%20%20TPM%00%00%00%00%00%00%00%00",
            "pkcs11:model=SW%20%20%20TPM",
        ] {
            assert!(token_matches(&Pkcs11Uri::parse(s).unwrap(), &f), "{s}");
        }
    }
}
