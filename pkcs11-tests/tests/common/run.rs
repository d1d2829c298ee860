//! Running the real programs: our `signer` and `keymgr` binaries, `rauc`, `openssl`, … and
//! checking their outcome.

use std::path::PathBuf;
use std::process::{Command, Output};

/// What a program did.
#[derive(Debug)]
pub struct Run {
    /// The command line (for messages).
    pub command: String,
    /// Exit status.
    pub status: std::process::ExitStatus,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Standard output as text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard output and standard error together.
    pub fn all_output(&self) -> String {
        format!("{}{}", self.stdout_text(), self.stderr)
    }

    fn describe(&self) -> String {
        format!(
            "{}\nexit: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.command,
            self.status,
            self.stdout_text(),
            self.stderr
        )
    }

    /// Asserts that standard error (or output) mentions `needle`.
    pub fn says(&self, needle: &str) -> &Self {
        assert!(
            self.all_output().contains(needle),
            "expected {needle:?} in the output of {}",
            self.describe()
        );
        self
    }
}

/// Runs `cmd` and returns what happened.
pub fn run(cmd: &mut Command) -> Run {
    let out: Output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    Run {
        command: format!("{cmd:?}"),
        status: out.status,
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `cmd` and asserts success.
pub fn ok(cmd: &mut Command) -> Run {
    let r = run(cmd);
    assert!(r.status.success(), "command failed: {}", r.describe());
    r
}

/// Runs `cmd` and asserts a non-zero exit (not a crash by signal).
pub fn fails(cmd: &mut Command) -> Run {
    let r = run(cmd);
    assert!(
        !r.status.success() && r.status.code().is_some(),
        "command should have failed: {}",
        r.describe()
    );
    r
}

/// Path of one of our binaries (`signer`, `keymgr`, `factory`) next to this test's build
/// output, built first if a source is newer ([`pkcs11_tests::station::workspace_binary`]).
pub fn bin(name: &str) -> PathBuf {
    pkcs11_tests::station::workspace_binary(name)
}
