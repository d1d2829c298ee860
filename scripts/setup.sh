#!/usr/bin/env bash
# Installs everything the suite needs on Debian 12 (bookworm), as root. Idempotent: packages that
# are already installed are not touched, Rust tools that exist are not rebuilt.
set -euo pipefail

PACKAGES=(
  rauc softhsm2 opensc gnutls-bin libengine-pkcs11-openssl squashfs-tools cryptsetup-bin dmsetup
  swtpm swtpm-tools tpm2-tools libtpm2-pkcs11-1 libtpm2-pkcs11-tools tpm2-abrmd libtss2-tcti-tabrmd0
  libtss2-dev libdevmapper-dev libclang-dev pkg-config libssl-dev libdbus-1-dev dbus busybox-static
  python3 sqlite3 qemu-system-x86 e2fsprogs ca-certificates curl gcc g++ make
)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

missing_packages() {
  local p
  for p in "${PACKAGES[@]}" qemu-utils; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
  done
}

# The machine image may carry qemu-utils from bookworm-backports, which breaks qemu-system-x86 from
# bookworm (environment.md §1). Pin qemu-utils to the version bookworm itself offers.
qemu_utils_spec() {
  local installed bookworm
  installed=$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)
  bookworm=$(apt-cache madison qemu-utils | awk -F'|' '/bookworm\/main|bookworm-security\/main/ {gsub(/ /,"",$2); print $2; exit}')
  if [[ -n "$installed" && -n "$bookworm" && "$installed" != "$bookworm" ]] \
     && dpkg --compare-versions "$installed" ge 1:8; then
    echo "qemu-utils=$bookworm"
  else
    echo "qemu-utils"
  fi
}

install_packages() {
  local missing
  missing=$(missing_packages)
  if [[ -z "$missing" ]]; then
    log "Debian packages: all present"
    return
  fi
  log "Debian packages: installing $(echo $missing | wc -w) missing"
  [[ $(id -u) -eq 0 ]] || { echo "setup.sh must run as root to install packages" >&2; exit 1; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --allow-downgrades \
    "${PACKAGES[@]}" "$(qemu_utils_spec)" >/dev/null
}

install_rust_tools() {
  if ! command -v cargo >/dev/null; then
    log "Rust: installing rustup (stable)"
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >/dev/null
    # shellcheck disable=SC1091
    source "$HOME/.cargo/env"
  fi
  if ! cargo nextest --version >/dev/null 2>&1; then
    log "Rust: installing cargo-nextest"
    cargo install --locked cargo-nextest
  fi
}

install_packages
install_rust_tools
log "setup complete"
