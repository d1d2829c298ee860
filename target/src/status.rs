//! The slot status file (`rauc-format.md` §9): read leniently, written atomically.
//!
//! Central mode keeps one file with a `[slot.CLASS.INDEX]` group per slot. Reading ignores
//! unknown keys and groups (RAUC reads consume-based without a leftover check); values that do
//! not parse are dropped with a warning. Writing uses [`bundle::keyfile::KeyFileWriter`] and
//! replaces the file through a temporary file in the same directory, fsync and rename.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bundle::atomic::{self, Existing};
use bundle::keyfile::{Group, KeyFile, KeyFileWriter};

use crate::config::{StatusLocation, SystemConfig};
use crate::error::{Error, Result};

/// The status of one slot. Every field is optional, as in RAUC's file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotStatus {
    /// `bundle.compatible`.
    pub bundle_compatible: Option<String>,
    /// `bundle.version`.
    pub bundle_version: Option<String>,
    /// `bundle.description`.
    pub bundle_description: Option<String>,
    /// `bundle.build`.
    pub bundle_build: Option<String>,
    /// `bundle.hash` (manifest hash; written by RAUC ≥ 1.9).
    pub bundle_hash: Option<String>,
    /// `status`: `ok`, `failed` or `pending`.
    pub status: Option<String>,
    /// `sha256` of the installed image.
    pub sha256: Option<String>,
    /// `size` of the installed image.
    pub size: Option<u64>,
    /// `installed.transaction` (RAUC ≥ 1.10).
    pub installed_transaction: Option<String>,
    /// `installed.timestamp` (`%Y-%m-%dT%H:%M:%SZ`, kept as an opaque string like rauc 1.8).
    pub installed_timestamp: Option<String>,
    /// `installed.count`.
    pub installed_count: u32,
    /// `activated.timestamp`.
    pub activated_timestamp: Option<String>,
    /// `activated.count`.
    pub activated_count: u32,
}

/// The current time in the status file's format (`2026-11-22T04:06:51Z`).
pub fn timestamp_now() -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::now_utc()
        .format(&fmt)
        .unwrap_or_default()
}

impl SlotStatus {
    fn read(mut g: Group) -> SlotStatus {
        let name = g.name().to_string();
        let mut s = |key: &str| match g.take_string(key) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("status file group [{name}]: {e}");
                None
            }
        };
        let mut st = SlotStatus {
            bundle_compatible: s("bundle.compatible"),
            bundle_version: s("bundle.version"),
            bundle_description: s("bundle.description"),
            bundle_build: s("bundle.build"),
            bundle_hash: s("bundle.hash"),
            status: s("status"),
            sha256: s("sha256"),
            installed_transaction: s("installed.transaction"),
            installed_timestamp: s("installed.timestamp"),
            activated_timestamp: s("activated.timestamp"),
            ..SlotStatus::default()
        };
        st.size = g.take_u64("size").ok().flatten();
        let count = |g: &mut Group, key: &str| {
            g.take_u64(key)
                .ok()
                .flatten()
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0)
        };
        st.installed_count = count(&mut g, "installed.count");
        st.activated_count = count(&mut g, "activated.count");
        st
    }

    fn write(&self, w: &mut KeyFileWriter) {
        w.opt_string("bundle.compatible", self.bundle_compatible.as_deref())
            .opt_string("bundle.version", self.bundle_version.as_deref())
            .opt_string("bundle.description", self.bundle_description.as_deref())
            .opt_string("bundle.build", self.bundle_build.as_deref())
            .opt_string("bundle.hash", self.bundle_hash.as_deref())
            .opt_string("status", self.status.as_deref())
            .opt_string("sha256", self.sha256.as_deref());
        if let Some(size) = self.size {
            w.u64("size", size);
        }
        w.opt_string(
            "installed.transaction",
            self.installed_transaction.as_deref(),
        );
        if let Some(ts) = &self.installed_timestamp {
            w.string("installed.timestamp", ts)
                .u64("installed.count", self.installed_count.into());
        }
        if let Some(ts) = &self.activated_timestamp {
            w.string("activated.timestamp", ts)
                .u64("activated.count", self.activated_count.into());
        }
    }
}

/// The central status file: slot name → status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusFile {
    /// Status per slot name (`rootfs.1`).
    pub slots: BTreeMap<String, SlotStatus>,
}

impl StatusFile {
    /// Parses status file text leniently. A syntax error yields an empty status (and a warning),
    /// as RAUC then starts over.
    pub fn parse(text: &str) -> StatusFile {
        let mut kf = match KeyFile::parse(text) {
            Ok(kf) => kf,
            Err(e) => {
                tracing::warn!("ignoring unreadable status file: {e}");
                return StatusFile::default();
            }
        };
        let mut out = StatusFile::default();
        for g in kf.take_groups_with_prefix("slot.") {
            let name = g.name()["slot.".len()..].to_string();
            out.slots.insert(name, SlotStatus::read(g));
        }
        out
    }

