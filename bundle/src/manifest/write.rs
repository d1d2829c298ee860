//! Manifest serialization exactly as RAUC writes it (`rauc: src/manifest.c (prepare_manifest)` +
//! `g_key_file_to_data`, `rauc-format.md` §2.6).

use super::{BundleFormat, Image, Manifest};
use crate::keyfile::KeyFileWriter;
use crate::{Error, Result};

/// Which RAUC vocabulary the writer may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Vocabulary {
    /// Only keys and groups rauc 1.8 accepts (the default: Debian bookworm's rauc is the peer).
    /// A manifest that needs more is refused with [`Error::Vocabulary`].
    #[default]
    Rauc18,
    /// The latest RAUC vocabulary (image `type`, artifacts, `convert`/`converted`). Bundles
    /// written this way are rejected by rauc 1.8.
    Latest,
}

impl Manifest {
    /// The features of this manifest that rauc 1.8 rejects, as human-readable descriptions.
    pub fn beyond_rauc18(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.update.min_rauc_version.is_some() {
            out.push("'min-rauc-version' in group '[update]'".to_string());
        }
        for image in &self.images {
            let g = image.group_name();
            if image.artifact.is_some() {
                out.push(format!("artifact group '[{g}]'"));
            }
            if image.image_type.is_some() {
                out.push(format!("'type' in group '[{g}]'"));
            }
            if image.convert.is_some() {
                out.push(format!("'convert' in group '[{g}]'"));
            }
            if image.converted.is_some() {
                out.push(format!("'converted' in group '[{g}]'"));
            }
        }
        out
    }

    /// Serializes the manifest as RAUC does. With [`Vocabulary::Rauc18`], a manifest using
    /// features rauc 1.8 rejects is an error. As in RAUC, `min-rauc-version` is never written
    /// (with `Latest` it is dropped; with `Rauc18` it is refused).
    pub fn to_text(&self, vocabulary: Vocabulary) -> Result<String> {
        if vocabulary == Vocabulary::Rauc18
            && let Some(feature) = self.beyond_rauc18().into_iter().next()
        {
            return Err(Error::Vocabulary { feature });
        }
        let mut w = KeyFileWriter::new();
        self.write_update(&mut w);
        self.write_bundle(&mut w);
        self.write_handler_and_hooks(&mut w);
        for image in &self.images {
            write_image(&mut w, image);
        }
        for meta in &self.meta {
            if meta.entries.is_empty() {
                continue;
            }
            w.group(&format!("meta.{}", meta.label));
            for (k, v) in &meta.entries {
                w.string(k, v);
            }
        }
        Ok(w.finish())
    }

    fn write_update(&self, w: &mut KeyFileWriter) {
        let u = &self.update;
        w.group("update")
            .string("compatible", &u.compatible)
            .opt_string("version", u.version.as_deref())
            .opt_string("description", u.description.as_deref())
            .opt_string("build", u.build.as_deref());
    }

    fn write_bundle(&self, w: &mut KeyFileWriter) {
        let b = &self.bundle;
        match b.format {
            BundleFormat::Plain => {
                if b.format_explicit {
                    w.group("bundle").string("format", "plain");
                }
            }
            BundleFormat::Verity | BundleFormat::Crypt => {
                w.group("bundle");
                if b.format == BundleFormat::Crypt
                    && let Some(key) = &b.crypt_key
                {
                    w.string("crypt-key", key.expose());
                }
                w.string("format", b.format.as_str())
                    .opt_string("verity-hash", b.verity_hash.as_deref())
                    .opt_string("verity-salt", b.verity_salt.as_deref());
                if let Some(size) = b.verity_size.filter(|&s| s != 0) {
                    w.u64("verity-size", size);
                }
            }
        }
    }

    fn write_handler_and_hooks(&self, w: &mut KeyFileWriter) {
        if self.handler.filename.is_some() || self.handler.args.is_some() {
            w.group("handler")
                .opt_string("filename", self.handler.filename.as_deref())
                .opt_string("args", self.handler.args.as_deref());
        }
        if self.hooks.filename.is_some() || self.hooks.install_check {
            w.group("hooks")
                .opt_string("filename", self.hooks.filename.as_deref());
            if self.hooks.install_check {
                w.list("hooks", &["install-check"]);
            }
        }
    }
}

fn write_image(w: &mut KeyFileWriter, image: &Image) {
    w.group(&image.group_name())
        .opt_string("sha256", image.sha256.as_deref());
    if let Some(size) = image.size {
        w.u64("size", size);
    }
    w.opt_string("filename", image.filename.as_deref())
        .opt_string("type", image.image_type.as_deref());
    let hooks = image.hooks.names();
    if !hooks.is_empty() {
        w.list("hooks", &hooks);
    }
    for (key, list) in [
        ("adaptive", &image.adaptive),
        ("convert", &image.convert),
        ("converted", &image.converted),
    ] {
        if let Some(items) = list
            && (key != "converted" || !items.is_empty())
        {
            w.list(key, items);
        }
    }
}
