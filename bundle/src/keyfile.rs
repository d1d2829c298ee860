//! GLib `GKeyFile` syntax with RAUC's strictness, for manifests, `system.conf` and status files.
//!
//! Reading is *consume-based*, as in RAUC: a parser takes every key it knows out of a
//! [`Group`] and then calls [`Group::finish`], which rejects any key left over (`Invalid key 'K'
//! in group '[G]'`); likewise [`KeyFile::finish`] rejects groups nobody took (`Invalid group
//! '[G]'`). Syntax rules (confirmed against GLib 2.74, `rauc-format.md` §2.1):
//!
//! * `[group]` headers, `key=value` lines, `#` comments and blank lines; a key before the first
//!   group is an error.
//! * Whitespace around the key and *leading* whitespace of the value are stripped; trailing
//!   whitespace of the value is kept. The CR of CRLF line endings is stripped.
//! * Duplicate groups are merged; for duplicate keys the last one wins.
//! * String escapes `\s \n \t \r \\`; any other escape fails when the value is read as a string.
//! * Lists are separated by `;` (`\;` escapes it), a trailing `;` is optional, items are not trimmed.
//!
//! [`KeyFileWriter`] serializes with GLib's rules (`rauc-format.md` §2.6).

use std::fmt;

/// A syntax or strictness error in a key file. Messages follow RAUC's wording where RAUC has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    /// A line that is neither a group header, a `key=value` pair, a comment nor blank.
    #[error("line {line}: '{text}' is not a key-value pair, group or comment")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// The offending line.
        text: String,
    },
    /// A `key=value` line before the first group header.
    #[error("line {line}: key file does not start with a group")]
    KeyBeforeGroup {
        /// 1-based line number.
        line: usize,
    },
    /// A key that the reader of this group does not know.
    #[error("Invalid key '{key}' in group '[{group}]'")]
    InvalidKey {
        /// Group name without brackets.
        group: String,
        /// The unknown key.
        key: String,
    },
    /// A group that no reader took.
    #[error("Invalid group '[{group}]'")]
    InvalidGroup {
        /// Group name without brackets.
        group: String,
    },
    /// A key present with an empty value.
    #[error("Missing value for key '{key}' in group '[{group}]'")]
    MissingValue {
        /// Group name.
        group: String,
        /// The key.
        key: String,
    },
    /// A required key that is absent.
    #[error("Missing key '{key}' in group '[{group}]'")]
    MissingKey {
        /// Group name.
        group: String,
        /// The key.
        key: String,
    },
    /// A value that cannot be read as the requested type (bad escape, not a number, ...).
    #[error("Invalid value '{value}' for key '{key}' in group '[{group}]': {reason}")]
    InvalidValue {
        /// Group name.
        group: String,
        /// The key.
        key: String,
        /// The raw value.
        value: String,
        /// Why it is invalid, e.g. "expected an unsigned integer".
        reason: &'static str,
    },
}

type Result<T> = std::result::Result<T, KeyFileError>;

/// One `[group]` with its raw (still escaped) values in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    name: String,
    entries: Vec<(String, String)>,
}

/// A parsed key file: groups in order of first appearance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyFile {
    groups: Vec<Group>,
}

impl KeyFile {
    /// Parses GKeyFile text. Only syntax is checked here; keys are checked by the consumers.
    pub fn parse(text: &str) -> Result<KeyFile> {
        let mut kf = KeyFile::default();
        let mut current: Option<usize> = None;
        for (idx, raw) in text.split('\n').enumerate() {
            let line_no = idx + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let trimmed = line.trim_start_matches(is_glib_space);
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            // GLib accepts spaces and tabs after the closing bracket of a group header
            if let Some(name) = parse_group_header(trimmed.trim_end_matches([' ', '\t'])) {
                current = Some(kf.group_index_or_insert(name));
                continue;
            }
            let Some((key, value)) = trimmed.split_once('=') else {
                return Err(KeyFileError::Syntax {
                    line: line_no,
                    text: line.to_string(),
                });
            };
            let key = key.trim_end_matches(is_glib_space);
            if key.is_empty() {
                return Err(KeyFileError::Syntax {
                    line: line_no,
                    text: line.to_string(),
                });
            }
            let Some(gi) = current else {
                return Err(KeyFileError::KeyBeforeGroup { line: line_no });
            };
            kf.groups[gi].set_raw(key, value.trim_start_matches(is_glib_space));
        }
        Ok(kf)
    }

    fn group_index_or_insert(&mut self, name: &str) -> usize {
        if let Some(i) = self.groups.iter().position(|g| g.name == name) {
            return i;
        }
        self.groups.push(Group {
            name: name.to_string(),
            entries: Vec::new(),
        });
        self.groups.len() - 1
    }

