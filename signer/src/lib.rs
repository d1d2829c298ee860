//! The build host: create, sign, encrypt, inspect and extract RAUC bundles with keys that live in
//! tokens. The `signer` binary is a thin command line over this library.

pub mod error;
pub mod output;
pub mod squashfs;
pub mod unpack;

pub use error::{Error, Result};
