//! The serial console: byte stream → clean lines (no terminal control sequences, no CRs).

use std::io::Read;
use std::sync::mpsc::Sender;

/// Reads `input` to the end and sends each cleaned line (also a final unterminated one).
pub(super) fn stream_lines(mut input: impl Read, sender: &Sender<String>) {
    let mut pending = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some(pos) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=pos).collect();
            if sender.send(clean(&line[..line.len() - 1])).is_err() {
                return;
            }
        }
    }
    if !pending.is_empty() {
        let _ = sender.send(clean(&pending));
    }
}

/// Removes ANSI/VT100 control sequences (`ESC [ … letter`, `ESC c`, other `ESC x`), carriage
/// returns and other control characters except tabs.
pub fn clean(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                Some('[') => {
                    // CSI: parameters and intermediates up to a final byte in '@'..='~'.
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    // OSC: up to BEL or ESC \.
                    while let Some(c) = chars.next() {
                        if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_control_sequences() {
        assert_eq!(clean(b"\x1bc\x1b[?7l\x1b[2J\x1b[0mhello\r"), "hello");
        assert_eq!(clean(b"a\x1b[1;32mOK\x1b[0m b\tc"), "aOK b\tc");
        assert_eq!(clean(b"\x1b]0;title\x07text"), "text");
        assert_eq!(clean(b"\x00x\x08y"), "xy");
    }

    #[test]
    fn splits_a_stream_into_lines() {
        let (tx, rx) = std::sync::mpsc::channel();
        stream_lines(&b"one\r\ntwo\n\x1b[0mthree"[..], &tx);
        drop(tx);
        assert_eq!(rx.iter().collect::<Vec<_>>(), ["one", "two", "three"]);
    }
}
