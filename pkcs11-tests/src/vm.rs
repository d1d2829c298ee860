//! Boots a Debian kernel with a busybox initramfs under QEMU (TCG) to run device-mapper tests.
//!
//! The pieces, each usable on its own:
//!
//! * [`Kernel::obtain`] — the Debian bookworm kernel behind `linux-image-amd64`, fetched with
//!   `apt-get download`, unpacked with `dpkg-deb -x` into a cache reused across runs
//!   (`$OTA_VM_CACHE`, else `$XDG_CACHE_HOME/ota-vm`, else `/var/cache/ota-vm`), plus the
//!   uncompressed `vmlinux` cut out of the bzImage so that QEMU boots it directly (PVH), which
//!   skips the slow XZ decompression under TCG.
//! * [`modules::load_order`] — module load order from each `.ko`'s `.modinfo` `depends=`.
//! * [`Initramfs`] — static busybox, modules, host binaries with every library `ldd` lists,
//!   extra files and trees, and an `/init` wrapped around a test-provided shell script; written
//!   as a `newc` cpio archive by our own writer ([`cpio`]).
//! * [`Vm`] — virtio disks, `qemu-system-x86_64 -accel tcg`, a timeout, the serial console
//!   streamed and cleaned of control sequences, optional kill at a marker line (crash tests),
//!   QEMU killed on drop, timeout and death of the test thread; the guest script's exit status
//!   and the files it leaves in `/results` (read back on the host from a raw disk holding a tar
//!   archive, without mounting) come back in a [`VmOutcome`].
//! * [`fixtures`] — host-side inputs for bundle tests: a test PKI (openssl CLI), a squashfs
//!   image, bundles made by the real `rauc bundle`, their dm parameters (openssl CLI).
//!
//! Environment: `OTA_VM_CACHE` (cache directory), `OTA_VM_KERNEL_PKG` (kernel package instead of
//! the one `linux-image-amd64` depends on), `OTA_VM_ACCEL` (default `tcg`), `OTA_VM_TIMEOUT`
//! (seconds, default 300), `OTA_VM_ECHO=1` (copy the console to stderr while it runs).

pub mod cpio;
pub mod device;
pub mod fixtures;
mod initramfs;
mod kernel;
pub mod modules;
mod qemu;

use std::path::PathBuf;

pub use initramfs::{Initramfs, RESULTS_DIR};
pub use kernel::Kernel;
pub use qemu::{Disk, Vm, VmEnd, VmOutcome};

/// The modules the bundle mount stack needs in the guest (dependencies are added automatically).
pub const DM_STACK_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "dm-mod",
    "dm-verity",
    "dm-crypt",
    "squashfs",
    "loop",
];

/// Errors of the VM harness; each says what to install or check.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// A host tool is missing.
    #[error("required host tool '{tool}' not found; install the Debian package '{package}'")]
    MissingTool {
        /// The program name.
        tool: &'static str,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// The requested QEMU accelerator is not available.
    #[error(
        "QEMU accelerator '{accel}' is not available (qemu-system-x86_64 -accel help lists: {available}); \
             set OTA_VM_ACCEL to one of them"
    )]
    AccelUnavailable {
        /// The requested accelerator.
        accel: String,
        /// What QEMU offers.
        available: String,
    },
    /// A host command failed.
    #[error("'{command}' failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The end of its standard error.
        stderr: String,
    },
    /// A file operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was attempted.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel package could not be resolved or unpacked as expected.
    #[error("kernel: {0}")]
    Kernel(String),
    /// A kernel module or its dependency is missing or malformed.
    #[error("kernel module: {0}")]
    Module(String),
    /// A host binary or library cannot be copied into the guest.
    #[error("initramfs: {0}")]
    Initramfs(String),
    /// The guest did not behave as required.
    #[error("guest: {message}\n--- console (last lines) ---\n{tail}")]
    Guest {
        /// What went wrong.
        message: String,
        /// The end of the console log.
        tail: String,
    },
    /// A test fixture could not be made.
    #[error("fixture: {0}")]
    Fixture(String),
}

impl VmError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> VmError {
        VmError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Runs a host command and returns its standard output; a failure becomes [`VmError::Command`].
pub(crate) fn run_command(command: &mut std::process::Command) -> Result<Vec<u8>, VmError> {
    let line = format!("{command:?}").replace('"', "");
    let output = command.output().map_err(|source| VmError::Command {
        command: line.clone(),
        status: "could not start".into(),
        stderr: source.to_string(),
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        return Err(VmError::Command {
            command: line,
            status: output.status.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(output.stdout)
}

/// Fails with [`VmError::MissingTool`] unless `tool` is on `PATH`.
pub(crate) fn require_tool(tool: &'static str, package: &'static str) -> Result<PathBuf, VmError> {
    find_in_path(tool).ok_or(VmError::MissingTool { tool, package })
}

/// Looks a program up on `PATH` (plus the sbin directories, which root's tools live in).
pub fn find_in_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}
