//! Manifest parsing, serialization and checks against RAUC's documented behaviour.

use bundle::manifest::{BundleFormat, CryptKey, LoadedManifest, Manifest, Vocabulary};

/// The signed manifest of RAUC's `good-crypt-bundle-*.raucb` fixtures (rauc-format.md §2.6).
const CRYPT_EXTERNAL: &str = "\
[update]
compatible=Test Config
version=2022.03-2

[bundle]
crypt-key=380551e66849063ce8863c7075f47aa024ebdc935e31cae3e1d7ac3fd7a54026
format=crypt
verity-hash=505d1d57bf9b280b88b023fb74d6a847c2fb419d70609b91460d5e42c465b6dd
verity-salt=18bfbba9f129f97b6bca4aa0645db61feac2511fa940f8169c659601849de38a
verity-size=4096

[image.rootfs]
sha256=98ae5a2cd6bbd9b282537dc90669f78adfcf17713a32a0ff447a05139822d197
size=65536
filename=rootfs.img

[image.appfs]
sha256=c35020473aed1b4642cd726cad727b63fff2824ad68cedd7ffb73c7cbd890479
size=32768
filename=appfs.img
";

#[test]
fn rauc_crypt_manifest_round_trips_byte_for_byte() {
    let m = Manifest::parse(CRYPT_EXTERNAL).unwrap();
    assert_eq!(m.bundle.format, BundleFormat::Crypt);
    assert_eq!(m.update.compatible, "Test Config");
    assert_eq!(m.images.len(), 2);
    assert_eq!(m.images[1].slot_class, "appfs");
    assert_eq!(m.to_text(Vocabulary::Rauc18).unwrap(), CRYPT_EXTERNAL);
    let params = m.check_external().unwrap();
    assert_eq!(params.verity.tree_size, 4096);
    assert_eq!(
        params.verity.root_hash_hex(),
        "505d1d57bf9b280b88b023fb74d6a847c2fb419d70609b91460d5e42c465b6dd"
    );
    assert_eq!(
        params.crypt_key.unwrap(),
        CryptKey::from_hex("380551e66849063ce8863c7075f47aa024ebdc935e31cae3e1d7ac3fd7a54026")
            .unwrap()
    );
    // the crypt key never shows in Debug
    assert!(!format!("{m:?}").contains("380551e6"));
}

#[test]
fn internal_manifest_drops_keys_and_passes_internal_check() {
    let m = Manifest::parse(CRYPT_EXTERNAL).unwrap();
    let internal = m.to_internal();
    internal.check_internal().unwrap();
    let text = internal.to_text(Vocabulary::Rauc18).unwrap();
    assert!(
        text.contains("[bundle]\nformat=crypt\n\n[image.rootfs]"),
        "{text}"
    );
    assert_eq!(
        m.check_internal().unwrap_err().to_string(),
        "Unexpected key for crypt bundle in internal manifest"
    );
    let mut verity = internal.clone();
    verity.bundle.format = BundleFormat::Verity;
    verity.bundle.verity_salt = Some("00".repeat(32));
    assert_eq!(
        verity.check_internal().unwrap_err().to_string(),
        "Unexpected verity salt for verity bundle in internal manifest"
    );
}

#[test]
fn manifest_hash_is_sha256_of_bytes_as_loaded() {
    let bytes = CRYPT_EXTERNAL.as_bytes().to_vec();
    let loaded = LoadedManifest::load(bytes.clone()).unwrap();
    assert_eq!(loaded.hash, openssl::sha::sha256(&bytes));
    assert_eq!(loaded.hash_hex(), hex::encode(openssl::sha::sha256(&bytes)));
}

