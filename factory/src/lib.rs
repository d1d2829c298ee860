//! Provisioning station: device keys, CA issuing, SQLite inventory, recipients, CRLs.
//!
//! The station generates each device's key pair inside the device's token, issues its
//! certificate from a CA whose key stays in the station HSM, records the device in an SQLite
//! inventory and produces recipient lists and CRLs from it.
//!
//! * [`config`]: the station configuration (TOML, two stages, unknown keys are errors).
//! * [`inventory`]: the SQLite inventory (the only module that talks SQL).
//! * [`ca`]: certificates and CRLs signed by a CA key behind [`bundle::keys::ContentSigner`].
//! * [`csr`]: PKCS#10 requests signed inside a token.
//! * [`provision`]: the provisioning planner and executor over the token seam
//!   ([`provision::DeviceToken`], [`provision::StationHsm`]).
//! * [`recipients`], [`transfer`]: recipient lists and JSON-lines export/import.

pub mod ca;
pub mod cert;
pub mod config;
pub mod csr;
pub mod error;
pub mod fleet;
pub mod inventory;
pub mod process;
pub mod provision;
pub mod recipients;
pub mod tokens;
pub mod transfer;
pub mod types;

pub use error::{FactoryError, Result};
