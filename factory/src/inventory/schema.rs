//! Versioned schema migrations, tracked in `PRAGMA user_version`.
//!
//! Each migration runs in its own `BEGIN IMMEDIATE` transaction together with the
//! `user_version` bump, so a failing migration leaves the database at the previous version and
//! two processes opening a fresh inventory at once migrate it exactly once.

use rusqlite::{Connection, TransactionBehavior};

/// One schema step.
pub(crate) struct Migration {
    /// The `user_version` after this step.
    pub version: u32,
    /// The SQL of the step.
    pub sql: &'static str,
}

/// Why migrating failed.
#[derive(Debug)]
pub(crate) enum MigrateError {
    /// The database is newer than every known migration.
    TooNew { found: u32, supported: u32 },
    /// An SQL error (at `version`, 0 if before any step).
    Sql {
        version: u32,
        source: rusqlite::Error,
    },
}

/// The station's migrations, oldest first.
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    sql: V1,
}];

/// The newest schema version this build knows.
pub(crate) fn latest() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Brings the database up to the last of `migrations`; returns the resulting version.
pub(crate) fn migrate(
    conn: &mut Connection,
    migrations: &[Migration],
) -> Result<u32, MigrateError> {
    let supported = migrations.last().map_or(0, |m| m.version);
    let sql = |version| move |source| MigrateError::Sql { version, source };
    let mut current = user_version(conn).map_err(sql(0))?;
    if current > supported {
        return Err(MigrateError::TooNew {
            found: current,
            supported,
        });
    }
    for m in migrations {
        if m.version <= current {
            continue;
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql(m.version))?;
        // Another process may have migrated while we waited for the write lock.
        let now = user_version(&tx).map_err(sql(m.version))?;
        if now >= m.version {
            current = now;
            continue;
        }
        tx.execute_batch(m.sql).map_err(sql(m.version))?;
        tx.pragma_update(None, "user_version", m.version)
            .map_err(sql(m.version))?;
        tx.commit().map_err(sql(m.version))?;
        tracing::info!(version = m.version, "inventory schema migrated");
        current = m.version;
    }
    Ok(current)
}

/// `PRAGMA user_version`.
pub(crate) fn user_version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// Version 1: devices, provisioning intents, the append-only audit log, CRL history and
/// counters.
const V1: &str = r#"
CREATE TABLE devices (
    id                INTEGER PRIMARY KEY,
    serial            TEXT    NOT NULL UNIQUE,
    grp               TEXT,
    tags              TEXT    NOT NULL DEFAULT '[]',
    status            TEXT    NOT NULL CHECK (status IN ('active', 'revoked', 'retired')),
    key_type          TEXT    NOT NULL CHECK (key_type IN ('ec-p256', 'ec-p384', 'rsa-3072')),
    certificate       BLOB    NOT NULL,
    issuer            TEXT    NOT NULL,
    cert_serial       TEXT    NOT NULL,
    ski               TEXT    NOT NULL,
    spki_sha256       TEXT    NOT NULL,
    not_before        INTEGER NOT NULL,
    not_after         INTEGER NOT NULL,
    token_uri         TEXT    NOT NULL,
    token_description TEXT    NOT NULL,
    key_id            TEXT    NOT NULL,
    key_label         TEXT    NOT NULL,
    ek_cert_sha256    TEXT,
    revocation_reason TEXT,
    revoked_at        INTEGER,
    retired_at        INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (issuer, cert_serial),
    CHECK ((revocation_reason IS NULL) = (revoked_at IS NULL)),
    CHECK (status <> 'revoked' OR revoked_at IS NOT NULL),
    CHECK (status <> 'retired' OR retired_at IS NOT NULL),
    CHECK (status <> 'active' OR (revoked_at IS NULL AND retired_at IS NULL))
);
CREATE INDEX devices_spki ON devices (spki_sha256);
CREATE INDEX devices_active_by_group ON devices (grp, serial) WHERE status = 'active';
CREATE INDEX devices_active_by_serial ON devices (serial) WHERE status = 'active';
CREATE INDEX devices_revoked ON devices (issuer) WHERE revoked_at IS NOT NULL;

