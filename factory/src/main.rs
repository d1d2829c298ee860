//! `factory`: the provisioning station's command line (a thin layer over the `factory`
//! library).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
