//! `ota info BUNDLE`.

use std::process::ExitCode;

use serde_json::json;
use target::config::SystemConfig;
use target::plan::BundleInput;
use target::source::OpenOptions;

use super::Global;

/// Output formats of `rauc info`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Human-readable.
    Readable,
    /// Shell variables.
    Shell,
    /// Compact JSON (rauc 1.8 layout).
    Json,
    /// Indented JSON.
    JsonPretty,
}

/// Verify a bundle and print its manifest.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle.
    pub bundle: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "readable")]
    pub output_format: Format,
    /// Do not verify the signature.
    #[arg(long)]
    pub no_verify: bool,
}

fn readable(b: &BundleInput) -> String {
    let s = |v: &Option<String>| v.clone().unwrap_or_else(|| "(null)".into());
    let n = b.images.len();
    let mut t = format!(
        "Compatible: \t'{}'\nVersion:    \t'{}'\nDescription:\t'{}'\nBuild:      \t'{}'\nHooks:      \t'{}'\n\n{n} Image{}{}\n",
        b.compatible,
        s(&b.version),
        s(&b.description),
        s(&b.build),
        if b.install_check_hook {
            "install-check"
        } else {
            ""
        },
        if n == 1 { "" } else { "s" },
        if n > 0 { ":" } else { "" },
    );
    for i in &b.images {
        t.push_str(&format!("  [{}]\n", i.slot_class));
        if let Some(v) = &i.variant {
            t.push_str(&format!("\tVariant:   {v}\n"));
        }
        match &i.filename {
            Some(f) => t.push_str(&format!(
                "\tFilename:  {f}\n\tChecksum:  {}\n\tSize:      {}\n\tHooks:     \n",
                i.sha256.as_deref().unwrap_or(""),
                i.size
            )),
            None => t.push_str("\t(no image file)\n"),
        }
    }
    t
}

fn as_json(b: &BundleInput) -> serde_json::Value {
    let images: Vec<_> = b
        .images
        .iter()
        .map(|i| {
            json!({ i.slot_class.clone(): {
                "variant": i.variant, "filename": i.filename, "checksum": i.sha256,
                "size": i.size, "hooks": [], "adaptive": [] } })
        })
        .collect();
    json!({ "compatible": b.compatible, "version": b.version, "description": b.description,
            "build": b.build, "hooks": [], "images": images })
}

fn shell(b: &BundleInput) -> String {
    let q = |v: &str| format!("'{}'", v.replace('\'', "'\\''"));
    let o = |v: &Option<String>| q(v.as_deref().unwrap_or(""));
    let mut t = format!(
        "RAUC_MF_COMPATIBLE={}\nRAUC_MF_VERSION={}\nRAUC_MF_DESCRIPTION={}\nRAUC_MF_BUILD={}\nRAUC_MF_IMAGES={}\nRAUC_MF_HOOKS=''\n",
        q(&b.compatible),
        o(&b.version),
        o(&b.description),
        o(&b.build),
        b.images.len()
    );
    for (n, i) in b.images.iter().enumerate().map(|(n, i)| (n + 1, i)) {
        t.push_str(&format!(
            "RAUC_IMAGE_NAME_{n}={}\nRAUC_IMAGE_CLASS_{n}={}\nRAUC_IMAGE_VARIANT_{n}={}\nRAUC_IMAGE_DIGEST_{n}={}\nRAUC_IMAGE_SIZE_{n}={}\nRAUC_IMAGE_HOOKS_{n}=''\n",
            o(&i.filename), q(&i.slot_class), o(&i.variant), o(&i.sha256), i.size
        ));
    }
    t
}

impl Args {
    /// Opens the bundle and prints it.
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        // Like rauc: a missing default config is fine for info, an invalid one is not.
        let cfg = match (&g.conf, g.config()) {
            (_, Ok(c)) => c,
            (None, Err(_)) if !std::path::Path::new("/etc/rauc/system.conf").exists() => {
                SystemConfig::parse(
                    "[system]\ncompatible=\\s\nbootloader=noop\n",
                    std::path::Path::new("/"),
                )?
            }
            (_, Err(e)) => return Err(e),
        };
        let opts = OpenOptions {
            no_verify: self.no_verify,
            ..OpenOptions::default()
        };
        let b = g.opener().open(&self.bundle, &cfg, &opts)?;
        let out = match self.output_format {
            Format::Readable => readable(&b.info),
            Format::Shell => shell(&b.info),
            Format::Json => serde_json::to_string(&as_json(&b.info))?,
            Format::JsonPretty => serde_json::to_string_pretty(&as_json(&b.info))?,
        };
        println!("{out}");
        Ok(ExitCode::SUCCESS)
    }
}
