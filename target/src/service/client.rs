//! The client side, as `rauc install` / `rauc status` use the service: the `ota` binary calls
//! these when a service owns `de.pengutronix.rauc` on the bus.

use std::collections::HashMap;

use futures_util::StreamExt;
use zbus::message::Type;
use zbus::{Connection, MatchRule, MessageStream, OwnedVariant, Variant};

use super::{BUS_NAME, BusAddress, INTERFACE, connect};
use crate::error::{Error, Result};
use crate::install::InstallArgs;
use crate::report::{SlotReport, SystemReport};

/// Connects and checks whether the service is running; `None` if there is no bus or no
/// service.
pub fn connect_if_running(addr: &BusAddress) -> Option<Connection> {
    zbus::block_on(async {
        let conn = connect(addr).await.ok()?;
        let dbus = zbus::fdo::DBusProxy::new(&conn).await.ok()?;
        let name = zbus::names::BusName::try_from(BUS_NAME).ok()?;
        dbus.name_has_owner(name).await.ok()?.then_some(conn)
    })
}

async fn call<B, R>(conn: &Connection, method: &str, body: &B) -> Result<R>
where
    B: serde::Serialize + zbus::wire::DynamicType,
    R: for<'d> serde::Deserialize<'d> + zbus::wire::Type,
{
    let reply = conn
        .call_method(Some(BUS_NAME), "/", Some(INTERFACE), method, body)
        .await
        .map_err(remote_message)?;
    Ok(reply.body().deserialize::<R>()?)
}

/// Strips the D-Bus error name from a method error, as rauc's client does.
fn remote_message(e: zbus::Error) -> Error {
    match &e {
        zbus::Error::MethodError(_, Some(msg), _) => Error::Install(msg.clone()),
        _ => Error::DBus(e),
    }
}

async fn property<R: TryFrom<OwnedVariant>>(conn: &Connection, name: &str) -> Result<R> {
    let props = zbus::fdo::PropertiesProxy::builder(conn)
        .destination(BUS_NAME)
        .path("/")
        .build()
        .await?;
    let iface = zbus::names::InterfaceName::try_from(INTERFACE)?;
    let v = props.get(iface, name).await.map_err(zbus::Error::from)?;
    R::try_from(v).map_err(|_| Error::Install(format!("property {name} has an unexpected type")))
}

/// `rauc status` through the service: properties, `GetPrimary`, `GetSlotStatus`.
pub fn status(conn: &Connection) -> Result<SystemReport> {
    zbus::block_on(async {
        let primary: Option<String> = match call(conn, "GetPrimary", &()).await {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("{e}");
                None
            }
        };
        let slots: Vec<(String, HashMap<String, OwnedVariant>)> =
            call(conn, "GetSlotStatus", &()).await?;
        Ok(SystemReport {
            compatible: property(conn, "Compatible").await?,
            variant: property(conn, "Variant").await?,
            booted: property(conn, "BootSlot").await?,
            primary,
            slots: slots
                .iter()
                .map(|(n, d)| SlotReport::from_dbus(n, d))
                .collect(),
        })
    })
}

/// `Mark(state, identifier)` → (slot name, message).
pub fn mark(conn: &Connection, state: &str, identifier: &str) -> Result<(String, String)> {
    zbus::block_on(call(conn, "Mark", &(state, identifier)))
}

fn install_dict(args: &InstallArgs) -> HashMap<String, OwnedVariant> {
    let mut d = HashMap::new();
    d.insert(
        "ignore-compatible".to_string(),
        OwnedVariant::from(args.ignore_compatible),
    );
    for (k, v) in [
        ("transaction-id", &args.transaction_id),
        ("require-manifest-hash", &args.require_manifest_hash),
    ] {
        if let Some(v) = v
            && let Ok(v) = OwnedVariant::try_from(Variant::from(v.clone()))
        {
            d.insert(k.to_string(), v);
        }
    }
    d
}

/// `rauc install` through the service: calls `InstallBundle`, prints `Operation` changes,
/// progress lines (`"%3d%% %s"`) and `LastError: …` through `print`, and returns the
/// `Completed` result (0 success, 1 failure).
pub fn install(
    conn: &Connection,
    source: &str,
    args: &InstallArgs,
    mut print: impl FnMut(&str),
) -> Result<i32> {
    zbus::block_on(async {
        // Client-side matching compares unique names, so match on the current owner.
        let dbus = zbus::fdo::DBusProxy::new(conn).await?;
        let owner = dbus
            .get_name_owner(zbus::names::BusName::try_from(BUS_NAME)?)
            .await
            .map_err(zbus::Error::from)?;
        let rule = MatchRule::builder()
            .msg_type(Type::Signal)
            .sender(owner.to_string())
            .path("/")
            .build()?;
        let mut stream = MessageStream::for_match_rule(rule, conn, None).await?;
        call::<_, ()>(conn, "InstallBundle", &(source, install_dict(args))).await?;
        while let Some(msg) = stream.next().await {
            let msg = msg?;
            let hdr = msg.header();
            match hdr.member().map(|m| m.as_str()) {
                Some("Completed") => return Ok(msg.body().deserialize::<i32>()?),
                Some("PropertiesChanged") => {
                    type Changed = (String, HashMap<String, OwnedVariant>, Vec<String>);
                    let (_, changed, _): Changed = msg.body().deserialize()?;
                    print_changes(&changed, &mut print);
                }
                _ => {}
            }
        }
        Err(Error::Install("RAUC service disappeared".into()))
    })
}

/// Prints one `PropertiesChanged` the way rauc's client does (first of Operation, Progress,
/// LastError wins).
fn print_changes(changed: &HashMap<String, OwnedVariant>, print: &mut impl FnMut(&str)) {
    if let Some(Variant::Str(op)) = changed.get("Operation").map(|v| &**v) {
        print(op.as_str());
    } else if let Some(v) = changed.get("Progress") {
        if let Ok((p, m, _)) = <(i32, String, i32)>::try_from(
            v.try_clone().unwrap_or_else(|_| OwnedVariant::from(0i32)),
        ) {
            print(&format!("{p:3}% {m}"));
        }
    } else if let Some(Variant::Str(e)) = changed.get("LastError").map(|v| &**v)
        && !e.as_str().is_empty()
    {
        print(&format!("LastError: {}", e.as_str()));
    }
}