-- Recorded BEFORE a key is generated; completed (deleted, together with the device row and its
-- audit entry) or aborted. At most one pending intent per device.
CREATE TABLE provisioning_intents (
    id                INTEGER PRIMARY KEY,
    serial            TEXT    NOT NULL,
    state             TEXT    NOT NULL CHECK (state IN ('pending', 'aborted')),
    stage             TEXT    NOT NULL CHECK (stage IN ('recorded', 'cert-issued')),
    profile           TEXT    NOT NULL,
    key_type          TEXT    NOT NULL CHECK (key_type IN ('ec-p256', 'ec-p384', 'rsa-3072')),
    grp               TEXT,
    tags              TEXT    NOT NULL DEFAULT '[]',
    token_uri         TEXT    NOT NULL,
    token_description TEXT    NOT NULL,
    key_id            TEXT    NOT NULL,
    key_label         TEXT    NOT NULL,
    ek_cert_sha256    TEXT,
    certificate       BLOB,
    owner_host        TEXT    NOT NULL,
    owner_pid         INTEGER NOT NULL,
    owner_start       INTEGER NOT NULL,
    started_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    outcome           TEXT,
    CHECK (stage <> 'cert-issued' OR certificate IS NOT NULL)
);
CREATE UNIQUE INDEX intents_one_pending ON provisioning_intents (serial) WHERE state = 'pending';

-- Append-only; every entry carries the SHA-256 chain hash over its predecessor.
CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    serial    TEXT,
    detail    TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);
CREATE INDEX audit_by_serial ON audit (serial) WHERE serial IS NOT NULL;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE refused');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: DELETE refused');
END;

CREATE TABLE crls (
    number      INTEGER PRIMARY KEY,
    issuer      TEXT    NOT NULL,
    this_update INTEGER NOT NULL,
    next_update INTEGER NOT NULL,
    entries     INTEGER NOT NULL,
    der         BLOB    NOT NULL
);

CREATE TABLE counters (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('crl_number', 0);
"#;

#[cfg(test)]
mod tests {
    use super::*;

    const STEPS: &[Migration] = &[
        Migration {
            version: 1,
            sql: "CREATE TABLE a (x);",
        },
        Migration {
            version: 2,
            sql: "CREATE TABLE b (y);",
        },
    ];

    #[test]
    fn steps_apply_once_and_in_order() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn, &STEPS[..1]).unwrap(), 1);
        assert_eq!(migrate(&mut conn, STEPS).unwrap(), 2);
        assert_eq!(migrate(&mut conn, STEPS).unwrap(), 2);
        conn.execute("INSERT INTO b VALUES (1)", []).unwrap();
    }

    #[test]
    fn failing_step_rolls_back() {
        let bad = [
            Migration {
                version: 1,
                sql: "CREATE TABLE a (x);",
            },
            Migration {
                version: 2,
                sql: "CREATE TABLE c (z); NOT SQL;",
            },
        ];
        let mut conn = Connection::open_in_memory().unwrap();
        let err = migrate(&mut conn, &bad).unwrap_err();
        assert!(matches!(err, MigrateError::Sql { version: 2, .. }));
        assert_eq!(user_version(&conn).unwrap(), 1);
        // The half-applied step left nothing behind.
        assert!(conn.execute("INSERT INTO c VALUES (1)", []).is_err());
    }

    #[test]
    fn newer_database_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 7).unwrap();
        let err = migrate(&mut conn, STEPS).unwrap_err();
        assert!(matches!(
            err,
            MigrateError::TooNew {
                found: 7,
                supported: 2
            }
        ));
    }

    #[test]
    fn station_schema_applies() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn, MIGRATIONS).unwrap(), latest());
    }
}
