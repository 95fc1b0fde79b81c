//! `veil`: the one binary. See `veil --help`.
#![forbid(unsafe_code)]

mod cli;
mod lambda;
mod lambda_doctor;
mod logging;
mod runtime;
mod sample_tenant;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Under the Lambda runtime the same binary hosts the proxy there.
    let result = if veil_proxy::env_var(runtime::ENV_LAMBDA_RUNTIME_API).is_some()
        && std::env::args().len() <= 1
    {
        lambda::run()
    } else {
        cli::run(cli::Cli::parse())
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("veil: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
