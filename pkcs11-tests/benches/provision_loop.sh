#!/usr/bin/env bash
# The operator's status quo that `factory provision --batch` replaces, one device at a time with
# the stock tools (run by benches/provision.rs, which sets the environment):
#   1. pkcs11-tool: generate an EC P-256 key pair in the device token,
#   2. pkcs11-tool: read the public key (DER SubjectPublicKeyInfo),
#   3. openssl x509 -new with the libp11 engine: a certificate for that public key, signed by the
#      CA key inside the station token,
#   4. pkcs11-tool: write the certificate into the device token (same id and label),
#   5. sqlite3: record the device in an inventory.
#
# Usage: provision_loop.sh SERIALS_FILE  (one serial per line; device token label dev-SERIAL)
# Environment: MODULE (PKCS#11 module), PIN (user PIN of every token), CA_CERT (PEM),
# CA_KEY (pkcs11: URI of the CA private key), DB (SQLite inventory), WORK (scratch directory),
# DEVICES (DEVICES/SERIAL/softhsm2.conf is the SoftHSM of device SERIAL's token);
# PKCS11_MODULE_PATH and SOFTHSM2_CONF (the station's SoftHSM) for the engine.
set -euo pipefail
: "${MODULE:?}" "${PIN:?}" "${CA_CERT:?}" "${CA_KEY:?}" "${DB:?}" "${WORK:?}" "${DEVICES:?}"

cat >"$WORK/ext.cnf" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, keyAgreement
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
sqlite3 "$DB" "CREATE TABLE IF NOT EXISTS devices (serial TEXT PRIMARY KEY, token TEXT NOT NULL,
  key_id TEXT NOT NULL, spki BLOB NOT NULL, certificate BLOB NOT NULL, provisioned_at TEXT NOT NULL)"

p11() { SOFTHSM2_CONF="$DEVICES/$serial/softhsm2.conf" pkcs11-tool --module "$MODULE" --token-label "$@"; }

i=0
while read -r serial; do
  i=$((i + 1))
  printf -v id '%016x' "$i"
  token="dev-$serial" label="device-$serial" out="$WORK/$serial"
  p11 "$token" --login --pin "$PIN" --keypairgen --key-type EC:prime256v1 \
    --label "$label" --id "$id" >/dev/null
  p11 "$token" --read-object --type pubkey --id "$id" --output-file "$out.spki.der" >/dev/null
  openssl x509 -new -engine pkcs11 -subj "/O=Factory Test/OU=Devices/CN=$serial" \
    -force_pubkey "$out.spki.der" -CA "$CA_CERT" -CAkeyform engine -CAkey "$CA_KEY" \
    -CAserial "$WORK/ca.srl" -CAcreateserial -days 3650 -sha256 -extfile "$WORK/ext.cnf" \
    -outform DER -out "$out.cert.der"
  p11 "$token" --login --pin "$PIN" --write-object "$out.cert.der" --type cert \
    --id "$id" --label "$label" >/dev/null
  sqlite3 "$DB" "INSERT INTO devices VALUES ('$serial', 'pkcs11:token=$token', '$id',
    readfile('$out.spki.der'), readfile('$out.cert.der'), datetime('now'))"
done <"$1"
