//! Running the guest: QEMU command line, serial console streaming, timeout and kill.

mod console;
mod outcome;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use outcome::{VmEnd, VmOutcome};

use super::initramfs::{Initramfs, MARK};
use super::{Kernel, VmError, require_tool, run_command};

/// Default time limit of one boot (`OTA_VM_TIMEOUT` overrides it, in seconds).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Size of the raw disk that carries the tar of `/results` back.
const RESULTS_DISK_SIZE: u64 = 64 << 20;

/// A virtio disk backed by a host file.
#[derive(Debug, Clone)]
pub struct Disk {
    /// The host file (raw image).
    pub path: PathBuf,
    /// Attach read-only.
    pub read_only: bool,
}

impl Disk {
    /// A read-only disk.
    pub fn read_only(path: impl Into<PathBuf>) -> Disk {
        Disk {
            path: path.into(),
            read_only: true,
        }
    }

    /// A writable disk (its contents on the host change).
    pub fn writable(path: impl Into<PathBuf>) -> Disk {
        Disk {
            path: path.into(),
            read_only: false,
        }
    }
}

/// One guest boot: kernel, initramfs, disks and limits.
#[derive(Debug)]
pub struct Vm {
    kernel: Kernel,
    initramfs: Initramfs,
    disks: Vec<Disk>,
    results: bool,
    memory_mib: u32,
    timeout: Duration,
    kill_after: Option<(String, Duration)>,
    kernel_args: Vec<String>,
    cpu: Option<String>,
}

impl Vm {
    /// A VM that boots `kernel` with `initramfs` (512 MiB, one CPU).
    pub fn new(kernel: &Kernel, initramfs: Initramfs) -> Vm {
        let timeout = std::env::var("OTA_VM_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TIMEOUT);
        Vm {
            kernel: kernel.clone(),
            initramfs,
            disks: Vec::new(),
            results: false,
            memory_mib: 512,
            timeout,
            kill_after: None,
            kernel_args: Vec::new(),
            cpu: None,
        }
    }

    /// Appends an argument to the kernel command line (e.g. `rauc.slot=A`).
    pub fn kernel_arg(&mut self, arg: &str) -> &mut Self {
        self.kernel_args.push(arg.to_string());
        self
    }

    /// The QEMU CPU model (`-cpu`), e.g. `max` to let TCG emulate AES-NI and friends.
    pub fn cpu(&mut self, model: &str) -> &mut Self {
        self.cpu = Some(model.to_string());
        self
    }

    /// Attaches a disk and returns its guest device (`/dev/vda`, `/dev/vdb`, … in call order).
    pub fn disk(&mut self, disk: Disk) -> String {
        self.disks.push(disk);
        device_name(self.disks.len() - 1)
    }

    /// Sets the guest's test script (see [`Initramfs::script`]); handy once the disk names are known.
    pub fn script(&mut self, script: &str) -> &mut Self {
        self.initramfs.script(script);
        self
    }

    /// The initramfs, to add more content.
    pub fn initramfs(&mut self) -> &mut Initramfs {
        &mut self.initramfs
    }

    /// Brings the files the script leaves in `$OTA_VM_RESULTS` back to the host (through an
    /// extra raw disk attached after all others; see [`VmOutcome::result`]).
    pub fn collect_results(&mut self) -> &mut Self {
        self.results = true;
        self
    }

    /// Guest memory in MiB.
    pub fn memory_mib(&mut self, mib: u32) -> &mut Self {
        self.memory_mib = mib;
        self
    }

    /// Time limit of the boot; QEMU is killed when it expires.
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = timeout;
        self
    }

    /// Kills QEMU `delay` after the first console line containing `marker` (a simulated power cut).
    pub fn kill_after(&mut self, marker: &str, delay: Duration) -> &mut Self {
        self.kill_after = Some((marker.to_string(), delay));
        self
    }

