//! `DM_TABLE_LOAD` with `DM_SECURE_DATA` from a zeroizing buffer, for tables that carry a key.
//!
//! The `devicemapper` crate's `table_load` copies the parameters into plain `Vec`s and logs them
//! at trace level, so a crypt table (whose parameters contain the key) is loaded here instead.
//! `DM_SECURE_DATA` makes the kernel wipe its copy of the ioctl buffer; this module wipes ours.

use std::fs::File;
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use zeroize::Zeroizing;

use super::table::TableLine;

/// `sizeof(struct dm_ioctl)`.
const DM_IOCTL_SIZE: usize = 312;
/// `sizeof(struct dm_target_spec)`.
const DM_TARGET_SPEC_SIZE: usize = 40;
/// `DM_TABLE_LOAD = _IOWR(0xfd, 9, struct dm_ioctl)`.
const DM_TABLE_LOAD: libc::Ioctl =
    (3 << 30) | ((DM_IOCTL_SIZE as libc::Ioctl) << 16) | (0xfd << 8) | 9;
const DM_READONLY_FLAG: u32 = 1 << 0;
const DM_SECURE_DATA_FLAG: u32 = 1 << 15;
/// Length of `dm_ioctl.name` and of `dm_target_spec.target_type`.
const DM_NAME_LEN: usize = 128;
const DM_MAX_TYPE_NAME: usize = 16;

/// Builds the ioctl buffer: header, one target spec, NUL-terminated params padded to 8 bytes.
fn build_buffer(
    name: &str,
    line: &TableLine<Zeroizing<String>>,
    read_only: bool,
) -> Result<Zeroizing<Vec<u8>>, Errno> {
    if name.len() >= DM_NAME_LEN || line.target.len() >= DM_MAX_TYPE_NAME {
        return Err(Errno::EINVAL);
    }
    let params = line.params.as_bytes();
    let padded = (params.len() + 1).next_multiple_of(8);
    let total = DM_IOCTL_SIZE + DM_TARGET_SPEC_SIZE + padded;
    let mut buf = Zeroizing::new(vec![0u8; total]);
    let flags = DM_SECURE_DATA_FLAG | if read_only { DM_READONLY_FLAG } else { 0 };
    // struct dm_ioctl: version[3], data_size, data_start, target_count, open_count, flags, ...
    put_u32(&mut buf, 0, 4);
    put_u32(&mut buf, 4, 0);
    put_u32(&mut buf, 8, 0);
    put_u32(&mut buf, 12, total as u32);
    put_u32(&mut buf, 16, DM_IOCTL_SIZE as u32);
    put_u32(&mut buf, 20, 1);
    put_u32(&mut buf, 28, flags);
    buf[48..48 + name.len()].copy_from_slice(name.as_bytes());
    // struct dm_target_spec: sector_start, length, status, next, target_type[16]
    let spec = DM_IOCTL_SIZE;
    buf[spec..spec + 8].copy_from_slice(&line.start.to_ne_bytes());
    buf[spec + 8..spec + 16].copy_from_slice(&line.length.to_ne_bytes());
    put_u32(&mut buf, spec + 20, (DM_TARGET_SPEC_SIZE + padded) as u32);
    buf[spec + 24..spec + 24 + line.target.len()].copy_from_slice(line.target.as_bytes());
    let data = spec + DM_TARGET_SPEC_SIZE;
    buf[data..data + params.len()].copy_from_slice(params);
    Ok(buf)
}

fn put_u32(buf: &mut [u8], offset: usize, value: u32) {
    buf[offset..offset + 4].copy_from_slice(&value.to_ne_bytes());
}

/// Loads `line` into the inactive table of device `name` with `DM_SECURE_DATA`.
pub fn load_table_secure(
    control: &File,
    name: &str,
    line: &TableLine<Zeroizing<String>>,
) -> Result<(), Errno> {
    let mut buf = build_buffer(name, line, true)?;
    // SAFETY: `buf` is a complete `struct dm_ioctl` followed by its payload, and its
    // `data_size` field equals the buffer length, so the kernel stays within it.
    let rc = unsafe { libc::ioctl(control.as_raw_fd(), DM_TABLE_LOAD, buf.as_mut_ptr()) };
    Errno::result(rc).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(params: &str) -> TableLine<Zeroizing<String>> {
        TableLine {
            start: 0,
            length: 2056,
            target: "crypt",
            params: Zeroizing::new(params.to_string()),
        }
    }

    #[test]
    fn ioctl_number_matches_the_kernel_header() {
        assert_eq!(DM_TABLE_LOAD, 0xC138_FD09);
    }

    #[test]
    fn buffer_layout() {
        let buf = build_buffer("ota-crypt-bundle-1", &line("abc"), true).unwrap();
        assert_eq!(buf.len(), 312 + 40 + 8);
        assert_eq!(&buf[0..4], &4u32.to_ne_bytes());
        assert_eq!(&buf[12..16], &(buf.len() as u32).to_ne_bytes());
        assert_eq!(&buf[16..20], &312u32.to_ne_bytes());
        assert_eq!(&buf[20..24], &1u32.to_ne_bytes());
        assert_eq!(
            &buf[28..32],
            &(DM_SECURE_DATA_FLAG | DM_READONLY_FLAG).to_ne_bytes()
        );
        assert_eq!(&buf[48..66], b"ota-crypt-bundle-1");
        assert_eq!(buf[66], 0);
        assert_eq!(&buf[312 + 8..312 + 16], &2056u64.to_ne_bytes());
        assert_eq!(&buf[312 + 20..312 + 24], &48u32.to_ne_bytes());
        assert_eq!(&buf[312 + 24..312 + 29], b"crypt");
        assert_eq!(&buf[352..356], b"abc\0");
    }

    #[test]
    fn params_are_nul_terminated_and_aligned() {
        // 8 bytes of params need a 16-byte slot for the terminating NUL.
        let buf = build_buffer("n", &line("12345678"), true).unwrap();
        assert_eq!(buf.len(), 312 + 40 + 16);
        assert_eq!(buf[352 + 8], 0);
    }

    #[test]
    fn overlong_names_are_rejected() {
        assert_eq!(
            build_buffer(&"x".repeat(128), &line("a"), true).unwrap_err(),
            Errno::EINVAL
        );
    }
}
