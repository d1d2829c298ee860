//! The manifest (`manifest.raucm` and the signed external manifest), `rauc-format.md` §2.
//!
//! [`Manifest::parse`] reads the *latest* RAUC vocabulary with RAUC's strictness (unknown keys and
//! groups are errors, with RAUC's messages), so bundles from newer rauc versions parse.
//! [`Manifest::to_text`] writes exactly what RAUC's serializer writes (group and key order,
//! escaping, trailing `;` in lists); with [`Vocabulary::Rauc18`] it refuses anything rauc 1.8
//! would reject. The three checks of RAUC are [`Manifest::check_input`],
//! [`Manifest::check_internal`] and [`Manifest::check_external`].

mod check;
mod params;
mod parse;
mod write;

pub use check::ExternalParams;
pub use params::{CryptKey, PARAM_LEN, SecretString, VerityParams};
pub use write::Vocabulary;

/// The bundle format (`[bundle] format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BundleFormat {
    /// Legacy format: squashfs with a detached signature over the whole payload.
    #[default]
    Plain,
    /// squashfs + dm-verity hash tree, manifest signed inline.
    Verity,
    /// AES-256-CBC-plain64 encrypted squashfs + dm-verity tree over the ciphertext.
    Crypt,
}

impl BundleFormat {
    /// The manifest spelling: `plain`, `verity` or `crypt`.
    pub fn as_str(self) -> &'static str {
        match self {
            BundleFormat::Plain => "plain",
            BundleFormat::Verity => "verity",
            BundleFormat::Crypt => "crypt",
        }
    }

    /// Parses the manifest spelling.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "plain" => Some(BundleFormat::Plain),
            "verity" => Some(BundleFormat::Verity),
            "crypt" => Some(BundleFormat::Crypt),
            _ => None,
        }
    }
}

impl std::fmt::Display for BundleFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[update]`: what the bundle is for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    /// `compatible` (required): compared verbatim with the target's `[system] compatible`.
    pub compatible: String,
    /// `version`.
    pub version: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `build`.
    pub build: Option<String>,
    /// `min-rauc-version` (rauc ≥ 1.14; rejected by 1.8, never re-serialized by RAUC).
    pub min_rauc_version: Option<String>,
}

/// `[bundle]`: the format and, in the external manifest, its parameters (still as text; the
/// typed values come from [`Manifest::check_external`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BundleSection {
    /// The format (`plain` when absent).
    pub format: BundleFormat,
    /// Whether `format` was given explicitly (RAUC writes `format=plain` only then).
    pub format_explicit: bool,
    /// `verity-hash` (64 hex digits).
    pub verity_hash: Option<String>,
    /// `verity-salt` (64 hex digits).
    pub verity_salt: Option<String>,
    /// `verity-size` (bytes; RAUC treats 0 as unset).
    pub verity_size: Option<u64>,
    /// `crypt-key` (64 hex digits), redacted in `Debug`.
    pub crypt_key: Option<SecretString>,
}

/// `[handler]`: a full custom install handler.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Handler {
    /// `filename`, relative to the bundle root.
    pub filename: Option<String>,
    /// `args` (requires `filename`).
    pub args: Option<String>,
}

/// `[hooks]`: the hook script and the bundle-level hooks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hooks {
    /// `filename`: the hook script, relative to the bundle root.
    pub filename: Option<String>,
    /// `install-check` in `hooks`.
    pub install_check: bool,
}

/// Per-image hooks (`[image.*] hooks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImageHooks {
    /// `pre-install`.
    pub pre_install: bool,
    /// `install` (replaces the default installation).
    pub install: bool,
    /// `post-install`.
    pub post_install: bool,
}

impl ImageHooks {
    /// Whether any hook is enabled.
    pub fn any(&self) -> bool {
        self.pre_install || self.install || self.post_install
    }

    /// The enabled hook names in RAUC's order.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.pre_install {
            v.push("pre-install");
        }
        if self.install {
            v.push("install");
        }
        if self.post_install {
            v.push("post-install");
        }
        v
    }
}

