//! The device inventory: the only module of the station that talks SQL.
//!
//! SQLite in WAL mode with a busy timeout and `synchronous=FULL` (a committed provisioning
//! intent must survive a power cut, or a key could exist without its record). Every change is
//! one `BEGIN IMMEDIATE` transaction, so several station processes can write the same inventory
//! at once without losing a row, and a failing change leaves nothing behind. The audit table
//! is append-only (triggers reject UPDATE and DELETE) and hash-chained.
//!
//! One [`Inventory`] is one connection: open one per thread.

mod audit;
mod crl;
mod devices;
mod intents;
mod row;
pub(crate) mod schema;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::error::{FactoryError, Result};

pub use audit::AuditEntry;
pub use crl::CrlRecord;
pub use devices::{DeviceFilter, DeviceOrigin, DeviceRecord, ImportItem, Revocation};
pub use intents::{Intent, IntentId, IntentStage, NewIntent};

/// How long a writer waits for another process's transaction before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// An open inventory database.
pub struct Inventory {
    conn: Connection,
    path: PathBuf,
    actor: String,
}

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inventory")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Inventory {
    /// Opens (creating if needed) and migrates the inventory at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let sql = |what: &str| {
            let what = what.to_string();
            move |source| FactoryError::Sqlite {
                path: path.to_path_buf(),
                what,
                source,
            }
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let mut conn = Connection::open_with_flags(path, flags).map_err(sql("opening"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(sql("setting busy_timeout"))?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(sql("switching to WAL mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(FactoryError::Sqlite {
                path: path.to_path_buf(),
                what: format!("switching to WAL mode (got '{mode}')"),
                source: rusqlite::Error::InvalidQuery,
            });
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql("setting synchronous"))?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(sql("enabling foreign keys"))?;
        schema::migrate(&mut conn, schema::MIGRATIONS).map_err(|e| match e {
            schema::MigrateError::TooNew { found, supported } => FactoryError::SchemaTooNew {
                path: path.to_path_buf(),
                found,
                supported,
            },
            schema::MigrateError::Sql { version, source } => FactoryError::Sqlite {
                path: path.to_path_buf(),
                what: format!("migrating the schema to version {version}"),
                source,
            },
        })?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            actor: crate::process::actor(),
        })
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the actor recorded in audit entries (default: `user@host[pid]`).
    pub fn set_actor(&mut self, actor: impl Into<String>) {
        self.actor = actor.into();
    }

    /// The schema version (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<u32> {
        schema::user_version(&self.conn).map_err(self.sql("reading user_version"))
    }

    /// The newest schema version this build knows (what [`Inventory::open`] migrates to).
    pub fn latest_schema_version() -> u32 {
        schema::latest()
    }

    /// The journal mode (`wal` once opened).
    pub fn journal_mode(&self) -> Result<String> {
        self.conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .map_err(self.sql("reading journal_mode"))
    }

    /// Maps an SQLite error to [`FactoryError::Sqlite`] with the path and operation.
    fn sql(&self, what: &str) -> impl FnOnce(rusqlite::Error) -> FactoryError + use<> {
        let path = self.path.clone();
        let what = what.to_string();
        move |source| FactoryError::Sqlite { path, what, source }
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction: committed if `f` succeeds, rolled back
    /// (nothing written) if it fails.
    fn write<T>(&mut self, what: &str, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        let err = self.sql(what);
        let commit_err = self.sql(&format!("{what} (commit)"));
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let ctx = Tx {
            tx,
            path: &self.path,
            actor: &self.actor,
        };
        let value = f(&ctx)?;
        ctx.tx.commit().map_err(commit_err)?;
        Ok(value)
    }
}

/// A write transaction with the context its helpers need for errors and audit entries.
pub(crate) struct Tx<'a> {
    tx: Transaction<'a>,
    path: &'a Path,
    actor: &'a str,
}

impl Tx<'_> {
    fn sql(&self, what: &str) -> impl FnOnce(rusqlite::Error) -> FactoryError + use<> {
        let path = self.path.to_path_buf();
        let what = what.to_string();
        move |source| FactoryError::Sqlite { path, what, source }
    }
}
