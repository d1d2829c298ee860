//! The canonical `pkcs11:` URI formatter.
//!
//! Attribute order follows p11tool/p11-kit output (library, slot, token identity, then `id`,
//! `object`, `type`); `id` is always fully percent-encoded; other values keep RFC 3986
//! unreserved characters and the RFC 7512 "reserved but available" characters literal and encode
//! everything else as upper-case `%XX`.

use super::Pkcs11Uri;

/// Characters a path value may carry unencoded (besides unreserved ones).
const PATH_AVAIL: &[u8] = b":[]@!$'()*+,=";
/// Characters a query value may carry unencoded (besides unreserved ones).
const QUERY_AVAIL: &[u8] = b":[]@!$'()*+,=/?|";

pub(super) fn format(uri: &Pkcs11Uri, with_pin: bool) -> String {
    let mut path: Vec<String> = Vec::new();
    push_text(&mut path, "library-manufacturer", &uri.library_manufacturer);
    push_text(&mut path, "library-description", &uri.library_description);
    if let Some(v) = uri.library_version {
        path.push(match v.minor {
            Some(minor) => format!("library-version={}.{minor}", v.major),
            None => format!("library-version={}", v.major),
        });
    }
    push_text(&mut path, "slot-manufacturer", &uri.slot_manufacturer);
    push_text(&mut path, "slot-description", &uri.slot_description);
    if let Some(id) = uri.slot_id {
        path.push(format!("slot-id={id}"));
    }
    push_text(&mut path, "model", &uri.model);
    push_text(&mut path, "manufacturer", &uri.manufacturer);
    push_text(&mut path, "serial", &uri.serial);
    push_text(&mut path, "token", &uri.token);
    if let Some(id) = &uri.id {
        path.push(format!("id={}", encode_all(id)));
    }
    push_text(&mut path, "object", &uri.object);
    if let Some(t) = uri.object_type {
        path.push(format!("type={t}"));
    }
    let mut out = format!("pkcs11:{}", path.join(";"));
    let query = query(uri, with_pin);
    if !query.is_empty() {
        out.push('?');
        out.push_str(&query.join("&"));
    }
    out
}

fn push_text(path: &mut Vec<String>, name: &str, value: &Option<String>) {
    if let Some(v) = value {
        path.push(format!("{name}={}", encode(v.as_bytes(), PATH_AVAIL)));
    }
}

fn query(uri: &Pkcs11Uri, with_pin: bool) -> Vec<String> {
    let mut query = Vec::new();
    if let Some(v) = &uri.pin_source {
        query.push(format!("pin-source={}", encode(v.as_bytes(), QUERY_AVAIL)));
    }
    if with_pin && let Some(pin) = &uri.pin_value {
        query.push(format!(
            "pin-value={}",
            encode(pin.expose().as_bytes(), QUERY_AVAIL)
        ));
    }
    if let Some(v) = &uri.module_name {
        query.push(format!("module-name={}", encode(v.as_bytes(), QUERY_AVAIL)));
    }
    if let Some(v) = &uri.module_path {
        query.push(format!("module-path={}", encode(v.as_bytes(), QUERY_AVAIL)));
    }
    query
}

/// Percent-encodes `bytes`: unreserved characters and those in `avail` stay literal.
pub(super) fn encode(bytes: &[u8], avail: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || avail.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes every byte, as `id=` is written.
pub(crate) fn encode_all(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}
