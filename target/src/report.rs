//! The system and slot status report behind `ota status` and `GetSlotStatus`, with the output
//! formats of `rauc status` (readable, shell, json, json-pretty) and the D-Bus dictionary.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use zbus::{OwnedVariant, Variant};

use crate::bootloader::BootState;
use crate::error::Result;
use crate::install::Context;
use crate::status::SlotStatus;

/// One slot as reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotReport {
    /// `rootfs.0`.
    pub name: String,
    /// `rootfs`.
    pub class: String,
    /// Device path.
    pub device: String,
    /// Slot type (`raw`, …).
    pub slot_type: String,
    /// Bootname.
    pub bootname: Option<String>,
    /// `booted`, `active` or `inactive`.
    pub state: String,
    /// Description.
    pub description: Option<String>,
    /// Parent slot name.
    pub parent: Option<String>,
    /// Where the slot is mounted.
    pub mountpoint: Option<String>,
    /// Boot status (only for slots with a bootname; `None` if the bootloader cannot tell).
    pub boot_status: Option<BootState>,
    /// Recorded slot status.
    pub status: SlotStatus,
}

/// The whole report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemReport {
    /// `[system] compatible`.
    pub compatible: String,
    /// System variant (empty if none).
    pub variant: String,
    /// Booted slot as detected (bootname or device; `BootSlot` property).
    pub booted: String,
    /// Primary slot name, if the bootloader reports one.
    pub primary: Option<String>,
    /// Slots in config order.
    pub slots: Vec<SlotReport>,
}

/// Collects the report from the live system. A bootloader that cannot report the primary slot
/// or a boot state leaves those fields empty (logged as a warning, as rauc does).
pub fn collect(ctx: &Context) -> Result<SystemReport> {
    let states = ctx.slot_states()?;
    let status = ctx.status.load()?;
    let primary = ctx
        .bootloader
        .get_primary()
        .map_err(|e| tracing::warn!("Failed getting primary slot: {e}"))
        .ok();
    let slots = ctx
        .config
        .slots
        .iter()
        .map(|s| SlotReport {
            name: s.name.clone(),
            class: s.class.clone(),
            device: s.device.to_string_lossy().into_owned(),
            slot_type: s.slot_type.as_str().to_string(),
            bootname: s.bootname.clone(),
            state: states.get(&s.name).as_str().to_string(),
            description: s.description.clone(),
            parent: s.parent.clone(),
            mountpoint: crate::install::write::mount_point_of(&s.device),
            boot_status: s
                .bootname
                .as_ref()
                .and_then(|_| ctx.bootloader.get_state(s).ok()),
            status: status.get(&s.name),
        })
        .collect();
    Ok(SystemReport {
        compatible: ctx.config.compatible.clone(),
        variant: ctx.variant().unwrap_or_default(),
        booted: ctx
            .boot_id
            .as_ref()
            .map(|b| b.as_str().to_string())
            .unwrap_or_default(),
        primary,
        slots,
    })
}

fn sv(s: &str) -> OwnedVariant {
    OwnedVariant::try_from(Variant::from(s.to_string()))
        .unwrap_or_else(|_| OwnedVariant::from(false))
}

