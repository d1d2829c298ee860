//! What a bundle contains, rendered as `rauc info` 1.8 prints it (readable, shell, json); used by
//! `signer info` and the device's `ota info`.

use std::fmt::Write;

use crate::cms::enveloped::RecipientListing;
use crate::manifest::{BundleFormat, Manifest};
use openssl::x509::X509;
use serde_json::{Value, json};

/// Output formats of `info` (rauc's `--output-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// rauc 1.8's human-readable text (TAB-aligned).
    Readable,
    /// Shell variable assignments (`RAUC_MF_*`, `RAUC_IMAGE_*_<n>`).
    Shell,
    /// Compact JSON (rauc 1.8 keys plus `format` and `hash`).
    Json,
    /// Indented JSON.
    JsonPretty,
}

/// Everything `info` can print about a bundle.
pub struct BundleInfo {
    /// The bundle format.
    pub format: BundleFormat,
    /// Whether the CMS was an EnvelopedData.
    pub encrypted: bool,
    /// The manifest (external for verity/crypt, from the squashfs for plain).
    pub manifest: Manifest,
    /// SHA-256 of the manifest bytes.
    pub manifest_hash: [u8; 32],
    /// The verified chain, or `None` with `--no-verify`.
    pub chain: Option<Vec<X509>>,
    /// The first certificate of the CMS (for `--dump-cert`).
    pub first_certificate: Option<X509>,
    /// The recipients (for `--dump-recipients`), `None` if the CMS was not encrypted.
    pub recipients: Option<RecipientListing>,
}

/// Which optional blocks to print.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dumps {
    /// `--dump-cert`.
    pub cert: bool,
    /// `--dump-recipients`.
    pub recipients: bool,
}

/// Renders `info` output exactly as rauc 1.8 does for the readable format.
pub fn render(info: &BundleInfo, format: OutputFormat, dumps: Dumps) -> String {
    let mut out = match format {
        OutputFormat::Readable => readable(info),
        OutputFormat::Shell => shell(&info.manifest),
        OutputFormat::Json => json(info).to_string(),
        OutputFormat::JsonPretty => {
            serde_json::to_string_pretty(&json(info)).expect("JSON values serialize")
        }
    };
    out.push('\n');
    if dumps.cert
        && let Some(cert) = &info.first_certificate
    {
        out += &String::from_utf8_lossy(&cert.to_text().unwrap_or_default());
        out.push('\n');
    }
    if dumps.recipients {
        match &info.recipients {
            Some(list) => out += &list.to_rauc_text(),
            None => out += "No recipient data to dump (bundle is not encrypted)\n",
        }
        out.push('\n');
    }
    if format == OutputFormat::Readable {
        out += &chain_text(info.chain.as_deref());
    }
    out
}

fn quoted(v: &Option<String>) -> String {
    v.as_deref().unwrap_or("(null)").to_string()
}

fn readable(info: &BundleInfo) -> String {
    let m = &info.manifest;
    let mut s = String::new();
    let _ = writeln!(s, "Compatible: \t'{}'", m.update.compatible);
    let _ = writeln!(s, "Version:    \t'{}'", quoted(&m.update.version));
    let _ = writeln!(s, "Description:\t'{}'", quoted(&m.update.description));
    let _ = writeln!(s, "Build:      \t'{}'", quoted(&m.update.build));
    let _ = writeln!(s, "Hooks:      \t'{}'", bundle_hooks(m).join(" "));
    let suffix = match (info.format, info.encrypted) {
        (BundleFormat::Crypt, true) => "\x1b[1m\x1b[32m [encrypted CMS]\x1b[0m",
        (BundleFormat::Crypt, false) => "\x1b[1m\x1b[33m [unencrypted CMS]\x1b[0m",
        _ => "",
    };
    let _ = writeln!(s, "Bundle Format: \t{}{suffix}", info.format);
    if info.format == BundleFormat::Crypt {
        s += "  Crypt Key: \t'<hidden>'\n";
    }
    if info.format != BundleFormat::Plain {
        let b = &m.bundle;
        let _ = writeln!(
            s,
            "  Verity Salt: \t'{}'",
            b.verity_salt.as_deref().unwrap_or("(null)")
        );
        let _ = writeln!(
            s,
            "  Verity Hash: \t'{}'",
            b.verity_hash.as_deref().unwrap_or("(null)")
        );
        let _ = writeln!(s, "  Verity Size: \t{}", b.verity_size.unwrap_or(0));
    }
    let n = m.images.len();
    let _ = write!(
        s,
        "\n{n} Image{}{}\n",
        if n == 1 { "" } else { "s" },
        if n > 0 { ":" } else { "" }
    );
    for image in &m.images {
        let _ = writeln!(s, "  \x1b[1m[{}]\x1b[0m", image.slot_class);
        if let Some(v) = &image.variant {
            let _ = writeln!(s, "\tVariant:   {v}");
        }
        let Some(filename) = &image.filename else {
            s += "\t(no image file)\n";
            continue;
        };
        let _ = writeln!(s, "\tFilename:  {filename}");
        let _ = writeln!(
            s,
            "\tChecksum:  {}",
            image.sha256.as_deref().unwrap_or("(null)")
        );
        let _ = writeln!(s, "\tSize:      {}", image.size.unwrap_or(0));
        let _ = writeln!(s, "\tHooks:     {}", image.hooks.names().join(" "));
        if let Some(adaptive) = image.adaptive.as_ref().filter(|a| !a.is_empty()) {
            let _ = writeln!(s, "\tAdaptive:  {}", adaptive.join(" "));
        }
    }
    s
}

