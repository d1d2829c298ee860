//! Building the bundle's squashfs with the real `mksquashfs`.
//!
//! The input directory is never modified (rauc 1.8 rewrites `manifest.raucm` in place): the
//! squashfs is built from every entry of the content directory except its `manifest.raucm`, plus
//! the generated internal manifest, using mksquashfs's multi-source mode (all sources land in the
//! image root).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// Arguments rauc 1.8 passes to `mksquashfs` (confirmed), before `--mksquashfs-args`.
const RAUC_ARGS: &[&str] = &["-all-root", "-noappend", "-no-progress", "-no-xattrs"];

/// Name of the manifest inside the content directory and the squashfs.
pub const MANIFEST_NAME: &str = "manifest.raucm";

/// Runs `mksquashfs` over `content_dir` with `internal_manifest` as `/manifest.raucm`, writing
/// `output`. `extra_args` are the user's `--mksquashfs-args`, already split into words.
pub fn build(
    content_dir: &Path,
    internal_manifest: &str,
    output: &Path,
    extra_args: &[String],
) -> Result<()> {
    let staging = tempfile::tempdir()
        .map_err(|e| Error::io("failed to create a temporary directory", "/tmp", e))?;
    let manifest_path = staging.path().join(MANIFEST_NAME);
    std::fs::write(&manifest_path, internal_manifest)
        .map_err(|e| Error::io("failed to write", &manifest_path, e))?;

    let mut cmd = Command::new("mksquashfs");
    cmd.args(content_sources(content_dir)?)
        .arg(&manifest_path)
        .arg(output)
        .args(RAUC_ARGS)
        .args(["-root-mode", "0755"])
        .args(extra_args);
    tracing::debug!(?cmd, "running mksquashfs");
    let out = cmd.output().map_err(|e| Error::Tool {
        tool: "mksquashfs",
        detail: e.to_string(),
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Tool {
            tool: "mksquashfs",
            detail: format!("{}: {}", out.status, stderr.trim()),
        });
    }
    Ok(())
}

/// Every entry of the content directory except its manifest, as absolute paths (so no entry can
/// be mistaken for an option), in a stable order.
fn content_sources(content_dir: &Path) -> Result<Vec<PathBuf>> {
    let dir = content_dir
        .canonicalize()
        .map_err(|e| Error::io("failed to open content directory", content_dir, e))?;
    let mut sources = Vec::new();
    for entry in std::fs::read_dir(&dir)
        .map_err(|e| Error::io("failed to read content directory", &dir, e))?
    {
        let entry = entry.map_err(|e| Error::io("failed to read content directory", &dir, e))?;
        if entry.file_name() != MANIFEST_NAME {
            sources.push(entry.path());
        }
    }
    sources.sort();
    Ok(sources)
}

/// Splits a `--mksquashfs-args` string into words with shell quoting rules (single and double
/// quotes, backslash escapes), as RAUC does with `g_shell_parse_argv`.
pub fn split_args(s: &str) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err(unbalanced(s)),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => w.push(chars.next().ok_or_else(|| unbalanced(s))?),
                        Some(c) => w.push(c),
                        None => return Err(unbalanced(s)),
                    }
                }
            }
            '\\' => word
                .get_or_insert_with(String::new)
                .push(chars.next().ok_or_else(|| unbalanced(s))?),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

fn unbalanced(s: &str) -> Error {
    Error::Usage(format!(
        "--mksquashfs-args: unbalanced quote or trailing backslash in '{s}'"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            split_args("-noI -noD  -comp xz").unwrap(),
            ["-noI", "-noD", "-comp", "xz"]
        );
        assert_eq!(
            split_args(r#"-e 'a b' "c\"d" e\ f"#).unwrap(),
            ["-e", "a b", "c\"d", "e f"]
        );
        assert!(split_args("'open").is_err());
        assert!(split_args("").unwrap().is_empty());
    }

    #[test]
    fn builds_from_content_without_touching_it() {
        let dir = tempfile::tempdir().unwrap();
        let content = dir.path().join("content");
        std::fs::create_dir_all(content.join("sub")).unwrap();
        std::fs::write(content.join("rootfs.img"), vec![7u8; 10000]).unwrap();
        std::fs::write(content.join("sub/x"), b"x").unwrap();
        std::fs::write(
            content.join(MANIFEST_NAME),
            b"[update]\ncompatible=original\n",
        )
        .unwrap();
        let out = dir.path().join("out.sqfs");
        build(&content, "[update]\ncompatible=generated\n", &out, &[]).unwrap();
        assert_eq!(
            std::fs::read(content.join(MANIFEST_NAME)).unwrap(),
            b"[update]\ncompatible=original\n"
        );
        let cat = Command::new("unsquashfs")
            .arg("-cat")
            .arg(&out)
            .arg(MANIFEST_NAME)
            .output()
            .unwrap();
        assert_eq!(cat.stdout, b"[update]\ncompatible=generated\n");
        let list = Command::new("unsquashfs")
            .arg("-l")
            .arg(&out)
            .output()
            .unwrap();
        let list = String::from_utf8(list.stdout).unwrap();
        assert!(list.contains("squashfs-root/sub/x") && list.contains("squashfs-root/rootfs.img"));
        assert_eq!(std::fs::metadata(&out).unwrap().len() % 4096, 0);
    }

    #[test]
    fn mksquashfs_failure_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"a").unwrap();
        let err = build(
            dir.path(),
            "",
            &dir.path().join("o"),
            &["-no-such-option".into()],
        )
        .unwrap_err();
        assert!(err.to_string().contains("mksquashfs"), "{err}");
    }
}
