//! Test support for the factory station tests (`tests/factory_*.rs`) and the provisioning
//! benchmark: a SoftHSM with a station token (CA key inside) and device tokens, a station
//! configuration, and the `factory` / `signer` binaries of this workspace.
//!
//! Device tokens are made by cloning one empty template token ([`clone_tokens`]):
//! `softhsm2-util --init-token` loads every existing token first, so initializing n tokens one
//! by one costs O(n²) (about 0.3 s per token at 300 tokens). The clones are ordinary SoftHSM
//! tokens that SoftHSM itself reads and uses.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::SystemTime;

use softhsm::{SOFTHSM_MODULE, SoftHsm, TokenHandle};

/// User PIN of every test token.
pub const USER_PIN: &str = "4711";
/// SO PIN of every test token.
pub const SO_PIN: &str = "12345678";

/// SoftHSM's attribute id of the token serial in `token.object` (`CKA_OS_TOKENSERIAL`).
const TOKEN_SERIAL_ATTR: u64 = 0x8000_534a;

/// Path of one of this workspace's binaries (`factory`, `signer`, `keymgr`) next to the running
/// test's build output.
///
/// `cargo build --workspace --all-targets` (scripts/test.sh) builds them. When a test runs
/// without them, or a source file is newer than a binary, they are built once with
/// `cargo build -p factory -p signer -p keymgr --bins` (cargo's lock serializes test
/// processes that try at the same time).
pub fn workspace_binary(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // <target>/<profile>/deps/<test>-<hash> or <target>/<profile>/<bench>
        let mut profile_dir = exe.parent().expect("deps dir").to_path_buf();
        if profile_dir.ends_with("deps") {
            profile_dir.pop();
        }
        if stale(&profile_dir) {
            build(&profile_dir);
        }
        profile_dir
    });
    dir.join(name)
}

const BINARIES: [&str; 3] = ["factory", "signer", "keymgr"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn newest_source(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        let t = if meta.is_dir() {
            newest_source(&path)
        } else if path.extension().is_some_and(|x| x == "rs" || x == "toml") {
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)
        } else {
            SystemTime::UNIX_EPOCH
        };
        newest = newest.max(t);
    }
    newest
}

fn stale(profile_dir: &Path) -> bool {
    let root = workspace_root();
    let sources = ["factory/src", "signer/src", "keymgr/src", "bundle/src"]
        .iter()
        .map(|d| newest_source(&root.join(d)))
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    BINARIES.iter().any(|b| {
        std::fs::metadata(profile_dir.join(b))
            .and_then(|m| m.modified())
            .map_or(true, |t| t < sources)
    })
}

fn build(profile_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let profile = match profile_dir.file_name().and_then(OsStr::to_str) {
        Some("debug") | None => "dev".to_string(),
        Some(other) => other.to_string(),
    };
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "--quiet", "--bins", "--profile", &profile])
        .args(BINARIES.iter().flat_map(|b| ["-p", b]));
    if let Some(target_dir) = profile_dir.parent() {
        cmd.arg("--target-dir").arg(target_dir);
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "building {BINARIES:?} failed");
}

