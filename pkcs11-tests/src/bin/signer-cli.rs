//! The `signer` command line, compiled a second time as a binary of this package, so that the
//! VM tests and benchmarks build their bundles with the real `signer bundle` and
//! `signer encrypt` (Cargo gives tests only their own package's binaries). It includes the very
//! same CLI source as `signer/src/main.rs`.

#[path = "../../../signer/src/cli/mod.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
