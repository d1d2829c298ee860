//! Provisioning station: device keys, CA issuing, SQLite inventory, recipients, CRLs.
