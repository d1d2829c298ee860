//! device-mapper: dm-verity and dm-crypt devices through the `devicemapper` crate (the only place that issues dm ioctls).
//!
//! Devices are created read-only with a random name under [`NAME_PREFIX`] and a random UUID under
//! [`UUID_PREFIX`], without udev involvement (udev rules are disabled through the cookie flags and
//! the device is addressed as `/dev/dm-<minor>`, which devtmpfs creates). A [`DmDevice`] removes
//! its device on drop — deferred if it is still in use. A verity device is checked after loading:
//! its first byte must read and its status must be `V`. The crypt table (it carries the key) is
//! loaded with `DM_SECURE_DATA` from a zeroizing buffer ([`secure`]).

mod secure;
pub mod table;

use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use devicemapper::{DM, DevId, DmError, DmFlags, DmName, DmOptions, DmUdevFlags, DmUuid};
use nix::errno::Errno;
use tracing::{debug, warn};

pub use table::{CryptKey, TableLine, VerityParams};

use crate::mount::MountError;

/// Prefix of the names of all dm devices made here (`ota-verity-bundle-1a2b3c4d`).
pub const NAME_PREFIX: &str = "ota-";
/// Prefix of their UUIDs (`OTA-<random UUID>`).
pub const UUID_PREFIX: &str = "OTA-";

/// A block device number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DevNum {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl DevNum {
    /// Splits a `dev_t` (`st_rdev`).
    pub fn from_dev_t(dev: u64) -> DevNum {
        DevNum {
            major: libc::major(dev),
            minor: libc::minor(dev),
        }
    }
}

impl fmt::Display for DevNum {
    /// `major:minor`, the form dm tables accept.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// The kind of a bundle dm device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmKind {
    /// dm-verity over the bundle payload.
    Verity,
    /// dm-crypt over the verity device.
    Crypt,
}

impl DmKind {
    fn word(self) -> &'static str {
        match self {
            DmKind::Verity => "verity",
            DmKind::Crypt => "crypt",
        }
    }
}

/// An active dm device; removed on drop (deferred if busy).
pub struct DmDevice {
    dm: DM,
    name: String,
    kind: DmKind,
    devnum: DevNum,
    removed: bool,
}

impl fmt::Debug for DmDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DmDevice")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("devnum", &self.devnum)
            .finish()
    }
}

/// Udev cookie flags: no udev rule may act on our devices (no symlinks, no scanning).
fn options() -> DmOptions {
    DmOptions::default().set_udev_flags(
        DmUdevFlags::DM_UDEV_DISABLE_DM_RULES_FLAG
            | DmUdevFlags::DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG
            | DmUdevFlags::DM_UDEV_DISABLE_DISK_RULES_FLAG
            | DmUdevFlags::DM_UDEV_DISABLE_OTHER_RULES_FLAG,
    )
}

/// Opens `/dev/mapper/control`.
fn control() -> Result<DM, MountError> {
    DM::new().map_err(|e| MountError::DmControl {
        detail: describe(&e),
    })
}

/// A short description of a `devicemapper` error: the errno when there is one.
fn describe(err: &DmError) -> String {
    match errno_of(err) {
        Some(errno) => errno.to_string(),
        None => err.to_string(),
    }
}

fn errno_of(err: &DmError) -> Option<Errno> {
    match err {
        DmError::Core(devicemapper::errors::Error::Ioctl(_, _, _, errno)) => Some(**errno),
        _ => None,
    }
}

impl DmDevice {
    /// Creates a read-only dm-verity device over `dev` (data and hash tree on the same device,
    /// the tree right after `params.data_size` bytes) and checks it.
    pub fn create_verity(dev: DevNum, params: &VerityParams) -> Result<DmDevice, MountError> {
        let line = table::verity_line(dev, params)?;
        let device = DmDevice::create(DmKind::Verity)?;
        let targets = [(
            line.start,
            line.length,
            line.target.to_string(),
            line.params,
        )];
        device
            .dm
            .table_load(
                &device.id()?,
                &targets,
                options().set_flags(DmFlags::DM_READONLY),
            )
            .map_err(|e| device.error("DM_TABLE_LOAD", &e))?;
        device.resume()?;
        device.check_verity()?;
        Ok(device)
    }

    /// Creates a read-only dm-crypt device (`aes-cbc-plain64`, 4096-byte sectors) over `dev`.
    pub fn create_crypt(
        dev: DevNum,
        data_size: u64,
        key: &CryptKey,
    ) -> Result<DmDevice, MountError> {
        let line = table::crypt_line(dev, data_size, key)?;
        let device = DmDevice::create(DmKind::Crypt)?;
        secure::load_table_secure(device.dm.file(), &device.name, &line).map_err(|errno| {
            MountError::Dm {
                op: "DM_TABLE_LOAD",
                device: device.name.clone(),
                detail: errno.to_string(),
            }
        })?;
        device.resume()?;
        Ok(device)
    }

    /// `DM_DEV_CREATE` of an empty, suspended, read-only device with a fresh random name.
    fn create(kind: DmKind) -> Result<DmDevice, MountError> {
        let dm = control()?;
        let uuid = uuid::Uuid::new_v4();
        let name = format!(
            "{NAME_PREFIX}{}-bundle-{}",
            kind.word(),
            &uuid.simple().to_string()[..8]
        );
        let uuid = format!("{UUID_PREFIX}{uuid}");
        let dm_name = DmName::new(&name)
            .map_err(|e| MountError::InvalidParams(format!("dm name {name}: {e}")))?;
        let dm_uuid = DmUuid::new(&uuid)
            .map_err(|e| MountError::InvalidParams(format!("dm uuid {uuid}: {e}")))?;
        let info = dm
            .device_create(
                dm_name,
                Some(dm_uuid),
                options().set_flags(DmFlags::DM_READONLY),
            )
            .map_err(|e| MountError::Dm {
                op: "DM_DEV_CREATE",
                device: name.clone(),
                detail: describe(&e),
            })?;
        let devnum = DevNum {
            major: info.device().major,
            minor: info.device().minor,
        };
        debug!(name, uuid, %devnum, "created dm device");
        Ok(DmDevice {
            dm,
            name,
            kind,
            devnum,
            removed: false,
        })
    }

