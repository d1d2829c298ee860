//! `de.pengutronix.rauc.Installer` on `/`.

use std::collections::HashMap;
use std::sync::Arc;

use zbus::message::Header;
use zbus::object_server::{InterfaceRef, SignalEmitter};
use zbus::{Connection, OwnedVariant, Variant, interface};

use super::{GioError, Shared};
use crate::install::{InstallArgs, install_bundle};
use crate::progress::{Progress, ProgressFn, ProgressUpdate};
use crate::report;

const BUSY_INSTALL: &str = "Already processing a different method";
const BUSY: &str = "already processing a different method";

type Dict = HashMap<String, OwnedVariant>;

/// The installer object: properties plus the shared state.
pub struct Installer {
    shared: Arc<Shared>,
    operation: String,
    last_error: String,
    progress: (i32, String, i32),
    compatible: String,
    variant: String,
    boot_slot: String,
}

impl Installer {
    /// An idle installer over `shared`.
    pub fn new(shared: Arc<Shared>) -> crate::Result<Installer> {
        let ctx = &shared.ctx;
        Ok(Installer {
            compatible: ctx.config.compatible.clone(),
            variant: ctx.variant().unwrap_or_default(),
            boot_slot: ctx
                .boot_id
                .as_ref()
                .map(|b| b.as_str().to_string())
                .unwrap_or_default(),
            operation: "idle".into(),
            last_error: String::new(),
            progress: (0, String::new(), 0),
            shared,
        })
    }
}

/// Validates `InstallBundle` arguments: the keys rauc knows (any version) with their types;
/// anything else is "Unsupported key: K" (a known key of the wrong type counts as unknown, as
/// in rauc).
pub fn parse_install_args(args: &Dict) -> Result<InstallArgs, GioError> {
    let mut out = InstallArgs::default();
    let mut keys: Vec<&String> = args.keys().collect();
    keys.sort();
    for key in keys {
        let v: &Variant<'_> = &args[key];
        let ok = match (key.as_str(), v) {
            ("ignore-compatible", Variant::Bool(b)) => {
                out.ignore_compatible = *b;
                true
            }
            ("transaction-id", Variant::Str(s)) => {
                out.transaction_id = Some(s.to_string());
                true
            }
            ("require-manifest-hash", Variant::Str(s)) => {
                out.require_manifest_hash = Some(s.to_string());
                true
            }
            ("ignore-version-limit" | "tls-no-verify", Variant::Bool(_)) => true,
            ("tls-cert" | "tls-key" | "tls-ca", Variant::Str(_)) => true,
            ("http-headers", v) => v.value_signature().to_string() == "as",
            _ => false,
        };
        if !ok {
            return Err(GioError(format!("Unsupported key: {key}")));
        }
    }
    Ok(out)
}

fn check_inspect_args(args: &Dict) -> Result<(), GioError> {
    for (key, v) in args {
        let ok = match (key.as_str(), &**v) {
            ("tls-no-verify", Variant::Bool(_)) => true,
            ("tls-cert" | "tls-key" | "tls-ca", Variant::Str(_)) => true,
            ("http-headers", v) => v.value_signature().to_string() == "as",
            _ => false,
        };
        if !ok {
            return Err(GioError(format!("Unsupported key: {key}")));
        }
    }
    Ok(())
}

async fn caller_uid(conn: &Connection, hdr: &Header<'_>) -> Option<u32> {
    let sender = hdr.sender()?.to_owned();
    let dbus = zbus::fdo::DBusProxy::new(conn).await.ok()?;
    dbus.get_connection_unix_user(sender.into()).await.ok()
}

async fn require_root(conn: &Connection, hdr: &Header<'_>) -> Result<(), GioError> {
    match caller_uid(conn, hdr).await {
        Some(0) => Ok(()),
        Some(uid) => Err(GioError(format!(
            "Permission denied: only root may do this (caller uid {uid})"
        ))),
        None => Err(GioError(
            "Permission denied: cannot determine the caller's uid".into(),
        )),
    }
}

fn sv(s: &str) -> OwnedVariant {
    OwnedVariant::try_from(Variant::from(s.to_string()))
        .unwrap_or_else(|_| OwnedVariant::from(false))
}

