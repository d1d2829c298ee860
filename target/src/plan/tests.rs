//! Table tests: each case is data in, plan (or error text) out.

use std::path::Path;

use super::*;
use crate::slots::{BootId, determine_states};
use crate::status::SlotStatus;

const CONF: &str = "[system]\ncompatible=X\nbootloader=noop\n\
    [slot.rootfs.0]\ndevice=/dev/a\nbootname=A\n\
    [slot.rootfs.1]\ndevice=/dev/b\nbootname=B\ninstall-same=false\n\
    [slot.appfs.0]\ndevice=/dev/c\nparent=rootfs.0\n\
    [slot.appfs.1]\ndevice=/dev/d\nparent=rootfs.1\n\
    [slot.boot.0]\ndevice=/dev/e\ntype=vfat\nreadonly=true\n\
    [slot.data.0]\ndevice=/dev/f\ntype=ubivol\n";

fn img(class: &str, variant: Option<&str>, file: &str, sha: &str) -> ImageInput {
    ImageInput {
        slot_class: class.into(),
        variant: variant.map(Into::into),
        filename: Some(file.into()),
        sha256: Some(sha.into()),
        size: 4,
        hooks: ImageHooks::default(),
    }
}

struct Case {
    name: &'static str,
    booted: &'static str,
    variant: Option<&'static str>,
    images: Vec<ImageInput>,
    recorded: &'static [(&'static str, &'static str)],
    expect: std::result::Result<Vec<(&'static str, &'static str, UpdateAction)>, &'static str>,
}

fn run(case: &Case) {
    let config = SystemConfig::parse(CONF, Path::new("/etc/rauc/system.conf")).unwrap();
    let states = determine_states(&config, Some(&BootId::Id(case.booted.into()))).unwrap();
    let mut status = StatusFile::default();
    for (slot, sha) in case.recorded {
        let st = SlotStatus {
            sha256: Some((*sha).into()),
            ..SlotStatus::default()
        };
        status.slots.insert((*slot).into(), st);
    }
    let bundle = BundleInput {
        compatible: "X".into(),
        images: case.images.clone(),
        ..BundleInput::default()
    };
    let got = plan_install(&bundle, &config, case.variant, &states, &status);
    match (&case.expect, got) {
        (Ok(want), Ok(plan)) => {
            let got: Vec<_> = plan
                .updates
                .iter()
                .map(|u| {
                    (
                        u.slot.as_str(),
                        u.image.filename.as_deref().unwrap(),
                        u.action,
                    )
                })
                .collect();
            let want: Vec<_> = want.iter().map(|(s, f, a)| (*s, *f, *a)).collect();
            assert_eq!(got, want, "case {}", case.name);
        }
        (Err(want), Err(e)) => assert_eq!(e.to_string(), *want, "case {}", case.name),
        (want, got) => panic!("case {}: want {want:?}, got {got:?}", case.name),
    }
}

