//! Kernel module load order without kmod/depmod: each `.ko`'s `.modinfo` section names its
//! dependencies (`depends=a,b`). Modules listed in `modules.builtin` need no loading.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::VmError;

/// Module names compare with `-` and `_` treated alike (as the kernel does).
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The `.ko` files of `names` and of everything they depend on, dependencies first.
/// Built-in modules are skipped; a missing module or a dependency cycle is an error.
pub fn load_order(modules_dir: &Path, names: &[&str]) -> Result<Vec<PathBuf>, VmError> {
    let mut resolver = Resolver {
        dir: modules_dir,
        index: index_modules(modules_dir)?,
        builtin: builtin_modules(modules_dir),
        done: BTreeSet::new(),
        stack: Vec::new(),
        order: Vec::new(),
    };
    for name in names {
        resolver.visit(&normalize(name))?;
    }
    Ok(resolver.order)
}

/// Depth-first resolution state.
struct Resolver<'a> {
    dir: &'a Path,
    index: BTreeMap<String, PathBuf>,
    builtin: BTreeSet<String>,
    done: BTreeSet<String>,
    stack: Vec<String>,
    order: Vec<PathBuf>,
}

impl Resolver<'_> {
    fn visit(&mut self, name: &str) -> Result<(), VmError> {
        if self.done.contains(name) || self.builtin.contains(name) {
            return Ok(());
        }
        if self.stack.iter().any(|s| s == name) {
            return Err(VmError::Module(format!(
                "dependency cycle: {} -> {name}",
                self.stack.join(" -> ")
            )));
        }
        let path = self.index.get(name).cloned().ok_or_else(|| {
            VmError::Module(format!(
                "module '{name}' not found below {} (needed by: {})",
                self.dir.display(),
                if self.stack.is_empty() {
                    "the test".to_string()
                } else {
                    self.stack.join(" -> ")
                }
            ))
        })?;
        let data = std::fs::read(&path).map_err(|e| VmError::io("read", &path, e))?;
        let info =
            modinfo(&data).map_err(|e| VmError::Module(format!("{}: {e}", path.display())))?;
        self.stack.push(name.to_string());
        for dep in depends(info) {
            self.visit(&dep)?;
        }
        self.stack.pop();
        self.done.insert(name.to_string());
        self.order.push(path);
        Ok(())
    }
}

/// Maps normalized module names to their `.ko` files (compressed modules are rejected).
fn index_modules(dir: &Path) -> Result<BTreeMap<String, PathBuf>, VmError> {
    let mut index = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current).map_err(|e| VmError::io("list", &current, e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                pending.push(path);
            } else if let Some(stem) = file_name.strip_suffix(".ko") {
                index.insert(normalize(stem), path);
            } else if [".ko.xz", ".ko.zst", ".ko.gz"]
                .iter()
                .any(|ext| file_name.ends_with(ext))
            {
                return Err(VmError::Module(format!(
                    "{}: compressed modules are not supported (Debian bookworm ships plain .ko files)",
                    path.display()
                )));
            }
        }
    }
    Ok(index)
}

/// Names in `modules.builtin` (`kernel/drivers/block/loop.ko` → `loop`); empty if absent.
fn builtin_modules(dir: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(dir.join("modules.builtin")).unwrap_or_default();
    text.lines()
        .filter_map(|line| Path::new(line.trim()).file_name())
        .filter_map(|name| name.to_str()?.strip_suffix(".ko").map(normalize))
        .collect()
}

/// The `depends=` entries of a `.modinfo` blob.
pub fn depends(modinfo: &[u8]) -> Vec<String> {
    modinfo
        .split(|&b| b == 0)
        .filter_map(|field| field.strip_prefix(b"depends="))
        .flat_map(|list| list.split(|&b| b == b','))
        .filter(|dep| !dep.is_empty())
        .map(|dep| normalize(&String::from_utf8_lossy(dep)))
        .collect()
}