fn dict_variant(d: Dict) -> OwnedVariant {
    OwnedVariant::from(d)
}

#[interface(name = "de.pengutronix.rauc.Installer")]
impl Installer {
    /// Deprecated: `InstallBundle(source, {})`.
    async fn install(
        &mut self,
        source: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<(), GioError> {
        self.start_install(source, InstallArgs::default(), hdr, conn, emitter)
            .await
    }

    /// Starts installing `source`; returns once the install thread runs.
    async fn install_bundle(
        &mut self,
        source: String,
        args: Dict,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<(), GioError> {
        if self.shared.is_busy() {
            return Err(GioError(BUSY_INSTALL.into()));
        }
        let args = parse_install_args(&args)?;
        self.start_install(source, args, hdr, conn, emitter).await
    }

    /// Deprecated: verifies the bundle and returns (compatible, version).
    #[zbus(out_args("compatible", "version"))]
    async fn info(&self, bundle: String) -> Result<(String, String), GioError> {
        if self.shared.is_busy() {
            return Err(GioError(BUSY.into()));
        }
        let info = self
            .shared
            .opener
            .inspect(&bundle, &self.shared.ctx.config)?;
        Ok((info.compatible, info.version.unwrap_or_default()))
    }

    /// Verifies the bundle and returns its manifest as a dictionary.
    #[zbus(out_args("info"))]
    async fn inspect_bundle(&self, source: String, args: Dict) -> Result<Dict, GioError> {
        if self.shared.is_busy() {
            return Err(GioError(BUSY.into()));
        }
        check_inspect_args(&args)?;
        let info = self
            .shared
            .opener
            .inspect(&source, &self.shared.ctx.config)?;
        Ok(inspect_dict(&info))
    }

    /// Marks a slot good, bad or active.
    #[zbus(out_args("slot_name", "message"))]
    async fn mark(
        &self,
        state: String,
        slot_identifier: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(String, String), GioError> {
        require_root(conn, &hdr).await?;
        if !self.shared.try_lock() {
            return Err(GioError(BUSY.into()));
        }
        let res = crate::mark::mark(&self.shared.ctx, &state, &slot_identifier);
        self.shared.unlock();
        match &res {
            Ok((_, m)) => tracing::info!("rauc mark: {m}"),
            Err(e) => tracing::warn!("rauc mark: {e}"),
        }
        Ok(res?)
    }

    /// Status of every slot.
    #[zbus(out_args("slot_status_array"))]
    async fn get_slot_status(&self) -> Result<Vec<(String, Dict)>, GioError> {
        if self.shared.is_busy() {
            return Err(GioError(BUSY.into()));
        }
        let r = report::collect(&self.shared.ctx)?;
        Ok(r.slots
            .iter()
            .map(|s| (s.name.clone(), s.to_dbus()))
            .collect())
    }

    /// The primary slot according to the bootloader.
    #[zbus(out_args("primary"))]
    async fn get_primary(&self) -> Result<String, GioError> {
        if self.shared.is_busy() {
            return Err(GioError(BUSY.into()));
        }
        self.shared
            .ctx
            .bootloader
            .get_primary()
            .map_err(|e| GioError(format!("Failed getting primary slot: {e}")))
    }

    /// `idle` or `installing`.
    #[zbus(property)]
    fn operation(&self) -> String {
        self.operation.clone()
    }

    /// The last installation error (cleared when an installation starts).
    #[zbus(property)]
    fn last_error(&self) -> String {
        self.last_error.clone()
    }

    /// (percentage, message, nesting depth).
    #[zbus(property)]
    fn progress(&self) -> (i32, String, i32) {
        self.progress.clone()
    }

    /// `[system] compatible`.
    #[zbus(property)]
    fn compatible(&self) -> String {
        self.compatible.clone()
    }

    /// The system variant.
    #[zbus(property)]
    fn variant(&self) -> String {
        self.variant.clone()
    }

    /// The booted slot as detected (bootname or device).
    #[zbus(property)]
    fn boot_slot(&self) -> String {
        self.boot_slot.clone()
    }

    /// Emitted when an installation ends: 0 success, 1 failure.
    #[zbus(signal)]
    async fn completed(emitter: &SignalEmitter<'_>, result: i32) -> zbus::Result<()>;
}

impl Installer {
    async fn start_install(
        &mut self,
        source: String,
        args: InstallArgs,
        hdr: Header<'_>,
        conn: &Connection,
        emitter: SignalEmitter<'_>,
    ) -> Result<(), GioError> {
        require_root(conn, &hdr).await?;
        if !self.shared.try_lock() {
            return Err(GioError(BUSY_INSTALL.into()));
        }
        tracing::info!("input bundle: {source}");
        // The interface reference is taken at start-up: looking it up here would wait for the
        // lock this `&mut self` method holds.
        let Some(iface) = self.shared.iface.get().cloned() else {
            self.shared.unlock();
            return Err(GioError(
                "Failed to launch install thread: service not ready".into(),
            ));
        };
        self.operation = "installing".into();
        self.last_error.clear();
        let _ = self.operation_changed(&emitter).await;
        let _ = self.last_error_changed(&emitter).await;
        let shared = self.shared.clone();
        std::thread::Builder::new()
            .name("install".into())
            .spawn(move || install_thread(shared, iface, source, args))
            .map_err(|e| {
                self.shared.unlock();
                GioError(format!("Failed to launch install thread: {e}"))
            })?;
        Ok(())
    }
}

fn install_thread(
    shared: Arc<Shared>,
    iface: InterfaceRef<Installer>,
    source: String,
    args: InstallArgs,
) {
    let cb_iface = iface.clone();
    let callback: ProgressFn = Arc::new(move |u: &ProgressUpdate| {
        let iface = cb_iface.clone();
        let value = (u.percentage, u.message.clone(), u.depth);
        zbus::block_on(async move {
            let mut g = iface.get_mut().await;
            g.progress = value;
            let _ = g.progress_changed(iface.signal_emitter()).await;
        });
    });
    let mut progress = Progress::new(Some(callback));
    let result = install_bundle(
        &shared.ctx,
        shared.opener.as_ref(),
        &source,
        &args,
        &mut progress,
    );
    zbus::block_on(async {
        let emitter = iface.signal_emitter();
        let code = {
            let mut g = iface.get_mut().await;
            match &result {
                Ok(()) => 0,
                Err(e) => {
                    g.last_error = e.to_string();
                    let _ = g.last_error_changed(emitter).await;
                    1
                }
            }
        };
        match &result {
            Ok(()) => tracing::info!("installing `{source}` succeeded"),
            Err(_) => tracing::info!("installing `{source}` failed: {code}"),
        }
        let _ = Installer::completed(emitter, code).await;
        let mut g = iface.get_mut().await;
        g.operation = "idle".into();
        let _ = g.operation_changed(emitter).await;
        shared.unlock();
    });
}

/// The `InspectBundle` dictionary for what the opener reports.
pub fn inspect_dict(info: &crate::plan::BundleInput) -> Dict {
    let mut update = Dict::new();
    update.insert("compatible".into(), sv(&info.compatible));
    for (k, v) in [
        ("version", &info.version),
        ("description", &info.description),
        ("build", &info.build),
    ] {
        if let Some(v) = v {
            update.insert(k.into(), sv(v));
        }
    }
    let images: Vec<Dict> = info
        .images
        .iter()
        .map(|i| {
            let mut d = Dict::new();
            d.insert("slot-class".into(), sv(&i.slot_class));
            if let Some(v) = &i.variant {
                d.insert("variant".into(), sv(v));
            }
            if let Some(f) = &i.filename {
                d.insert("filename".into(), sv(f));
            }
            if let Some(c) = &i.sha256 {
                d.insert("checksum".into(), sv(c));
            }
            if i.size > 0 {
                d.insert("size".into(), OwnedVariant::from(i.size));
            }
            d
        })
        .collect();
    let mut out = Dict::new();
    if let Some(h) = &info.manifest_hash {
        out.insert("manifest-hash".into(), sv(h));
    }
    out.insert("update".into(), dict_variant(update));
    if let Ok(v) = OwnedVariant::try_from(Variant::from(images)) {
        out.insert("images".into(), v);
    }
    out
}