    /// Serializes every slot with a status, `[slot.NAME]` groups in name order.
    pub fn to_text(&self) -> String {
        let mut w = KeyFileWriter::new();
        for (name, st) in &self.slots {
            w.group(&format!("slot.{name}"));
            st.write(&mut w);
        }
        w.finish()
    }

    /// Reads `path`; a missing file is an empty status.
    pub fn load(path: &Path) -> Result<StatusFile> {
        match std::fs::read_to_string(path) {
            Ok(t) => Ok(Self::parse(&t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::io("failed to read status file", path, e)),
        }
    }

    /// Writes `path` atomically: temporary file in the same directory, fsync, rename, fsync dir.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_text().as_bytes())
    }

    /// The status of `slot` (default if none recorded).
    pub fn get(&self, slot: &str) -> SlotStatus {
        self.slots.get(slot).cloned().unwrap_or_default()
    }
}

/// Writes `data` to `path` atomically (creating its directory), replacing what was there.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io("failed to create directory", dir, e))?;
    Ok(atomic::write_file(path, data, Existing::Replace)?)
}

/// Where and how slot status is stored for a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusStore {
    /// One central file.
    Central(PathBuf),
    /// Per-slot files inside mounted slots. Slot mounting belongs to the mount stack; until it is
    /// wired, per-slot status is neither read nor written (a warning is logged).
    PerSlot,
}

impl StatusStore {
    /// The store configured in `system.conf`.
    pub fn for_config(config: &SystemConfig) -> StatusStore {
        match &config.status {
            StatusLocation::Central(p) => StatusStore::Central(p.clone()),
            StatusLocation::PerSlot => StatusStore::PerSlot,
        }
    }

    /// Loads all recorded slot status.
    pub fn load(&self) -> Result<StatusFile> {
        match self {
            StatusStore::Central(p) => StatusFile::load(p),
            StatusStore::PerSlot => Ok(StatusFile::default()),
        }
    }

    /// Records `status` for `slot` (read-modify-write of the whole central file).
    pub fn save_slot(&self, slot: &str, status: &SlotStatus) -> Result<()> {
        match self {
            StatusStore::Central(p) => {
                let mut file = StatusFile::load(p)?;
                file.slots.insert(slot.to_string(), status.clone());
                file.save(p)
            }
            StatusStore::PerSlot => {
                tracing::warn!("per-slot status is not supported yet; status of {slot} not saved");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real file rauc 1.8 wrote (rauc-format.md §9).
    const RAUC_18: &str = "[slot.rootfs.1]
bundle.compatible=Test Device
bundle.version=2024.01.0
bundle.description=test bundle plain
status=ok
sha256=45fbfc0f52bc71ff602c54f6b0f9b79be2029eeb747cb4dac4ff018fcd314d00
size=1052672
installed.timestamp=2026-11-22T04:06:51Z
installed.count=1
activated.timestamp=2026-11-22T04:06:51Z
activated.count=1
";

    #[test]
    fn reads_and_rewrites_rauc_18_file_byte_for_byte() {
        let f = StatusFile::parse(RAUC_18);
        let s = &f.slots["rootfs.1"];
        assert_eq!(s.bundle_version.as_deref(), Some("2024.01.0"));
        assert_eq!(s.size, Some(1052672));
        assert_eq!((s.installed_count, s.activated_count), (1, 1));
        assert_eq!(f.to_text(), RAUC_18);
    }

    #[test]
    fn lenient_reading() {
        let f = StatusFile::parse(
            "[system]\nboot-id=x\n[slot.a.0]\nstatus=ok\nfuture.key=1\nsize=abc\ninstalled.count=5000000000\n",
        );
        let s = &f.slots["a.0"];
        assert_eq!(s.status.as_deref(), Some("ok"));
        assert_eq!(s.size, None);
        assert_eq!(s.installed_count, 0);
        assert_eq!(StatusFile::parse("garbage"), StatusFile::default());
    }

    #[test]
    fn atomic_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("data/central.raucs");
        let store = StatusStore::Central(p.clone());
        assert!(store.load().unwrap().slots.is_empty());
        let st = SlotStatus {
            bundle_compatible: Some("X".into()),
            bundle_description: Some(" leading space".into()),
            status: Some("ok".into()),
            installed_timestamp: Some(timestamp_now()),
            installed_count: 2,
            ..SlotStatus::default()
        };
        store.save_slot("rootfs.1", &st).unwrap();
        store.save_slot("appfs.1", &SlotStatus::default()).unwrap();
        let back = store.load().unwrap();
        assert_eq!(back.slots["rootfs.1"], st);
        assert_eq!(back.slots.len(), 2);
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary files left behind");
    }

    #[test]
    fn timestamp_format() {
        let t = timestamp_now();
        assert_eq!(t.len(), 20);
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T');
    }
}
