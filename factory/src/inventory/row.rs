//! Column lists and row ⇄ value conversions shared by the inventory's queries.

use rusqlite::Row;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use super::devices::{DeviceRecord, Revocation};
use crate::types::{DeviceSerial, DeviceStatus, KeyId, KeyType, RevocationReason};

/// The device columns, in the order [`device_from_row`] reads them.
pub(crate) const DEVICE_COLUMNS: &str = "serial, grp, tags, status, key_type, certificate, issuer, \
     cert_serial, ski, spki_sha256, not_before, not_after, token_uri, token_description, key_id, \
     key_label, ek_cert_sha256, revocation_reason, revoked_at, retired_at, created_at, updated_at";

/// Reads a column through `FromStr` (serial, status, key type, reason).
pub(crate) struct Parsed<T>(pub T);

impl<T: std::str::FromStr> FromSql for Parsed<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = value.as_str()?;
        s.parse()
            .map(Parsed)
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

/// Tags are stored as a JSON array of strings.
pub(crate) fn tags_to_sql(tags: &[String]) -> String {
    serde_json::to_string(tags).expect("string list serializes")
}

pub(crate) fn tags_from_sql(value: &str) -> rusqlite::Result<Vec<String>> {
    serde_json::from_str(value).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Key ids are stored as lower-case hex.
impl ToSql for KeyId {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.to_hex()))
    }
}

impl FromSql for KeyId {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        KeyId::from_hex(value.as_str()?).map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

macro_rules! to_sql_by_name {
    ($($t:ty),*) => {$(
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.name()))
            }
        }
    )*};
}
to_sql_by_name!(DeviceStatus, KeyType, RevocationReason);

impl ToSql for DeviceSerial {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

/// Reads a full device row selected with [`DEVICE_COLUMNS`].
pub(crate) fn device_from_row(row: &Row<'_>) -> rusqlite::Result<DeviceRecord> {
    let reason: Option<Parsed<RevocationReason>> = row.get(17)?;
    let revoked_at: Option<i64> = row.get(18)?;
    Ok(DeviceRecord {
        serial: row.get::<_, Parsed<DeviceSerial>>(0)?.0,
        group: row.get(1)?,
        tags: tags_from_sql(&row.get::<_, String>(2)?)?,
        status: row.get::<_, Parsed<DeviceStatus>>(3)?.0,
        key_type: row.get::<_, Parsed<KeyType>>(4)?.0,
        certificate: row.get(5)?,
        issuer: row.get(6)?,
        cert_serial: row.get(7)?,
        ski: row.get(8)?,
        spki_sha256: row.get(9)?,
        not_before: row.get(10)?,
        not_after: row.get(11)?,
        token_uri: row.get(12)?,
        token_description: row.get(13)?,
        key_id: row.get(14)?,
        key_label: row.get(15)?,
        ek_cert_sha256: row.get(16)?,
        revocation: match (reason, revoked_at) {
            (Some(Parsed(reason)), Some(at)) => Some(Revocation { reason, at }),
            _ => None,
        },
        retired_at: row.get(19)?,
        created_at: row.get(20)?,
        updated_at: row.get(21)?,
    })
}
