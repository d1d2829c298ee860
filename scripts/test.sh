#!/usr/bin/env bash
# Runs every test of the suite: unit and integration tests (SoftHSM, swtpm, rauc 1.8, openssl,
# veritysetup, dbus-daemon), the device-mapper tests inside a QEMU VM, and a short run of every
# fuzz target. Installs what it needs first (scripts/setup.sh). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# shellcheck disable=SC1091
[[ -f "$HOME/.cargo/env" ]] && source "$HOME/.cargo/env"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

log "building the workspace and its tests"
cargo build --workspace --all-targets --locked
log "running the test suite (cargo nextest)"
cargo nextest run --workspace --profile ci --locked
log "fuzz targets: build and short runs"
fuzz/run-smoke.sh
log "all tests passed"