#[test]
fn plan_table() {
    use UpdateAction::*;
    let cases = vec![
        Case {
            name: "booted A installs rootfs+appfs into group 1",
            booted: "A",
            variant: None,
            images: vec![
                img("rootfs", None, "root.img", "aa"),
                img("appfs", None, "app.ext4", "bb"),
            ],
            recorded: &[],
            expect: Ok(vec![
                ("rootfs.1", "root.img", Copy),
                ("appfs.1", "app.ext4", Copy),
            ]),
        },
        Case {
            name: "booted B targets group 0",
            booted: "B",
            variant: None,
            images: vec![img("rootfs", None, "root.img", "aa")],
            recorded: &[],
            expect: Ok(vec![("rootfs.0", "root.img", Copy)]),
        },
        Case {
            name: "install-same=false skips a slot with the same recorded sha256",
            booted: "A",
            variant: None,
            images: vec![img("rootfs", None, "root.img", "aa")],
            recorded: &[("rootfs.1", "aa")],
            expect: Ok(vec![("rootfs.1", "root.img", SkipSame)]),
        },
        Case {
            name: "install-same=false with another recorded sha256 copies",
            booted: "A",
            variant: None,
            images: vec![img("rootfs", None, "root.img", "aa")],
            recorded: &[("rootfs.1", "zz")],
            expect: Ok(vec![("rootfs.1", "root.img", Copy)]),
        },
        Case {
            name: "install-same=true (default) always copies",
            booted: "B",
            variant: None,
            images: vec![img("rootfs", None, "root.img", "aa")],
            recorded: &[("rootfs.0", "aa")],
            expect: Ok(vec![("rootfs.0", "root.img", Copy)]),
        },
        Case {
            name: "variant image preferred over default",
            booted: "A",
            variant: Some("v2"),
            images: vec![
                img("rootfs", None, "default.img", "aa"),
                img("rootfs", Some("v2"), "v2.img", "bb"),
            ],
            recorded: &[],
            expect: Ok(vec![("rootfs.1", "v2.img", Copy)]),
        },
        Case {
            name: "other variant only: error",
            booted: "A",
            variant: Some("v1"),
            images: vec![img("rootfs", Some("v2"), "v2.img", "bb")],
            recorded: &[],
            expect: Err("Failed to find matching variant of image for rootfs"),
        },
        Case {
            name: "image without a target slot class",
            booted: "A",
            variant: None,
            images: vec![img("kernel", None, "k.img", "aa")],
            recorded: &[],
            expect: Err("No target slot for class kernel of image k.img found"),
        },
        Case {
            name: "readonly target",
            booted: "A",
            variant: None,
            images: vec![img("boot", None, "boot.vfat", "aa")],
            recorded: &[],
            expect: Err("Target slot for class boot of image boot.vfat is readonly"),
        },
        Case {
            name: "unsupported image type for slot type",
            booted: "A",
            variant: None,
            images: vec![img("data", None, "data.tar.gz", "aa")],
            recorded: &[],
            expect: Err("Unsupported image data.tar.gz for slot type ubivol"),
        },
        Case {
            name: "no images",
            booted: "A",
            variant: None,
            images: vec![],
            recorded: &[],
            expect: Err("No install image found"),
        },
    ];
    for case in &cases {
        run(case);
    }
}

#[test]
fn install_hook_and_boot_targets() {
    let config = SystemConfig::parse(CONF, Path::new("/etc/rauc/system.conf")).unwrap();
    let states = determine_states(&config, Some(&BootId::Id("A".into()))).unwrap();
    let mut i = img("appfs", None, "app.tar", "aa");
    i.hooks.install = true;
    let bundle = BundleInput {
        images: vec![img("rootfs", None, "r.img", "aa"), i],
        ..BundleInput::default()
    };
    let plan = plan_install(&bundle, &config, None, &states, &StatusFile::default()).unwrap();
    assert_eq!(plan.updates[1].action, UpdateAction::InstallHook);
    assert_eq!(plan.boot_targets, vec!["rootfs.1".to_string()]);
    assert_eq!(plan.target_group["appfs"], "appfs.1");
    assert!(!plan.target_group.contains_key("boot") || plan.target_group["boot"] == "boot.0");
}

#[test]
fn booted_target_is_refused() {
    // A booted slot never enters the target group; an all-slots-of-a-class-booted system has
    // no target for that class.
    let config = SystemConfig::parse(
        "[system]\ncompatible=X\nbootloader=noop\n[slot.rootfs.0]\ndevice=/dev/a\nbootname=A\n",
        Path::new("/c"),
    )
    .unwrap();
    let states = determine_states(&config, Some(&BootId::Id("A".into()))).unwrap();
    let bundle = BundleInput {
        images: vec![img("rootfs", None, "r.img", "aa")],
        ..BundleInput::default()
    };
    let e = plan_install(&bundle, &config, None, &states, &StatusFile::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "No target slot for class rootfs of image r.img found"
    );
}

#[test]
fn image_type_table() {
    for (file, t, ok) in [
        ("a.img", SlotType::Raw, true),
        ("a.ext4", SlotType::Ext4, true),
        ("a.vfat", SlotType::Vfat, true),
        ("a.squashfs-xz", SlotType::Raw, true),
        ("a.ext4", SlotType::Vfat, false),
        ("a.tar.xz", SlotType::Ext4, false),
        ("a.img", SlotType::Nand, false),
    ] {
        assert_eq!(image_copies_to(file, t), ok, "{file} -> {t}");
    }
}
