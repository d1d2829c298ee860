//! Manifest parsing with RAUC's consume-based strictness (`rauc: src/manifest.c (parse_manifest)`).

use super::{
    BundleFormat, BundleSection, Handler, Hooks, Image, ImageHooks, Manifest, MetaGroup,
    SecretString, Update,
};
use crate::keyfile::{Group, KeyFile};
use crate::{Error, Result};

impl Manifest {
    /// Parses manifest bytes (must be UTF-8).
    pub fn parse_bytes(bytes: &[u8]) -> Result<Manifest> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| Error::manifest(format!("manifest is not valid UTF-8: {e}")))?;
        Manifest::parse(text)
    }

    /// Parses manifest text. Unknown keys and groups are errors (`Invalid key 'K' in group
    /// '[G]'`, `Invalid group '[G]'`); the latest RAUC vocabulary is accepted.
    pub fn parse(text: &str) -> Result<Manifest> {
        let mut kf = KeyFile::parse(text)?;
        let update = parse_update(&mut kf)?;
        let bundle = parse_bundle(&mut kf)?;
        let handler = parse_handler(&mut kf)?;
        let hooks = parse_hooks(&mut kf)?;
        let mut images = Vec::new();
        let mut meta = Vec::new();
        let names: Vec<String> = kf.groups().iter().map(|g| g.name().to_string()).collect();
        for name in names {
            if name.starts_with("image.") {
                let group = kf.take_group(&name).expect("group listed above");
                images.push(parse_image(group)?);
            } else if name.starts_with("meta.") {
                let group = kf.take_group(&name).expect("group listed above");
                meta.push(parse_meta(group)?);
            }
        }
        // latest ignores [rollout] (reserved for rollout hints); 1.8 rejects it.
        kf.take_group("rollout");
        kf.finish()?;
        Ok(Manifest {
            update,
            bundle,
            handler,
            hooks,
            images,
            meta,
        })
    }
}

fn take_or_empty(kf: &mut KeyFile, name: &str) -> Group {
    kf.take_group(name).unwrap_or_else(|| Group::new(name))
}

fn parse_update(kf: &mut KeyFile) -> Result<Update> {
    let mut g = take_or_empty(kf, "update");
    let update = Update {
        compatible: g.require_string("compatible")?,
        version: g.take_string("version")?,
        description: g.take_string("description")?,
        build: g.take_string("build")?,
        min_rauc_version: g.take_string("min-rauc-version")?,
    };
    g.finish()?;
    Ok(update)
}

fn parse_bundle(kf: &mut KeyFile) -> Result<BundleSection> {
    let mut g = take_or_empty(kf, "bundle");
    let mut section = BundleSection::default();
    if let Some(name) = g.take_string("format")? {
        section.format_explicit = true;
        section.format = BundleFormat::from_name(&name).ok_or_else(|| {
            Error::manifest(format!("Invalid format value '{name}' in group '[bundle]'"))
        })?;
    }
    if section.format != BundleFormat::Plain {
        section.verity_hash = g.take_string("verity-hash")?;
        section.verity_salt = g.take_string("verity-salt")?;
        // RAUC reads verity-size with g_key_file_get_uint64 and a NULL error: a bad value is 0.
        section.verity_size = g.take_u64("verity-size").ok().flatten().filter(|&s| s != 0);
    }
    if section.format == BundleFormat::Crypt {
        section.crypt_key = g.take_string("crypt-key")?.map(SecretString::new);
    }
    g.finish()?;
    Ok(section)
}

fn parse_handler(kf: &mut KeyFile) -> Result<Handler> {
    let mut g = take_or_empty(kf, "handler");
    let handler = Handler {
        filename: g.take_string("filename")?,
        args: g.take_string("args")?,
    };
    if handler.args.is_some() && handler.filename.is_none() {
        return Err(Error::manifest(
            "Setting 'args' requires a full custom handler to be defined under 'filename' in group '[handler]'.",
        ));
    }
    g.finish()?;
    Ok(handler)
}

