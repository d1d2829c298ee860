//! The build host: create, sign, encrypt, inspect and extract RAUC bundles with keys that live in
//! tokens. The `signer` binary is a thin command line over this library.
//!
//! | verb | module |
//! |---|---|
//! | `bundle` | [`build`] |
//! | `encrypt` | [`encrypt`] |
//! | `info` | [`bundle::info`] (+ [`verify`]) |
//! | `extract`, `extract-signature` | [`extract`] |
//! | `resign`, `replace-signature` | [`resign`] |

pub mod build;
pub mod encrypt;
pub mod error;
pub mod extract;
pub mod identity;
pub mod progress;
pub mod resign;
pub mod squashfs;
pub mod unpack;
pub mod verify;

pub use error::{Error, Result};
