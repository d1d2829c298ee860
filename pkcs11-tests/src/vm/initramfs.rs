//! The guest's initramfs: static busybox, kernel modules, host binaries with their libraries,
//! extra files and an `/init` around a test script, written as an uncompressed `newc` cpio.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use super::cpio::CpioWriter;
use super::{Kernel, VmError, find_in_path, modules, require_tool, run_command};

/// Directory in the guest whose files come back to the host (see `VmOutcome::result`).
pub const RESULTS_DIR: &str = "/results";
/// Prefix of the lines the generated `/init` prints.
pub(crate) const MARK: &str = "@@OTA-VM";

const TEST_SCRIPT: &str = "etc/ota-vm/test.sh";
const MODULE_LIST: &str = "etc/ota-vm/modules";

#[derive(Debug, Clone)]
enum Entry {
    Dir,
    Bytes {
        data: Vec<u8>,
        mode: u32,
    },
    Host {
        path: PathBuf,
        mode: u32,
        strip: bool,
    },
    Symlink(String),
    CharDev {
        major: u32,
        minor: u32,
    },
}

/// Content of the guest's root file system (paths are absolute guest paths).
#[derive(Debug, Clone)]
pub struct Initramfs {
    entries: BTreeMap<String, Entry>,
    module_files: Vec<String>,
    script: String,
}

impl Initramfs {
    /// An image with the host's static busybox as `/bin/busybox` and `/dev/console`.
    ///
    /// Fails if busybox is missing or dynamically linked (install `busybox-static`).
    pub fn new() -> Result<Initramfs, VmError> {
        let busybox = require_tool("busybox", "busybox-static")?;
        if is_dynamic(&busybox)? {
            return Err(VmError::MissingTool {
                tool: "busybox (statically linked)",
                package: "busybox-static",
            });
        }
        let mut image = Initramfs {
            entries: BTreeMap::new(),
            module_files: Vec::new(),
            script: String::new(),
        };
        for dir in [
            "bin",
            "sbin",
            "dev",
            "proc",
            "sys",
            "tmp",
            "run",
            "mnt",
            "etc/ota-vm",
            "lib/modules",
        ] {
            image.insert(dir, Entry::Dir);
        }
        image.insert("dev/console", Entry::CharDev { major: 5, minor: 1 });
        image.insert(
            "bin/busybox",
            Entry::Host {
                path: busybox,
                mode: 0o755,
                strip: false,
            },
        );
        Ok(image)
    }

    /// Adds kernel modules (and their dependencies) that `/init` loads before the test script.
    pub fn modules(&mut self, kernel: &Kernel, names: &[&str]) -> Result<&mut Self, VmError> {
        for path in modules::load_order(&kernel.modules_dir, names)? {
            let file_name = path
                .file_name()
                .expect("a .ko file")
                .to_string_lossy()
                .into_owned();
            if self.module_files.contains(&file_name) {
                continue;
            }
            self.insert(
                &format!("lib/modules/{file_name}"),
                Entry::Host {
                    path,
                    mode: 0o644,
                    strip: false,
                },
            );
            self.module_files.push(file_name);
        }
        Ok(self)
    }

    /// Copies a host executable to `guest_path` (debug info stripped), together with every
    /// shared library `ldd` lists and the dynamic loader, at their host paths.
    pub fn host_binary(
        &mut self,
        host: impl AsRef<Path>,
        guest_path: &str,
    ) -> Result<&mut Self, VmError> {
        let host = host.as_ref();
        if !host.is_file() {
            return Err(VmError::Initramfs(format!(
                "host binary {} does not exist",
                host.display()
            )));
        }
        self.insert(
            guest_path,
            Entry::Host {
                path: host.to_path_buf(),
                mode: 0o755,
                strip: true,
            },
        );
        self.add_libraries_of(host)
    }

    /// Copies a program found on the host's `PATH` to `/bin/<name>`, with its libraries.
    pub fn host_program(&mut self, name: &str) -> Result<&mut Self, VmError> {
        let path = find_in_path(name)
            .ok_or_else(|| VmError::Initramfs(format!("'{name}' is not installed on the host")))?;
        self.host_binary(path, &format!("/bin/{name}"))
    }

