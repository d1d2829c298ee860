//! Command-line parsing and dispatch; each subcommand is a module with `Args` and `run`.

mod info;
mod install;
mod service;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use target::config::SystemConfig;
use target::install::Context;
use target::source::{BundleOpener, DirectoryBundleOpener, VerifiedOpener};

/// Device-side installer for RAUC-compatible bundles, with keys in tokens.
#[derive(Debug, Parser)]
#[command(name = "ota", version)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options accepted before or after the subcommand.
#[derive(Debug, clap::Args, Clone)]
pub struct Global {
    /// System configuration file (default /etc/rauc/system.conf).
    #[arg(short = 'c', long = "conf", global = true, value_name = "FILENAME")]
    pub conf: Option<PathBuf>,
    /// Use BOOTNAME (or a slot name or device) as the booted slot instead of the kernel command line.
    #[arg(long, global = true, value_name = "BOOTNAME")]
    pub override_boot_slot: Option<String>,
    /// Keyring file: trusted CA certificates (overrides [keyring] path).
    #[arg(long, global = true, value_name = "PEMFILE")]
    pub keyring: Option<PathBuf>,
    /// Mount prefix (overrides [system] mountprefix).
    #[arg(long = "mount", global = true, value_name = "PATH")]
    pub mount: Option<PathBuf>,
    /// Enable debug output.
    #[arg(short = 'd', long, global = true)]
    pub debug: bool,
    /// DANGEROUS, for tests and development only: treat a directory (manifest.raucm plus images)
    /// as an already verified and mounted bundle. No signature is checked.
    #[arg(long, global = true)]
    pub dangerous_unverified_directory: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install a bundle into the inactive slots.
    Install(install::Args),
    /// Show information about a bundle.
    Info(info::Args),
    /// Show the system status, or mark a slot good, bad or active.
    Status(status::Args),
    /// Run the D-Bus service (de.pengutronix.rauc).
    Service(service::Args),
}

impl Global {
    /// Loads system.conf with `--mount` applied.
    pub fn config(&self) -> anyhow::Result<SystemConfig> {
        let mut cfg = SystemConfig::load_default(self.conf.as_deref())?;
        if let Some(m) = &self.mount {
            cfg.mount_prefix = m.clone();
        }
        Ok(cfg)
    }

    /// The device context (config, bootloader, booted slot).
    pub fn context(&self) -> anyhow::Result<Context> {
        Ok(Context::new(
            self.config()?,
            self.override_boot_slot.as_deref(),
        )?)
    }

    /// The verifying bundle opener with `--keyring` applied.
    pub fn verified_opener(&self) -> VerifiedOpener {
        VerifiedOpener::new().with_keyring_path(self.keyring.clone())
    }

    /// The bundle opener: the real one, or the directory test double only when explicitly
    /// asked for.
    pub fn opener(&self) -> Arc<dyn BundleOpener> {
        if self.dangerous_unverified_directory {
            tracing::warn!(
                "--dangerous-unverified-directory: bundles are unpacked directories and NOT verified"
            );
            Arc::new(DirectoryBundleOpener)
        } else {
            Arc::new(self.verified_opener())
        }
    }
}

fn init_logging(debug: bool, default: &str) {
    let level = if debug { "debug" } else { default };
    let filter = tracing_subscriber::EnvFilter::try_from_env("OTA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// Parses the command line and runs the subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Service(_) | Command::Install(_) => "info",
        _ => "warn",
    };
    init_logging(cli.global.debug, default_level);
    let g = cli.global;
    let result = match cli.command {
        Command::Install(a) => a.run(&g),
        Command::Info(a) => a.run(&g),
        Command::Status(a) => a.run(&g),
        Command::Service(a) => a.run(&g),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", bundle::error::error_chain(e.as_ref()));
            ExitCode::from(1)
        }
    }
}
