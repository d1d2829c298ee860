//! `keymgr`: manage keys and certificates in PKCS#11 tokens by `pkcs11:` URI.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
