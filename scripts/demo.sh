#!/usr/bin/env bash
# The main job end to end on an embedded default, in a temporary directory:
#   a station HSM (SoftHSM token) with the device CA key and a release key inside it,
#   device tokens provisioned by `factory` (keys generated in the tokens, certificates from the
#   station CA, a SQLite inventory), a crypt bundle built and signed by `signer` with the HSM
#   release key and checked by the real rauc 1.8, encrypted to the inventory's recipient list,
#   decrypted with a device's token key; then a device is revoked: it is on the CRL, off the next
#   recipient list, and cannot open the next release.
# Installs what it needs first (scripts/setup.sh). Idempotent; leaves nothing behind unless
# KEEP=1 (then the directory is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# shellcheck disable=SC1091
[[ -f "$HOME/.cargo/env" ]] && source "$HOME/.cargo/env"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }
fail() { printf '\033[31mdemo failed: %s\033[0m\n' "$*" >&2; exit 1; }

step "building keymgr, signer and factory (release)"
cargo build --release --locked --bins -p keymgr -p signer -p factory
BIN=$PWD/cargo-target/release
keymgr() { "$BIN/keymgr" "$@"; }
signer() { "$BIN/signer" "$@"; }
factory() { "$BIN/factory" "$@"; }

WORK=$(mktemp -d /tmp/ota-demo.XXXXXX)
if [[ "${KEEP:-0}" == 1 ]]; then
  trap 'echo "demo files kept in $WORK" >&2' EXIT
else
  trap 'rm -rf "$WORK"' EXIT
fi
cd "$WORK"

MODULE=/usr/lib/softhsm/libsofthsm2.so
PIN=4711
DEVICES=(0001 0002 0003 0004)

step "temporary SoftHSM: a station token and ${#DEVICES[@]} device tokens"
mkdir tokens
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
  "$WORK" >softhsm2.conf
export SOFTHSM2_CONF=$WORK/softhsm2.conf PKCS11_MODULE_PATH=$MODULE
# PINs come from a file (pin-source) or the environment, never from the command line.
printf '%s\n' "$PIN" >user.pin
chmod 600 user.pin
export RAUC_PKCS11_PIN=$PIN
for label in station "${DEVICES[@]/#/dev-}"; do
  softhsm2-util --init-token --free --label "$label" --so-pin 12345678 --pin "$PIN" >/dev/null
done
keymgr tokens

cat >station.toml <<EOF
inventory = "inventory.sqlite"
[ca]
key = "pkcs11:token=station;object=device-ca;type=private"
cert = "pkcs11:token=station;object=device-ca;type=cert"
module = "$MODULE"
pin-source = "$WORK/user.pin"
subject = "/O=Demo/CN=Demo Device CA"
[profiles.default]
subject = "/O=Demo/OU=Devices/CN={serial}"
[profiles.release]
usage = "signer"
subject = "/O=Demo/OU=Release/CN={serial}"
[device-token]
uri = "pkcs11:token=dev-{serial}"
module = "$MODULE"
pin-source = "$WORK/user.pin"
EOF
export FACTORY_CONFIG=$WORK/station.toml

step "station CA: key generated inside the station token, self-signed certificate"
factory ca init --out ca.pem
openssl x509 -in ca.pem -noout -subject -ext basicConstraints

step "release key generated in the station token, its certificate issued by the station CA"
keymgr generate --key-type ec:prime256v1 'pkcs11:token=station;object=release'
factory ca issue --key 'pkcs11:token=station;object=release' --profile release \
  --name release-2026 --out release.pem --store
openssl verify -CAfile ca.pem release.pem

step "provisioning ${#DEVICES[@]} devices (EC P-256 keys generated inside each device token)"
{ echo serial,group; printf '%s,line-a\n' "${DEVICES[@]}"; } >devices.csv
factory provision --batch devices.csv
factory list

step "a crypt bundle, signed with the HSM release key"
mkdir content
head -c 8M /dev/urandom >content/rootfs.img
cat >content/manifest.raucm <<EOF
[update]
compatible=Demo Device
version=2026.11

[bundle]
format=crypt

[image.rootfs]
filename=rootfs.img
EOF
signer bundle --cert 'pkcs11:token=station;object=release;type=cert' \
  --key 'pkcs11:token=station;object=release' --keyring ca.pem content release.raucb
step "rauc 1.8 verifies what we signed"
rauc info --keyring ca.pem release.raucb >/dev/null 2>rauc.err || { cat rauc.err; fail "rauc info"; }
echo "rauc info: signature verified, $(rauc info --keyring ca.pem --output-format=shell release.raucb 2>/dev/null | grep -c '^RAUC_IMAGE_NAME') image(s)"

step "encrypting the bundle to the recipient list from the inventory"
factory recipients --group line-a --out recipients-1.pem
signer encrypt --to recipients-1.pem --keyring ca.pem release.raucb release-enc.raucb

step "device 0001 decrypts and verifies it with the key in its own token"
signer info --keyring ca.pem --key 'pkcs11:token=dev-0001;object=device-0001;type=private' \
  release-enc.raucb
signer extract --keyring ca.pem --key 'pkcs11:token=dev-0001;object=device-0001;type=private' \
  release-enc.raucb extracted
cmp content/rootfs.img extracted/rootfs.img && echo "extracted image identical to the input"

step "revoking device 0004: CRL, next recipient list, next release"
factory revoke --device 0004 --reason key-compromise
factory crl --out crl.pem
openssl crl -in crl.pem -CAfile ca.pem -verify -noout -text 2>&1 | grep -E -A1 'verify OK|Serial Number|Reason Code' || true
factory recipients --group line-a --out recipients-2.pem
signer encrypt --to recipients-2.pem --keyring ca.pem release.raucb release-enc-2.raucb
if signer info --keyring ca.pem --key 'pkcs11:token=dev-0004;object=device-0004;type=private' \
  release-enc-2.raucb >/dev/null 2>revoked.err; then
  fail "the revoked device could decrypt the next release"
fi
echo "device 0004 cannot open the next release: $(tail -n1 revoked.err)"
signer info --keyring ca.pem --key 'pkcs11:token=dev-0002;object=device-0002;type=private' \
  release-enc-2.raucb >/dev/null && echo "device 0002 still can"

step "inventory reconciled with the device tokens"
factory verify --all
factory show 0004

step "demo finished: every step above used keys that never left their tokens"
