//! The test device in the guest: disks (fixed order), `system.conf`, initramfs, the shell
//! prelude of the guest scripts, and reading the data disk back on the host.

use std::path::{Path, PathBuf};
use std::process::Command;

use target::bootloader::grub::GrubEnv;

use super::super::{
    DM_STACK_MODULES, Disk, Initramfs, Kernel, Vm, VmError, require_tool, run_command,
};
use super::{TestDevice, make_ext4, random};

/// Guest device of the bundle disk (a read-only squashfs holding the bundles).
pub const BUNDLE_DISK: &str = "/dev/vda";
/// Guest devices of slot A, slot B (raw rootfs slots) and their ext4 appfs children.
pub const SLOT_DISKS: [&str; 4] = ["/dev/vdb", "/dev/vdc", "/dev/vdd", "/dev/vde"];
/// Guest device of the ext4 data disk (status file, GRUB environment).
pub const DATA_DISK: &str = "/dev/vdf";
/// Where the guest mounts the bundle disk.
pub const BUNDLE_DIR: &str = "/bundles";
/// `pkcs11:` URI of the device token's key, as `[encryption] key` (module and PIN file given in
/// the URI's query).
pub const DEVICE_KEY_URI: &str = "pkcs11:token=device;object=device;type=private\
     ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/rauc/pin";
/// The same for the token whose key is no recipient.
pub const OTHER_KEY_URI: &str = "pkcs11:token=other;object=other;type=private\
     ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/rauc/pin";

/// Modules the install tests need: the bundle mount stack and ext4 for the data disk.
pub fn modules() -> Vec<&'static str> {
    let mut m = DM_STACK_MODULES.to_vec();
    // ext4 asks for crc32c at mount time (a soft dependency modinfo does not list)
    m.extend(["crc32c_generic", "ext4"]);
    m
}

/// The writable disks of the device, with their initial content kept for comparisons.
#[derive(Debug, Clone)]
pub struct Disks {
    /// The bundle squashfs.
    pub bundles: PathBuf,
    /// Slot A, slot B, appfs A, appfs B.
    pub slots: [PathBuf; 4],
    /// The ext4 data disk.
    pub data: PathBuf,
    /// Initial content of the slots (same order).
    pub initial: [PathBuf; 4],
}

impl Disks {
    /// Attaches every disk in the fixed order (bundles, slots, data).
    pub fn attach(&self, vm: &mut Vm) {
        vm.disk(Disk::read_only(&self.bundles));
        for slot in &self.slots {
            vm.disk(Disk::writable(slot));
        }
        vm.disk(Disk::writable(&self.data));
    }

    /// Restores the slots and the data disk to their initial state.
    pub fn reset(&self, device: &TestDevice) -> Result<(), VmError> {
        for (slot, initial) in self.slots.iter().zip(&self.initial) {
            std::fs::copy(initial, slot).map_err(|e| VmError::io("copy", initial, e))?;
        }
        data_disk(&device.dir, &self.data)
    }

    /// The bytes of a slot disk (0 = A, 1 = B, 2 = appfs A, 3 = appfs B).
    pub fn slot(&self, index: usize) -> Result<Vec<u8>, VmError> {
        std::fs::read(&self.slots[index]).map_err(|e| VmError::io("read", &self.slots[index], e))
    }

    /// The initial bytes of a slot disk.
    pub fn initial(&self, index: usize) -> Result<Vec<u8>, VmError> {
        std::fs::read(&self.initial[index])
            .map_err(|e| VmError::io("read", &self.initial[index], e))
    }

