//! `veil rules …`: the rule author's test loop.
//!
//! - `test [--update]`: sanitize every sample with its request URL, compare
//!   with the golden output (or, with `--update`, rewrite it and show what
//!   changed), check that paging links round-trip, and check that no
//!   sensitive value of the fictional tenant survives and that the generic
//!   detectors ([`veil_engine::find_personal_data_in_json`]) find nothing in what leaves;
//! - `report`: what leaves the building, per sample, and each transform's
//!   match counts (dead transforms flagged);
//! - `lint`: static checks of the rule files;
//! - `schema`: the JSON Schema of rule files, generated from the model.
//!
//! Layout it works on: `rules/<connector>.yaml` (default variant) and
//! `rules/<connector>.<variant>.yaml` (`clear-ids`, `no-groups`,
//! `clear-ids-no-groups`); `example-api-responses/<connector>/` with
//! `requests.yaml`, `original/*.json`, and goldens in `sanitized/` (default
//! variant) and `sanitized/<variant>/`. A no-groups variant must refuse the
//! group samples. `--rules-dir` and `--samples-dir` move both; `--rules FILE`
//! takes one rule file of any name, tested on its connector's samples.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use serde::Deserialize;
use serde_json::Value;
use veil_engine::{
    reidentify_for, split_url, EmailPolicy, Planted, PolicyRequest, PseudonymConfig, Pseudonymizer,
    RequestSide, RuleSet, Scheme, Secret,
};

use crate::runtime::{GOLDEN_KEY, GOLDEN_SALT};

mod check;
mod lint;
mod report;

use check::test;
use lint::lint;
use report::{report, review};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: RulesCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RulesCommand {
    /// Sanitize every sample and compare with its golden output.
    Test {
        /// Rewrite the golden files instead of comparing.
        #[arg(long)]
        update: bool,
        #[command(flatten)]
        corpus: CorpusArgs,
    },
    /// Show every string value that leaves Veil unchanged, and transform match counts.
    Report {
        #[command(flatten)]
        corpus: CorpusArgs,
    },
    /// Static checks: dead transforms, endpoints without a sample, overlaps, shadowed transforms.
    Lint {
        #[command(flatten)]
        corpus: CorpusArgs,
    },
    /// Write the privacy review page: one self-contained HTML file with, per
    /// endpoint, the fields that leave and, per sample, the original and the
    /// sanitized response side by side with every change marked.
    Review {
        /// Where to write the page.
        #[arg(long, default_value = "review.html")]
        out: PathBuf,
        #[command(flatten)]
        corpus: CorpusArgs,
    },
    /// Print the JSON Schema of rule files.
    Schema,
}