impl SlotReport {
    /// The `a{sv}` dictionary of `GetSlotStatus` (keys only when set, as rauc).
    pub fn to_dbus(&self) -> HashMap<String, OwnedVariant> {
        let mut d = HashMap::new();
        let mut s = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                d.insert(k.to_string(), sv(v));
            }
        };
        s("class", Some(&self.class));
        s("device", Some(&self.device));
        s("type", Some(&self.slot_type));
        s("bootname", self.bootname.as_deref());
        s("state", Some(&self.state));
        s("description", self.description.as_deref());
        s("parent", self.parent.as_deref());
        s("mountpoint", self.mountpoint.as_deref());
        if self.bootname.is_some() {
            s(
                "boot-status",
                Some(self.boot_status.unwrap_or(BootState::Bad).as_str()),
            );
        }
        let st = &self.status;
        s("bundle.compatible", st.bundle_compatible.as_deref());
        s("bundle.version", st.bundle_version.as_deref());
        s("bundle.description", st.bundle_description.as_deref());
        s("bundle.build", st.bundle_build.as_deref());
        s("bundle.hash", st.bundle_hash.as_deref());
        s("status", st.status.as_deref());
        s("installed.transaction", st.installed_transaction.as_deref());
        if let Some(sha) = &st.sha256 {
            d.insert("sha256".into(), sv(sha));
            d.insert("size".into(), OwnedVariant::from(st.size.unwrap_or(0)));
        }
        if let Some(ts) = &st.installed_timestamp {
            d.insert("installed.timestamp".into(), sv(ts));
            d.insert(
                "installed.count".into(),
                OwnedVariant::from(st.installed_count),
            );
        }
        if let Some(ts) = &st.activated_timestamp {
            d.insert("activated.timestamp".into(), sv(ts));
            d.insert(
                "activated.count".into(),
                OwnedVariant::from(st.activated_count),
            );
        }
        d
    }

    /// Rebuilds a report from a `GetSlotStatus` entry (the D-Bus client side).
    pub fn from_dbus(name: &str, d: &HashMap<String, OwnedVariant>) -> SlotReport {
        let s = |k: &str| match d.get(k).map(|v| &**v) {
            Some(Variant::Str(s)) => Some(s.to_string()),
            _ => None,
        };
        let u = |k: &str| match d.get(k).map(|v| &**v) {
            Some(Variant::U32(n)) => *n,
            _ => 0,
        };
        SlotReport {
            name: name.to_string(),
            class: s("class").unwrap_or_default(),
            device: s("device").unwrap_or_default(),
            slot_type: s("type").unwrap_or_default(),
            bootname: s("bootname"),
            state: s("state").unwrap_or_default(),
            description: s("description"),
            parent: s("parent"),
            mountpoint: s("mountpoint"),
            boot_status: s("boot-status").map(|b| {
                if b == "good" {
                    BootState::Good
                } else {
                    BootState::Bad
                }
            }),
            status: SlotStatus {
                bundle_compatible: s("bundle.compatible"),
                bundle_version: s("bundle.version"),
                bundle_description: s("bundle.description"),
                bundle_build: s("bundle.build"),
                bundle_hash: s("bundle.hash"),
                status: s("status"),
                sha256: s("sha256"),
                size: match d.get("size").map(|v| &**v) {
                    Some(Variant::U64(n)) => Some(*n),
                    _ => None,
                },
                installed_transaction: s("installed.transaction"),
                installed_timestamp: s("installed.timestamp"),
                installed_count: u("installed.count"),
                activated_timestamp: s("activated.timestamp"),
                activated_count: u("activated.count"),
            },
        }
    }

    fn boot_str(&self) -> Option<&'static str> {
        self.bootname
            .as_ref()
            .map(|_| self.boot_status.unwrap_or(BootState::Bad).as_str())
    }
}

impl SystemReport {
    /// `rauc status` readable output (without colours).
    pub fn readable(&self, detailed: bool) -> String {
        let booted_from = self
            .slots
            .iter()
            .find(|s| s.device == self.booted || s.bootname.as_deref() == Some(&self.booted))
            .map(|s| s.name.as_str())
            .unwrap_or("(null)");
        let primary = self
            .primary
            .as_deref()
            .and_then(|p| self.slots.iter().find(|s| s.name == p));
        let mut t = format!(
            "=== System Info ===\nCompatible:  {}\nVariant:     {}\nBooted from: {booted_from} ({})\n\n\
             === Bootloader ===\nActivated: {} ({})\n\n=== Slot States ===\n",
            self.compatible,
            self.variant,
            self.booted,
            primary.map_or("(null)", |p| &p.name),
            primary
                .and_then(|p| p.bootname.as_deref())
                .unwrap_or("(null)"),
        );
        for root in self.slots.iter().filter(|s| s.parent.is_none()) {
            self.slot_text(&mut t, root, detailed);
            for child in self
                .slots
                .iter()
                .filter(|s| s.parent.as_deref() == Some(&root.name))
            {
                self.slot_text(&mut t, child, detailed);
            }
            t.push('\n');
        }
        t
    }