#[test]
fn unknown_keys_and_groups_use_rauc_messages() {
    let cases = [
        (
            "[update]\ncompatible=x\n[image.rootfs]\nfilename=a.img\nbogus=1\n",
            "Invalid key 'bogus' in group '[image.rootfs]'",
        ),
        (
            "[update]\ncompatible=x\n[other]\n",
            "Invalid group '[other]'",
        ),
        (
            "[update]\ncompatible=x\n[bundle]\nformat=squash\n",
            "Invalid format value 'squash' in group '[bundle]'",
        ),
        (
            "[update]\ncompatible=x\n[bundle]\nformat=plain\nverity-hash=00\n",
            "Invalid key 'verity-hash' in group '[bundle]'",
        ),
        (
            "[update]\ncompatible=x\n[bundle]\nformat=verity\ncrypt-key=00\n",
            "Invalid key 'crypt-key' in group '[bundle]'",
        ),
        (
            "[update]\ncompatible=x\n[hooks]\nhooks=install\n",
            "install hook type 'install' not supported",
        ),
        (
            "[update]\ncompatible=x\n[image.a]\nfilename=a\nhooks=foo\n",
            "slot hook type 'foo' not supported",
        ),
        (
            "[update]\ncompatible=\n",
            "Missing value for key 'compatible' in group '[update]'",
        ),
        (
            "[update]\ncompatible=x\n[handler]\nargs=-v\n",
            "Setting 'args' requires a full custom handler to be defined under 'filename' in group '[handler]'.",
        ),
        (
            "[update]\ncompatible=x\n[meta.a.b]\nk=v\n",
            "invalid metadata section name 'meta.a.b' (must contain a single '.')",
        ),
    ];
    for (text, msg) in cases {
        let err = Manifest::parse(text).unwrap_err().to_string();
        assert_eq!(err, msg, "for {text:?}");
    }
    assert!(Manifest::parse("[bundle]\nformat=plain\n").is_err());
}

#[test]
fn latest_vocabulary_parses_but_rauc18_writer_refuses_it() {
    let text = "[update]\ncompatible=x\nmin-rauc-version=1.14\n\n[bundle]\nformat=verity\n\n\
                [image.rootfs]\nfilename=r.img\ntype=raw\nversion=1\n\n[rollout]\nfoo=bar\n\n\
                [meta.version]\nchannel=beta\n";
    let m = Manifest::parse(text).unwrap();
    assert_eq!(m.images[0].image_type.as_deref(), Some("raw"));
    assert_eq!(m.meta[0].entries, vec![("channel".into(), "beta".into())]);
    let err = m.to_text(Vocabulary::Rauc18).unwrap_err().to_string();
    assert!(
        err.contains("'min-rauc-version' in group '[update]'"),
        "{err}"
    );
    let mut m2 = m.clone();
    m2.update.min_rauc_version = None;
    let err = m2.to_text(Vocabulary::Rauc18).unwrap_err().to_string();
    assert!(err.contains("'type' in group '[image.rootfs]'"), "{err}");
    // latest writes type, drops min-rauc-version, image version and [rollout], keeps meta
    let out = m.to_text(Vocabulary::Latest).unwrap();
    assert_eq!(
        out,
        "[update]\ncompatible=x\n\n[bundle]\nformat=verity\n\n[image.rootfs]\nfilename=r.img\n\
         type=raw\n\n[meta.version]\nchannel=beta\n"
    );
    m2.images[0].image_type = None;
    assert!(m2.to_text(Vocabulary::Rauc18).is_ok());
}

#[test]
fn serialization_order_escaping_and_lists() {
    let text = "[hooks]\nhooks=install-check\nfilename=hook.sh\n[handler]\nargs=--x\n\
                filename=h.sh\n[update]\nbuild=b\ndescription= lead\\\\back\\nline\tend\n\
                version=1\ncompatible=c\n[image.appfs.v1]\nadaptive=block-hash-index\n\
                hooks=post-install;pre-install\nfilename=a.img\nsize=4096\nsha256=\
                c35020473aed1b4642cd726cad727b63fff2824ad68cedd7ffb73c7cbd890479\n";
    let m = Manifest::parse(text).unwrap();
    assert_eq!(
        m.update.description.as_deref(),
        Some("lead\\back\nline\tend")
    );
    assert_eq!(m.images[0].variant.as_deref(), Some("v1"));
    let out = m.to_text(Vocabulary::Rauc18).unwrap();
    assert_eq!(
        out,
        "[update]\ncompatible=c\nversion=1\ndescription=lead\\\\back\\nline\tend\nbuild=b\n\n\
         [handler]\nfilename=h.sh\nargs=--x\n\n[hooks]\nfilename=hook.sh\nhooks=install-check;\n\n\
         [image.appfs.v1]\nsha256=c35020473aed1b4642cd726cad727b63fff2824ad68cedd7ffb73c7cbd890479\n\
         size=4096\nfilename=a.img\nhooks=pre-install;post-install;\nadaptive=block-hash-index;\n"
    );
    assert_eq!(Manifest::parse(&out).unwrap(), m);
    m.check_internal().unwrap();
    // a leading space is escaped as \s
    let mut m2 = m.clone();
    m2.update.compatible = " spaced".into();
    assert!(
        m2.to_text(Vocabulary::Rauc18)
            .unwrap()
            .contains("compatible=\\sspaced\n")
    );
}

