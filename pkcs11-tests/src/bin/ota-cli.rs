//! The `ota` command line, compiled a second time as a binary of this package.
//!
//! Cargo hands integration tests and benchmarks only their own package's binaries
//! (`CARGO_BIN_EXE_<name>`), and the VM tests must copy `ota` into the guest. This file includes
//! the very same CLI source as `target/src/bin/ota/main.rs` (no copy, no changes), so the guest
//! runs exactly the code that ships; in the guest it is installed as `/bin/ota`.

#[path = "../../../target/src/bin/ota/cli/mod.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