    fn slot_text(&self, t: &mut String, s: &SlotReport, detailed: bool) {
        let mark = match (&s.bootname, self.primary.as_deref() == Some(&s.name)) {
            (None, _) => ' ',
            (Some(_), true) => 'x',
            (Some(_), false) => 'o',
        };
        let indent = if s.parent.is_some() { "   " } else { " " };
        t.push_str(&format!(
            "{mark}{indent}[{}] ({}, {}, {})",
            s.name, s.device, s.slot_type, s.state
        ));
        if let Some(b) = &s.bootname {
            t.push_str(&format!("\n\tbootname: {b}"));
        }
        if let Some(d) = &s.description {
            t.push_str(&format!("\n\tdescription: {d}"));
        }
        if let Some(m) = &s.mountpoint {
            t.push_str(&format!("\n\tmounted: {m}"));
        }
        if let Some(b) = s.boot_str() {
            t.push_str(&format!("\n\tboot status: {b}"));
        }
        if detailed {
            detailed_text(t, &s.status);
        }
        t.push('\n');
    }

    /// `rauc status --output-format=shell`.
    pub fn shell(&self, detailed: bool) -> String {
        let mut t = String::new();
        let q = |v: Option<&str>| format!("'{}'", v.unwrap_or("").replace('\'', "'\\''"));
        let mut line = |k: String, v: Option<&str>| t.push_str(&format!("{k}={}\n", q(v)));
        line("RAUC_SYSTEM_COMPATIBLE".into(), Some(&self.compatible));
        line("RAUC_SYSTEM_VARIANT".into(), Some(&self.variant));
        line("RAUC_SYSTEM_BOOTED_BOOTNAME".into(), Some(&self.booted));
        line("RAUC_BOOT_PRIMARY".into(), self.primary.as_deref());
        let names: Vec<&str> = self.slots.iter().map(|s| s.name.as_str()).collect();
        let nums: Vec<String> = (1..=self.slots.len()).map(|n| n.to_string()).collect();
        line("RAUC_SYSTEM_SLOTS".into(), Some(&names.join(" ")));
        line("RAUC_SLOTS".into(), Some(&nums.join(" ")));
        for (i, s) in self.slots.iter().enumerate() {
            let n = i + 1;
            line(format!("RAUC_SLOT_STATE_{n}"), Some(&s.state));
            line(format!("RAUC_SLOT_CLASS_{n}"), Some(&s.class));
            line(format!("RAUC_SLOT_DEVICE_{n}"), Some(&s.device));
            line(format!("RAUC_SLOT_TYPE_{n}"), Some(&s.slot_type));
            line(format!("RAUC_SLOT_BOOTNAME_{n}"), s.bootname.as_deref());
            line(format!("RAUC_SLOT_PARENT_{n}"), s.parent.as_deref());
            line(format!("RAUC_SLOT_MOUNTPOINT_{n}"), s.mountpoint.as_deref());
            line(format!("RAUC_SLOT_BOOT_STATUS_{n}"), s.boot_str());
            if detailed {
                let st = &s.status;
                let p = |k: &str| format!("RAUC_SLOT_STATUS_{k}_{n}");
                line(p("BUNDLE_COMPATIBLE"), st.bundle_compatible.as_deref());
                line(p("BUNDLE_VERSION"), st.bundle_version.as_deref());
                line(p("BUNDLE_DESCRIPTION"), st.bundle_description.as_deref());
                line(p("BUNDLE_BUILD"), st.bundle_build.as_deref());
                line(p("CHECKSUM_SHA256"), st.sha256.as_deref());
                line(p("CHECKSUM_SIZE"), Some(&st.size.unwrap_or(0).to_string()));
                line(p("INSTALLED_TIMESTAMP"), st.installed_timestamp.as_deref());
                line(p("INSTALLED_COUNT"), Some(&st.installed_count.to_string()));
                line(p("ACTIVATED_TIMESTAMP"), st.activated_timestamp.as_deref());
                line(p("ACTIVATED_COUNT"), Some(&st.activated_count.to_string()));
                line(p("STATUS"), st.status.as_deref());
            }
        }
        t
    }