/// One `[image.<slotclass>[/<artifact>][.<variant>]]` group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Image {
    /// The target slot class.
    pub slot_class: String,
    /// The artifact name (`[image.<repo>/<artifact>]`, rauc ≥ 1.13 artifacts).
    pub artifact: Option<String>,
    /// The variant (`[image.<class>.<variant>]`).
    pub variant: Option<String>,
    /// `filename`, relative to the bundle root.
    pub filename: Option<String>,
    /// `sha256` (lower-case hex), added at bundle time.
    pub sha256: Option<String>,
    /// `size` in bytes, added at bundle time.
    pub size: Option<u64>,
    /// `hooks`.
    pub hooks: ImageHooks,
    /// `adaptive` methods, e.g. `block-hash-index`.
    pub adaptive: Option<Vec<String>>,
    /// An explicit `type` (rauc ≥ 1.15; rejected by 1.8).
    pub image_type: Option<String>,
    /// `convert` (artifacts, rauc ≥ 1.13; rejected by 1.8).
    pub convert: Option<Vec<String>>,
    /// `converted` (artifacts, rauc ≥ 1.13; rejected by 1.8).
    pub converted: Option<Vec<String>>,
}

impl Image {
    /// The group name this image is written under.
    pub fn group_name(&self) -> String {
        let mut g = format!("image.{}", self.slot_class);
        if let Some(a) = &self.artifact {
            g.push('/');
            g.push_str(a);
        }
        if let Some(v) = &self.variant {
            g.push('.');
            g.push_str(v);
        }
        g
    }
}

/// One `[meta.<label>]` group: free-form key/value pairs in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetaGroup {
    /// The label after `meta.`.
    pub label: String,
    /// Keys and values in file order.
    pub entries: Vec<(String, String)>,
}

/// A RAUC manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// `[update]`.
    pub update: Update,
    /// `[bundle]`.
    pub bundle: BundleSection,
    /// `[handler]`.
    pub handler: Handler,
    /// `[hooks]`.
    pub hooks: Hooks,
    /// `[image.*]` in file order.
    pub images: Vec<Image>,
    /// `[meta.*]` in file order.
    pub meta: Vec<MetaGroup>,
}

/// A manifest together with the exact bytes it was loaded from and their SHA-256.
///
/// The bytes of a crypt bundle's manifest contain the crypt key: they are zeroized on drop and
/// `Debug` shows only their length.
#[derive(Clone, PartialEq, Eq)]
pub struct LoadedManifest {
    /// The parsed manifest.
    pub manifest: Manifest,
    /// The bytes as loaded (the CMS eContent or the `manifest.raucm` file).
    pub bytes: zeroize::Zeroizing<Vec<u8>>,
    /// SHA-256 of `bytes` (RAUC's "Manifest Hash").
    pub hash: [u8; 32],
}

impl std::fmt::Debug for LoadedManifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedManifest")
            .field("manifest", &self.manifest)
            .field("bytes", &format_args!("<{} bytes>", self.bytes.len()))
            .field("hash", &self.hash_hex())
            .finish()
    }
}

impl LoadedManifest {
    /// Parses `bytes` and records their SHA-256 (`rauc-format.md` §2.7).
    pub fn load(bytes: Vec<u8>) -> crate::Result<Self> {
        let manifest = Manifest::parse_bytes(&bytes)?;
        let hash = openssl::sha::sha256(&bytes);
        Ok(LoadedManifest {
            manifest,
            bytes: zeroize::Zeroizing::new(bytes),
            hash,
        })
    }

    /// The manifest hash as lower-case hex.
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }
}

impl Manifest {
    /// Sets the verity parameters (`verity-hash`, `verity-salt`, `verity-size`) as RAUC writes them.
    pub fn set_verity(&mut self, params: &VerityParams) {
        self.bundle.verity_hash = Some(params.root_hash_hex());
        self.bundle.verity_salt = Some(params.salt_hex());
        self.bundle.verity_size = Some(params.tree_size);
    }

    /// Sets `crypt-key` (lower-case hex).
    pub fn set_crypt_key(&mut self, key: &CryptKey) {
        self.bundle.crypt_key = Some(SecretString::new(key.to_hex().to_string()));
    }

    /// The internal form of this manifest: the same content without verity keys and crypt key
    /// (what goes into the squashfs as `manifest.raucm`).
    pub fn to_internal(&self) -> Manifest {
        let mut m = self.clone();
        m.bundle.verity_hash = None;
        m.bundle.verity_salt = None;
        m.bundle.verity_size = None;
        m.bundle.crypt_key = None;
        m
    }
}
