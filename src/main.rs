//! `veil`: the one binary. See `veil --help`.
#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("veil: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
