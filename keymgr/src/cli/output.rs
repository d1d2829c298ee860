//! Printing results and writing output files.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::{Global, OutputFormat};

/// Prints `value` as JSON, or `readable()` as text.
pub fn print<T: Serialize>(
    global: &Global,
    value: &T,
    readable: impl FnOnce() -> String,
) -> Result<()> {
    let text = match global.format {
        OutputFormat::Json => serde_json::to_string_pretty(value)? + "\n",
        OutputFormat::Readable => readable(),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Writes `data` to `path` atomically (a temporary file in the same directory, renamed into
/// place), replacing what was there.
pub fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    Ok(bundle::atomic::write_file(
        path,
        data,
        bundle::atomic::Existing::Replace,
    )?)
}

/// PEM of a DER certificate.
pub fn certificate_pem(der: &[u8]) -> Result<String> {
    let cert = openssl::x509::X509::from_der(der).context("the token's certificate is not DER")?;
    Ok(String::from_utf8(cert.to_pem()?)?)
}

/// PEM of a DER SubjectPublicKeyInfo.
pub fn public_key_pem(der: &[u8]) -> Result<String> {
    let key = openssl::pkey::PKey::public_key_from_der(der).context("bad public key DER")?;
    Ok(String::from_utf8(key.public_key_to_pem()?)?)
}
