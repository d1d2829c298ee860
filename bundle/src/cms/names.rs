//! Printing names and serial numbers the way OpenSSL (and therefore rauc) prints them.

use std::ffi::{c_int, c_long, c_ulong, c_void};

use openssl::bn::BigNum;
use openssl_sys as ffi;

/// `XN_FLAG_ONELINE` from `<openssl/x509.h>` (`ASN1_STRFLGS_RFC2253 | ASN1_STRFLGS_ESC_QUOTE |
/// XN_FLAG_SEP_CPLUS_SPC | XN_FLAG_SPC_EQ | XN_FLAG_FN_SN`).
const XN_FLAG_ONELINE: c_ulong = 0x0082_031f;

unsafe extern "C" {
    // Not bound by openssl-sys; part of libcrypto, which openssl-sys links.
    fn X509_NAME_print_ex(
        out: *mut ffi::BIO,
        nm: *const ffi::X509_NAME,
        indent: c_int,
        flags: c_ulong,
    ) -> c_int;
}

/// Formats a DER `Name` like `X509_NAME_print_ex(…, XN_FLAG_ONELINE)`: `O = Test Org, CN = x`.
/// Returns `None` if OpenSSL cannot parse the name.
pub fn name_oneline(name_der: &[u8]) -> Option<String> {
    let len = c_long::try_from(name_der.len()).ok()?;
    // SAFETY: d2i_X509_NAME reads at most `len` bytes from `name_der` and returns an owned
    // name (or null); a fresh memory BIO is written by X509_NAME_print_ex and read with
    // BIO_ctrl (BIO_get_mem_data) while alive; both objects are freed exactly once.
    unsafe {
        let mut p = name_der.as_ptr();
        let name = ffi::d2i_X509_NAME(std::ptr::null_mut(), &mut p, len);
        if name.is_null() {
            ffi::ERR_clear_error();
            return None;
        }
        let bio = ffi::BIO_new(ffi::BIO_s_mem());
        if bio.is_null() {
            ffi::X509_NAME_free(name);
            return None;
        }
        let ok = X509_NAME_print_ex(bio, name, 0, XN_FLAG_ONELINE);
        let mut data: *mut c_void = std::ptr::null_mut();
        let got = ffi::BIO_ctrl(
            bio,
            ffi::BIO_CTRL_INFO,
            0,
            (&mut data as *mut *mut c_void).cast(),
        );
        let text = if ok >= 0 && got >= 0 && !data.is_null() {
            let bytes = std::slice::from_raw_parts(data.cast::<u8>(), got as usize);
            Some(String::from_utf8_lossy(bytes).into_owned())
        } else {
            None
        };
        ffi::BIO_free_all(bio);
        ffi::X509_NAME_free(name);
        text
    }
}

/// Formats the content octets of a DER INTEGER like OpenSSL's `i2s_ASN1_INTEGER`: decimal
/// below 128 bits, otherwise `0x` and upper-case hex (whole bytes), with a leading `-` for
/// negative values.
pub fn serial_text(integer_content: &[u8]) -> String {
    let negative = integer_content.first().is_some_and(|b| b & 0x80 != 0);
    let magnitude = if negative {
        twos_complement_negate(integer_content)
    } else {
        integer_content.to_vec()
    };
    let Ok(bn) = BigNum::from_slice(&magnitude) else {
        return "<invalid serial>".to_owned();
    };
    let sign = if negative { "-" } else { "" };
    if bn.num_bits() < 128 {
        let dec = bn.to_dec_str().map(|s| s.to_string()).unwrap_or_default();
        format!("{sign}{dec}")
    } else {
        let hex = bn.to_hex_str().map(|s| s.to_string()).unwrap_or_default();
        format!("{sign}0x{hex}")
    }
}

fn twos_complement_negate(bytes: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = bytes.iter().map(|b| !b).collect();
    for b in out.iter_mut().rev() {
        let (v, carry) = b.overflowing_add(1);
        *b = v;
        if !carry {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::x509::X509NameBuilder;

    #[test]
    fn oneline_matches_openssl_format() {
        let mut b = X509NameBuilder::new().unwrap();
        b.append_entry_by_text("O", "Test Org").unwrap();
        b.append_entry_by_text("CN", "Test Org Development 000")
            .unwrap();
        let der = b.build().to_der().unwrap();
        assert_eq!(
            name_oneline(&der).unwrap(),
            "O = Test Org, CN = Test Org Development 000"
        );
    }

    #[test]
    fn serials_print_like_i2s_asn1_integer() {
        assert_eq!(serial_text(&[0x01]), "1");
        assert_eq!(serial_text(&[0x00, 0xff]), "255");
        assert_eq!(serial_text(&[0xff]), "-1");
        let fixture = hex::decode("47A6A044491D6BE8AA0047252F35A5385AB8A728").unwrap();
        assert_eq!(
            serial_text(&fixture),
            "0x47A6A044491D6BE8AA0047252F35A5385AB8A728"
        );
        let ec003 = hex::decode("0CE86C3E8322969C2D86CDFBE0D4D5914E4EF70C").unwrap();
        assert_eq!(
            serial_text(&ec003),
            "0x0CE86C3E8322969C2D86CDFBE0D4D5914E4EF70C"
        );
        // 100 bits: still decimal in OpenSSL 3.
        let mid = hex::decode("0f0000000000000000000000ff").unwrap();
        assert!(serial_text(&mid).chars().all(|c| c.is_ascii_digit()));
    }
}