    /// Copies a shared object (e.g. a PKCS#11 module loaded with `dlopen`) to its host path,
    /// with its own libraries.
    pub fn host_library(&mut self, host: impl AsRef<Path>) -> Result<&mut Self, VmError> {
        let host = host.as_ref();
        let guest = host
            .to_str()
            .ok_or_else(|| VmError::Initramfs(format!("{} is not UTF-8", host.display())))?;
        self.insert(
            guest,
            Entry::Host {
                path: host.to_path_buf(),
                mode: 0o755,
                strip: false,
            },
        );
        self.add_libraries_of(host)
    }

    fn add_libraries_of(&mut self, host: &Path) -> Result<&mut Self, VmError> {
        if !has_program_header(host, PT_INTERP)? && !has_program_header(host, PT_DYNAMIC)? {
            return Ok(self);
        }
        let output = run_command(Command::new("ldd").arg(host))?;
        let libraries = parse_ldd(&String::from_utf8_lossy(&output))
            .map_err(|e| VmError::Initramfs(format!("{}: {e}", host.display())))?;
        for library in libraries {
            let guest = library.to_string_lossy().into_owned();
            // Copy the file a symlink points at, under the name the loader asks for.
            self.insert(
                &guest,
                Entry::Host {
                    path: library,
                    mode: 0o755,
                    strip: false,
                },
            );
        }
        Ok(self)
    }

    /// Adds a file with the given content.
    pub fn file(&mut self, guest_path: &str, data: impl Into<Vec<u8>>, mode: u32) -> &mut Self {
        self.insert(
            guest_path,
            Entry::Bytes {
                data: data.into(),
                mode,
            },
        );
        self
    }

    /// Adds a host file (copied when the image is written).
    pub fn host_file(
        &mut self,
        guest_path: &str,
        host: impl AsRef<Path>,
        mode: u32,
    ) -> Result<&mut Self, VmError> {
        let host = host.as_ref();
        if !host.is_file() {
            return Err(VmError::Initramfs(format!(
                "host file {} does not exist",
                host.display()
            )));
        }
        self.insert(
            guest_path,
            Entry::Host {
                path: host.to_path_buf(),
                mode,
                strip: false,
            },
        );
        Ok(self)
    }

    /// Copies a host directory tree (files, directories and symlinks) to `guest_dir`.
    pub fn host_tree(
        &mut self,
        host_dir: impl AsRef<Path>,
        guest_dir: &str,
    ) -> Result<&mut Self, VmError> {
        let host_dir = host_dir.as_ref();
        self.insert(guest_dir, Entry::Dir);
        let entries = std::fs::read_dir(host_dir).map_err(|e| VmError::io("list", host_dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| VmError::io("list", host_dir, e))?;
            let guest = format!(
                "{}/{}",
                guest_dir.trim_end_matches('/'),
                entry.file_name().to_string_lossy()
            );
            let kind = entry
                .file_type()
                .map_err(|e| VmError::io("stat", entry.path(), e))?;
            if kind.is_dir() {
                self.host_tree(entry.path(), &guest)?;
            } else if kind.is_symlink() {
                let target = std::fs::read_link(entry.path())
                    .map_err(|e| VmError::io("read link", entry.path(), e))?;
                self.insert(
                    &guest,
                    Entry::Symlink(target.to_string_lossy().into_owned()),
                );
            } else {
                let mode = std::os::unix::fs::PermissionsExt::mode(
                    &entry
                        .metadata()
                        .map_err(|e| VmError::io("stat", entry.path(), e))?
                        .permissions(),
                );
                self.insert(
                    &guest,
                    Entry::Host {
                        path: entry.path(),
                        mode,
                        strip: false,
                    },
                );
            }
        }
        Ok(self)
    }

    /// Sets the test script, run by `/bin/sh` after the modules are loaded; its exit status is
    /// the guest's result. `$OTA_VM_RESULTS` names the directory whose files come back.
    pub fn script(&mut self, script: &str) -> &mut Self {
        self.script = script.to_string();
        self
    }

