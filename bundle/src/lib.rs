//! The RAUC bundle format, and nothing but the format.
//!
//! A bundle is `payload | CMS | u64 BE length of the CMS` (see `rauc-format.md`). This crate knows
//! how to read and write every part of it: the strict GKeyFile syntax ([`keyfile`]), the manifest
//! ([`manifest`]), the container trailer ([`container`]), the dm-verity hash tree ([`verity`]),
//! the crypt payload cipher ([`crypt`]), the CMS envelopes ([`cms`]) and the target's
//! `system.conf` ([`sysconf`]); [`state`] ties them into
//! the verification states `Bundle → SignedBundle → VerifiedBundle`. It performs no PKCS#11, no
//! D-Bus and no SQL: private-key operations come in through the traits of [`keys`].

pub mod atomic;
pub mod cms;
pub mod container;
pub mod crypt;
pub mod error;
pub mod info;
pub mod keyfile;
pub mod keys;
pub mod manifest;
pub mod state;
pub mod sysconf;
pub mod verity;

pub use error::{Error, Result};

/// A progress callback for long passes over a payload: called, from any worker thread, with the
/// number of bytes just processed.
pub type Progress<'a> = &'a (dyn Fn(u64) + Sync);
