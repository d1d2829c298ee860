//! Test support: file-backed slot systems, bundle directories, a private dbus-daemon and the
//! `ota service` process, all stopped by PID on drop.
#![allow(dead_code, missing_docs)]

pub mod rauc;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openssl::sha::sha256;

/// A temporary device: system.conf, slot files, data directory.
pub struct Device {
    pub dir: tempfile::TempDir,
}

impl Device {
    /// Two rootfs slots (A, B) of 64 KiB plus appfs children, noop bootloader, central status.
    pub fn new(extra_system: &str, extra: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in ["slot-a.img", "slot-b.img", "app-a.img", "app-b.img"] {
            std::fs::write(d.join(f), vec![0u8; 65536]).unwrap();
        }
        std::fs::create_dir_all(d.join("data")).unwrap();
        let conf = format!(
            "[system]\ncompatible=Test Device\nbootloader=noop\ndata-directory=data\n{extra_system}\n\
             [slot.rootfs.0]\ndevice=slot-a.img\ntype=raw\nbootname=A\n\n\
             [slot.rootfs.1]\ndevice=slot-b.img\ntype=raw\nbootname=B\n\n\
             [slot.appfs.0]\ndevice=app-a.img\ntype=raw\nparent=rootfs.0\n\n\
             [slot.appfs.1]\ndevice=app-b.img\ntype=raw\nparent=rootfs.1\n{extra}"
        );
        std::fs::write(d.join("system.conf"), conf).unwrap();
        Device { dir }
    }

    pub fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    pub fn conf(&self) -> PathBuf {
        self.path("system.conf")
    }
}

/// An unpacked bundle directory (manifest.raucm + images) for the directory test double.
pub struct BundleDir {
    pub dir: tempfile::TempDir,
}

/// One image: (class, filename, content, hooks list).
pub struct Img<'a> {
    pub class: &'a str,
    pub file: &'a str,
    pub data: Vec<u8>,
    pub hooks: &'a str,
    /// Override the manifest sha256 (to provoke a mismatch).
    pub sha_override: Option<&'a str>,
}

impl<'a> Img<'a> {
    pub fn new(class: &'a str, file: &'a str, data: Vec<u8>) -> Self {
        Img {
            class,
            file,
            data,
            hooks: "",
            sha_override: None,
        }
    }
}

impl BundleDir {
    pub fn new(compatible: &str, images: &[Img<'_>], hook_script: Option<&str>) -> BundleDir {
        let dir = tempfile::tempdir().unwrap();
        let mut m = format!(
            "[update]\ncompatible={compatible}\nversion=2024.01.0\ndescription=test bundle\n\n[bundle]\nformat=verity\n"
        );
        if let Some(script) = hook_script {
            let p = dir.path().join("hook.sh");
            std::fs::write(&p, format!("#!/bin/sh\n{script}")).unwrap();
            chmod_x(&p);
            m.push_str("\n[hooks]\nfilename=hook.sh\n");
        }
        for i in images {
            std::fs::write(dir.path().join(i.file), &i.data).unwrap();
            let sha = i
                .sha_override
                .map(str::to_string)
                .unwrap_or_else(|| hex::encode(sha256(&i.data)));
            m.push_str(&format!(
                "\n[image.{}]\nfilename={}\nsha256={sha}\nsize={}\n",
                i.class,
                i.file,
                i.data.len()
            ));
            if !i.hooks.is_empty() {
                m.push_str(&format!("hooks={}\n", i.hooks));
            }
        }
        std::fs::write(dir.path().join("manifest.raucm"), m).unwrap();
        BundleDir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

pub fn chmod_x(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

pub fn write_script(p: &Path, body: &str) {
    std::fs::write(p, format!("#!/bin/sh\n{body}")).unwrap();
    chmod_x(p);
}

pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Polls `f` until it returns true (bounded; panics with `what` after 20 s).
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A private system-like dbus-daemon (environment.md §10), killed by PID on drop.
pub struct Bus {
    pub dir: tempfile::TempDir,
    pub address: String,
    pid: i32,
}

impl Bus {
    pub fn start() -> Bus {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("system_bus_socket");
        let conf = dir.path().join("system-like.conf");
        std::fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
"#,
                sock.display()
            ),
        )
        .unwrap();
        let out = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .args(["--fork", "--print-pid"])
            .output()
            .expect("dbus-daemon");
        assert!(out.status.success(), "dbus-daemon failed: {out:?}");
        let pid: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        // The socket is world-accessible so that a non-root client can connect.
        let _ = std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        );
        Bus {
            address: format!("unix:path={}", sock.display()),
            dir,
            pid,
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

/// `ota service` on a bus, killed by PID on drop.
pub struct Service {
    child: Child,
}

impl Service {
    pub fn start(bus: &Bus, device: &Device, boot: &str) -> Service {
        let child = Command::new(env!("CARGO_BIN_EXE_ota"))
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .arg(format!("--conf={}", device.conf().display()))
            .arg(format!("--override-boot-slot={boot}"))
            .arg(format!("--mount={}", device.path("mnt").display()))
            .arg("--dangerous-unverified-directory")
            .arg("service")
            .stdout(Stdio::null())
            .spawn()
            .expect("ota service");
        let addr = bus.address.clone();
        wait_until("the service name on the bus", || {
            Command::new("busctl")
                .args([
                    &format!("--address={addr}"),
                    "status",
                    "de.pengutronix.rauc",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        });
        Service { child }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command with the private bus as system bus; returns (status, stdout, stderr).
pub fn run_on_bus(bus: &Bus, program: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(program)
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A child process killed (by its PID) and reaped on drop.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
