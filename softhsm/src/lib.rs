//! Test support: a temporary SoftHSM token as a value that cleans up on Drop.
//!
//! [`SoftHsm::new`] creates a private directory with a `softhsm2.conf` and a token directory and
//! exports `SOFTHSM2_CONF` for the current process. SoftHSM reads that variable once, when the
//! module is initialized (`C_Initialize`), so **use one `SoftHsm` per test process** and create it
//! before anything in the process loads the module. `cargo nextest` runs every test in its own
//! process, which is why the integration tests of this workspace run under it.
//!
//! Child processes (rauc, openssl with the pkcs11 engine, pkcs11-tool, softhsm2-util) need the
//! same variable: pass [`SoftHsm::env`] to them or build them with [`SoftHsm::command`].
//!
//! Tokens are created with the real `softhsm2-util`; keys and certificates are created and
//! written with the real `pkcs11-tool` (OpenSC), exactly as an operator would do it.

mod token;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use token::TokenHandle;

/// Path of the SoftHSM 2 PKCS#11 module on Debian.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Name of the environment variable SoftHSM reads its configuration path from.
pub const CONF_ENV: &str = "SOFTHSM2_CONF";

/// Errors of the test-support helpers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was attempted.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A tool could not be started (not installed?).
    #[error("cannot run `{program}`: {source} (is it installed? see environment.md §1)")]
    Spawn {
        /// The program.
        program: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A tool ran and failed.
    #[error("`{command}` failed with {status}:\n{stderr}")]
    Tool {
        /// The command line (without PINs).
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its standard error output.
        stderr: String,
    },
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// A private SoftHSM installation in a temporary directory; everything is removed on Drop.
#[derive(Debug)]
pub struct SoftHsm {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

impl SoftHsm {
    /// Creates the directory, the token directory and `softhsm2.conf`, and exports
    /// `SOFTHSM2_CONF` for this process.
    ///
    /// One per test process: SoftHSM reads the variable once per process.
    pub fn new() -> Result<SoftHsm> {
        let hsm = SoftHsm::new_unexported()?;
        // SAFETY: test support. Tests call this at their start, before they spawn threads that
        // read the environment; the documented rule is one SoftHsm per test process.
        unsafe { std::env::set_var(CONF_ENV, &hsm.conf) };
        Ok(hsm)
    }

    /// Like [`SoftHsm::new`] but leaves this process's environment alone: only child processes
    /// that get [`SoftHsm::env`] see the tokens.
    pub fn new_unexported() -> Result<SoftHsm> {
        let dir = tempfile::Builder::new()
            .prefix("softhsm-")
            .tempdir()
            .map_err(|source| Error::Io {
                what: "create temporary directory in",
                path: std::env::temp_dir(),
                source,
            })?;
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).map_err(|source| Error::Io {
            what: "create",
            path: tokens.clone(),
            source,
        })?;
        let conf = dir.path().join("softhsm2.conf");
        let text = format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        );
        std::fs::write(&conf, text).map_err(|source| Error::Io {
            what: "write",
            path: conf.clone(),
            source,
        })?;
        Ok(SoftHsm { dir, conf })
    }

    /// The temporary directory (scratch space for tests; removed on Drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Path of the generated `softhsm2.conf`.
    pub fn conf_path(&self) -> &Path {
        &self.conf
    }

    /// Path of the SoftHSM PKCS#11 module.
    pub fn module_path(&self) -> &Path {
        Path::new(SOFTHSM_MODULE)
    }

    /// Environment for child processes: `SOFTHSM2_CONF` pointing at this installation.
    pub fn env(&self) -> Vec<(OsString, OsString)> {
        vec![(CONF_ENV.into(), self.conf.clone().into_os_string())]
    }

    /// A `Command` for `program` with [`SoftHsm::env`] applied.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.envs(self.env());
        cmd
    }

    /// Initializes a new token with `softhsm2-util --init-token --free`.
    pub fn init_token(&self, label: &str, so_pin: &str, user_pin: &str) -> Result<TokenHandle> {
        let mut cmd = self.command("softhsm2-util");
        cmd.args(["--init-token", "--free", "--label", label])
            .args(["--so-pin", so_pin, "--pin", user_pin]);
        run(
            cmd,
            &format!("softhsm2-util --init-token --free --label {label}"),
        )?;
        Ok(TokenHandle::new(self, label, so_pin, user_pin))
    }
}

/// Runs `cmd`, returning its output on success and its stderr on failure. `shown` is the command
/// line used in error messages (without secrets).
pub(crate) fn run(mut cmd: Command, shown: &str) -> Result<Output> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .output()
        .map_err(|source| Error::Spawn { program, source })?;
    if !out.status.success() {
        return Err(Error::Tool {
            command: shown.to_string(),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned()
                + &String::from_utf8_lossy(&out.stdout),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_config_and_cleans_up() {
        let hsm = SoftHsm::new_unexported().unwrap();
        let dir = hsm.dir().to_path_buf();
        let conf = std::fs::read_to_string(hsm.conf_path()).unwrap();
        assert!(conf.contains(&dir.join("tokens").display().to_string()));
        let token = hsm.init_token("unit", "12345678", "1234").unwrap();
        assert_eq!(token.label(), "unit");
        assert!(std::fs::read_dir(dir.join("tokens")).unwrap().count() == 1);
        drop(hsm);
        assert!(!dir.exists());
    }
}