    /// Writes the initramfs into `workdir`, boots, and waits for power-off, kill or timeout.
    pub fn run(&self, workdir: &Path) -> Result<VmOutcome, VmError> {
        let qemu = require_tool("qemu-system-x86_64", "qemu-system-x86")?;
        let accel = std::env::var("OTA_VM_ACCEL")
            .ok()
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| "tcg".into());
        check_accel(&qemu, &accel)?;
        let initrd = workdir.join("initramfs.cpio");
        let results_disk = self.results.then(|| workdir.join("results.img"));
        let results_device = results_disk.as_ref().map(|_| device_name(self.disks.len()));
        self.initramfs.write(&initrd, results_device.as_deref())?;
        let mut disks = self.disks.clone();
        if let Some(path) = &results_disk {
            let file = std::fs::File::create(path).map_err(|e| VmError::io("create", path, e))?;
            file.set_len(RESULTS_DISK_SIZE)
                .map_err(|e| VmError::io("size", path, e))?;
            disks.push(Disk::writable(path));
        }
        let mut command = self.command(&qemu, &accel, &initrd, &disks);
        let started = Instant::now();
        let mut child = QemuChild::spawn(&mut command)?;
        let (end, lines) = self.watch(&mut child)?;
        let stderr = child.finish();
        let outcome = VmOutcome::new(end, lines, stderr, started.elapsed(), results_disk, workdir);
        std::fs::write(workdir.join("console.log"), outcome.console())
            .map_err(|e| VmError::io("write", workdir.join("console.log"), e))?;
        Ok(outcome)
    }

    fn command(&self, qemu: &Path, accel: &str, initrd: &Path, disks: &[Disk]) -> Command {
        let mut command = Command::new(qemu);
        command
            .args([
                "-accel",
                accel,
                "-m",
                &self.memory_mib.to_string(),
                "-smp",
                "1",
            ])
            .args([
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-serial",
                "stdio",
                "-no-reboot",
            ])
            .arg("-kernel")
            .arg(&self.kernel.boot_image)
            .arg("-initrd")
            .arg(initrd);
        let mut append = "console=ttyS0 panic=-1 quiet rdinit=/init".to_string();
        for arg in &self.kernel_args {
            append.push(' ');
            append.push_str(arg);
        }
        command.arg("-append").arg(append);
        if let Some(cpu) = &self.cpu {
            command.args(["-cpu", cpu]);
        }
        for disk in disks {
            let mut spec = format!("file={},format=raw,if=virtio", disk.path.display());
            if disk.read_only {
                spec.push_str(",readonly=on");
            }
            command.arg("-drive").arg(spec);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Streams console lines until QEMU exits, the timeout expires or the kill marker fires.
    fn watch(&self, child: &mut QemuChild) -> Result<(VmEnd, Vec<(Duration, String)>), VmError> {
        let echo = std::env::var("OTA_VM_ECHO").is_ok_and(|v| v == "1");
        let deadline = Instant::now() + self.timeout;
        let mut kill_at: Option<(Instant, String)> = None;
        let mut lines = Vec::new();
        loop {
            let wake = kill_at
                .as_ref()
                .map_or(deadline, |(at, _)| (*at).min(deadline));
            match child
                .lines
                .recv_timeout(wake.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    if echo {
                        eprintln!("vm| {line}");
                    }
                    if let Some((marker, delay)) = &self.kill_after
                        && kill_at.is_none()
                        && line.contains(marker.as_str())
                    {
                        kill_at = Some((Instant::now() + *delay, marker.clone()));
                    }
                    lines.push((child.started.elapsed(), line));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok((VmEnd::PoweredOff, lines)),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    child.kill();
                    return Ok(match kill_at {
                        Some((at, marker)) if at <= deadline => (VmEnd::Killed { marker }, lines),
                        _ => (
                            VmEnd::TimedOut {
                                after: self.timeout,
                            },
                            lines,
                        ),
                    });
                }
            }
        }
    }
}

/// `/dev/vda`, `/dev/vdb`, … (at most 26 disks).
fn device_name(index: usize) -> String {
    format!(
        "/dev/vd{}",
        char::from(b'a' + u8::try_from(index).expect("fewer than 26 disks"))
    )
}

fn check_accel(qemu: &Path, accel: &str) -> Result<(), VmError> {
    let out = run_command(Command::new(qemu).args(["-accel", "help"]))?;
    let text = String::from_utf8_lossy(&out);
    let available: Vec<&str> = text
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if available.contains(&accel) {
        Ok(())
    } else {
        Err(VmError::AccelUnavailable {
            accel: accel.to_string(),
            available: available.join(", "),
        })
    }
}

/// The QEMU process: killed on drop, and (through `PR_SET_PDEATHSIG`) when the thread that
/// started it dies, so no QEMU outlives its test.
struct QemuChild {
    child: Child,
    started: Instant,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl QemuChild {
    fn spawn(command: &mut Command) -> Result<QemuChild, VmError> {
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .map_err(|e| VmError::io("start", "qemu-system-x86_64", e))?;
        let stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || console::stream_lines(stdout, &sender));
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Ok(QemuChild {
            child,
            started: Instant::now(),
            lines,
            stderr: Some(stderr),
        })
    }

    /// SIGKILL to our own QEMU (by its PID, through `Child::kill`) and reap it.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for exit and returns QEMU's standard error.
    fn finish(mut self) -> String {
        let _ = self.child.wait();
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for QemuChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// Whether a console line is one of the generated `/init`'s markers.
pub(crate) fn is_mark(line: &str) -> bool {
    line.starts_with(MARK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_names_follow_attach_order() {
        assert_eq!(device_name(0), "/dev/vda");
        assert_eq!(device_name(2), "/dev/vdc");
    }

    #[test]
    fn unknown_accelerators_and_tools_are_named_in_errors() {
        let qemu = require_tool("qemu-system-x86_64", "qemu-system-x86").unwrap();
        assert!(check_accel(&qemu, "tcg").is_ok());
        let err = check_accel(&qemu, "warp-drive").unwrap_err().to_string();
        assert!(
            err.contains("'warp-drive' is not available") && err.contains("tcg"),
            "{err}"
        );
        let err = require_tool("no-such-tool-here", "some-package")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("install the Debian package 'some-package'"),
            "{err}"
        );
    }
}
