//! `ota info BUNDLE`: what `rauc info` prints, byte for byte (rendered by `bundle::info`).

use std::path::Path;
use std::process::ExitCode;

use bundle::info::{Dumps, OutputFormat, render};
use target::config::SystemConfig;
use target::source::{InfoOptions, KeyOverride};

use super::Global;

/// Verify a bundle and print its manifest, format and signer chain (as `rauc info`).
///
/// An encrypted bundle is decrypted with --key, else with [encryption] key of system.conf.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle.
    pub bundle: String,
    /// Output format: readable, shell, json or json-pretty.
    #[arg(long, default_value = "readable", value_name = "FORMAT")]
    pub output_format: OutputFormat,
    /// Do not verify the signature (nothing shown can then be trusted).
    #[arg(long)]
    pub no_verify: bool,
    /// Do not check certificate validity times.
    #[arg(long)]
    pub no_check_time: bool,
    /// Decryption key (PEM file, `pkcs11:` URI or `tpm2:` key) instead of [encryption] key.
    #[arg(long, value_name = "PEMFILE|PKCS11-URI")]
    pub key: Option<String>,
    /// Print the first certificate of the signature.
    #[arg(long)]
    pub dump_cert: bool,
    /// Print the recipients of an encrypted bundle.
    #[arg(long)]
    pub dump_recipients: bool,
}

/// Like rauc: a missing default config is fine for info, an invalid one is not.
fn config_for_info(g: &Global) -> anyhow::Result<SystemConfig> {
    match (&g.conf, g.config()) {
        (_, Ok(c)) => Ok(c),
        (None, Err(_)) if !Path::new(bundle::sysconf::defaults::CONFIG_PATH).exists() => {
            Ok(SystemConfig::parse(
                "[system]\ncompatible=\\s\nbootloader=noop\n",
                Path::new("/"),
            )?)
        }
        (_, Err(e)) => Err(e),
    }
}

impl Args {
    /// Opens the bundle and prints it.
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let cfg = config_for_info(g)?;
        let opener = g.verified_opener().with_no_check_time(self.no_check_time);
        let opts = InfoOptions {
            no_verify: self.no_verify,
            key: self
                .key
                .as_deref()
                .map(|key| KeyOverride { key, cert: None }),
        };
        let info = opener.bundle_info(&self.bundle, &cfg, opts)?;
        let dumps = Dumps {
            cert: self.dump_cert,
            recipients: self.dump_recipients,
        };
        print!("{}", render(&info, self.output_format, dumps));
        Ok(ExitCode::SUCCESS)
    }
}