    fn insert(&mut self, guest_path: &str, entry: Entry) {
        let path = guest_path.trim_matches('/').to_string();
        let mut parent = Path::new(&path).parent();
        while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            self.entries
                .entry(dir.to_string_lossy().into_owned())
                .or_insert(Entry::Dir);
            parent = dir.parent();
        }
        self.entries.insert(path, entry);
    }

    /// Writes the image as an uncompressed `newc` archive (the kernel unpacks that fastest under
    /// TCG). `results_device` is the guest disk that receives a tar of [`RESULTS_DIR`].
    pub fn write(&self, out: &Path, results_device: Option<&str>) -> Result<(), VmError> {
        let mut image = self.clone();
        image.file(TEST_SCRIPT, image.script.clone(), 0o755);
        image.file(MODULE_LIST, image.module_files.join("\n") + "\n", 0o644);
        image.file("init", init_script(results_device), 0o755);
        let file = File::create(out).map_err(|e| VmError::io("create", out, e))?;
        let mut cpio = CpioWriter::new(BufWriter::with_capacity(1 << 20, file));
        for (name, entry) in &image.entries {
            write_entry(&mut cpio, name, entry)
                .map_err(|e| VmError::io("write the initramfs entry", name, e))?;
        }
        cpio.finish()
            .and_then(|mut w| w.flush())
            .map_err(|e| VmError::io("write", out, e))
    }
}

fn write_entry<W: Write>(
    cpio: &mut CpioWriter<W>,
    name: &str,
    entry: &Entry,
) -> std::io::Result<()> {
    match entry {
        Entry::Dir => cpio.directory(name, 0o755),
        Entry::Bytes { data, mode } => cpio.file(name, *mode, data),
        Entry::Host { path, mode, strip } => cpio.file(name, *mode, &read_host(path, *strip)?),
        Entry::Symlink(target) => cpio.symlink(name, target),
        Entry::CharDev { major, minor } => cpio.char_device(name, 0o600, *major, *minor),
    }
}

/// Reads a host file; executables lose their debug info first when `objcopy` is available.
/// Stripped copies are cached per process (keyed by path, size and mtime): tests that boot many
/// times write the same initramfs again and again.
fn read_host(path: &Path, strip: bool) -> std::io::Result<Vec<u8>> {
    if !strip {
        return std::fs::read(path);
    }
    type Key = (PathBuf, u64, std::time::SystemTime);
    static STRIPPED: Mutex<BTreeMap<Key, Arc<Vec<u8>>>> = Mutex::new(BTreeMap::new());
    let meta = std::fs::metadata(path)?;
    let key = (path.to_path_buf(), meta.len(), meta.modified()?);
    if let Some(data) = STRIPPED.lock().expect("cache lock").get(&key) {
        return Ok(data.as_ref().clone());
    }
    let data = strip_debug(path)?;
    STRIPPED
        .lock()
        .expect("cache lock")
        .insert(key, Arc::new(data.clone()));
    Ok(data)
}

fn strip_debug(path: &Path) -> std::io::Result<Vec<u8>> {
    if let Some(objcopy) = find_in_path("objcopy") {
        let stripped = tempfile::NamedTempFile::new()?;
        let status = Command::new(objcopy)
            .arg("--strip-debug")
            .arg(path)
            .arg(stripped.path())
            .status()?;
        if status.success() {
            return std::fs::read(stripped.path());
        }
    }
    std::fs::read(path)
}

/// ELF program header type of the interpreter (dynamically linked executables).
const PT_INTERP: u64 = 3;
/// ELF program header type of the dynamic section (also in shared libraries).
const PT_DYNAMIC: u64 = 2;

/// Whether the ELF file has a program interpreter (is dynamically linked).
fn is_dynamic(path: &Path) -> Result<bool, VmError> {
    has_program_header(path, PT_INTERP)
}

