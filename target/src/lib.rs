//! The device side: `system.conf`, slots, opening and verifying a bundle with the device's token
//! key, device-mapper, the install plan and its executor, the status file, bootloader backends
//! and the RAUC-compatible D-Bus service.
//!
//! Flow: [`config::SystemConfig`] → [`slots::determine_states`] → [`source::BundleOpener`]
//! (open + verify + mount) → [`plan::plan_install`] (pure) → [`install::execute_plan`] →
//! [`status`] + [`bootloader`]. [`service`] exposes it as `de.pengutronix.rauc` on D-Bus.

pub mod dm;
pub mod loopdev;
pub mod mount;

pub mod bootloader;
pub mod error;
pub mod install;
pub mod mark;
pub mod plan;
pub mod progress;
pub mod report;
pub mod service;
pub mod slots;
pub mod source;
pub mod status;

pub use bundle::sysconf as config;
pub use error::{Error, Result};
