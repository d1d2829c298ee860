//! `signer`: build, sign, encrypt, inspect and extract RAUC bundles with keys in tokens.

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
