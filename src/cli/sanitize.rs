//! `veil sanitize`: apply a rule file to one response, as the proxy would.
//!
//! Contract (other tooling calls exactly this):
//! `veil sanitize --rules FILE --url URL [--scheme hmac|psoxy] [--explain] [INPUT]`
//! reads INPUT (stdin when absent), writes sanitized JSON to stdout, exit 0.
//! Secrets come from `VEIL_SALT` and `VEIL_ENCRYPTION_KEY`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use veil_engine::policy::{split_url, Request, Side};
use veil_engine::pseudonym::{Pseudonymizer, Scheme};
use veil_engine::rules::RuleSet;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The rule file (YAML or JSON).
    #[arg(long)]
    rules: PathBuf,
    /// The request URL the response answers: a full Graph URL or a bare path.
    #[arg(long)]
    url: String,
    /// The HTTP method of the request.
    #[arg(long, default_value = "GET")]
    method: String,
    /// Pseudonym scheme (default: VEIL_SCHEME, else hmac).
    #[arg(long)]
    scheme: Option<Scheme>,
    /// Print, on stderr, how many values each transform changed.
    #[arg(long)]
    explain: bool,
    /// Write compact JSON instead of pretty-printed.
    #[arg(long)]
    compact: bool,
    /// The response body (JSON); stdin when absent.
    input: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let rules = RuleSet::from_file(&a.rules).map_err(|e| anyhow!("{e}"))?;
    for w in &rules.warnings {
        eprintln!("veil: warning: {w}");
    }
    let (path, query) = split_url(&a.url);
    let allowed = match rules.match_request(
        Request {
            method: &a.method,
            path: &path,
            query: query.as_deref(),
        },
        Side::Upstream,
    ) {
        Ok(m) => m,
        Err(refusal) => {
            eprintln!("veil: refused: {} {}: {refusal}", a.method, a.url);
            return Ok(ExitCode::from(3));
        }
    };
    let (input_name, text) = read_input(a.input.as_ref())?;
    let mut doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        anyhow!(
            "{input_name}:{}:{}: the input is not valid JSON: {e}",
            e.line(),
            e.column()
        )
    })?;
    let config = veil_proxy::config::pseudonym_config_from_env(a.scheme).map_err(|e| anyhow!(e))?;
    let p = Pseudonymizer::new(config).map_err(|e| anyhow!("{e}"))?;
    let endpoint = allowed.endpoint;
    let report = endpoint
        .sanitize(&mut doc, &p)
        .map_err(|e| anyhow!("sanitizing failed, nothing was written: {e}"))?;
    let out = if a.compact {
        serde_json::to_string(&doc)?
    } else {
        serde_json::to_string_pretty(&doc)?
    };
    println!("{out}");
    if a.explain {
        eprintln!("endpoint: {}", endpoint.label);
        if endpoint.sanitizer.has_schema() {
            eprintln!(
                "  responseSchema: {} values removed or nulled",
                report.schema_changes
            );
        }
        for (i, t) in endpoint.sanitizer.transforms().iter().enumerate() {
            let note = if report.active[i] {
                String::new()
            } else {
                " (skipped: applyOnlyWhen matched nothing)".into()
            };
            eprintln!(
                "  #{i} {} [{}]: {} values changed{note}",
                t.transform.name(),
                t.paths.join(", "),
                report.changes[i]
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_input(path: Option<&PathBuf>) -> anyhow::Result<(String, String)> {
    match path {
        Some(p) => Ok((
            p.display().to_string(),
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        )),
        None => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read stdin")?;
            Ok(("<stdin>".into(), s))
        }
    }
}
