//! `tpm2:` key specs and TCTI selection.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::TpmError;

/// The scheme prefix of a TPM key spec.
pub const SCHEME: &str = "tpm2:";

/// TCTI used when neither the spec nor the environment names one (the kernel resource manager).
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";

/// A TPM-native key addressed by a spec string:
/// `tpm2:handle=0x81000100[;tcti=<TCTI>][;cert=<PEM or DER file>]`.
///
/// `handle` is a persistent handle (`0x81000000`–`0x81ffffff`). `tcti` is a tpm2-tss TCTI
/// configuration such as `swtpm:host=127.0.0.1,port=2321` or `device:/dev/tpmrm0`; without it
/// `TPM2TOOLS_TCTI`, then `TCTI`, then [`DEFAULT_TCTI`] apply. `cert` names the key's
/// certificate, which lets decryption find its recipient without trying others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmKeySpec {
    /// The persistent handle.
    pub handle: u32,
    /// The TCTI from the spec, if given.
    pub tcti: Option<String>,
    /// The certificate file from the spec, if given.
    pub cert: Option<PathBuf>,
}

impl TpmKeySpec {
    /// A spec for `handle` with the TCTI from the environment and no certificate.
    pub fn new(handle: u32) -> Self {
        TpmKeySpec {
            handle,
            tcti: None,
            cert: None,
        }
    }

    /// True if `s` is a TPM key spec (starts with `tpm2:`).
    pub fn is_tpm_spec(s: &str) -> bool {
        s.starts_with(SCHEME)
    }

    /// The TCTI to use: the spec's, else the environment's (see [`resolve_tcti`]).
    pub fn resolved_tcti(&self) -> String {
        resolve_tcti(self.tcti.as_deref())
    }
}

/// `explicit`, else `TPM2TOOLS_TCTI`, else `TCTI`, else [`DEFAULT_TCTI`].
pub fn resolve_tcti(explicit: Option<&str>) -> String {
    explicit
        .map(str::to_owned)
        .or_else(|| {
            std::env::var("TPM2TOOLS_TCTI")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .or_else(|| std::env::var("TCTI").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| DEFAULT_TCTI.to_owned())
}

/// Parses a persistent handle (`0x81000100` or decimal) and checks its range.
pub fn parse_persistent_handle(s: &str) -> Result<u32, String> {
    let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    }
    .map_err(|_| format!("'{s}' is not a number"))?;
    if !(0x8100_0000..=0x81ff_ffff).contains(&v) {
        return Err(format!(
            "{v:#010x} is not a persistent handle (0x81000000-0x81ffffff)"
        ));
    }
    Ok(v)
}

impl FromStr for TpmKeySpec {
    type Err = TpmError;

    fn from_str(spec: &str) -> Result<Self, TpmError> {
        let err = |reason: String| TpmError::Spec {
            spec: spec.to_owned(),
            reason,
        };
        let body = spec
            .strip_prefix(SCHEME)
            .ok_or_else(|| err("it does not start with 'tpm2:'".to_owned()))?;
        let mut handle = None;
        let mut tcti = None;
        let mut cert = None;
        for part in body.split(';').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| err(format!("'{part}' is not key=value")))?;
            match k {
                "handle" => handle = Some(parse_persistent_handle(v).map_err(err)?),
                "tcti" if !v.is_empty() => tcti = Some(v.to_owned()),
                "cert" if !v.is_empty() => cert = Some(PathBuf::from(v)),
                _ => return Err(err(format!("unknown or empty attribute '{k}'"))),
            }
        }
        Ok(TpmKeySpec {
            handle: handle.ok_or_else(|| err("handle= is missing".to_owned()))?,
            tcti,
            cert,
        })
    }
}

impl fmt::Display for TpmKeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}handle={:#010x}", self.handle)?;
        if let Some(t) = &self.tcti {
            write!(f, ";tcti={t}")?;
        }
        if let Some(c) = &self.cert {
            write!(f, ";cert={}", c.display())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_specs() {
        let s: TpmKeySpec =
            "tpm2:handle=0x81000100;tcti=swtpm:host=127.0.0.1,port=2321;cert=/c.pem"
                .parse()
                .unwrap();
        assert_eq!(s.handle, 0x8100_0100);
        assert_eq!(s.tcti.as_deref(), Some("swtpm:host=127.0.0.1,port=2321"));
        assert_eq!(s.cert.as_deref(), Some(std::path::Path::new("/c.pem")));
        assert_eq!(s.to_string().parse::<TpmKeySpec>().unwrap(), s);
        let s: TpmKeySpec = "tpm2:handle=2164260864".parse().unwrap();
        assert_eq!(s.handle, 0x8100_0000);
        assert_eq!(s.resolved_tcti(), resolve_tcti(None));
    }

    #[test]
    fn rejects_bad_specs() {
        for bad in [
            "pkcs11:token=x",
            "tpm2:",
            "tpm2:handle=0x80000001",
            "tpm2:handle=zz",
            "tpm2:handle=0x81000100;pin=1234",
            "tpm2:handle=0x81000100;tcti",
        ] {
            assert!(bad.parse::<TpmKeySpec>().is_err(), "{bad}");
        }
    }
}
