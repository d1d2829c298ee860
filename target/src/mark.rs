//! `rauc status mark-good|mark-bad|mark-active [booted|other|SLOT]` and the D-Bus `Mark` method.

use crate::bootloader::BootState;
use crate::config::SlotConfig;
use crate::error::{Error, Result};
use crate::install::Context;
use crate::slots::slot_by_identifier;
use crate::status::timestamp_now;

/// The state to mark a slot with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkState {
    /// `good`: bootable.
    Good,
    /// `bad`: not bootable.
    Bad,
    /// `active`: primary (boot next), recorded as activated in the status file.
    Active,
}

impl MarkState {
    /// Parses `good`, `bad`, `active`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "good" => Some(Self::Good),
            "bad" => Some(Self::Bad),
            "active" => Some(Self::Active),
            _ => None,
        }
    }
}

/// Makes `slot` primary and records the activation (`activated.timestamp`, `activated.count`).
pub fn mark_active(ctx: &Context, slot: &SlotConfig) -> Result<()> {
    ctx.bootloader
        .set_primary(slot)
        .map_err(|e| Error::Install(format!("failed to activate slot {}: {e}", slot.name)))?;
    let mut status = ctx.status.load()?.get(&slot.name);
    status.activated_timestamp = Some(timestamp_now());
    status.activated_count = status.activated_count.saturating_add(1);
    ctx.status.save_slot(&slot.name, &status).map_err(|e| {
        Error::Install(format!(
            "activated slot {}, but failed to write status file: {e}",
            slot.name
        ))
    })
}

/// Marks a slot; returns `(slot name, message)` like RAUC, e.g.
/// `("rootfs.1", "marked slot rootfs.1 as good")`. Errors carry RAUC's message.
pub fn mark(ctx: &Context, state: &str, identifier: &str) -> Result<(String, String)> {
    let states = ctx
        .slot_states()
        .map_err(|e| Error::Slot(format!("Failed to determine slot states: {e}")))?;
    let slot = slot_by_identifier(&ctx.config, &states, identifier)?;
    let name = slot.name.clone();
    let msg = match MarkState::parse(state) {
        Some(MarkState::Good) => ctx
            .bootloader
            .set_state(slot, BootState::Good)
            .map(|_| format!("marked slot {name} as good"))
            .map_err(|e| format!("Failed marking slot {name} as good: {e}")),
        Some(MarkState::Bad) => ctx
            .bootloader
            .set_state(slot, BootState::Bad)
            .map(|_| format!("marked slot {name} as bad"))
            .map_err(|e| format!("Failed marking slot {name} as bad: {e}")),
        Some(MarkState::Active) => mark_active(ctx, slot)
            .map(|_| format!("activated slot {name}"))
            .map_err(|e| e.to_string()),
        None => Err(format!("unknown subcommand {state}")),
    };
    msg.map(|m| (name, m)).map_err(Error::Slot)
}
