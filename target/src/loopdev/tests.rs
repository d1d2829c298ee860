//! Loop device tests against the host kernel's loop driver (need root).

use super::*;
use std::io::{Read, Write};

/// Real loop devices need root and a loop driver; say so loudly instead of failing elsewhere.
fn loop_available() -> bool {
    match open_rw(Path::new(sys::LOOP_CONTROL)) {
        Ok(_) => true,
        Err(err) => {
            eprintln!(
                "SKIPPED: {err} (loop tests need root and /dev/loop-control; the VM tests cover loop too)"
            );
            false
        }
    }
}

fn backing_file(len: usize) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    file.write_all(&data).unwrap();
    file.flush().unwrap();
    file
}

#[test]
fn attach_limits_size_reads_back_and_detaches() {
    if !loop_available() {
        return;
    }
    let backing = backing_file(5 * 4096 + 100);
    let dev = LoopDevice::attach_read_only(backing.path(), 3 * 4096).unwrap();
    assert_eq!(dev.size(), 3 * 4096);
    let mut content = Vec::new();
    File::open(dev.path())
        .unwrap()
        .read_to_end(&mut content)
        .unwrap();
    assert_eq!(content.len(), 3 * 4096);
    assert_eq!(content[4096 + 7], ((4096 + 7) % 251) as u8);
    // read-only: the kernel marks the disk ro and refuses writes
    let name = dev
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        std::fs::read_to_string(format!("/sys/block/{name}/ro"))
            .unwrap()
            .trim(),
        "1"
    );
    if let Ok(mut writer) = OpenOptions::new().write(true).open(dev.path()) {
        assert!(
            writer
                .write_all(&[0u8; 4096])
                .and_then(|()| writer.sync_all())
                .is_err()
        );
    }
    let listed = attached().unwrap();
    let me = listed
        .iter()
        .find(|l| l.device == dev.path())
        .expect("listed in sysfs");
    assert_eq!(Path::new(&me.backing_file), backing.path());
    let path = dev.path().to_path_buf();
    dev.detach().unwrap();
    assert!(!attached().unwrap().iter().any(|l| l.device == path));
}

#[test]
fn drop_detaches() {
    if !loop_available() {
        return;
    }
    let backing = backing_file(8192);
    let path = LoopDevice::attach_read_only(backing.path(), 8192)
        .unwrap()
        .path()
        .to_path_buf();
    assert!(
        !attached()
            .unwrap()
            .iter()
            .any(|l| l.device == path && Path::new(&l.backing_file) == backing.path())
    );
}

#[test]
fn concurrent_attaches_get_distinct_devices() {
    if !loop_available() {
        return;
    }
    let backing = backing_file(4096);
    let devices: Vec<LoopDevice> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| s.spawn(|| LoopDevice::attach_read_only(backing.path(), 4096).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut paths: Vec<_> = devices.iter().map(|d| d.path().to_path_buf()).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 6);
}

#[test]
fn legacy_binding_applies_the_same_settings() {
    if !loop_available() {
        return;
    }
    let backing = backing_file(4 * 4096);
    let control = open_rw(Path::new(sys::LOOP_CONTROL)).unwrap();
    let dev = attach_with(backing.path(), 2 * 4096, Bind::Legacy, || {
        sys::get_free(&control)
    })
    .unwrap();
    assert_eq!(dev.size(), 2 * 4096);
    let name = dev
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let attr = |a: &str| {
        std::fs::read_to_string(format!("/sys/block/{name}/{a}"))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(attr("ro"), "1");
    assert_eq!(attr("loop/autoclear"), "1");
    assert_eq!(attr("queue/logical_block_size"), "4096");
    dev.detach().unwrap();
}

/// The bind race: the first device offered is already bound (EBUSY), the retry succeeds.
#[test]
fn ebusy_from_a_taken_device_is_retried() {
    if !loop_available() {
        return;
    }
    let backing = backing_file(4096);
    let taken = LoopDevice::attach_read_only(backing.path(), 4096).unwrap();
    let taken_number: u32 = taken
        .path()
        .to_str()
        .unwrap()
        .trim_start_matches("/dev/loop")
        .parse()
        .unwrap();
    let control = open_rw(Path::new(sys::LOOP_CONTROL)).unwrap();
    let mut offers = 0;
    let dev = attach_with(backing.path(), 4096, Bind::Configure, || {
        offers += 1;
        if offers == 1 {
            Ok(taken_number)
        } else {
            sys::get_free(&control)
        }
    })
    .unwrap();
    // concurrent tests may take further offered devices: at least one retry happened
    assert!(offers >= 2);
    assert_ne!(dev.path(), taken.path());
    // a device that stays taken exhausts the attempts
    let err = attach_with(backing.path(), 4096, Bind::Configure, || Ok(taken_number)).unwrap_err();
    assert!(
        matches!(
            err,
            MountError::LoopBusy {
                attempts: BIND_ATTEMPTS
            }
        ),
        "{err}"
    );
}

#[test]
fn out_of_range_is_refused_before_binding() {
    let backing = backing_file(4096);
    let err = LoopDevice::attach_read_only(backing.path(), 8192).unwrap_err();
    assert!(matches!(err, MountError::LoopRange { .. }), "{err}");
}

#[test]
fn range_checks() {
    let p = Path::new("/b.raucb");
    assert!(check_range(p, 4096, 4096).is_ok());
    assert!(check_range(p, 8192, 1 << 20).is_ok());
    assert!(matches!(
        check_range(p, 0, 4096),
        Err(MountError::LoopRange { .. })
    ));
    assert!(matches!(
        check_range(p, 4097, 1 << 20),
        Err(MountError::LoopRange { .. })
    ));
    assert!(matches!(
        check_range(p, 8192, 4096),
        Err(MountError::LoopRange { .. })
    ));
}