/// Creates one SoftHSM token per label by copying the empty token `template` and writing the
/// label and a fresh serial into the copy's `token.object`. The clones share the template's
/// PINs. Call before any process that should see them loads SoftHSM.
pub fn clone_tokens(hsm: &SoftHsm, template: &TokenHandle, labels: &[String]) -> io::Result<()> {
    let tokens = hsm.dir().join("tokens");
    let template_label = padded_label(template.label());
    let (source, object) = std::fs::read_dir(&tokens)?
        .flatten()
        .find_map(|e| {
            let object = std::fs::read(e.path().join("token.object")).ok()?;
            contains(&object, &template_label).then(|| (e.path(), object))
        })
        .ok_or_else(|| io::Error::other("template token not found"))?;
    let serial = token_serial(&object)?;
    for (i, label) in labels.iter().enumerate() {
        if label.len() > 32 {
            return Err(io::Error::other(format!("label {label} is too long")));
        }
        let dest = tokens.join(format!("clone-{}-{i:06}", std::process::id()));
        std::fs::create_dir(&dest)?;
        for file in std::fs::read_dir(&source)?.flatten() {
            std::fs::copy(file.path(), dest.join(file.file_name()))?;
        }
        // SoftHSM makes the slot id of a token from the last 8 hex digits of its serial and
        // gives the free slot the id "number of tokens": keep clear of small numbers, or a
        // SoftHSM holding a few tokens aborts (`SlotManager::insertToken` assertion).
        let new_serial = format!(
            "c{:07x}{:08x}",
            std::process::id() & 0xfff_ffff,
            0x4000_0000 + i
        );
        let patched = replace(&object, &template_label, &padded_label(label));
        let patched = replace(&patched, &serial, new_serial.as_bytes());
        std::fs::write(dest.join("token.object"), patched)?;
    }
    Ok(())
}

/// A token label as SoftHSM stores it: padded with blanks to 32 bytes.
fn padded_label(label: &str) -> Vec<u8> {
    let mut b = label.as_bytes().to_vec();
    b.resize(32, b' ');
    b
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len(), "same-length replacement only");
    let mut out = haystack.to_vec();
    if let Some(pos) = haystack.windows(from.len()).position(|w| w == from) {
        out[pos..pos + from.len()].copy_from_slice(to);
    }
    out
}

/// The 16-byte serial value in a SoftHSM `token.object` (attribute, kind, length, value; each
/// header field a big-endian u64).
fn token_serial(object: &[u8]) -> io::Result<Vec<u8>> {
    let tag = TOKEN_SERIAL_ATTR.to_be_bytes();
    let pos = object
        .windows(8)
        .position(|w| w == tag)
        .ok_or_else(|| io::Error::other("no token serial in token.object"))?;
    let len_at = pos + 16;
    let len = u64::from_be_bytes(object[len_at..len_at + 8].try_into().unwrap()) as usize;
    Ok(object[len_at + 8..len_at + 8 + len].to_vec())
}

/// A station for tests: a private SoftHSM (exported to this process) with the station token
/// (CA key and release keys go there) and a template for device tokens, a PIN file and a
/// configuration file.
pub struct Station {
    /// The SoftHSM (removed on drop).
    pub hsm: SoftHsm,
    /// The station's token.
    pub station_token: TokenHandle,
    template: TokenHandle,
    /// The user PIN file (`pin-source`).
    pub pin_file: PathBuf,
    /// The configuration file.
    pub config: PathBuf,
    /// Where the token files live when not in the station directory (removed on drop).
    _token_store: Option<tempfile::TempDir>,
}

/// The configuration every test station starts from; `{dir}` is the station directory and
/// `{pin}` the PIN file.
pub const BASE_CONFIG: &str = r#"inventory = "inventory.sqlite"
[ca]
key = "pkcs11:token=station;object=device-ca;type=private"
cert = "pkcs11:token=station;object=device-ca;type=cert"
module = "/usr/lib/softhsm/libsofthsm2.so"
pin-source = "{pin}"
subject = "/O=Factory Test/CN=Factory Test Device CA"
crl-next-update-days = 7
[profiles.default]
subject = "/O=Factory Test/OU=Devices/CN={serial}"
[profiles.p384]
key-type = "ec-p384"
subject = "/O=Factory Test/OU=Devices P-384/CN={serial}"
[profiles.rsa]
key-type = "rsa-3072"
subject = "/O=Factory Test/OU=Devices RSA/CN={serial}"
[profiles.release]
usage = "signer"
subject = "/O=Factory Test/OU=Release/CN={serial}"
[device-token]
uri = "pkcs11:token=dev-{serial}"
module = "/usr/lib/softhsm/libsofthsm2.so"
pin-source = "{pin}"
"#;