    /// A file of the data disk as the next boot would see it: the journal of a copy is replayed
    /// (`e2fsck -fy`), then the file is dumped with `debugfs`. `None` if it does not exist.
    pub fn data_file(&self, name: &str) -> Result<Option<Vec<u8>>, VmError> {
        require_tool("debugfs", "e2fsprogs")?;
        let scratch = tempfile::tempdir().map_err(|e| VmError::io("create", "tempdir", e))?;
        let copy = scratch.path().join("data.img");
        std::fs::copy(&self.data, &copy).map_err(|e| VmError::io("copy", &self.data, e))?;
        let status = Command::new("e2fsck")
            .arg("-fy")
            .arg(&copy)
            .output()
            .map_err(|e| VmError::io("run", "e2fsck", e))?;
        if status.status.code().is_none_or(|c| c >= 4) {
            return Err(VmError::Fixture(format!(
                "e2fsck of the data disk failed: {}",
                String::from_utf8_lossy(&status.stdout)
            )));
        }
        let out = scratch.path().join("out");
        run_command(
            Command::new("debugfs")
                .arg("-R")
                .arg(format!("dump /{name} {}", out.display()))
                .arg(&copy),
        )?;
        match std::fs::read(&out) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(VmError::io("read", &out, e)),
        }
    }

    /// The GRUB environment block on the data disk.
    pub fn grubenv(&self) -> Result<GrubEnv, VmError> {
        let data = self
            .data_file("grubenv")?
            .ok_or_else(|| VmError::Fixture("the data disk has no grubenv".into()))?;
        GrubEnv::parse(&data).map_err(|e| VmError::Fixture(format!("grubenv: {e}")))
    }
}

/// The bootloader's view: the primary slot (first bootname in `ORDER` with `_OK=1`, `_TRY=0`)
/// and whether each of A and B is good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootView {
    /// Bootname that would boot next, if any.
    pub primary: Option<String>,
    /// `A_OK=1` and `A_TRY=0`.
    pub a_good: bool,
    /// `B_OK=1` and `B_TRY=0`.
    pub b_good: bool,
    /// The raw `ORDER`.
    pub order: String,
}

impl BootView {
    /// Evaluates an environment as GRUB's script would.
    pub fn of(env: &GrubEnv) -> BootView {
        let good = |b: &str| {
            env.get(&format!("{b}_OK")) == Some("1") && env.get(&format!("{b}_TRY")) == Some("0")
        };
        let order = env.get("ORDER").unwrap_or_default().to_string();
        let primary = order.split(' ').find(|b| good(b)).map(str::to_string);
        BootView {
            primary,
            a_good: good("A"),
            b_good: good("B"),
            order,
        }
    }
}

/// An ext4 data disk with the initial GRUB environment: A primary and good, B bad.
fn data_disk(dir: &Path, image: &Path) -> Result<(), VmError> {
    let src = dir.join("data.src");
    let _ = std::fs::remove_dir_all(&src);
    std::fs::create_dir_all(&src).map_err(|e| VmError::io("create", &src, e))?;
    let mut env = GrubEnv::default();
    for (k, v) in [
        ("ORDER", "A B"),
        ("A_OK", "1"),
        ("A_TRY", "0"),
        ("B_OK", "0"),
        ("B_TRY", "0"),
    ] {
        env.set(k, v);
    }
    let block = env
        .to_block()
        .map_err(|e| VmError::Fixture(format!("grubenv: {e}")))?;
    std::fs::write(src.join("grubenv"), block).map_err(|e| VmError::io("write", &src, e))?;
    make_ext4(image, &src, 16 << 20)
}

impl TestDevice {
    /// Makes the disks: slot A holds a random "installed" system, slot B other random bytes,
    /// appfs A random, appfs B zeros; the bundle disk is a squashfs of `bundles`.
    pub fn disks(&self, bundles: &[&Path]) -> Result<Disks, VmError> {
        let d = &self.dir;
        let sizes = [
            self.spec.rootfs_slot,
            self.spec.rootfs_slot,
            self.spec.appfs_image,
            self.spec.appfs_image,
        ];
        let names = ["slot-a", "slot-b", "app-a", "app-b"];
        let mut initial = Vec::new();
        let mut slots = Vec::new();
        for (i, (name, size)) in names.iter().zip(sizes).enumerate() {
            let path = d.join(format!("{name}.initial"));
            let data = if i == 3 {
                vec![0u8; size as usize]
            } else {
                random(size as usize)?
            };
            std::fs::write(&path, data).map_err(|e| VmError::io("write", &path, e))?;
            initial.push(path);
            slots.push(d.join(format!("{name}.img")));
        }
        let disks = Disks {
            bundles: bundle_disk(d, bundles)?,
            slots: slots.try_into().expect("four slots"),
            data: d.join("data.img"),
            initial: initial.try_into().expect("four slots"),
        };
        disks.reset(self)?;
        Ok(disks)
    }

