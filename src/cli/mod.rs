//! Command-line interface: one module per subcommand.

mod demo;
mod doctor;
mod review;
pub mod rules;
mod sanitize;
mod serve;
mod setup;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Veil: a privacy-preserving, pseudonymizing proxy for Microsoft Graph.
#[derive(Debug, Parser)]
#[command(name = "veil", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sanitize one Graph response with a rule file (the rule author's command).
    Sanitize(sanitize::Args),
    /// Run Veil in front of a sample tenant and play an analytics client's calls.
    Demo(demo::Args),
    /// Run the proxy (HTTP/1.1 and HTTP/2, optional TLS).
    Serve(serve::Args),
    /// Test, report on and lint rule files against sample responses.
    Rules(rules::Args),
    /// Check the deployed configuration end to end and say what to fix.
    Doctor(doctor::Args),
    /// Print the Microsoft 365 administrator's runbook: consent, permissions, mailbox scoping, federated credential.
    Setup(setup::Args),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Sanitize(a) => sanitize::run(a),
        Command::Rules(a) => rules::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Doctor(a) => doctor::run(a),
        Command::Setup(a) => setup::run(a),
    }
}