impl Station {
    /// A station whose configuration is [`BASE_CONFIG`] plus `extra` (appended; use it for
    /// `[tpm]`).
    pub fn new(extra: &str) -> Station {
        Station::with_token_store(extra, None)
    }

    /// Like [`Station::new`], but SoftHSM keeps its token files in a new directory under
    /// `store` (e.g. `/dev/shm`; the station directory's `tokens` is a symlink to its `tokens`)
    /// while the inventory and everything else stay in the station directory.
    pub fn with_token_store(extra: &str, store: Option<&Path>) -> Station {
        let hsm = SoftHsm::new().expect("SoftHSM set-up");
        let token_store = store.map(|dir| {
            let store = tempfile::Builder::new()
                .prefix("softhsm-tokens-")
                .tempdir_in(dir)
                .expect("token store");
            let tokens = hsm.dir().join("tokens");
            std::fs::remove_dir(&tokens).expect("the new, empty token directory");
            std::fs::create_dir(store.path().join("tokens")).expect("token store");
            std::os::unix::fs::symlink(store.path().join("tokens"), &tokens)
                .expect("token directory symlink");
            store
        });
        let station_token = hsm
            .init_token("station", SO_PIN, USER_PIN)
            .expect("station token");
        let template = hsm
            .init_token("template-token", SO_PIN, USER_PIN)
            .expect("template token");
        let pin_file = hsm.dir().join("user.pin");
        std::fs::write(&pin_file, format!("{USER_PIN}\n")).unwrap();
        let config = hsm.dir().join("station.toml");
        let station = Station {
            hsm,
            station_token,
            template,
            pin_file,
            config,
            _token_store: token_store,
        };
        station.write_config(extra);
        station
    }

    /// (Re)writes the configuration: [`BASE_CONFIG`] plus `extra`.
    pub fn write_config(&self, extra: &str) {
        let text = BASE_CONFIG.replace("{pin}", &self.pin_file.display().to_string()) + extra;
        std::fs::write(&self.config, text).unwrap();
    }

    /// The station directory (scratch space; removed on drop).
    pub fn dir(&self) -> &Path {
        self.hsm.dir()
    }

    /// A path in the station directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// Creates device tokens `dev-<serial>` (see [`clone_tokens`]).
    pub fn device_tokens<S: AsRef<str>>(&self, serials: &[S]) {
        let labels: Vec<String> = serials
            .iter()
            .map(|s| format!("dev-{}", s.as_ref()))
            .collect();
        clone_tokens(&self.hsm, &self.template, &labels).expect("cloning device tokens");
    }