    /// `system.conf` of the device (GRUB environment on the data disk) with `encryption` as its
    /// `[encryption]` section and `extra_system` keys in `[system]`.
    pub fn system_conf(&self, encryption: &str, extra_system: &str) -> String {
        let boot = format!("bootloader=grub\ngrubenv=/data/grubenv\n{extra_system}");
        self.conf(&boot, encryption, "")
    }

    /// `system.conf` of the device with the `[system]` bootloader lines `boot`, the
    /// `[encryption]` section `encryption` and further sections `extra_sections`.
    pub fn conf(&self, boot: &str, encryption: &str, extra_sections: &str) -> String {
        let [a, b, app_a, app_b] = SLOT_DISKS;
        format!(
            "[system]\ncompatible=Test Device\n{boot}\
             data-directory=/data\nmountprefix=/run/rauc\nbundle-formats=-plain\n\n\
             [keyring]\npath=/etc/rauc/keyring.pem\ncheck-purpose=codesign\n\n{encryption}\n\
             {extra_sections}\n\
             [slot.rootfs.0]\ndevice={a}\ntype=raw\nbootname=A\n\n\
             [slot.rootfs.1]\ndevice={b}\ntype=raw\nbootname=B\n\n\
             [slot.appfs.0]\ndevice={app_a}\ntype=ext4\nparent=rootfs.0\n\n\
             [slot.appfs.1]\ndevice={app_b}\ntype=ext4\nparent=rootfs.1\n"
        )
    }

    /// The initramfs: modules, `ota` as `/bin/ota`, SoftHSM with the token directory, the
    /// keyring, certificates, PIN file and `/etc/rauc/system.conf` (device token) plus
    /// `/etc/rauc/other.conf` (the `other` token).
    pub fn initramfs(&self, kernel: &Kernel, ota: &Path) -> Result<Initramfs, VmError> {
        let mut image = Initramfs::new()?;
        image.modules(kernel, &modules())?;
        image.host_binary(ota, "/bin/ota")?;
        image.host_library("/usr/lib/softhsm/libsofthsm2.so")?;
        image.host_tree(self.token_dir(), "/softhsm/tokens")?;
        image.file(
            "/etc/softhsm2.conf",
            "directories.tokendir = /softhsm/tokens\nobjectstore.backend = file\nlog.level = ERROR\n",
            0o644,
        );
        image.host_file("/etc/rauc/keyring.pem", &self.pki.root_cert, 0o644)?;
        image.host_file("/etc/rauc/device.cert.pem", &self.device_cert, 0o644)?;
        image.host_file("/etc/rauc/other.cert.pem", &self.other_cert, 0o644)?;
        image.file("/etc/rauc/pin", super::USER_PIN, 0o600);
        let device =
            format!("[encryption]\nkey={DEVICE_KEY_URI}\ncert=/etc/rauc/device.cert.pem\n");
        let other = format!("[encryption]\nkey={OTHER_KEY_URI}\ncert=/etc/rauc/other.cert.pem\n");
        image.file(
            "/etc/rauc/system.conf",
            self.system_conf(&device, ""),
            0o644,
        );
        image.file("/etc/rauc/other.conf", self.system_conf(&other, ""), 0o644);
        image.file("/etc/ota-vm/prelude.sh", PRELUDE, 0o644);
        Ok(image)
    }
}