    /// All groups in order of first appearance.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// Whether a group of this name exists (and has not been taken).
    pub fn has_group(&self, name: &str) -> bool {
        self.groups.iter().any(|g| g.name == name)
    }

    /// Removes and returns the group `name`, if present.
    pub fn take_group(&mut self, name: &str) -> Option<Group> {
        let i = self.groups.iter().position(|g| g.name == name)?;
        Some(self.groups.remove(i))
    }

    /// Removes and returns every group whose name starts with `prefix`, in file order.
    pub fn take_groups_with_prefix(&mut self, prefix: &str) -> Vec<Group> {
        let (taken, kept) = std::mem::take(&mut self.groups)
            .into_iter()
            .partition(|g| g.name.starts_with(prefix));
        self.groups = kept;
        taken
    }

    /// Fails with "Invalid group" if any group was not taken.
    pub fn finish(self) -> Result<()> {
        match self.groups.into_iter().next() {
            Some(g) => Err(KeyFileError::InvalidGroup { group: g.name }),
            None => Ok(()),
        }
    }
}

/// GLib's `g_ascii_isspace`: space, tab, newline, vertical tab, form feed, carriage return (not
/// Unicode whitespace such as U+00A0).
fn is_glib_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

fn parse_group_header(line: &str) -> Option<&str> {
    let inner = line.strip_prefix('[')?.strip_suffix(']')?;
    if inner.is_empty() || inner.contains(['[', ']']) || inner.chars().any(char::is_control) {
        return None;
    }
    Some(inner)
}

impl Group {
    /// Creates an empty group (used by writers and tests).
    pub fn new(name: impl Into<String>) -> Self {
        Group {
            name: name.into(),
            entries: Vec::new(),
        }
    }

    /// The group name without brackets.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Remaining keys in file order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// Sets a raw (escaped) value; the last assignment of a key wins, as in GLib.
    pub fn set_raw(&mut self, key: &str, raw: &str) {
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = raw.to_string(),
            None => self.entries.push((key.to_string(), raw.to_string())),
        }
    }

    fn take_raw(&mut self, key: &str) -> Option<String> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(i).1)
    }

    fn invalid(&self, key: &str, value: &str, reason: &'static str) -> KeyFileError {
        KeyFileError::InvalidValue {
            group: self.name.clone(),
            key: key.to_string(),
            value: value.to_string(),
            reason,
        }
    }

    /// Takes a string value. An empty value is RAUC's "Missing value for key" error.
    pub fn take_string(&mut self, key: &str) -> Result<Option<String>> {
        let Some(raw) = self.take_raw(key) else {
            return Ok(None);
        };
        if raw.is_empty() {
            return Err(KeyFileError::MissingValue {
                group: self.name.clone(),
                key: key.into(),
            });
        }
        unescape(&raw, false)
            .map(Some)
            .ok_or_else(|| self.invalid(key, &raw, "invalid escape sequence"))
    }

    /// Takes a string value that must be present.
    pub fn require_string(&mut self, key: &str) -> Result<String> {
        self.take_string(key)?
            .ok_or_else(|| KeyFileError::MissingKey {
                group: self.name.clone(),
                key: key.into(),
            })
    }

    /// Takes a `;`-separated list (`\;` escapes a separator; items are not trimmed).
    pub fn take_list(&mut self, key: &str) -> Result<Option<Vec<String>>> {
        let Some(raw) = self.take_raw(key) else {
            return Ok(None);
        };
        let mut items = Vec::new();
        let mut item = String::new();
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            match c {
                ';' => items.push(std::mem::take(&mut item)),
                '\\' => match chars.next() {
                    Some(';') => item.push(';'),
                    Some(e) => {
                        item.push('\\');
                        item.push(e);
                    }
                    None => item.push('\\'),
                },
                c => item.push(c),
            }
        }
        if !item.is_empty() {
            items.push(item);
        }
        items
            .into_iter()
            .map(|i| {
                unescape(&i, true).ok_or_else(|| self.invalid(key, &raw, "invalid escape sequence"))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// Takes an unsigned decimal integer (leading whitespace allowed, as in GLib).
    pub fn take_u64(&mut self, key: &str) -> Result<Option<u64>> {
        let Some(raw) = self.take_raw(key) else {
            return Ok(None);
        };
        let digits = raw.trim_start_matches(is_glib_space);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.invalid(key, &raw, "expected an unsigned decimal integer"));
        }
        digits
            .parse()
            .map(Some)
            .map_err(|_| self.invalid(key, &raw, "integer out of range"))
    }

    /// Takes a boolean: `true`/`false` (GLib also accepts `1`/`0`).
    pub fn take_bool(&mut self, key: &str) -> Result<Option<bool>> {
        let Some(raw) = self.take_raw(key) else {
            return Ok(None);
        };
        match raw.trim_end() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            _ => Err(self.invalid(key, &raw, "expected 'true' or 'false'")),
        }
    }

    /// Takes every remaining key as an unescaped string, in file order (for free-form groups such
    /// as `[meta.*]`).
    pub fn take_all_strings(&mut self) -> Result<Vec<(String, String)>> {
        let keys: Vec<String> = self.keys().map(str::to_string).collect();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let value = self.take_string(&key)?.unwrap_or_default();
            out.push((key, value));
        }
        Ok(out)
    }

    /// Fails with "Invalid key" if any key was not taken.
    pub fn finish(self) -> Result<()> {
        match self.entries.into_iter().next() {
            Some((key, _)) => Err(KeyFileError::InvalidKey {
                group: self.name,
                key,
            }),
            None => Ok(()),
        }
    }
}

