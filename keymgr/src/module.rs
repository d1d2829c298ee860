//! PKCS#11 module selection and the per-process module contexts.
//!
//! Order (first that applies wins): the URI's `module-path`, the URI's `module-name` (looked up
//! in the usual PKCS#11 module directories), the caller's default (`--module`), the environment
//! variables `PKCS11_MODULE_PATH` then `RAUC_PKCS11_MODULE`, and finally the p11-kit proxy.
//! [`plan_module`] is the pure decision; [`locate_module`] finds the file.
//!
//! [`context`] keeps one initialized [`Pkcs11`] per module file per process: a module is loaded
//! and `C_Initialize`d once, and every token and session of the process shares it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};

use crate::error::{Error, Result};
use crate::uri::Pkcs11Uri;

/// Environment variable naming the module (libp11/OpenSSL engine convention).
pub const MODULE_PATH_ENV: &str = "PKCS11_MODULE_PATH";
/// Environment variable naming the module (rauc convention).
pub const RAUC_MODULE_ENV: &str = "RAUC_PKCS11_MODULE";

/// The module to load, before looking at the file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleRequest {
    /// A file, and where the choice came from (for messages).
    Path(PathBuf, &'static str),
    /// A `module-name` to look up in [`module_dirs`].
    Name(String),
    /// Nothing named one: use the p11-kit proxy.
    Proxy,
}