/// Adds a private system-like D-Bus (`dbus-daemon` with a permissive policy listening on
/// `/run/dbus/system_bus_socket`, see environment.md §10) and the real `rauc` 1.8 binary with
/// their libraries; the prelude's `start_bus` starts the daemon.
pub fn add_dbus_and_rauc(image: &mut Initramfs) -> Result<(), VmError> {
    image.host_program("dbus-daemon")?;
    image.host_program("rauc")?;
    image.file("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644);
    image.file("/etc/group", "root:x:0:\n", 0o644);
    let id = hex::encode(random(16)?);
    image.file("/etc/machine-id", format!("{id}\n"), 0o444);
    image.file("/var/lib/dbus/machine-id", format!("{id}\n"), 0o444);
    image.file("/etc/ota-vm/bus.conf", BUS_CONF, 0o644);
    Ok(())
}

/// The bus configuration: the system bus type, anyone may own and call anything.
const BUS_CONF: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
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
"#;

/// A squashfs (uncompressed, root-owned) holding the bundles.
fn bundle_disk(dir: &Path, bundles: &[&Path]) -> Result<PathBuf, VmError> {
    require_tool("mksquashfs", "squashfs-tools")?;
    let src = dir.join("bundles.src");
    let _ = std::fs::remove_dir_all(&src);
    std::fs::create_dir_all(&src).map_err(|e| VmError::io("create", &src, e))?;
    for b in bundles {
        let name = b.file_name().expect("bundle file name");
        std::fs::hard_link(b, src.join(name))
            .or_else(|_| std::fs::copy(b, src.join(name)).map(|_| ()))
            .map_err(|e| VmError::io("link", b, e))?;
    }
    let image = dir.join("bundles.sqfs");
    run_command(Command::new("mksquashfs").arg(&src).arg(&image).args([
        "-noappend",
        "-no-progress",
        "-quiet",
        "-all-root",
        "-noI",
        "-noD",
        "-noF",
        "-noX",
    ]))?;
    Ok(image)
}

/// Shell functions for the guest scripts: mounts, state hashes and a leftover report.
pub const PRELUDE: &str = r#"
export SOFTHSM2_CONF=/etc/softhsm2.conf
mkdir -p /bundles /data /run/rauc
mount -t squashfs -o ro /dev/vda /bundles || { echo "PRELUDE mount bundles failed"; exit 90; }
mount -t ext4 /dev/vdf /data || { echo "PRELUDE mount data failed"; exit 91; }
# sha256 of every slot, the grubenv and the status file, on one line
state() {
  for f in /dev/vdb /dev/vdc /dev/vdd /dev/vde /data/grubenv /data/central.raucs; do
    if [ -e "$f" ]; then sha256sum "$f" | cut -c1-16; else echo none; fi
  done | tr '\n' ' '
}
# dm devices, bound loop devices and mounts below /run/rauc
leftovers() {
  dm=$(ls /sys/block | grep -c '^dm-')
  loops=$(cat /sys/block/loop*/loop/backing_file 2>/dev/null | tr '\n' ' ')
  mnts=$(grep -c ' /run/rauc' /proc/mounts)
  dirs=$(ls /run/rauc | tr '\n' ' ')
  echo "LEFTOVERS $1 dm=$dm loops=[$loops] mounts=$mnts dirs=[$dirs]"
}
finish() { sync; umount /data; umount /bundles; }
# a private system bus; sets DBUS_SYSTEM_BUS_ADDRESS and BUS_PID
start_bus() {
  mkdir -p /run/dbus
  BUS_PID=$(dbus-daemon --config-file=/etc/ota-vm/bus.conf --fork --print-pid) || { echo "PRELUDE dbus-daemon failed"; exit 92; }
  export DBUS_SYSTEM_BUS_ADDRESS=unix:path=/run/dbus/system_bus_socket
}
# waits until de.pengutronix.rauc answers (rauc status as the probe)
wait_service() {
  i=0
  until rauc status >/dev/null 2>&1; do
    i=$((i+1)); [ $i -gt 100 ] && { echo "PRELUDE service did not come up"; return 1; }
    sleep 0.2
  done
}
"#;
