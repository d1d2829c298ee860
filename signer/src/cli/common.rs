//! Options shared by several verbs: globals, trust (keyring) settings, decryption keys.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use bundle::cms::verify::Keyring;
use bundle::container::DEFAULT_MAX_SIGNATURE_SIZE;
use bundle::sysconf::SystemConfig;
use clap::Args;

/// Options valid before or after any verb.
#[derive(Debug, Args)]
pub struct Globals {
    /// A RAUC system.conf whose [keyring] and [encryption] settings apply (command-line options
    /// override them).
    #[arg(short = 'c', long, global = true, value_name = "FILE")]
    pub conf: Option<PathBuf>,
    /// PKCS#11 module for `pkcs11:` URIs without `module-path` (default: PKCS11_MODULE_PATH,
    /// RAUC_PKCS11_MODULE, else the p11-kit proxy).
    #[arg(long, global = true, value_name = "PATH")]
    pub module: Option<PathBuf>,
    /// Keyring: a PEM file of trusted CA certificates and optional CRLs.
    #[arg(long, global = true, value_name = "PEMFILE")]
    pub keyring: Option<PathBuf>,
    /// Print debug messages.
    #[arg(short, long, global = true)]
    pub debug: bool,
}

impl Globals {
    /// The system.conf given with `--conf`, parsed with RAUC's strictness.
    pub fn system_config(&self) -> Result<Option<SystemConfig>> {
        self.conf
            .as_deref()
            .map(|p| {
                SystemConfig::load(p).with_context(|| format!("invalid --conf {}", p.display()))
            })
            .transpose()
    }

    /// Key-opening options from `--module`.
    pub fn open_options(&self) -> keymgr::OpenOptions {
        match &self.module {
            Some(m) => keymgr::OpenOptions::with_module(m),
            None => keymgr::OpenOptions::default(),
        }
    }
}

/// Verification settings with RAUC's semantics (the `[keyring]` section of system.conf).
#[derive(Debug, Args, Default)]
pub struct TrustArgs {
    /// Hashed directory of trusted certificates and CRLs (`hash.N`, `hash.rN`).
    #[arg(long, value_name = "DIR")]
    pub keyring_directory: Option<PathBuf>,
    /// Check every certificate of the chain against a CRL of its issuer (from the keyring).
    #[arg(long)]
    pub check_crl: bool,
    /// Let intermediate certificates in the keyring act as trust anchors.
    #[arg(long)]
    pub allow_partial_chain: bool,
    /// Certificate purpose to require: `codesign` (RAUC's code-signing rule) or an OpenSSL
    /// purpose name; without it OpenSSL's S/MIME signing purpose applies.
    #[arg(long, value_name = "PURPOSE")]
    pub check_purpose: Option<String>,
    /// Do not check certificate validity times.
    #[arg(long)]
    pub no_check_time: bool,
    /// Check validity at the bundle's signing time instead of now.
    #[arg(long)]
    pub use_bundle_signing_time: bool,
}

impl TrustArgs {
    /// The keyring: `[keyring]` of `--conf` (if given) overridden by `--keyring` and these
    /// flags; `None` if that names neither a file nor a directory.
    pub fn keyring(&self, globals: &Globals) -> Result<Option<Keyring>> {
        let base = globals
            .system_config()?
            .map(|c| c.keyring)
            .unwrap_or_default();
        let keyring = Keyring {
            path: globals.keyring.clone().or(base.path),
            directory: self.keyring_directory.clone().or(base.directory),
            check_crl: self.check_crl || base.check_crl,
            allow_partial_chain: self.allow_partial_chain || base.allow_partial_chain,
            check_purpose: self.check_purpose.clone().or(base.check_purpose),
            no_check_time: self.no_check_time,
            use_bundle_signing_time: self.use_bundle_signing_time || base.use_bundle_signing_time,
        };
        Ok((keyring.path.is_some() || keyring.directory.is_some()).then_some(keyring))
    }

    /// The keyring, required unless verification is explicitly skipped.
    pub fn require_keyring(&self, globals: &Globals) -> Result<Keyring> {
        self.keyring(globals)?.context(
            "No keyring file or directory provided: pass --keyring PEMFILE or --conf with a \
             [keyring] section (or --no-verify where offered)",
        )
    }
}

/// The largest CMS rauc 1.8 accepts.
pub const MAX_CMS: u64 = DEFAULT_MAX_SIGNATURE_SIZE;

/// Opens the decryption key: `--key` if given, else `[encryption] key` (with `cert`) of
/// `--conf`; `None` if neither.
pub fn decryptor(
    spec: Option<&str>,
    globals: &Globals,
) -> Result<Option<Box<dyn keymgr::Decryptor>>> {
    let (key, cert) = match spec {
        Some(key) => (key.to_string(), None),
        None => match globals.system_config()?.map(|c| c.encryption) {
            Some(enc) if enc.key.is_some() => (
                enc.key.unwrap_or_default(),
                enc.cert.map(|c| c.to_string_lossy().into_owned()),
            ),
            _ => return Ok(None),
        },
    };
    keymgr::open_decryptor_with_certificate(&key, cert.as_deref(), &globals.open_options())
        .with_context(|| format!("cannot use decryption key '{}'", redact(&key)))
        .map(Some)
}

/// A key spec safe to print: `pkcs11:` URIs lose their query (where a `pin-value` may be).
pub fn redact(spec: &str) -> String {
    match keymgr::Pkcs11Uri::parse(spec) {
        Ok(uri) => uri.to_string(),
        Err(_) if spec.starts_with("pkcs11:") => "pkcs11:<malformed>".into(),
        Err(_) => spec.to_string(),
    }
}

/// Logs to stderr: warnings and errors always, `-d` adds debug; plain text off a terminal.
pub fn init_logging(debug: bool) {
    let level = if debug {
        "debug"
    } else {
        "warn,signer=info,bundle=info,keymgr=info"
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("SIGNER_LOG").unwrap_or_else(|_| level.into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .init();
}