/// GLib string unescaping: `\s \n \t \r \\` (and `\;` inside list items). `None` on any other
/// escape or a trailing backslash.
fn unescape(raw: &str, in_list: bool) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            's' => ' ',
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            '\\' => '\\',
            ';' if in_list => ';',
            _ => return None,
        });
    }
    Some(out)
}

/// Escapes a value as GLib writes strings (`g_key_file_parse_string_as_value`): spaces and tabs
/// of the leading whitespace run become `\s` and `\t`, newline `\n`, CR `\r`, backslash `\\`;
/// later tabs are written literally. In list items `;` becomes `\;`.
fn escape(value: &str, in_list: bool) -> String {
    let mut out = String::with_capacity(value.len());
    let mut leading = true;
    for c in value.chars() {
        match c {
            ' ' if leading => out.push_str("\\s"),
            '\t' if leading => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            ';' if in_list => out.push_str("\\;"),
            c => {
                if c != ' ' && c != '\t' {
                    leading = false;
                }
                out.push(c)
            }
        }
    }
    out
}

/// Serializes groups and keys the way `g_key_file_to_data` does: groups separated by one blank
/// line, `key=value` lines, a final newline, lists with a trailing `;`.
#[derive(Debug, Default)]
pub struct KeyFileWriter {
    out: String,
}

impl KeyFileWriter {
    /// Starts an empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a new `[name]` group.
    pub fn group(&mut self, name: &str) -> &mut Self {
        if !self.out.is_empty() {
            self.out.push('\n');
        }
        self.out.push('[');
        self.out.push_str(name);
        self.out.push_str("]\n");
        self
    }

    /// Writes `key=value` with string escaping.
    pub fn string(&mut self, key: &str, value: &str) -> &mut Self {
        let escaped = escape(value, false);
        self.raw(key, &escaped)
    }

    /// Writes `key=value` if `value` is set.
    pub fn opt_string(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        if let Some(v) = value {
            self.string(key, v);
        }
        self
    }

    /// Writes an unsigned integer.
    pub fn u64(&mut self, key: &str, value: u64) -> &mut Self {
        self.raw(key, &value.to_string())
    }

    /// Writes a boolean as `true`/`false`.
    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.raw(key, if value { "true" } else { "false" })
    }

    /// Writes a list with GLib's trailing `;` (`a;b;`).
    pub fn list<S: AsRef<str>>(&mut self, key: &str, items: &[S]) -> &mut Self {
        let joined: String = items
            .iter()
            .map(|i| escape(i.as_ref(), true) + ";")
            .collect();
        self.raw(key, &joined)
    }

    fn raw(&mut self, key: &str, value: &str) -> &mut Self {
        self.out.push_str(key);
        self.out.push('=');
        self.out.push_str(value);
        self.out.push('\n');
        self
    }

    /// Returns the serialized text.
    pub fn finish(self) -> String {
        self.out
    }
}

