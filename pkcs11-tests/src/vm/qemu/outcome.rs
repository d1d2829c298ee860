//! What a boot produced: how it ended, the console, the guest's exit status and result files.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::super::initramfs::MARK;
use super::super::{VmError, run_command};
use super::is_mark;

/// How the boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmEnd {
    /// QEMU exited by itself (guest power-off, reboot or panic).
    PoweredOff,
    /// QEMU was killed on purpose after the marker line (see `Vm::kill_after`).
    Killed {
        /// The marker that triggered the kill.
        marker: String,
    },
    /// QEMU was killed because the time limit expired.
    TimedOut {
        /// The limit.
        after: Duration,
    },
}

/// The result of one boot.
#[derive(Debug)]
pub struct VmOutcome {
    /// How the boot ended.
    pub end: VmEnd,
    /// Wall-clock time from QEMU start to exit.
    pub elapsed: Duration,
    lines: Vec<String>,
    times: Vec<Duration>,
    qemu_stderr: String,
    results: Result<PathBuf, String>,
}

impl VmOutcome {
    pub(super) fn new(
        end: VmEnd,
        timed: Vec<(Duration, String)>,
        qemu_stderr: String,
        elapsed: Duration,
        results_disk: Option<PathBuf>,
        workdir: &Path,
    ) -> VmOutcome {
        let results = match results_disk {
            None => Err("the VM was not asked to collect results".to_string()),
            Some(_) if end != VmEnd::PoweredOff => {
                Err(format!("no results: the VM ended with {end:?}"))
            }
            Some(disk) => {
                extract_results(&disk, &workdir.join("results")).map_err(|e| e.to_string())
            }
        };
        let (times, lines) = timed.into_iter().unzip();
        VmOutcome {
            end,
            elapsed,
            lines,
            times,
            qemu_stderr,
            results,
        }
    }

    /// The cleaned console lines.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// When the host received the first console line containing `needle`, counted from the
    /// QEMU start.
    pub fn time_of(&self, needle: &str) -> Option<Duration> {
        self.lines
            .iter()
            .position(|l| l.contains(needle))
            .map(|i| self.times[i])
    }

    /// The cleaned console as one text.
    pub fn console(&self) -> String {
        self.lines.join("\n") + "\n"
    }

    /// Whether any console line contains `needle`.
    pub fn contains(&self, needle: &str) -> bool {
        self.lines.iter().any(|l| l.contains(needle))
    }

    /// The last `n` console lines.
    pub fn tail(&self, n: usize) -> String {
        self.lines[self.lines.len().saturating_sub(n)..].join("\n")
    }

    /// What QEMU wrote to its standard error.
    pub fn qemu_stderr(&self) -> &str {
        &self.qemu_stderr
    }

    /// The exit status of the test script, if the guest got that far.
    pub fn exit_code(&self) -> Option<i32> {
        self.marks("exit").last().and_then(|v| v.parse().ok())
    }

    /// Guest uptime in seconds at the `/init` checkpoints `init`, `modules` and `script-done`.
    pub fn uptime(&self, label: &str) -> Option<f64> {
        let prefix = format!("{label} ");
        self.marks("uptime")
            .iter()
            .find_map(|v| v.strip_prefix(&prefix)?.parse().ok())
    }

    /// Values of the `@@OTA-VM <key> <value>` lines.
    fn marks(&self, key: &str) -> Vec<&str> {
        let prefix = format!("{MARK} {key} ");
        self.lines
            .iter()
            .filter(|l| is_mark(l))
            .filter_map(|l| l.strip_prefix(&prefix))
            .collect()
    }

    /// Requires a clean power-off, every module loaded and exit status 0 from the script.
    pub fn expect_success(&self) -> Result<(), VmError> {
        let problem = if self.end != VmEnd::PoweredOff {
            Some(format!(
                "the VM did not power off by itself: {:?}",
                self.end
            ))
        } else if let Some(module) = self.marks("insmod-failed").first() {
            Some(format!("insmod {module} failed"))
        } else {
            match self.exit_code() {
                Some(0) => None,
                Some(code) => Some(format!("the test script exited with status {code}")),
                None => Some(format!(
                    "the guest printed no exit status (QEMU stderr: {})",
                    self.qemu_stderr.trim()
                )),
            }
        };
        match problem {
            None => Ok(()),
            Some(message) => Err(VmError::Guest {
                message,
                tail: self.tail(60),
            }),
        }
    }

    /// A file the script left in `$OTA_VM_RESULTS` (a path relative to it).
    pub fn result(&self, name: &str) -> Result<Vec<u8>, VmError> {
        let dir = self.results.as_ref().map_err(|e| VmError::Guest {
            message: e.clone(),
            tail: self.tail(30),
        })?;
        let path = dir.join(name.trim_start_matches('/'));
        std::fs::read(&path).map_err(|e| VmError::io("read the guest result", path, e))
    }
}

/// Unpacks the tar archive the guest wrote to the raw results disk (no mount needed).
fn extract_results(disk: &Path, into: &Path) -> Result<PathBuf, VmError> {
    std::fs::create_dir_all(into).map_err(|e| VmError::io("create", into, e))?;
    run_command(Command::new("tar").arg("-xf").arg(disk).arg("-C").arg(into))?;
    Ok(into.to_path_buf())
}
