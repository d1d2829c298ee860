//! Command-line parsing and dispatch: one module per subcommand, each an `Args` struct with
//! `run`. Exit status: 0 success, 1 error, 2 finished with failures (batch) or findings that
//! need attention (verify).

mod backend;
mod ca;
mod crl;
mod export;
mod import;
mod list;
mod provision;
mod recipients;
mod revoke;
mod show;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use factory::config::StationConfig;
use factory::inventory::Inventory;

/// Factory provisioning station: device keys in tokens, CA issuing from the station HSM,
/// device inventory, recipient lists, revocation and CRLs.
#[derive(Debug, Parser)]
#[command(name = "factory", version, max_term_width = 100)]
struct Cli {
    /// Station configuration file (TOML; see station.example.toml).
    #[arg(
        long,
        global = true,
        env = "FACTORY_CONFIG",
        default_value = "station.toml"
    )]
    config: PathBuf,

    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Readable)]
    output_format: OutputFormat,

    #[command(subcommand)]
    command: Command,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    Readable,
    /// JSON on standard output.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or import the station CA.
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// Provision a device (or a batch of devices) into its token and the inventory.
    Provision(provision::Args),
    /// List devices.
    List(list::Args),
    /// Show one device with its audit history.
    Show(show::Args),
    /// Revoke a device's certificate (it goes on the next CRL and off recipient lists).
    Revoke(revoke::RevokeArgs),
    /// Retire a device (off recipient lists; a revoked device stays on the CRL).
    Retire(revoke::RetireArgs),
    /// Write a CRL signed by the station CA.
    Crl(crl::Args),
    /// Write the recipient list (certificates of active, unexpired devices).
    Recipients(recipients::Args),
    /// Export the inventory as JSON lines.
    Export(export::Args),
    /// Import an inventory export (all or nothing).
    Import(import::Args),
    /// Reconcile the inventory with the device tokens; repair or report.
    Verify(verify::Args),
}

/// What every subcommand gets.
#[derive(Debug)]
pub struct Ctx {
    config: PathBuf,
    /// Output format.
    pub format: OutputFormat,
}

impl Ctx {
    /// Loads the station configuration.
    pub fn config(&self) -> anyhow::Result<StationConfig> {
        Ok(StationConfig::load(&self.config)?)
    }

    /// Opens the inventory named by the configuration.
    pub fn inventory(&self, config: &StationConfig) -> anyhow::Result<Inventory> {
        Inventory::open(&config.inventory).with_context(|| "cannot open the inventory".to_string())
    }

    /// Prints a value as pretty JSON on standard output.
    pub fn print_json(&self, value: &impl serde::Serialize) -> anyhow::Result<()> {
        println!("{}", serde_json::to_string_pretty(value)?);
        Ok(())
    }

    /// True for JSON output.
    pub fn json(&self) -> bool {
        self.format == OutputFormat::Json
    }
}

/// Parses the command line, runs the subcommand and maps errors to exit status 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FACTORY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let ctx = Ctx {
        config: cli.config,
        format: cli.output_format,
    };
    let result = match cli.command {
        Command::Ca(c) => c.run(&ctx),
        Command::Provision(a) => a.run(&ctx),
        Command::List(a) => a.run(&ctx),
        Command::Show(a) => a.run(&ctx),
        Command::Revoke(a) => a.run(&ctx),
        Command::Retire(a) => a.run(&ctx),
        Command::Crl(a) => a.run(&ctx),
        Command::Recipients(a) => a.run(&ctx),
        Command::Export(a) => a.run(&ctx),
        Command::Import(a) => a.run(&ctx),
        Command::Verify(a) => a.run(&ctx),
    };
    match result {
        Ok(code) => code,
        // The reader went away (`factory list | head`): stop quietly, as other tools do.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", bundle::error::error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
