//! The RAUC-compatible D-Bus service (`rauc-format.md` §10): bus name `de.pengutronix.rauc`,
//! object `/`, interface `de.pengutronix.rauc.Installer`.
//!
//! Errors are returned as GLib's unmapped `G_IO_ERROR_FAILED_HANDLED`
//! ([`GIO_ERROR_NAME`]) with RAUC's messages. Installations run in a thread; progress is
//! published through the `Progress` property and the end through `Completed(i)`.

pub mod client;
mod interface;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use zbus::message::Header;
use zbus::names::ErrorName;
use zbus::object_server::InterfaceRef;
use zbus::{DBusError, Message};

pub use interface::Installer;

use crate::error::Result;
use crate::install::Context;
use crate::source::BundleOpener;

/// The D-Bus error name rauc uses for every method error.
pub const GIO_ERROR_NAME: &str =
    "org.gtk.GDBus.UnmappedGError.Quark._g_2dio_2derror_2dquark.Code30";
/// Well-known bus name.
pub const BUS_NAME: &str = "de.pengutronix.rauc";
/// Interface name.
pub const INTERFACE: &str = "de.pengutronix.rauc.Installer";

/// A method error as rauc returns it: `G_IO_ERROR_FAILED_HANDLED` with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GioError(pub String);

impl std::fmt::Display for GioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GioError {}

impl DBusError for GioError {
    fn create_reply(&self, call: &Header<'_>) -> zbus::Result<Message> {
        Message::error(call, self.name()).build(&(self.0.as_str(),))
    }

    fn name(&self) -> ErrorName<'_> {
        ErrorName::from_static_str_unchecked(GIO_ERROR_NAME)
    }

    fn description(&self) -> Option<&str> {
        Some(&self.0)
    }
}

impl From<crate::Error> for GioError {
    fn from(e: crate::Error) -> Self {
        GioError(e.to_string())
    }
}

/// State shared between the D-Bus interface and the install thread.
pub struct Shared {
    /// Config, bootloader, boot identity, status store.
    pub ctx: Context,
    /// Opens, verifies and mounts bundles.
    pub opener: Arc<dyn BundleOpener>,
    /// Set while an installation (or another exclusive method) runs.
    pub busy: AtomicBool,
    /// The served interface, set once it is on the bus (the install thread publishes through it).
    iface: OnceLock<InterfaceRef<Installer>>,
}

impl Shared {
    /// Shared state for a service.
    pub fn new(ctx: Context, opener: Arc<dyn BundleOpener>) -> Arc<Shared> {
        Arc::new(Shared {
            ctx,
            opener,
            busy: AtomicBool::new(false),
            iface: OnceLock::new(),
        })
    }

    fn try_lock(&self) -> bool {
        self.busy
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    fn is_busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst)
    }

    fn unlock(&self) {
        self.busy.store(false, Ordering::SeqCst);
    }
}

/// Where the service connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusAddress {
    /// The system bus (`DBUS_SYSTEM_BUS_ADDRESS` or the default socket); the session bus when
    /// `DBUS_STARTER_BUS_TYPE=session`, as rauc.
    Default,
    /// An explicit address (tests).
    Address(String),
}

/// Connects to the bus, asynchronously.
pub async fn connect(addr: &BusAddress) -> zbus::Result<zbus::Connection> {
    let builder = match addr {
        BusAddress::Address(a) => zbus::connection::Builder::address(a.as_str()),
        BusAddress::Default
            if std::env::var("DBUS_STARTER_BUS_TYPE").as_deref() == Ok("session") =>
        {
            zbus::connection::Builder::session()
        }
        BusAddress::Default => zbus::connection::Builder::system(),
    };
    builder.build().await
}

/// Serves the installer on `addr` until the connection closes or the process is stopped.
pub fn run(shared: Arc<Shared>, addr: &BusAddress) -> Result<()> {
    zbus::block_on(async {
        let installer = Installer::new(shared.clone())?;
        let conn = connect(addr).await?;
        conn.object_server().at("/", installer).await?;
        let iface = conn.object_server().interface::<_, Installer>("/").await?;
        let _ = shared.iface.set(iface);
        conn.request_name(BUS_NAME).await?;
        tracing::info!("service ready on {BUS_NAME}");
        std::future::pending::<()>().await;
        Ok(())
    })
}
