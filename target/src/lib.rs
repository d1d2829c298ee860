//! The device side: `system.conf`, slots, opening and verifying a bundle with the device's token
//! key, device-mapper, the install plan and its executor, the status file, bootloader backends
//! and the RAUC-compatible D-Bus service.

pub mod dm;
pub mod loopdev;
pub mod mount;