    /// Moves the device token `dev-<serial>` out of the station's SoftHSM into a SoftHSM of its
    /// own (beside the token directory, in `devices/<serial>/`) and returns that SoftHSM's
    /// configuration file. A process given it as `SOFTHSM2_CONF` sees this token alone, as a
    /// station sees the one device plugged in, instead of loading every device token (SoftHSM
    /// reads all tokens of its directory when a process loads it).
    pub fn detach_device_token(&self, serial: &str) -> io::Result<PathBuf> {
        let tokens = self.dir().join("tokens").canonicalize()?;
        let label = padded_label(&format!("dev-{serial}"));
        let token = std::fs::read_dir(&tokens)?
            .flatten()
            .map(|e| e.path())
            .find(|p| std::fs::read(p.join("token.object")).is_ok_and(|o| contains(&o, &label)))
            .ok_or_else(|| io::Error::other(format!("no device token dev-{serial}")))?;
        let home = tokens.with_file_name("devices").join(serial);
        std::fs::create_dir_all(home.join("tokens"))?;
        std::fs::rename(&token, home.join("tokens").join("device"))?;
        let conf = home.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n\
                 slots.removable = false\n",
                home.join("tokens").display()
            ),
        )?;
        Ok(conf)
    }

    /// Environment every child process gets: SoftHSM configuration, module, PIN.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                softhsm::CONF_ENV.to_string(),
                self.hsm.conf_path().display().to_string(),
            ),
            ("PKCS11_MODULE_PATH".into(), SOFTHSM_MODULE.into()),
            ("RAUC_PKCS11_PIN".into(), USER_PIN.into()),
        ]
    }

    /// `factory --config <station.toml>` with [`Station::env`].
    pub fn factory_command(&self) -> Command {
        let mut cmd = Command::new(workspace_binary("factory"));
        cmd.envs(self.env()).arg("--config").arg(&self.config);
        cmd
    }

    /// Runs `factory <args>`; returns the output (logged to stderr for failing tests).
    pub fn factory(&self, args: &[&str]) -> Output {
        run(self.factory_command().args(args))
    }

    /// Runs `factory <args>` and asserts success; returns stdout.
    pub fn factory_ok(&self, args: &[&str]) -> String {
        let out = self.factory(args);
        assert!(out.status.success(), "factory {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `signer` with [`Station::env`].
    pub fn signer_command(&self) -> Command {
        let mut cmd = Command::new(workspace_binary("signer"));
        cmd.envs(self.env());
        cmd
    }

    /// Runs `signer <args>`.
    pub fn signer(&self, args: &[&str]) -> Output {
        run(self.signer_command().args(args))
    }

    /// `factory ca init --out ca.pem`; returns the CA certificate path.
    pub fn ca_init(&self) -> PathBuf {
        let ca = self.path("ca.pem");
        self.factory_ok(&["ca", "init", "--out", ca.to_str().unwrap()]);
        ca
    }
}

/// Runs a command to completion, echoing what it printed to stderr (visible for failing tests).
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    eprintln!(
        "$ {cmd:?}\n-> {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A content directory for `signer bundle`: a crypt manifest and a 256 KiB random image.
pub fn crypt_content(dir: &Path) -> PathBuf {
    let content = dir.join("content");
    std::fs::create_dir_all(&content).unwrap();
    let mut image = vec![0u8; 256 * 1024];
    openssl::rand::rand_bytes(&mut image).unwrap();
    std::fs::write(content.join("rootfs.img"), image).unwrap();
    std::fs::write(
        content.join("manifest.raucm"),
        "[update]\ncompatible=Factory Test\nversion=2026.1\n\n[bundle]\nformat=crypt\n\n\
         [image.rootfs]\nfilename=rootfs.img\n",
    )
    .unwrap();
    content
}

/// Everything the inventory holds that a failed command must not change: device rows,
/// pending intents and the audit log (read through the station library).
pub fn inventory_snapshot(config: &Path) -> String {
    let config = factory::config::StationConfig::load(config).unwrap();
    if !config.inventory.exists() {
        return "no inventory".into();
    }
    let inv = factory::inventory::Inventory::open(&config.inventory).unwrap();
    format!(
        "{:?}\n{:?}\n{:?}",
        inv.devices(&Default::default()).unwrap(),
        inv.pending_intents().unwrap(),
        inv.audit_log(None).unwrap()
    )
}

/// The objects of a token as this process sees them (logged in with [`USER_PIN`]). Loads
/// SoftHSM into this process: create every token first.
pub fn token_objects(label: &str) -> Vec<keymgr::object::ObjectSummary> {
    let uri = keymgr::Pkcs11Uri::for_token(label);
    let mut ts = keymgr::TokenSession::open(
        &uri,
        Some(Path::new(SOFTHSM_MODULE)),
        keymgr::Access::ReadOnly,
    )
    .unwrap();
    ts.login_with(&keymgr::Pin::new(USER_PIN.into()), "test")
        .unwrap();
    ts.list_objects(&uri).unwrap()
}

/// Text of a command's stdout and stderr.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Checks that the inventory and the device tokens `labels` agree, independently of
/// `factory verify`: no pending intent; every object in a token belongs to a device row that
/// names this token and the object's `CKA_ID`; every device row's token holds exactly its key
/// pair (public key matching the recorded SPKI hash) and its recorded certificate. Returns the
/// number of device rows, or every disagreement found.
pub fn check_agreement(
    config: &Path,
    index: &keymgr::TokenIndex,
    labels: &[String],
) -> Result<usize, Vec<String>> {
    use std::collections::HashMap;

    use keymgr::ObjectType;

    let config = factory::config::StationConfig::load(config).unwrap();
    let inv = factory::inventory::Inventory::open(&config.inventory).unwrap();
    let mut problems: Vec<String> = inv
        .pending_intents()
        .unwrap()
        .iter()
        .map(|i| format!("pending intent for {}", i.new.serial))
        .collect();
    let devices = inv.devices(&Default::default()).unwrap();
    let mut by_token: HashMap<String, Vec<&factory::inventory::DeviceRecord>> = HashMap::new();
    for d in &devices {
        let uri = keymgr::Pkcs11Uri::parse(&d.token_uri).unwrap();
        by_token
            .entry(uri.token.unwrap_or_default())
            .or_default()
            .push(d);
    }
    let pin = keymgr::Pin::new(USER_PIN.into());
    for label in labels {
        let uri = keymgr::Pkcs11Uri::for_token(label);
        let mut ts = index.open(&uri, keymgr::Access::ReadOnly).unwrap();
        if let Err(e) = ts.login_with(&pin, "test") {
            problems.push(format!("{label}: cannot log in: {e}"));
            continue;
        }
        let objects = ts.list_objects(&uri).unwrap();
        let recorded = by_token.remove(label).unwrap_or_default();
        for o in &objects {
            if !recorded
                .iter()
                .any(|d| d.key_id.as_bytes() == o.id.as_slice())
            {
                problems.push(format!(
                    "{label}: {} object {:?} (id {}) has no inventory record",
                    o.object_type,
                    o.label,
                    hex::encode(&o.id)
                ));
            }
        }
        for d in recorded {
            let mine: Vec<_> = objects
                .iter()
                .filter(|o| o.id.as_slice() == d.key_id.as_bytes())
                .collect();
            let of = |t: ObjectType| {
                mine.iter()
                    .filter(|o| o.object_type == t)
                    .collect::<Vec<_>>()
            };
            let (private, public, certs) = (
                of(ObjectType::Private),
                of(ObjectType::Public),
                of(ObjectType::Cert),
            );
            if private.len() != 1 || public.len() != 1 || certs.len() != 1 || mine.len() != 3 {
                problems.push(format!(
                    "{label}: device {} has {} private, {} public, {} certificate objects",
                    d.serial,
                    private.len(),
                    public.len(),
                    certs.len()
                ));
                continue;
            }
            let spki = ts.export_public_key(&public[0].uri).unwrap();
            if hex::encode(openssl::sha::sha256(&spki)) != d.spki_sha256 {
                problems.push(format!(
                    "{label}: device {}: the key is not the certified key",
                    d.serial
                ));
            }
            if ts.export_certificate(&certs[0].uri).unwrap() != d.certificate {
                problems.push(format!("{label}: device {}: another certificate", d.serial));
            }
        }
    }
    for (label, devices) in by_token {
        problems.push(format!(
            "{} device rows name the unchecked token {label}",
            devices.len()
        ));
    }
    if problems.is_empty() {
        Ok(devices.len())
    } else {
        Err(problems)
    }
}

/// Deletes every object of the tokens `labels` (resetting them between test rounds).
pub fn wipe_tokens(index: &keymgr::TokenIndex, labels: &[String]) {
    let pin = keymgr::Pin::new(USER_PIN.into());
    for label in labels {
        let uri = keymgr::Pkcs11Uri::for_token(label);
        let mut ts = index.open(&uri, keymgr::Access::ReadWrite).unwrap();
        ts.login_with(&pin, "test").unwrap();
        for o in ts.list_objects(&uri).unwrap() {
            ts.delete_objects(&uri.clone().with_id(&o.id)).unwrap();
        }
    }
}