fn parse_hooks(kf: &mut KeyFile) -> Result<Hooks> {
    let mut g = take_or_empty(kf, "hooks");
    let mut hooks = Hooks {
        filename: g.take_string("filename")?,
        install_check: false,
    };
    for name in g.take_list("hooks")?.unwrap_or_default() {
        if name == "install-check" {
            hooks.install_check = true;
        } else {
            return Err(Error::manifest(format!(
                "install hook type '{name}' not supported"
            )));
        }
    }
    g.finish()?;
    Ok(hooks)
}

/// Splits `image.<slot>[/<artifact>][.<variant>]` as RAUC does (at most 3 parts on `.`, then the
/// slot part once on `/`).
fn split_image_group(name: &str) -> (String, Option<String>, Option<String>) {
    let rest = name.strip_prefix("image.").unwrap_or(name);
    let (target, variant) = match rest.split_once('.') {
        Some((t, v)) => (t, Some(v.to_string())),
        None => (rest, None),
    };
    match target.split_once('/') {
        Some((slot, artifact)) => (slot.to_string(), Some(artifact.to_string()), variant),
        None => (target.to_string(), None, variant),
    }
}

fn parse_image_hooks(g: &mut Group) -> Result<ImageHooks> {
    let mut hooks = ImageHooks::default();
    for name in g.take_list("hooks")?.unwrap_or_default() {
        match name.as_str() {
            "pre-install" => hooks.pre_install = true,
            "install" => hooks.install = true,
            "post-install" => hooks.post_install = true,
            _ => {
                return Err(Error::manifest(format!(
                    "slot hook type '{name}' not supported"
                )));
            }
        }
    }
    Ok(hooks)
}

fn parse_image(mut g: Group) -> Result<Image> {
    let (slot_class, artifact, variant) = split_image_group(g.name());
    let sha256 = g.take_string("sha256")?;
    let size = g.take_u64("size")?;
    let hooks = parse_image_hooks(&mut g)?;
    let filename = g.take_string("filename")?;
    let image_type = if artifact.is_none() {
        g.take_string("type")?
    } else {
        None
    };
    // latest drops these silently (they were never used); 1.8 rejects them
    for dropped in ["version", "description", "build"] {
        let _ = g.take_string(dropped);
    }
    let image = Image {
        slot_class,
        artifact,
        variant,
        filename,
        sha256,
        size,
        hooks,
        adaptive: g.take_list("adaptive")?,
        image_type,
        convert: g.take_list("convert")?,
        converted: g.take_list("converted")?,
    };
    g.finish()?;
    if image.filename.is_none()
        && !image.hooks.install
        && image.image_type.as_deref() != Some("emptyfs")
    {
        return Err(Error::manifest(format!(
            "Cannot parse [{}]: Missing required 'filename'",
            image.group_name()
        )));
    }
    Ok(image)
}

fn check_env_name(what: &str, name: &str) -> Result<()> {
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        None => Ok(()),
        Some(c) => Err(Error::manifest(format!(
            "Invalid metadata {what} name '{name}': Character '{c}' is unsuitable for environment variables"
        ))),
    }
}

fn parse_meta(mut g: Group) -> Result<MetaGroup> {
    let label = g
        .name()
        .strip_prefix("meta.")
        .unwrap_or_default()
        .to_string();
    if label.contains('.') {
        return Err(Error::manifest(format!(
            "invalid metadata section name '{}' (must contain a single '.')",
            g.name()
        )));
    }
    check_env_name("section", &label)?;
    let entries = g.take_all_strings()?;
    for (key, _) in &entries {
        check_env_name("key", key)?;
    }
    g.finish()?;
    Ok(MetaGroup { label, entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_group_names_split_like_rauc() {
        assert_eq!(
            split_image_group("image.rootfs"),
            ("rootfs".into(), None, None)
        );
        assert_eq!(
            split_image_group("image.rootfs.product-a"),
            ("rootfs".into(), None, Some("product-a".into()))
        );
        assert_eq!(
            split_image_group("image.appfs/app-1.product-a"),
            (
                "appfs".into(),
                Some("app-1".into()),
                Some("product-a".into())
            )
        );
        assert_eq!(
            split_image_group("image.a.b.c"),
            ("a".into(), None, Some("b.c".into()))
        );
    }
}