    /// `rauc status --output-format=json` (the 1.8 layout).
    pub fn json(&self, detailed: bool) -> Value {
        let slots: Vec<Value> = self
            .slots
            .iter()
            .map(|s| {
                let mut o = json!({
                    "class": s.class, "device": s.device, "type": s.slot_type,
                    "bootname": s.bootname, "state": s.state, "parent": s.parent,
                    "mountpoint": s.mountpoint, "boot_status": s.boot_str(),
                });
                if detailed {
                    o["slot_status"] = detailed_json(&s.status);
                }
                json!({ s.name.clone(): o })
            })
            .collect();
        json!({
            "compatible": self.compatible, "variant": self.variant, "booted": self.booted,
            "boot_primary": self.primary, "slots": slots,
        })
    }
}

fn detailed_text(t: &mut String, st: &SlotStatus) {
    t.push_str("\n      slot status:\n          bundle:");
    t.push_str(&format!(
        "\n              compatible={}",
        st.bundle_compatible.as_deref().unwrap_or("(null)")
    ));
    for (k, v) in [
        ("version", &st.bundle_version),
        ("description", &st.bundle_description),
        ("build", &st.bundle_build),
    ] {
        if let Some(v) = v {
            t.push_str(&format!("\n              {k}={v}"));
        }
    }
    if let Some(sha) = &st.sha256 {
        t.push_str(&format!(
            "\n          checksum:\n              sha256={sha}\n              size={}",
            st.size.unwrap_or(0)
        ));
    }
    for (k, ts, n) in [
        ("installed", &st.installed_timestamp, st.installed_count),
        ("activated", &st.activated_timestamp, st.activated_count),
    ] {
        if let Some(ts) = ts {
            t.push_str(&format!(
                "\n          {k}:\n              timestamp={ts}\n              count={n}"
            ));
        }
    }
    if let Some(s) = &st.status {
        t.push_str(&format!("\n          status={s}"));
    }
}

fn detailed_json(st: &SlotStatus) -> Value {
    let mut bundle = Map::new();
    bundle.insert("compatible".into(), json!(st.bundle_compatible));
    for (k, v) in [
        ("version", &st.bundle_version),
        ("description", &st.bundle_description),
        ("build", &st.bundle_build),
    ] {
        if let Some(v) = v {
            bundle.insert(k.into(), json!(v));
        }
    }
    let mut o = Map::new();
    o.insert("bundle".into(), Value::Object(bundle));
    if let Some(sha) = &st.sha256 {
        o.insert(
            "checksum".into(),
            json!({"sha256": sha, "size": st.size.unwrap_or(0)}),
        );
    }
    if let Some(ts) = &st.installed_timestamp {
        o.insert(
            "installed".into(),
            json!({"timestamp": ts, "count": st.installed_count}),
        );
    }
    if let Some(ts) = &st.activated_timestamp {
        o.insert(
            "activated".into(),
            json!({"timestamp": ts, "count": st.activated_count}),
        );
    }
    if let Some(s) = &st.status {
        o.insert("status".into(), json!(s));
    }
    Value::Object(o)
}
