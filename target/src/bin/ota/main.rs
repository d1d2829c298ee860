//! `ota`: the device-side installer, command-line compatible with `rauc` where it overlaps.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