/// Decides which module to load. `default` is the caller's `--module`; `env` reads an
/// environment variable (a parameter so the decision can be tested as data).
pub fn plan_module(
    uri: Option<&Pkcs11Uri>,
    default: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> ModuleRequest {
    if let Some(path) = uri.and_then(|u| u.module_path.as_deref()) {
        return ModuleRequest::Path(path.into(), "module-path in the URI");
    }
    if let Some(name) = uri.and_then(|u| u.module_name.as_deref()) {
        return ModuleRequest::Name(name.to_string());
    }
    if let Some(path) = default {
        return ModuleRequest::Path(path.to_path_buf(), "--module");
    }
    for (var, origin) in [
        (MODULE_PATH_ENV, "PKCS11_MODULE_PATH"),
        (RAUC_MODULE_ENV, "RAUC_PKCS11_MODULE"),
    ] {
        if let Some(value) = env(var).filter(|v| !v.is_empty()) {
            return ModuleRequest::Path(value.into(), origin);
        }
    }
    ModuleRequest::Proxy
}

/// The directories searched for a `module-name`, most specific first.
pub fn module_dirs() -> Vec<PathBuf> {
    let multiarch = format!("/usr/lib/{}-linux-gnu", std::env::consts::ARCH);
    [
        format!("{multiarch}/pkcs11"),
        "/usr/lib/pkcs11".into(),
        "/usr/local/lib/pkcs11".into(),
        "/usr/lib64/pkcs11".into(),
        format!("{multiarch}/softhsm"),
        "/usr/lib/softhsm".into(),
        multiarch,
        "/usr/lib".into(),
        "/usr/local/lib".into(),
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

/// Turns a request into an existing module file.
pub fn locate_module(request: &ModuleRequest) -> Result<PathBuf> {
    match request {
        ModuleRequest::Path(path, origin) => {
            if path.exists() {
                Ok(path.clone())
            } else {
                Err(Error::ModuleNotFound {
                    name: path.display().to_string(),
                    searched: format!("the path from {origin}"),
                })
            }
        }
        ModuleRequest::Name(name) => find_in(name, &module_dirs()),
        ModuleRequest::Proxy => find_in("p11-kit-proxy", &module_dirs()),
    }
}

fn find_in(name: &str, dirs: &[PathBuf]) -> Result<PathBuf> {
    let file_names = if name.contains('/') {
        vec![]
    } else {
        vec![
            format!("lib{name}.so"),
            format!("{name}.so"),
            name.to_string(),
        ]
    };
    for dir in dirs {
        for file in &file_names {
            let candidate = dir.join(file);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(Error::ModuleNotFound {
        name: name.to_string(),
        searched: dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Selects and locates the module for `uri` (see the module docs for the order).
pub fn resolve_module(uri: Option<&Pkcs11Uri>, default: Option<&Path>) -> Result<PathBuf> {
    let request = plan_module(uri, default, |var| std::env::var(var).ok());
    let path = locate_module(&request)?;
    tracing::debug!(module = %path.display(), ?request, "PKCS#11 module selected");
    Ok(path)
}

fn contexts() -> &'static Mutex<HashMap<PathBuf, Pkcs11>> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    CONTEXTS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The initialized context of the module at `path`, loading and initializing it on first use.
/// One per module file per process.
pub fn context(path: &Path) -> Result<Pkcs11> {
    let key = std::fs::canonicalize(path).map_err(|source| Error::Io {
        action: "find the PKCS#11 module",
        path: path.to_path_buf(),
        source,
    })?;
    let mut cache = contexts().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(ctx) = cache.get(&key) {
        return Ok(ctx.clone());
    }
    let load_error = |reason: String| Error::ModuleLoad {
        path: path.to_path_buf(),
        reason,
    };
    let ctx = Pkcs11::new(&key).map_err(|e| load_error(e.to_string()))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(load_error(format!(
                "C_Initialize: {}",
                Error::pkcs11(e, "initializing")
            )));
        }
    }
    tracing::debug!(module = %key.display(), "PKCS#11 module initialized");
    cache.insert(key, ctx.clone());
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_order() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let both = env(&[
            (MODULE_PATH_ENV, "/env/a.so"),
            (RAUC_MODULE_ENV, "/env/b.so"),
        ]);
        let uri_path = Pkcs11Uri::parse("pkcs11:?module-path=/u.so&module-name=n").unwrap();
        let uri_name = Pkcs11Uri::parse("pkcs11:?module-name=n").unwrap();
        let plain = Pkcs11Uri::parse("pkcs11:token=t").unwrap();
        let def = Path::new("/cli.so");
        assert_eq!(
            plan_module(Some(&uri_path), Some(def), both),
            ModuleRequest::Path("/u.so".into(), "module-path in the URI")
        );
        assert_eq!(
            plan_module(Some(&uri_name), Some(def), both),
            ModuleRequest::Name("n".into())
        );
        assert_eq!(
            plan_module(Some(&plain), Some(def), both),
            ModuleRequest::Path("/cli.so".into(), "--module")
        );
        assert_eq!(
            plan_module(Some(&plain), None, both),
            ModuleRequest::Path("/env/a.so".into(), "PKCS11_MODULE_PATH")
        );
        let rauc = env(&[(MODULE_PATH_ENV, ""), (RAUC_MODULE_ENV, "/env/b.so")]);
        assert_eq!(
            plan_module(None, None, rauc),
            ModuleRequest::Path("/env/b.so".into(), "RAUC_PKCS11_MODULE")
        );
        assert_eq!(plan_module(None, None, env(&[])), ModuleRequest::Proxy);
    }

    #[test]
    fn module_name_lookup() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("libfoo.so"), b"").unwrap();
        let dirs = [PathBuf::from("/nonexistent"), dir.path().to_path_buf()];
        assert_eq!(find_in("foo", &dirs).unwrap(), dir.path().join("libfoo.so"));
        let err = find_in("bar", &dirs).unwrap_err().to_string();
        assert!(
            err.contains("`bar` not found") && err.contains("/nonexistent"),
            "{err}"
        );
        // The real softhsm2 module is found by name (environment.md §1).
        let found = locate_module(&ModuleRequest::Name("softhsm2".into())).unwrap();
        assert!(found.ends_with("libsofthsm2.so"), "{}", found.display());
        let proxy = locate_module(&ModuleRequest::Proxy).unwrap();
        assert!(proxy.ends_with("p11-kit-proxy.so"), "{}", proxy.display());
    }
}