/// Whether the ELF file has a program header of type `kind`.
fn has_program_header(path: &Path, kind: u64) -> Result<bool, VmError> {
    let data = std::fs::read(path).map_err(|e| VmError::io("read", path, e))?;
    if data.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return Err(VmError::Initramfs(format!(
            "{} is not an x86-64 ELF file",
            path.display()
        )));
    }
    let le = |at: usize, n: usize| -> u64 {
        data.get(at..at + n).map_or(0, |b| {
            b.iter()
                .rev()
                .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
        })
    };
    let (phoff, phentsize, phnum) = (
        le(0x20, 8) as usize,
        le(0x36, 2) as usize,
        le(0x38, 2) as usize,
    );
    Ok((0..phnum).any(|i| le(phoff + i * phentsize, 4) == kind))
}

/// The absolute library paths in `ldd` output (the vDSO has none); "not found" is an error.
pub(crate) fn parse_ldd(output: &str) -> Result<Vec<PathBuf>, String> {
    let mut paths = Vec::new();
    for line in output.lines().map(str::trim) {
        let target = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    return Err(format!("library {} not found", name.trim()));
                }
                rest
            }
            None => line,
        };
        if target.starts_with('/') {
            let path = target.split(" (").next().unwrap_or(target).trim();
            paths.push(PathBuf::from(path));
        }
    }
    Ok(paths)
}

/// The generated `/init`: mounts, modules, the test script, results, exit marker, power-off.
fn init_script(results_device: Option<&str>) -> String {
    let results = match results_device {
        Some(dev) => format!(
            "if tar -cf {dev} -C {RESULTS_DIR} . && sync; then :; else echo \"{MARK} results-failed\"; fi\n"
        ),
        None => String::new(),
    };
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p {RESULTS_DIR} /root
up() {{ echo "{MARK} uptime $1 $(cut -d' ' -f1 /proc/uptime)"; }}
up init
while read -r m; do
  [ -z "$m" ] || insmod "/lib/modules/$m" || echo "{MARK} insmod-failed $m"
done < /{MODULE_LIST}
up modules
export OTA_VM_RESULTS={RESULTS_DIR}
/bin/sh /{TEST_SCRIPT}
rc=$?
up script-done
{results}echo "{MARK} exit $rc"
poweroff -f
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_parsing() {
        let out = "\tlinux-vdso.so.1 (0x00007ffc6a9f2000)\n\
                   \tlibdevmapper.so.1.02.1 => /lib/x86_64-linux-gnu/libdevmapper.so.1.02.1 (0x00007f0)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f1)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f2)\n";
        let paths = parse_ldd(out).unwrap();
        assert_eq!(
            paths,
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libdevmapper.so.1.02.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        assert!(parse_ldd("\tlibfoo.so.1 => not found\n").is_err());
        assert!(parse_ldd("\tstatically linked\n").unwrap().is_empty());
    }

    #[test]
    fn parents_are_added_and_busybox_is_static() {
        let mut image = Initramfs::new().unwrap();
        image.file("/a/b/c.txt", "x", 0o644);
        assert!(matches!(image.entries.get("a"), Some(Entry::Dir)));
        assert!(matches!(image.entries.get("a/b"), Some(Entry::Dir)));
        assert!(matches!(
            image.entries.get("a/b/c.txt"),
            Some(Entry::Bytes { .. })
        ));
    }

    #[test]
    fn dynamic_binaries_bring_their_loader() {
        let mut image = Initramfs::new().unwrap();
        image.host_program("dmsetup").unwrap();
        assert!(image.entries.contains_key("bin/dmsetup"));
        assert!(image.entries.contains_key("lib64/ld-linux-x86-64.so.2"));
        assert!(image.entries.keys().any(|k| k.contains("libdevmapper.so")));
    }

    #[test]
    fn init_exports_results_and_exit_marker() {
        let init = init_script(Some("/dev/vdc"));
        assert!(init.starts_with("#!/bin/busybox sh\n"));
        assert!(init.contains("tar -cf /dev/vdc -C /results ."));
        assert!(init.contains("echo \"@@OTA-VM exit $rc\""));
        assert!(!init_script(None).contains("tar -cf"));
    }
}
