use std::path::Path;

use super::*;

fn config() -> SystemConfig {
    SystemConfig::parse(
        "[system]\ncompatible=X\nbootloader=noop\n\
         [slot.rootfs.0]\ndevice=/dev/sda2\nbootname=A\n\
         [slot.rootfs.1]\ndevice=/dev/sda3\nbootname=B\n\
         [slot.appfs.0]\ndevice=/dev/sda4\nparent=rootfs.0\n\
         [slot.appfs.1]\ndevice=/dev/sda5\nparent=rootfs.1\n",
        Path::new("/etc/rauc/system.conf"),
    )
    .unwrap()
}

#[test]
fn cmdline_parsing() {
    let g = BootloaderKind::Grub;
    assert_eq!(
        boot_id_from_cmdline("quiet rauc.slot=B root=/dev/sda3", g),
        Some(BootId::Id("B".into()))
    );
    assert_eq!(
        boot_id_from_cmdline("console=ttyS0 root=PARTUUID=1234-02 rw", g),
        Some(BootId::Id("PARTUUID=1234-02".into()))
    );
    assert_eq!(
        boot_id_from_cmdline("rauc.external root=/x", g),
        Some(BootId::External)
    );
    assert_eq!(boot_id_from_cmdline("quiet", g), None);
    assert_eq!(
        boot_id_from_cmdline(
            "bootstate.active=system1 root=/dev/x",
            BootloaderKind::Barebox
        ),
        Some(BootId::Id("system1".into()))
    );
    assert_eq!(
        boot_id_from_cmdline("systemd.verity_root_data=/dev/vda2", g),
        Some(BootId::Id("/dev/vda2".into()))
    );
}

#[test]
fn root_specs_map_to_disk_links() {
    assert_eq!(
        root_spec_to_path("PARTUUID=ab-01"),
        Path::new("/dev/disk/by-partuuid/ab-01")
    );
    assert_eq!(
        root_spec_to_path("UUID=f00"),
        Path::new("/dev/disk/by-uuid/f00")
    );
    assert_eq!(
        root_spec_to_path("PARTLABEL=root"),
        Path::new("/dev/disk/by-partlabel/root")
    );
    assert_eq!(root_spec_to_path("/dev/sda2"), Path::new("/dev/sda2"));
}

#[test]
fn states_by_bootname_device_and_external() {
    let c = config();
    let s = determine_states(&c, Some(&BootId::Id("A".into()))).unwrap();
    assert_eq!(s.booted.as_deref(), Some("rootfs.0"));
    assert_eq!(s.get("rootfs.0"), SlotState::Booted);
    assert_eq!(s.get("appfs.0"), SlotState::Active);
    assert_eq!(s.get("rootfs.1"), SlotState::Inactive);
    assert_eq!(s.get("appfs.1"), SlotState::Inactive);
    let s = determine_states(&c, Some(&BootId::Id("/dev/sda3".into()))).unwrap();
    assert_eq!(s.booted.as_deref(), Some("rootfs.1"));
    let s = determine_states(&c, Some(&BootId::External)).unwrap();
    assert!(s.booted.is_none() && s.states.values().all(|v| *v == SlotState::Inactive));
    let e = determine_states(&c, Some(&BootId::Id("C".into()))).unwrap_err();
    assert_eq!(e.to_string(), "Did not find booted slot (matching 'C')");
    assert!(determine_states(&c, None).is_err());
}

#[test]
fn identifiers() {
    let c = config();
    let s = determine_states(&c, Some(&BootId::Id("A".into()))).unwrap();
    assert_eq!(
        slot_by_identifier(&c, &s, "booted").unwrap().name,
        "rootfs.0"
    );
    assert_eq!(
        slot_by_identifier(&c, &s, "other").unwrap().name,
        "rootfs.1"
    );
    assert_eq!(
        slot_by_identifier(&c, &s, "rootfs.1").unwrap().name,
        "rootfs.1"
    );
    assert_eq!(
        slot_by_identifier(&c, &s, "appfs.1")
            .unwrap_err()
            .to_string(),
        "No slot with class appfs and name appfs.1 found"
    );
    assert_eq!(
        slot_by_identifier(&c, &s, "x").unwrap_err().to_string(),
        "Invalid slot name format: 'x'"
    );
}