impl fmt::Display for KeyFileWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_rules_follow_glib() {
        let mut kf = KeyFile::parse("[update]\r\n  compatible =  X  \r\n").unwrap();
        let mut g = kf.take_group("update").unwrap();
        assert_eq!(g.take_string("compatible").unwrap().as_deref(), Some("X  "));
        g.finish().unwrap();
        kf.finish().unwrap();
    }

    #[test]
    fn duplicate_groups_merge_and_last_key_wins() {
        let mut kf = KeyFile::parse("[a]\nk=1\n[b]\n[a]\nk=2\nj=3\n").unwrap();
        let mut a = kf.take_group("a").unwrap();
        assert_eq!(a.take_u64("k").unwrap(), Some(2));
        assert_eq!(a.take_u64("j").unwrap(), Some(3));
        assert_eq!(kf.groups().len(), 1);
    }

    #[test]
    fn leftovers_are_errors_with_rauc_wording() {
        let mut kf = KeyFile::parse("[image.rootfs]\ntype=raw\n[rollout]\n").unwrap();
        let g = kf.take_group("image.rootfs").unwrap();
        assert_eq!(
            g.finish().unwrap_err().to_string(),
            "Invalid key 'type' in group '[image.rootfs]'"
        );
        assert_eq!(
            kf.finish().unwrap_err().to_string(),
            "Invalid group '[rollout]'"
        );
    }

    #[test]
    fn syntax_errors() {
        assert!(matches!(
            KeyFile::parse("k=v\n"),
            Err(KeyFileError::KeyBeforeGroup { line: 1 })
        ));
        assert!(matches!(
            KeyFile::parse("[a]\nnonsense\n"),
            Err(KeyFileError::Syntax { line: 2, .. })
        ));
        assert!(matches!(
            KeyFile::parse("[a]\n=v\n"),
            Err(KeyFileError::Syntax { .. })
        ));
    }

    #[test]
    fn escapes_and_empty_values() {
        let mut kf = KeyFile::parse("[g]\na=\\sx\\ty\\\\\nb=\\;\nc=\n").unwrap();
        let mut g = kf.take_group("g").unwrap();
        assert_eq!(g.take_string("a").unwrap().unwrap(), " x\ty\\");
        assert!(matches!(
            g.take_string("b"),
            Err(KeyFileError::InvalidValue { .. })
        ));
        assert!(matches!(
            g.take_string("c"),
            Err(KeyFileError::MissingValue { .. })
        ));
    }

    #[test]
    fn glib_whitespace_is_ascii_only_and_leading_tabs_are_escaped() {
        let mut kf = KeyFile::parse("[g] \t\n a =\u{a0}x\n\tb=\t\ty\n").unwrap();
        let mut g = kf.take_group("g").unwrap();
        assert_eq!(g.take_string("a").unwrap().unwrap(), "\u{a0}x");
        assert_eq!(g.take_string("b").unwrap().unwrap(), "y");
        let mut w = KeyFileWriter::new();
        w.group("g").string("k", "\t x\ty ");
        let text = w.finish();
        assert_eq!(text, "[g]\nk=\\t\\sx\ty \n");
        let mut kf = KeyFile::parse(&text).unwrap();
        let mut g = kf.take_group("g").unwrap();
        assert_eq!(g.take_string("k").unwrap().unwrap(), "\t x\ty ");
    }

    #[test]
    fn lists_keep_item_whitespace() {
        let mut kf = KeyFile::parse("[g]\nl=a ; b;c\\;d;\nm=x\n").unwrap();
        let mut g = kf.take_group("g").unwrap();
        assert_eq!(g.take_list("l").unwrap().unwrap(), vec!["a ", " b", "c;d"]);
        assert_eq!(g.take_list("m").unwrap().unwrap(), vec!["x"]);
    }

    #[test]
    fn numbers_and_bools() {
        let mut kf = KeyFile::parse("[g]\nn= 42\nx=4x\nt=true\nf=no\n").unwrap();
        let mut g = kf.take_group("g").unwrap();
        assert_eq!(g.take_u64("n").unwrap(), Some(42));
        assert!(g.take_u64("x").is_err());
        assert_eq!(g.take_bool("t").unwrap(), Some(true));
        assert!(g.take_bool("f").is_err());
    }

    #[test]
    fn writer_round_trips() {
        let mut w = KeyFileWriter::new();
        w.group("update")
            .string("compatible", " lead\\ing\nx")
            .u64("size", 7);
        w.group("image.a").list("hooks", &["pre-install", "a;b"]);
        let text = w.finish();
        assert_eq!(
            text,
            "[update]\ncompatible=\\slead\\\\ing\\nx\nsize=7\n\n[image.a]\nhooks=pre-install;a\\;b;\n"
        );
        let mut kf = KeyFile::parse(&text).unwrap();
        let mut u = kf.take_group("update").unwrap();
        assert_eq!(
            u.take_string("compatible").unwrap().unwrap(),
            " lead\\ing\nx"
        );
        let mut i = kf.take_group("image.a").unwrap();
        assert_eq!(
            i.take_list("hooks").unwrap().unwrap(),
            vec!["pre-install", "a;b"]
        );
    }
}
