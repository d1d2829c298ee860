#!/usr/bin/env bash
# Builds the cargo-fuzz targets with the machine's stable toolchain and runs each briefly.
#
# cargo-fuzz itself is not needed: libfuzzer-sys compiles libFuzzer, and the coverage
# instrumentation cargo-fuzz would pass is made of stable codegen flags (-Cpasses=sancov-module,
# -Cllvm-args=...). The explicit --target keeps those flags away from build scripts.
# ASAN=1 adds AddressSanitizer, which needs an unstable flag (RUSTC_BOOTSTRAP=1 -Zsanitizer).
#
# Environment: FUZZ_RUNS (iterations per target, default 30000), FUZZ_TARGETS (default all),
# CARGO_TARGET_DIR (default ../cargo-target/fuzz). With `cargo fuzz` installed the same targets
# run as usual: `RUSTC_BOOTSTRAP=1 cargo fuzz run manifest`.
set -euo pipefail
cd "$(dirname "$0")"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/../cargo-target/fuzz}"
host=$(rustc -vV | sed -n 's/^host: //p')
flags="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
flags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table"
flags+=" -Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
if [[ "${ASAN:-0}" == 1 ]]; then
    export RUSTC_BOOTSTRAP=1
    flags+=" -Zsanitizer=address"
fi
export RUSTFLAGS="$flags"

# start from the workspace's resolved versions
[[ -f Cargo.lock ]] || cp ../Cargo.lock Cargo.lock

cargo build --release --target "$host" --bins

runs=${FUZZ_RUNS:-30000}
for target in ${FUZZ_TARGETS:-manifest bundle uri}; do
    corpus=$(mktemp -d)
    trap 'rm -rf "$corpus"' EXIT
    cp seeds/"$target"/* "$corpus"/ 2>/dev/null || true
    echo "== fuzz target $target: $runs runs"
    "$CARGO_TARGET_DIR/$host/release/$target" -seed=1 -runs="$runs" -max_len=70000 \
        -artifact_prefix="${TMPDIR:-/tmp}/fuzz-$target-" "$corpus"
    rm -rf "$corpus"
    trap - EXIT
done
echo "fuzz smoke: all targets ran"