fn bundle_hooks(m: &Manifest) -> Vec<&'static str> {
    if m.hooks.install_check {
        vec!["install-check"]
    } else {
        Vec::new()
    }
}

fn chain_text(chain: Option<&[X509]>) -> String {
    let Some(chain) = chain else {
        return "Signature unverified\n".into();
    };
    let mut s = String::from("Certificate Chain:\n");
    for (i, cert) in chain.iter().enumerate() {
        let spki = crate::cms::verify::spki_sha256(cert)
            .map(|h| {
                h.iter()
                    .map(|b| format!("{b:02X}"))
                    .collect::<Vec<_>>()
                    .join(":")
            })
            .unwrap_or_default();
        let issuer = cert
            .issuer_name()
            .to_der()
            .ok()
            .and_then(|d| crate::cms::names::name_oneline(&d));
        let _ = writeln!(s, "{i:2} Subject: {}", subject(cert));
        let _ = writeln!(s, "   Issuer: {}", issuer.unwrap_or_default());
        let _ = writeln!(s, "   SPKI sha256: {spki}");
        let _ = writeln!(s, "   Not Before: {}", cert.not_before());
        let _ = writeln!(s, "   Not After:  {}", cert.not_after());
    }
    s.push('\n');
    s
}

fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn shell(m: &Manifest) -> String {
    let opt = |v: &Option<String>| sq(v.as_deref().unwrap_or(""));
    let mut lines = vec![
        format!("RAUC_MF_COMPATIBLE={}", sq(&m.update.compatible)),
        format!("RAUC_MF_VERSION={}", opt(&m.update.version)),
        format!("RAUC_MF_DESCRIPTION={}", opt(&m.update.description)),
        format!("RAUC_MF_BUILD={}", opt(&m.update.build)),
        format!("RAUC_MF_IMAGES={}", m.images.len()),
        format!("RAUC_MF_HOOKS={}", sq(&bundle_hooks(m).join(" "))),
    ];
    for (n, i) in m.images.iter().enumerate() {
        lines.push(format!("RAUC_IMAGE_NAME_{n}={}", opt(&i.filename)));
        lines.push(format!("RAUC_IMAGE_CLASS_{n}={}", sq(&i.slot_class)));
        lines.push(format!("RAUC_IMAGE_VARIANT_{n}={}", opt(&i.variant)));
        lines.push(format!("RAUC_IMAGE_DIGEST_{n}={}", opt(&i.sha256)));
        lines.push(format!("RAUC_IMAGE_SIZE_{n}={}", i.size.unwrap_or(0)));
        lines.push(format!(
            "RAUC_IMAGE_HOOKS_{n}={}",
            sq(&i.hooks.names().join(" "))
        ));
        if let Some(a) = i.adaptive.as_ref().filter(|a| !a.is_empty()) {
            lines.push(format!("RAUC_IMAGE_ADAPTIVE_{n}={}", sq(&a.join(" "))));
        }
    }
    // rauc ends every shell line with a newline (and then prints the block with one more).
    lines.join("\n") + "\n"
}

fn json(info: &BundleInfo) -> Value {
    let m = &info.manifest;
    let images: Vec<Value> = m
        .images
        .iter()
        .map(|i| {
            json!({ i.slot_class.clone(): {
                "variant": i.variant, "filename": i.filename, "checksum": i.sha256, "size": i.size,
                "hooks": i.hooks.names(), "adaptive": i.adaptive.clone().unwrap_or_default(),
            }})
        })
        .collect();
    json!({
        "compatible": m.update.compatible, "version": m.update.version,
        "description": m.update.description, "build": m.update.build,
        "hooks": bundle_hooks(m), "images": images,
        "format": info.format.as_str(), "hash": hex::encode(info.manifest_hash),
        "encrypted": info.encrypted, "verified": info.chain.is_some(),
    })
}

impl std::str::FromStr for OutputFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "readable" => Ok(OutputFormat::Readable),
            "shell" => Ok(OutputFormat::Shell),
            "json" => Ok(OutputFormat::Json),
            "json-pretty" => Ok(OutputFormat::JsonPretty),
            _ => Err(format!(
                "unknown output format '{s}' (readable, shell, json, json-pretty)"
            )),
        }
    }
}

/// A certificate's subject as `X509_NAME_print_ex(XN_FLAG_ONELINE)` prints it.
pub fn subject(cert: &openssl::x509::X509Ref) -> String {
    cert.subject_name()
        .to_der()
        .ok()
        .and_then(|der| crate::cms::names::name_oneline(&der))
        .unwrap_or_else(|| "<unprintable name>".into())
}