/// The contents of the `.modinfo` section of an ELF64 little-endian object.
pub fn modinfo(elf: &[u8]) -> Result<&[u8], String> {
    if elf.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return Err("not an ELF64 little-endian object".into());
    }
    let shoff = read_u64(elf, 0x28)?;
    let shentsize = u64::from(read_u16(elf, 0x3a)?);
    let shnum = u64::from(read_u16(elf, 0x3c)?);
    let shstrndx = u64::from(read_u16(elf, 0x3e)?);
    let section = |i: u64| -> Result<(u32, &[u8]), String> {
        let header = usize::try_from(shoff + i * shentsize)
            .map_err(|_| "section header offset overflows")?;
        let name = read_u32(elf, header)?;
        let offset = read_u64(elf, header + 24)?;
        let size = read_u64(elf, header + 32)?;
        let end = offset.checked_add(size).ok_or("section size overflows")?;
        let data = elf
            .get(offset as usize..end as usize)
            .ok_or("section beyond the end of the file")?;
        Ok((name, data))
    };
    let (_, names) = section(shstrndx)?;
    for i in 0..shnum {
        let (name_offset, data) = section(i)?;
        let name = names
            .get(name_offset as usize..)
            .ok_or("section name out of range")?;
        if name.starts_with(b".modinfo\0") {
            return Ok(data);
        }
    }
    Err("no .modinfo section".into())
}

fn read_u16(data: &[u8], at: usize) -> Result<u16, String> {
    data.get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or_else(|| "truncated ELF header".into())
}

fn read_u32(data: &[u8], at: usize) -> Result<u32, String> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        .ok_or_else(|| "truncated ELF".into())
}

fn read_u64(data: &[u8], at: usize) -> Result<u64, String> {
    data.get(at..at + 8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .ok_or_else(|| "truncated ELF".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 object with a section-name table and a `.modinfo` section.
    fn fake_ko(modinfo: &[u8]) -> Vec<u8> {
        let names = b"\0.shstrtab\0.modinfo\0";
        let data_off = 64u64;
        let names_off = data_off + modinfo.len() as u64;
        let shoff = names_off + names.len() as u64;
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        elf[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes());
        elf.extend_from_slice(modinfo);
        elf.extend_from_slice(names);
        let mut section = |name: u32, off: u64, size: u64| {
            let mut sh = [0u8; 64];
            sh[..4].copy_from_slice(&name.to_le_bytes());
            sh[24..32].copy_from_slice(&off.to_le_bytes());
            sh[32..40].copy_from_slice(&size.to_le_bytes());
            elf.extend_from_slice(&sh);
        };
        section(0, 0, 0);
        section(1, names_off, names.len() as u64);
        section(11, data_off, modinfo.len() as u64);
        elf
    }

    #[test]
    fn parses_depends_from_modinfo() {
        let ko = fake_ko(b"license=GPL\0depends=dm-mod,dm-bufio,reed_solomon\0name=dm_verity\0");
        let info = modinfo(&ko).unwrap();
        assert_eq!(depends(info), ["dm_mod", "dm_bufio", "reed_solomon"]);
        assert!(depends(modinfo(&fake_ko(b"depends=\0name=x\0")).unwrap()).is_empty());
        assert!(modinfo(b"not elf").is_err());
        assert!(modinfo(&fake_ko(b"x")[..80]).is_err());
    }

    #[test]
    fn orders_dependencies_first_and_skips_builtins() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("kernel/drivers");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join("a.ko"), fake_ko(b"depends=b-x,c\0")).unwrap();
        std::fs::write(sub.join("b_x.ko"), fake_ko(b"depends=c\0")).unwrap();
        std::fs::write(sub.join("c.ko"), fake_ko(b"depends=\0")).unwrap();
        std::fs::write(sub.join("d.ko"), fake_ko(b"depends=builtin-one\0")).unwrap();
        std::fs::write(
            dir.path().join("modules.builtin"),
            "kernel/lib/builtin-one.ko\n",
        )
        .unwrap();
        let names = |paths: Vec<PathBuf>| -> Vec<String> {
            paths
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            names(load_order(dir.path(), &["a"]).unwrap()),
            ["c.ko", "b_x.ko", "a.ko"]
        );
        assert_eq!(
            names(load_order(dir.path(), &["c", "a", "d", "builtin_one"]).unwrap()),
            ["c.ko", "b_x.ko", "a.ko", "d.ko"]
        );
        assert!(load_order(dir.path(), &["missing"]).is_err());
        std::fs::write(sub.join("c.ko"), fake_ko(b"depends=a\0")).unwrap();
        let err = load_order(dir.path(), &["a"]).unwrap_err().to_string();
        assert!(err.contains("cycle"), "{err}");
    }
}
