//! The `keymgr` command line: one module per subcommand, each an `Args` struct with `run`.

mod delete;
mod export;
mod generate;
mod import;
mod objects;
mod output;
mod tokens;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use keymgr::{Access, Pkcs11Uri, TokenSession};

/// Manage keys and certificates in PKCS#11 tokens (SoftHSM, HSMs, tpm2-pkcs11) by `pkcs11:` URI.
///
/// Objects are named by RFC 7512 URIs, e.g. `pkcs11:token=rauc-test;object=ec-sign;type=private`.
/// The PKCS#11 module comes from the URI (`?module-path=…` or `?module-name=…`), else --module,
/// else PKCS11_MODULE_PATH or RAUC_PKCS11_MODULE, else the p11-kit proxy.
///
/// PINs are never taken from the command line: put `?pin-source=<file>` in the URI, set
/// RAUC_PKCS11_PIN, or run on a terminal to be prompted.
#[derive(Debug, Parser)]
#[command(name = "keymgr", version, max_term_width = 100)]
pub struct Cli {
    /// PKCS#11 module to load when the URI names none.
    #[arg(long, global = true, value_name = "PATH")]
    module: Option<PathBuf>,

    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Readable)]
    output_format: OutputFormat,

    /// Print debug messages.
    #[arg(short, long, global = true)]
    debug: bool,

    #[command(subcommand)]
    command: Command,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Text for people.
    Readable,
    /// JSON for scripts.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    Tokens(tokens::Args),
    Objects(objects::Args),
    Generate(generate::Args),
    Import(import::Args),
    Export(export::Args),
    Delete(delete::Args),
}

/// What every subcommand gets besides its own arguments.
#[derive(Debug, Clone)]
pub struct Global {
    /// `--module`.
    pub module: Option<PathBuf>,
    /// `--output-format`.
    pub format: OutputFormat,
}

/// Parses the command line, runs the subcommand and maps errors to exit status 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.debug);
    let global = Global {
        module: cli.module,
        format: cli.output_format,
    };
    let result = match cli.command {
        Command::Tokens(args) => args.run(&global),
        Command::Objects(args) => args.run(&global),
        Command::Generate(args) => args.run(&global),
        Command::Import(args) => args.run(&global),
        Command::Export(args) => args.run(&global),
        Command::Delete(args) => args.run(&global),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keymgr: {}", bundle::error::error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn init_logging(debug: bool) {
    let default = if debug { "debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .init();
}

/// Parses a URI argument; a `pin-value` is refused (PINs never on argv).
pub fn parse_uri(s: &str) -> Result<Pkcs11Uri> {
    let uri = Pkcs11Uri::parse(s)?;
    if uri.pin_value.is_some() {
        bail!(
            "PINs are never taken from the command line: remove pin-value from the URI and use \
             pin-source=<file>, RAUC_PKCS11_PIN or the prompt"
        );
    }
    Ok(uri)
}

/// Opens a session on the token of `uri` and logs in.
pub fn open_logged_in(uri: &Pkcs11Uri, global: &Global, access: Access) -> Result<TokenSession> {
    let mut ts = TokenSession::open(uri, global.module.as_deref(), access)?;
    ts.login(uri)
        .with_context(|| format!("cannot log in to token `{}`", ts.token().label))?;
    Ok(ts)
}

/// A `CKA_ID` given in hex on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HexId(pub Vec<u8>);

/// Parses `--id` hex (colons and spaces allowed).
pub fn parse_hex_id(s: &str) -> std::result::Result<HexId, String> {
    let clean: String = s.chars().filter(|c| !matches!(c, ':' | ' ')).collect();
    if clean.is_empty() {
        return Err("empty id".into());
    }
    hex::decode(&clean)
        .map(HexId)
        .map_err(|e| format!("not hex ({e}); write e.g. 01 or a1b2c3"))
}
