//! Running the real programs: our `signer` and `keymgr` binaries, `rauc`, `openssl`, … and
//! checking their outcome.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::SystemTime;

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

/// Path of one of our binaries (`signer`, `keymgr`) next to this test's build output.
///
/// `cargo build --workspace --all-targets` (CI) builds them; when run from
/// `cargo nextest run -p pkcs11-tests` alone, or when a source file is newer than the binary,
/// they are built once with `cargo build -p signer -p keymgr --bins` (cargo's lock serializes
/// concurrent test processes).
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        // <target>/<profile>/deps/<test>-<hash>
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        if binaries_stale(&profile_dir) {
            build_binaries(&profile_dir);
        }
        profile_dir
    });
    dir.join(name)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn newest_source(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return newest;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Ok(meta) = e.metadata() else { continue };
        let t = if meta.is_dir() {
            newest_source(&path)
        } else if path.extension().is_some_and(|x| x == "rs" || x == "toml") {
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)
        } else {
            SystemTime::UNIX_EPOCH
        };
        newest = newest.max(t);
    }
    newest
}

fn binaries_stale(profile_dir: &Path) -> bool {
    let root = workspace_root();
    let sources = ["signer", "keymgr", "bundle"]
        .iter()
        .map(|c| newest_source(&root.join(c)))
        .chain([std::fs::metadata(root.join("Cargo.lock"))
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH)])
        .max()
        .unwrap();
    ["signer", "keymgr"].iter().any(|b| {
        std::fs::metadata(profile_dir.join(b))
            .and_then(|m| m.modified())
            .map_or(true, |t| t < sources)
    })
}

fn build_binaries(profile_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
        "debug" => "dev".to_string(),
        other => other.to_string(),
    };
    let target_dir = profile_dir.parent().unwrap();
    ok(Command::new(cargo)
        .current_dir(workspace_root())
        .args(["build", "--quiet", "-p", "signer", "-p", "keymgr", "--bins"])
        .args(["--profile", &profile])
        .arg("--target-dir")
        .arg(target_dir));
}