#[derive(Debug, clap::Args)]
struct CorpusArgs {
    /// Only this connector (e.g. outlook-mail); with `--rules`, the
    /// connector whose samples the file is tested on.
    #[arg(long)]
    connector: Option<String>,
    /// Directory of the rule files, named `<connector>.yaml` and
    /// `<connector>.<variant>.yaml`.
    #[arg(long, default_value = "rules", conflicts_with = "rules")]
    rules_dir: PathBuf,
    /// One rule file, of any name and anywhere: it is tested on the samples
    /// of its connector (`--connector`, else the file's `connector.name`,
    /// else the file name up to the first dot).
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,
    /// Directory of the sample responses: `<connector>/requests.yaml`,
    /// `<connector>/original/*.json`, goldens in `<connector>/sanitized/`.
    #[arg(long, default_value = "example-api-responses", value_name = "DIR")]
    samples_dir: PathBuf,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    match a.command {
        RulesCommand::Test { update, corpus } => test(&corpus, update),
        RulesCommand::Report { corpus } => report(&corpus),
        RulesCommand::Lint { corpus } => lint(&corpus),
        RulesCommand::Review { out, corpus } => review(&corpus, &out),
        RulesCommand::Schema => {
            println!("{}", schema_json());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The JSON Schema of rule files, as committed in `rules/veil-rules.schema.json`.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(veil_engine::RuleFile);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Requests {
    samples: Vec<Sample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sample {
    file: String,
    url: String,
    #[serde(default)]
    description: Option<String>,
}

/// One rule file of one connector, with its samples.
struct Suite {
    connector: String,
    variant: String,
    rules_file: PathBuf,
    rules: RuleSet,
    dir: PathBuf,
    golden_dir: PathBuf,
    samples: Vec<Sample>,
    /// Samples the variant must refuse (group samples of a no-groups variant).
    refused: Vec<Sample>,
}

/// Whether a sample reads `/v1.0/groups…`.
fn is_groups_sample(sample: &Sample) -> bool {
    let (path, _) = split_url(&sample.url);
    path == "/v1.0/groups" || path.starts_with("/v1.0/groups/")
}

/// What a rule author needs to know when the samples are not where they
/// were looked for.
fn samples_hint(c: &CorpusArgs) -> String {
    format!(
        "pass `--samples-dir DIR`, the directory that holds `<connector>/requests.yaml` and \
         `<connector>/original/*.json` (now `{}`; in the Veil repository: \
         `example-api-responses`)",
        c.samples_dir.display()
    )
}

/// Reads one connector's `requests.yaml`.
fn read_requests(c: &CorpusArgs, connector: &str) -> anyhow::Result<(PathBuf, String)> {
    let dir = c.samples_dir.join(connector);
    let path = dir.join("requests.yaml");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((dir, text)),
        Err(e) => bail!(
            "no samples for connector `{connector}`: cannot read {} ({e}); {}",
            path.display(),
            samples_hint(c)
        ),
    }
}

/// The suite of `--rules FILE`.
fn file_suite(c: &CorpusArgs, file: &Path) -> anyhow::Result<Suite> {
    let rules = RuleSet::from_file(file).map_err(|e| anyhow!("{e}"))?;
    // `outlook-cal.clear-ids.yaml` → connector `outlook-cal`, variant `clear-ids`.
    let stem = file
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let (from_name, variant_from_name) = match stem.split_once('.') {
        Some((n, v)) => (n.to_string(), Some(v.to_string())),
        None => (stem.clone(), None),
    };
    let meta = rules.connector.as_ref();
    let connector = c
        .connector
        .clone()
        .or_else(|| meta.map(|m| m.name.clone()))
        .unwrap_or(from_name);
    let variant = meta
        .and_then(|m| m.variant.clone())
        .or(variant_from_name)
        .unwrap_or_else(|| "default".into());
    if !c
        .samples_dir
        .join(&connector)
        .join("requests.yaml")
        .is_file()
    {
        bail!(
            "no samples for connector `{connector}` (named by {}): expected {}; {}, and \
             `--connector NAME` for the samples of another connector",
            if c.connector.is_some() {
                "--connector".to_string()
            } else if meta.is_some() {
                format!("`connector.name` in {}", file.display())
            } else {
                format!(
                    "the file name of {}, read as `<connector>.yaml`",
                    file.display()
                )
            },
            c.samples_dir
                .join(&connector)
                .join("requests.yaml")
                .display(),
            samples_hint(c)
        );
    }
    let (dir, text) = read_requests(c, &connector)?;
    let golden_dir = if variant == "default" {
        dir.join("sanitized")
    } else {
        dir.join("sanitized").join(&variant)
    };
    let requests: Requests = serde_yaml_ng::from_str(&text)
        .with_context(|| format!("{}", dir.join("requests.yaml").display()))?;
    let (refused, samples) = requests
        .samples
        .into_iter()
        .partition(|x| variant.ends_with("no-groups") && is_groups_sample(x));
    Ok(Suite {
        connector,
        variant,
        rules_file: file.to_path_buf(),
        rules,
        dir,
        golden_dir,
        samples,
        refused,
    })
}

fn suites(c: &CorpusArgs) -> anyhow::Result<Vec<Suite>> {
    if let Some(file) = &c.rules {
        return Ok(vec![file_suite(c, file)?]);
    }
    if !c.rules_dir.is_dir() {
        bail!(
            "no rule directory {}: pass `--rules-dir DIR` (rule files named \
             `<connector>.yaml`, variants `<connector>.<variant>.yaml`) or one file with \
             `--rules FILE`",
            c.rules_dir.display()
        );
    }
    if let Some(connector) = &c.connector {
        let file = c.rules_dir.join(format!("{connector}.yaml"));
        if !file.is_file() {
            bail!(
                "no rule file {}: in --rules-dir a connector's rules are named \
                 `<connector>.yaml` (variants `<connector>.<variant>.yaml`); to test a \
                 file of another name or place, pass it with `--rules FILE`",
                file.display()
            );
        }
        read_requests(c, connector)?;
    }
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&c.samples_dir)
        .map_err(|e| {
            anyhow!(
                "cannot read the samples directory {} ({e}); {}",
                c.samples_dir.display(),
                samples_hint(c)
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("requests.yaml").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        let connector = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if c.connector.as_ref().is_some_and(|only| *only != connector) {
            continue;
        }
        let req_path = dir.join("requests.yaml");
        let text = std::fs::read_to_string(&req_path)?;
        for (variant, file, golden) in [
            (
                "default",
                format!("{connector}.yaml"),
                dir.join("sanitized"),
            ),
            (
                "clear-ids",
                format!("{connector}.clear-ids.yaml"),
                dir.join("sanitized").join("clear-ids"),
            ),
            (
                "no-groups",
                format!("{connector}.no-groups.yaml"),
                dir.join("sanitized").join("no-groups"),
            ),
            (
                "clear-ids-no-groups",
                format!("{connector}.clear-ids-no-groups.yaml"),
                dir.join("sanitized").join("clear-ids-no-groups"),
            ),
        ] {
            let rules_file = c.rules_dir.join(&file);
            if !rules_file.is_file() {
                continue;
            }
            let rules = RuleSet::from_file(&rules_file).map_err(|e| anyhow!("{e}"))?;
            let requests: Requests = serde_yaml_ng::from_str(&text)
                .with_context(|| format!("{}", req_path.display()))?;
            // A no-groups variant has no groups endpoint: its group samples
            // are checked to be refused instead of sanitized.
            let (refused, samples) = requests
                .samples
                .into_iter()
                .partition(|x| variant.ends_with("no-groups") && is_groups_sample(x));
            out.push(Suite {
                connector: connector.clone(),
                variant: variant.to_string(),
                rules_file,
                rules,
                dir: dir.clone(),
                golden_dir: golden,
                samples,
                refused,
            });
        }
    }
    if out.is_empty() {
        bail!(
            "no connector samples found under {} with rules in {}: rule files there are \
             named `<connector>.yaml` for a samples directory `<connector>/`; test one file \
             with `--rules FILE --connector NAME`; {}",
            c.samples_dir.display(),
            c.rules_dir.display(),
            samples_hint(c)
        );
    }
    Ok(out)
}

/// The endpoint (index) that serves a sample's URL, if any.
fn endpoint_of(s: &Suite, sample: &Sample) -> Option<usize> {
    let (path, query) = split_url(&sample.url);
    s.rules
        .match_request(
            PolicyRequest {
                method: "GET",
                path: &path,
                query: query.as_deref(),
            },
            RequestSide::Upstream,
        )
        .ok()
        .map(|a| a.endpoint.index)
}

/// Whether some sample exercises endpoint `index`.
fn has_sample(s: &Suite, index: usize) -> bool {
    s.samples.iter().any(|x| endpoint_of(s, x) == Some(index))
}

fn golden_pseudonymizer() -> anyhow::Result<Pseudonymizer> {
    Pseudonymizer::new(PseudonymConfig {
        scheme: Scheme::Hmac,
        salt: Secret::from(GOLDEN_SALT),
        encryption_keys: vec![("k1".into(), Secret::from(GOLDEN_KEY))],
        email: EmailPolicy::default(),
    })
    .map_err(|e| anyhow!("{e}"))
}

/// The outcome of sanitizing one sample.
struct Run {
    original: Value,
    sanitized: Value,
    endpoint: usize,
    report: veil_engine::SanitizeReport,
}

fn run_sample(s: &Suite, sample: &Sample, p: &Pseudonymizer) -> anyhow::Result<Run> {
    run_sample_in(s, &s.dir.join("original"), sample, p)
}

/// The connector's all-properties samples (every property Graph documents,
/// `scripts/graph-samples/`), when the connector has them.
fn all_properties_samples(s: &Suite) -> anyhow::Result<Vec<Sample>> {
    let path = s.dir.join("all-properties").join("requests.yaml");
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path)?;
    let requests: Requests =
        serde_yaml_ng::from_str(&text).with_context(|| format!("{}", path.display()))?;
    // A no-groups variant refuses the groups samples (`rules test` checks
    // that); there is nothing to lint in them.
    let no_groups = s.variant.ends_with("no-groups");
    Ok(requests
        .samples
        .into_iter()
        .filter(|x| !(no_groups && split_url(&x.url).0.starts_with("/v1.0/groups")))
        .collect())
}

fn run_sample_in(s: &Suite, dir: &Path, sample: &Sample, p: &Pseudonymizer) -> anyhow::Result<Run> {
    let path = dir.join(&sample.file);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let original: Value = serde_json::from_str(&text).map_err(|e| {
        anyhow!(
            "{}:{}:{}: not valid JSON: {e}",
            path.display(),
            e.line(),
            e.column()
        )
    })?;
    let (upath, query) = split_url(&sample.url);
    let allowed = s
        .rules
        .match_request(
            PolicyRequest {
                method: "GET",
                path: &upath,
                query: query.as_deref(),
            },
            RequestSide::Upstream,
        )
        .map_err(|r| anyhow!("the rules refuse the sample's URL {}: {r}", sample.url))?;
    let mut sanitized = original.clone();
    let report = allowed
        .endpoint
        .sanitize(&mut sanitized, p)
        .map_err(|e| anyhow!("{e}"))?;
    Ok(Run {
        original,
        sanitized,
        endpoint: allowed.endpoint.index,
        report,
    })
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}
