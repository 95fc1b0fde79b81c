//! `veil sanitize`: apply a rule file to one response, as the proxy would.
//!
//! Contract (other tooling calls exactly this):
//! `veil sanitize --rules FILE --url URL [--scheme hmac|psoxy] [--explain] [INPUT]`
//! reads INPUT (stdin when absent), writes sanitized JSON to stdout, exit 0.
//! Secrets come from `VEIL_SALT` and `VEIL_ENCRYPTION_KEY`.
//!
//! With `--compact` the response is sanitized as the proxy does it,
//! streaming over the bytes without a document tree
//! (the engine's `stream` module), and written as it is produced. An input file
//! is read in pieces, twice ([`veil_engine::sanitize_body_read_to`]): a
//! first pass proves the whole body sanitizes, so on failure nothing is
//! written, the second writes; memory is a window of the input (about one
//! element of `value[]`) and a piece of the output, not the file. Bodies
//! the streaming path hands back (a duplicate member name, invalid JSON for
//! the error's line and column, a failing transform for its message) are
//! read once more, whole. Stdin (or a named pipe) cannot be read twice: it
//! is read whole into memory and sanitized from there in the same two
//! passes ([`veil_engine::sanitize_body_to`]). The pretty-printed output needs
//! the sanitized document as a tree, so without `--compact` the DOM
//! sanitizer runs on the whole input (same result, more memory).

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use veil_engine::{
    sanitize_body_read_to, sanitize_body_to, split_url, BodyError, BodyOptions, BodyWriteError,
    PolicyRequest, Pseudonymizer, RequestSide, RuleSet, Scheme,
};

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
    /// Write compact JSON instead of pretty-printed, streaming: an INPUT
    /// file is read in pieces, twice (a pass that proves the whole response
    /// sanitizes, then one that writes), so memory stays far below the
    /// file's size and nothing is written when it fails; stdin (or a pipe)
    /// is read whole into memory first. The file must not change meanwhile.
    #[arg(long)]
    compact: bool,
    /// Accept a psoxy-scheme salt (or key) that fails the strength checks:
    /// the salt of an existing Psoxy deployment (VEIL_ALLOW_LEGACY_SHORT_SALT).
    #[arg(long)]
    allow_legacy_short_salt: bool,
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
        PolicyRequest {
            method: &a.method,
            path: &path,
            query: query.as_deref(),
        },
        RequestSide::Upstream,
    ) {
        Ok(m) => m,
        Err(refusal) => {
            eprintln!("veil: refused: {} {}: {refusal}", a.method, a.url);
            return Ok(ExitCode::from(3));
        }
    };
    // With `--compact` a regular file is read later, in pieces, once per
    // pass (it must open now); anything else (stdin, a pipe given by name)
    // is read whole now.
    let (input_name, body) = match (&a.input, a.compact) {
        (Some(path), true)
            if File::open(path)
                .and_then(|f| f.metadata())
                .with_context(|| format!("cannot read {}", path.display()))?
                .is_file() =>
        {
            (path.display().to_string(), None)
        }
        (input, _) => {
            let (name, body) = read_input(input.as_ref())?;
            (name, Some(body))
        }
    };
    let not_json = |line: usize, column: usize, e: &dyn std::fmt::Display| {
        anyhow!("{input_name}:{line}:{column}: the input is not valid JSON: {e}")
    };
    let options = veil_proxy::SecretOptions {
        allow_legacy_short_salt: a.allow_legacy_short_salt,
    };
    let (config, report) =
        veil_proxy::load_local_pseudonym_config(a.scheme, &veil_proxy::ProcessEnv, options)
            .map_err(|e| anyhow!(e))?;
    for w in report.warnings() {
        eprintln!("veil: warning: {w}");
    }
    let p = Pseudonymizer::new(config).map_err(|e| anyhow!("{e}"))?;
    let endpoint = allowed.endpoint;
    let failed = |e: &dyn std::fmt::Display| anyhow!("sanitizing failed, nothing was written: {e}");
    let body_error = |e: BodyError| match e {
        BodyError::InvalidJson {
            line,
            column,
            message,
        } => not_json(line, column, &message),
        e @ (BodyError::Transform(_) | BodyError::TooDeep { .. }) => failed(&e),
    };
    let mut stdout = std::io::stdout().lock();
    let written = if a.compact {
        // Written as it is produced: memory is a window of a file (read in
        // pieces, see `sanitize_body_read_to`) or all of stdin, and a
        // bounded piece of the output.
        let opts = BodyOptions::default();
        let (san, label) = (&endpoint.sanitizer, &endpoint.label);
        let result = match (&body, &a.input) {
            (Some(body), _) => sanitize_body_to(san, body, &p, label, &opts, &mut stdout),
            (None, Some(path)) => {
                sanitize_body_read_to(san, || File::open(path), &p, label, &opts, &mut stdout)
            }
            (None, None) => return Err(anyhow!("no input")),
        };
        match result {
            Ok(report) => Ok(report),
            Err(BodyWriteError::Body(e)) => return Err(body_error(e)),
            Err(BodyWriteError::Io(e)) => Err(e),
            Err(BodyWriteError::Read(e)) => {
                return Err(anyhow::Error::new(e).context(format!("cannot read {input_name}")))
            }
            Err(e @ BodyWriteError::Incomplete) => return Err(anyhow!("sanitizing failed: {e}")),
        }
        .and_then(|report| {
            stdout.write_all(b"\n")?;
            stdout.flush()?;
            Ok(report)
        })
    } else {
        let body = body.unwrap_or_default();
        let mut doc: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| not_json(e.line(), e.column(), &e))?;
        drop(body);
        let report = endpoint.sanitize(&mut doc, &p).map_err(|e| failed(&e))?;
        let mut out = serde_json::to_vec_pretty(&doc)?;
        drop(doc);
        out.push(b'\n');
        stdout
            .write_all(&out)
            .and_then(|()| stdout.flush())
            .map(|()| report)
    };
    let report = match written {
        Ok(report) => report,
        // `veil sanitize … | head`: the reader had enough.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(anyhow::Error::new(e).context("cannot write the output")),
    };
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

fn read_input(path: Option<&PathBuf>) -> anyhow::Result<(String, Vec<u8>)> {
    match path {
        Some(p) => Ok((
            p.display().to_string(),
            std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?,
        )),
        None => {
            let mut b = Vec::new();
            std::io::stdin()
                .read_to_end(&mut b)
                .context("cannot read stdin")?;
            Ok(("<stdin>".into(), b))
        }
    }
}
