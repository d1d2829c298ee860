//! The loop driver's ioctl ABI (`<linux/loop.h>`); the libc crate does not define it.

use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

use super::raw;

/// The loop control device.
pub const LOOP_CONTROL: &str = "/dev/loop-control";

const LOOP_SET_FD: libc::Ioctl = 0x4C00;
const LOOP_CLR_FD: libc::Ioctl = 0x4C01;
const LOOP_SET_STATUS64: libc::Ioctl = 0x4C04;
const LOOP_SET_BLOCK_SIZE: libc::Ioctl = 0x4C09;
const LOOP_CONFIGURE: libc::Ioctl = 0x4C0A;
const LOOP_CTL_GET_FREE: libc::Ioctl = 0x4C82;
/// `_IOR(0x12, 114, size_t)`
const BLKGETSIZE64: libc::Ioctl = 0x8008_1272;

const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_NAME_SIZE: usize = 64;
const LO_KEY_SIZE: usize = 32;

/// `struct loop_info64` (232 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; LO_KEY_SIZE],
    lo_init: [u64; 2],
}

/// `struct loop_config` (304 bytes).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

const _: () = assert!(size_of::<LoopInfo64>() == 232);
const _: () = assert!(size_of::<LoopConfig>() == 304);

impl LoopInfo64 {
    /// Read-only, autoclear, offset 0, limited to `size_limit` bytes; the file name is informational.
    pub fn read_only_autoclear(size_limit: u64, backing: &Path) -> LoopInfo64 {
        let mut name = [0u8; LO_NAME_SIZE];
        let bytes = backing.as_os_str().as_bytes();
        let len = bytes.len().min(LO_NAME_SIZE - 1);
        name[..len].copy_from_slice(&bytes[..len]);
        LoopInfo64 {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_sizelimit: size_limit,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
            lo_file_name: name,
            lo_crypt_name: [0; LO_NAME_SIZE],
            lo_encrypt_key: [0; LO_KEY_SIZE],
            lo_init: [0; 2],
        }
    }
}

/// `LOOP_CTL_GET_FREE`: the number of a free (possibly new) loop device.
pub fn get_free(control: &File) -> Result<u32, Errno> {
    // SAFETY: the ioctl takes no argument and returns the device number.
    let n = unsafe { libc::ioctl(raw(control), LOOP_CTL_GET_FREE) };
    Errno::result(n).map(|n| n as u32)
}

/// `LOOP_CONFIGURE`: bind and configure in one step.
pub fn configure(
    device: &File,
    backing: &File,
    block_size: u32,
    info: &LoopInfo64,
) -> Result<(), Errno> {
    let config = LoopConfig {
        fd: raw(backing) as u32,
        block_size,
        info: *info,
        reserved: [0; 8],
    };
    // SAFETY: `config` is a valid `struct loop_config` that outlives the call.
    let rc = unsafe { libc::ioctl(raw(device), LOOP_CONFIGURE, &config as *const LoopConfig) };
    Errno::result(rc).map(drop)
}

/// `LOOP_SET_FD`: bind only.
pub fn set_fd(device: &File, backing: &File) -> Result<(), Errno> {
    // SAFETY: the argument is a file descriptor passed by value.
    let rc = unsafe { libc::ioctl(raw(device), LOOP_SET_FD, raw(backing) as libc::c_ulong) };
    Errno::result(rc).map(drop)
}

/// `LOOP_SET_STATUS64`.
pub fn set_status(device: &File, info: &LoopInfo64) -> Result<(), Errno> {
    // SAFETY: `info` is a valid `struct loop_info64` that outlives the call.
    let rc = unsafe { libc::ioctl(raw(device), LOOP_SET_STATUS64, info as *const LoopInfo64) };
    Errno::result(rc).map(drop)
}

/// `LOOP_SET_BLOCK_SIZE`, retried while the kernel reports `EAGAIN` (page cache still busy).
pub fn set_block_size(device: &File, block_size: u32) -> Result<(), Errno> {
    let mut attempts = 0;
    loop {
        // SAFETY: the argument is the block size passed by value.
        let rc = unsafe {
            libc::ioctl(
                raw(device),
                LOOP_SET_BLOCK_SIZE,
                block_size as libc::c_ulong,
            )
        };
        match Errno::result(rc) {
            Err(Errno::EAGAIN) if attempts < 20 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other.map(drop),
        }
    }
}

/// `LOOP_CLR_FD` (with autoclear set it only marks the device when others still hold it).
pub fn clear_fd(device: &File) -> Result<(), Errno> {
    // SAFETY: the ioctl takes no argument.
    let rc = unsafe { libc::ioctl(raw(device), LOOP_CLR_FD, 0 as libc::c_ulong) };
    Errno::result(rc).map(drop)
}

/// `BLKGETSIZE64`: size of a block device in bytes.
pub fn device_size(device: &File) -> Result<u64, Errno> {
    let mut size: u64 = 0;
    // SAFETY: the kernel writes one u64 into `size`.
    let rc = unsafe { libc::ioctl(raw(device), BLKGETSIZE64, &mut size as *mut u64) };
    Errno::result(rc).map(|_| size)
}
