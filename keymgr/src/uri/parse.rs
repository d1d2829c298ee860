//! The `pkcs11:` URI parser.

use super::{LibraryVersion, ObjectType, Pkcs11Uri};
use crate::error::{Error, Result};
use crate::pin::Pin;

const SCHEME: &str = "pkcs11:";

const PATH_ATTRS: &[&str] = &[
    "token",
    "manufacturer",
    "serial",
    "model",
    "library-manufacturer",
    "library-description",
    "library-version",
    "slot-id",
    "slot-description",
    "slot-manufacturer",
    "object",
    "id",
    "type",
];

const QUERY_ATTRS: &[&str] = &["pin-value", "pin-source", "module-path", "module-name"];

/// Which part of the URI an attribute was found in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Path,
    Query,
}

pub(super) fn parse(s: &str) -> Result<Pkcs11Uri> {
    let rest = match s.get(..SCHEME.len()) {
        Some(scheme) if scheme.eq_ignore_ascii_case(SCHEME) => &s[SCHEME.len()..],
        _ => {
            let shown: String = s.chars().take(16).collect();
            return Err(uri_error(&shown, "a PKCS#11 URI starts with `pkcs11:`"));
        }
    };
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    let mut uri = Pkcs11Uri::default();
    if !path.is_empty() {
        for component in path.split(';') {
            apply(&mut uri, component, Part::Path)?;
        }
    }
    if let Some(query) = query {
        for component in query.split('&') {
            apply(&mut uri, component, Part::Query)?;
        }
    }
    Ok(uri)
}

fn uri_error(part: &str, problem: &str) -> Error {
    Error::Uri {
        part: part.to_string(),
        problem: problem.to_string(),
    }
}

/// The component as shown in errors: a `pin-value` is never echoed.
fn shown(name: &str, component: &str) -> String {
    if name == "pin-value" {
        "pin-value=<redacted>".to_string()
    } else {
        component.to_string()
    }
}

fn apply(uri: &mut Pkcs11Uri, component: &str, part: Part) -> Result<()> {
    let sep = if part == Part::Path { ';' } else { '&' };
    let Some((name, raw)) = component.split_once('=') else {
        let problem = if component.is_empty() {
            format!("empty attribute (doubled or trailing `{sep}`)")
        } else {
            "attribute without `=value`".to_string()
        };
        return Err(uri_error(component, &problem));
    };
    let shown = shown(name, component);
    check_placement(name, part, &shown)?;
    let value = decode(raw).map_err(|problem| match name {
        "pin-value" => uri_error(&shown, "bad percent escape in the PIN"),
        _ => uri_error(&shown, &problem),
    })?;
    let duplicate = || uri_error(&shown, &format!("duplicate attribute `{name}`"));
    if name == "id" {
        return set(&mut uri.id, value).map_err(|_| duplicate());
    }
    if name == "pin-value" {
        let text = String::from_utf8(value)
            .map_err(|_| uri_error(&shown, "the PIN is not valid UTF-8"))?;
        return set(&mut uri.pin_value, Pin::new(text)).map_err(|_| duplicate());
    }
    let text = String::from_utf8(value).map_err(|_| {
        uri_error(
            &shown,
            "the value is not valid UTF-8 after percent-decoding",
        )
    })?;
    set_text(uri, name, text, &shown).map_err(|e| e.unwrap_or_else(duplicate))
}

fn check_placement(name: &str, part: Part, shown: &str) -> Result<()> {
    let in_path = PATH_ATTRS.contains(&name);
    let in_query = QUERY_ATTRS.contains(&name);
    match (part, in_path, in_query) {
        (Part::Path, true, _) | (Part::Query, _, true) => Ok(()),
        (Part::Path, false, true) => Err(uri_error(
            shown,
            &format!(
                "`{name}` is a query attribute: put it after `?` (e.g. `pkcs11:token=…?{name}=…`)"
            ),
        )),
        (Part::Query, true, false) => Err(uri_error(
            shown,
            &format!("`{name}` is a path attribute: put it before `?`, separated by `;`"),
        )),
        _ => Err(uri_error(shown, &format!("unknown attribute `{name}`"))),
    }
}

/// Sets a text attribute. `Err(None)` means "duplicate"; `Err(Some(e))` is a value error.
fn set_text(
    uri: &mut Pkcs11Uri,
    name: &str,
    text: String,
    shown: &str,
) -> std::result::Result<(), Option<Error>> {
    let slot = match name {
        "token" => &mut uri.token,
        "manufacturer" => &mut uri.manufacturer,
        "serial" => &mut uri.serial,
        "model" => &mut uri.model,
        "library-manufacturer" => &mut uri.library_manufacturer,
        "library-description" => &mut uri.library_description,
        "slot-description" => &mut uri.slot_description,
        "slot-manufacturer" => &mut uri.slot_manufacturer,
        "object" => &mut uri.object,
        "pin-source" => &mut uri.pin_source,
        "module-path" => &mut uri.module_path,
        "module-name" => &mut uri.module_name,
        "type" => {
            let t: ObjectType = text.parse().map_err(Some)?;
            return set(&mut uri.object_type, t);
        }
        "slot-id" => {
            let id = parse_slot_id(&text).map_err(|p| Some(uri_error(shown, &p)))?;
            return set(&mut uri.slot_id, id);
        }
        "library-version" => {
            let v = parse_version(&text).map_err(|p| Some(uri_error(shown, &p)))?;
            return set(&mut uri.library_version, v);
        }
        _ => unreachable!("placement was checked"),
    };
    set(slot, text)
}

fn set<T>(slot: &mut Option<T>, value: T) -> std::result::Result<(), Option<Error>> {
    if slot.is_some() {
        return Err(None);
    }
    *slot = Some(value);
    Ok(())
}

fn parse_slot_id(text: &str) -> std::result::Result<u64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("slot-id must be a decimal number".into());
    }
    text.parse()
        .map_err(|_| "slot-id is out of range (at most 2^64-1)".into())
}

fn parse_version(text: &str) -> std::result::Result<LibraryVersion, String> {
    let bad = || "library-version must be `major` or `major.minor` (numbers 0-255)".to_string();
    let number = |s: &str| -> std::result::Result<u8, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    match text.split_once('.') {
        Some((major, minor)) => Ok(LibraryVersion {
            major: number(major)?,
            minor: Some(number(minor)?),
        }),
        None => Ok(LibraryVersion {
            major: number(text)?,
            minor: None,
        }),
    }
}

/// Percent-decodes a value; other characters are taken literally.
fn decode(raw: &str) -> std::result::Result<Vec<u8>, String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(|| {
                "`%` must be followed by two hex digits (truncated escape)".to_string()
            })?;
            let text = std::str::from_utf8(hex).map_err(|_| "bad percent escape".to_string())?;
            let value = u8::from_str_radix(text, 16)
                .ok()
                .filter(|_| hex.iter().all(u8::is_ascii_hexdigit))
                .ok_or_else(|| format!("bad percent escape `%{text}` (need two hex digits)"))?;
            out.push(value);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}