    fn id(&self) -> Result<DevId<'_>, MountError> {
        DmName::new(&self.name)
            .map(DevId::Name)
            .map_err(|e| MountError::InvalidParams(format!("dm name {}: {e}", self.name)))
    }

    fn error(&self, op: &'static str, err: &DmError) -> MountError {
        MountError::Dm {
            op,
            device: self.name.clone(),
            detail: describe(err),
        }
    }

    /// `DM_DEV_SUSPEND` without the suspend flag: activates the loaded table.
    fn resume(&self) -> Result<(), MountError> {
        self.dm
            .device_suspend(&self.id()?, options())
            .map_err(|e| self.error("DM_DEV_SUSPEND (resume)", &e))?;
        Ok(())
    }

    /// Reads the first byte (which verifies block 0 against the root hash), then requires the
    /// verity status `V`.
    fn check_verity(&self) -> Result<(), MountError> {
        let path = self.path();
        let file = File::open(&path).map_err(|source| MountError::io("open", &path, source))?;
        let mut byte = [0u8; 1];
        file.read_at(&mut byte, 0)
            .map_err(|source| MountError::VerityRead {
                device: path.clone(),
                source,
            })?;
        let (_, lines) = self
            .dm
            .table_status(&self.id()?, options())
            .map_err(|e| self.error("DM_TABLE_STATUS", &e))?;
        let status = lines
            .first()
            .map(|(_, _, _, status)| status.trim().to_string())
            .unwrap_or_default();
        if status.split_whitespace().next() != Some("V") {
            return Err(MountError::VerityStatus {
                device: path,
                status,
            });
        }
        debug!(device = %path.display(), "dm-verity status V");
        Ok(())
    }

    /// The device name (`ota-verity-bundle-…`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What this device is.
    pub fn kind(&self) -> DmKind {
        self.kind
    }

    /// Major and minor number.
    pub fn devnum(&self) -> DevNum {
        self.devnum
    }

    /// The device node, `/dev/dm-<minor>` (made by devtmpfs; no udev needed).
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/dev/dm-{}", self.devnum.minor))
    }

    /// Removes the device now; if it is still in use, schedules a deferred removal and returns
    /// [`MountError::DmDeferred`].
    pub fn remove(mut self) -> Result<(), MountError> {
        self.remove_inner()
    }

    fn remove_inner(&mut self) -> Result<(), MountError> {
        if std::mem::replace(&mut self.removed, true) {
            return Ok(());
        }
        let id = self.id()?;
        match self.dm.device_remove(&id, options()) {
            Ok(_) => {
                debug!(name = self.name, "removed dm device");
                Ok(())
            }
            Err(e) if errno_of(&e) == Some(Errno::ENXIO) => Ok(()),
            Err(e) if errno_of(&e) == Some(Errno::EBUSY) => {
                self.dm
                    .device_remove(&id, options().set_flags(DmFlags::DM_DEFERRED_REMOVE))
                    .map_err(|e| self.error("DM_DEV_REMOVE (deferred)", &e))?;
                Err(MountError::DmDeferred {
                    device: self.name.clone(),
                })
            }
            Err(e) => Err(self.error("DM_DEV_REMOVE", &e)),
        }
    }
}

impl Drop for DmDevice {
    fn drop(&mut self) {
        if let Err(err) = self.remove_inner() {
            warn!("{err}");
        }
    }
}

/// One dm device as listed by the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmListEntry {
    /// Device name.
    pub name: String,
    /// Major and minor number.
    pub devnum: DevNum,
}

impl DmListEntry {
    /// Whether the name carries [`NAME_PREFIX`], i.e. the device was made here.
    pub fn is_ours(&self) -> bool {
        self.name.starts_with(NAME_PREFIX)
    }
}

/// Lists all dm devices (`DM_LIST_DEVICES`), like `dmsetup ls`.
pub fn list_devices() -> Result<Vec<DmListEntry>, MountError> {
    let dm = control()?;
    let devices = dm.list_devices().map_err(|e| MountError::Dm {
        op: "DM_LIST_DEVICES",
        device: String::new(),
        detail: describe(&e),
    })?;
    Ok(devices
        .into_iter()
        .map(|(name, dev, _)| DmListEntry {
            name: String::from_utf8_lossy(name.as_bytes()).into_owned(),
            devnum: DevNum {
                major: dev.major,
                minor: dev.minor,
            },
        })
        .collect())
}

/// A version triple (major, minor, patch).
pub type Version = (u32, u32, u32);

/// The dm ioctl interface version and the loaded targets with their versions.
pub fn versions() -> Result<(Version, Vec<(String, Version)>), MountError> {
    let dm = control()?;
    let wrap = |op, e: DmError| MountError::Dm {
        op,
        device: String::new(),
        detail: describe(&e),
    };
    let version = dm.version().map_err(|e| wrap("DM_VERSION", e))?;
    let targets = dm
        .list_versions()
        .map_err(|e| wrap("DM_LIST_VERSIONS", e))?;
    let targets = targets
        .into_iter()
        .map(|(name, a, b, c)| (name, (a, b, c)))
        .collect();
    Ok((version, targets))
}