#[test]
fn plain_format_is_written_only_when_explicit() {
    let implicit = Manifest::parse("[update]\ncompatible=x\n").unwrap();
    assert_eq!(
        implicit.to_text(Vocabulary::Rauc18).unwrap(),
        "[update]\ncompatible=x\n"
    );
    let explicit = Manifest::parse("[update]\ncompatible=x\n[bundle]\nformat=plain\n").unwrap();
    assert_eq!(
        explicit.to_text(Vocabulary::Rauc18).unwrap(),
        "[update]\ncompatible=x\n\n[bundle]\nformat=plain\n"
    );
}

#[test]
fn input_check() {
    let ok = Manifest::parse(
        "[update]\ncompatible=x\n[bundle]\nformat=verity\n[image.rootfs]\nfilename=r.img\n",
    )
    .unwrap();
    ok.check_input().unwrap();
    let cases = [
        (
            "[image.r]\nfilename=r.img\nsize=1\n",
            "Unexpected size 1 for image r.img in input manifest",
        ),
        (
            "[image.r]\nfilename=r.img\nsha256=00\n",
            "Unexpected digest for image r.img in input manifest",
        ),
        (
            "[image.r]\nfilename=a/r.img\n",
            "Image filename a/r.img must not contain '/'",
        ),
        (
            "[image.r]\nfilename=r.img\nhooks=pre-install\n",
            "Hooks used, but no hook 'filename' defined in [hooks] section",
        ),
        (
            "[hooks]\nfilename=h\n[image.r]\nfilename=r.img\nhooks=install;post-install\n",
            "An 'install' hook must not be combined with 'pre-install' or 'post-install' hooks",
        ),
    ];
    for (tail, msg) in cases {
        let m = Manifest::parse(&format!("[update]\ncompatible=x\n{tail}")).unwrap();
        assert_eq!(m.check_input().unwrap_err().to_string(), msg, "{tail}");
    }
}

#[test]
fn external_check_messages() {
    let base = Manifest::parse(CRYPT_EXTERNAL).unwrap();
    let mut m = base.clone();
    m.bundle.crypt_key = None;
    assert_eq!(
        m.check_external().unwrap_err().to_string(),
        "Missing key for crypt bundle"
    );
    let mut m = base.clone();
    m.bundle.verity_hash = Some("abc".into());
    assert_eq!(
        m.check_external().unwrap_err().to_string(),
        "Invalid hash for crypt bundle"
    );
    let mut m = base.clone();
    m.bundle.format = BundleFormat::Verity;
    m.bundle.crypt_key = None;
    m.bundle.verity_salt = None;
    assert_eq!(
        m.check_external().unwrap_err().to_string(),
        "Missing salt for verity bundle"
    );
    let mut m = base.clone();
    m.bundle.verity_size = Some(4097);
    assert_eq!(
        m.check_external().unwrap_err().to_string(),
        "Unaligned size for crypt bundle"
    );
    let mut m = base.clone();
    m.bundle.verity_size = None;
    assert_eq!(
        m.check_external().unwrap_err().to_string(),
        "Missing size for crypt bundle"
    );
    let mut m = base.clone();
    m.images[0].size = None;
    assert_eq!(
        m.check_external().unwrap_err().to_string(),
        "Missing size for image rootfs.img"
    );
    let mut m = base.clone();
    m.images[0].sha256 = Some("xyz".into());
    assert_eq!(
        m.check_external().unwrap_err().to_string(),
        "Invalid digest xyz for image rootfs.img"
    );
    let plain = Manifest::parse("[update]\ncompatible=x\n").unwrap();
    assert_eq!(
        plain.check_external().unwrap_err().to_string(),
        "Unsupported bundle format 'plain' for external manifest"
    );
}

#[test]
fn setters_produce_external_manifest() {
    let mut m = Manifest::parse("[update]\ncompatible=x\n[bundle]\nformat=crypt\n").unwrap();
    let key = CryptKey::from_bytes([7; 32]);
    m.set_crypt_key(&key);
    m.set_verity(&bundle::manifest::VerityParams {
        root_hash: [1; 32],
        salt: [2; 32],
        tree_size: 8192,
    });
    let text = m.to_text(Vocabulary::Rauc18).unwrap();
    assert_eq!(
        text,
        format!(
            "[update]\ncompatible=x\n\n[bundle]\ncrypt-key={}\nformat=crypt\nverity-hash={}\n\
             verity-salt={}\nverity-size=8192\n",
            "07".repeat(32),
            "01".repeat(32),
            "02".repeat(32)
        )
    );
    let p = Manifest::parse(&text).unwrap().check_external().unwrap();
    assert_eq!(p.crypt_key.unwrap(), key);
}
