//! The command line: one module per verb, each an `Args` struct with `run(self)`.

mod bundle;
mod common;
mod encrypt;
mod extract;
mod info;
mod resign;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use common::Globals;

/// Build, sign, encrypt, inspect and extract RAUC bundles whose keys live in tokens.
///
/// Keys and certificates are `pkcs11:` URIs (RFC 7512) or PEM files. PINs come from the URI's
/// `pin-source`, the environment (`RAUC_PKCS11_PIN`) or a prompt (a `pin-value` in the URI works,
/// with a warning: it is visible to every user of the machine). The PKCS#11 module is the URI's
/// `module-path` or `module-name`, `--module`, `PKCS11_MODULE_PATH` or
/// `RAUC_PKCS11_MODULE`, else the p11-kit proxy. Option names follow `rauc`.
#[derive(Debug, Parser)]
#[command(
    name = "signer",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Bundle(bundle::Args),
    Encrypt(encrypt::Args),
    Info(info::Args),
    Extract(extract::ExtractArgs),
    ExtractSignature(extract::ExtractSignatureArgs),
    Resign(resign::ResignArgs),
    ReplaceSignature(resign::ReplaceArgs),
}

/// Parses the command line, runs the verb and maps errors to exit status 1.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    common::init_logging(cli.globals.debug);
    let result = match cli.command {
        Command::Bundle(a) => a.run(&cli.globals),
        Command::Encrypt(a) => a.run(&cli.globals),
        Command::Info(a) => a.run(&cli.globals),
        Command::Extract(a) => a.run(&cli.globals),
        Command::ExtractSignature(a) => a.run(&cli.globals),
        Command::Resign(a) => a.run(&cli.globals),
        Command::ReplaceSignature(a) => a.run(&cli.globals),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "signer: error: {}",
                ::bundle::error::error_chain(e.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}
