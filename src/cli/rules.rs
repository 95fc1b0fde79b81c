//! `veil rules …`: the rule author's test loop.
//!
//! - `test [--update]`: sanitize every sample with its request URL, compare
//!   with the golden output (or, with `--update`, rewrite it and show what
//!   changed), check that paging links round-trip, and check that no
//!   sensitive value of the fictional tenant survives and that the generic
//!   detectors ([`veil_engine::detect`]) find nothing in what leaves;
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
use veil_engine::policy::{split_url, Request, Side};
use veil_engine::pseudonym::{EmailPolicy, PseudonymConfig, Pseudonymizer, Scheme};
use veil_engine::reidentify::reidentify_for;
use veil_engine::rules::RuleSet;
use veil_engine::secret::Secret;

use crate::runtime::{GOLDEN_KEY, GOLDEN_SALT};

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
    let schema = schemars::schema_for!(veil_engine::rules::model::RuleFile);
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Sensitive {
    #[serde(default)]
    people: Vec<String>,
    #[serde(default)]
    text: Vec<String>,
    #[serde(default)]
    phones: Vec<String>,
    #[serde(default)]
    emails: Vec<String>,
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
            Request {
                method: "GET",
                path: &path,
                query: query.as_deref(),
            },
            Side::Upstream,
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
    report: veil_engine::sanitize::Report,
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
            Request {
                method: "GET",
                path: &upath,
                query: query.as_deref(),
            },
            Side::Upstream,
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

fn test(c: &CorpusArgs, update: bool) -> anyhow::Result<ExitCode> {
    let p = golden_pseudonymizer()?;
    let sensitive: Sensitive =
        match std::fs::read_to_string(c.samples_dir.join("sensitive-values.yaml")) {
            Ok(t) => serde_yaml_ng::from_str(&t).context("sensitive-values.yaml")?,
            Err(_) => Sensitive::default(),
        };
    let (mut passed, mut failed, mut updated) = (0usize, 0usize, 0usize);
    for s in suites(c)? {
        // Every endpoint must be proven against at least one sample.
        for ep in &s.rules.endpoints {
            if !has_sample(&s, ep.index) {
                failed += 1;
                println!(
                    "FAILED  {} [{}] endpoint `{}` has no sample",
                    s.connector, s.variant, ep.label
                );
            }
        }
        for sample in &s.refused {
            let name = format!("{} [{}] {}", s.connector, s.variant, sample.file);
            let (path, query) = split_url(&sample.url);
            let request = Request {
                method: "GET",
                path: &path,
                query: query.as_deref(),
            };
            if s.rules.match_request(request, Side::Upstream).is_err() {
                passed += 1;
                println!("ok      {name} (refused, as it must be)");
            } else {
                failed += 1;
                println!("FAILED  {name}\n        the variant allows a groups request");
            }
        }
        for sample in &s.samples {
            let name = format!("{} [{}] {}", s.connector, s.variant, sample.file);
            match check_sample(&s, sample, &p, &sensitive, update) {
                Ok(None) => {
                    passed += 1;
                    println!("ok      {name}");
                }
                Ok(Some(change)) => {
                    passed += 1;
                    updated += 1;
                    println!("ok      {name}\n{}", indent(&change));
                }
                Err(e) => {
                    failed += 1;
                    println!("FAILED  {name}\n{}", indent(&format!("{e:#}")));
                }
            }
        }
    }
    if update {
        println!(
            "\n{updated} golden file(s) written with changes (shown above); review them before committing"
        );
    }
    println!("\n{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("        {l}\n")).collect()
}

fn check_sample(
    s: &Suite,
    sample: &Sample,
    p: &Pseudonymizer,
    sensitive: &Sensitive,
    update: bool,
) -> anyhow::Result<Option<String>> {
    let run = run_sample(s, sample, p)?;
    let out = pretty(&run.sanitized);
    let golden = s.golden_dir.join(&sample.file);
    let mut problems = Vec::new();
    let mut change = None;
    if update {
        let before = std::fs::read_to_string(&golden).ok();
        if before.as_deref() != Some(out.as_str()) {
            std::fs::create_dir_all(&s.golden_dir)?;
            std::fs::write(&golden, &out)
                .with_context(|| format!("cannot write {}", golden.display()))?;
            change = Some(golden_change(&golden, before.as_deref(), &out));
        }
    } else {
        match std::fs::read_to_string(&golden) {
            Ok(expected) if expected == out => {}
            Ok(expected) => {
                let diff = similar::TextDiff::from_lines(&expected, &out);
                let mut text = format!("differs from {} (- golden, + now):\n", golden.display());
                text.push_str(&diff.unified_diff().context_radius(2).to_string());
                problems.push(text);
            }
            Err(_) => problems.push(format!(
                "no golden file {} (run `veil rules test --update`)",
                golden.display()
            )),
        }
    }
    problems.extend(paging_problems(s, &run, p));
    problems.extend(leaks(&run.sanitized, &out, sensitive));
    if problems.is_empty() {
        Ok(change)
    } else {
        // The golden was written all the same: show what changed in it.
        problems.extend(change);
        bail!(problems.join("\n"))
    }
}

/// Most changed lines shown per golden file after `--update`.
const CHANGED_LINES_SHOWN: usize = 12;
/// Longer lines are cut around their first difference.
const LINE_WIDTH: usize = 140;

/// What `--update` changed in one golden file: a compact line diff (no
/// context; long lines cut around where they differ, at most
/// [`CHANGED_LINES_SHOWN`] lines).
fn golden_change(golden: &Path, before: Option<&str>, after: &str) -> String {
    let Some(before) = before else {
        return format!(
            "new golden {} ({} lines)",
            golden.display(),
            after.lines().count()
        );
    };
    let diff = similar::TextDiff::from_lines(before, after);
    let mut lines: Vec<String> = Vec::new();
    let (mut minus, mut plus) = (0usize, 0usize);
    for op in diff.ops() {
        let old: Vec<&str> = diff
            .iter_changes(op)
            .filter(|c| c.tag() == similar::ChangeTag::Delete)
            .map(|c| c.value().trim())
            .collect();
        let new: Vec<&str> = diff
            .iter_changes(op)
            .filter(|c| c.tag() == similar::ChangeTag::Insert)
            .map(|c| c.value().trim())
            .collect();
        minus += old.len();
        plus += new.len();
        // The n-th removed and the n-th added line of a change are cut at
        // the same place: where they first differ.
        for (i, l) in old.iter().enumerate() {
            lines.push(format!("- {}", cut(l, new.get(i).copied())));
        }
        for (i, l) in new.iter().enumerate() {
            lines.push(format!("+ {}", cut(l, old.get(i).copied())));
        }
    }
    let shown = lines.len().min(CHANGED_LINES_SHOWN);
    let mut out = format!(
        "updated golden {} (-{minus} +{plus} lines):\n",
        golden.display()
    );
    for l in &lines[..shown] {
        out.push_str(l);
        out.push('\n');
    }
    if lines.len() > shown {
        let _ = writeln!(out, "… {} more changed line(s)", lines.len() - shown);
    }
    out
}

/// `line`, cut to [`LINE_WIDTH`] characters around its first difference
/// from `other` (or its start).
fn cut(line: &str, other: Option<&str>) -> String {
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= LINE_WIDTH {
        return line.to_string();
    }
    let first_diff = other
        .map(|o| {
            chars
                .iter()
                .zip(o.chars())
                .take_while(|(a, b)| **a == *b)
                .count()
        })
        .unwrap_or(0);
    let start = first_diff
        .saturating_sub(LINE_WIDTH / 4)
        .min(chars.len() - LINE_WIDTH);
    let end = start + LINE_WIDTH;
    format!(
        "{}{}{}",
        if start > 0 { "…" } else { "" },
        chars[start..end].iter().collect::<String>(),
        if end < chars.len() { "…" } else { "" }
    )
}

/// Every paging link in a sanitized page must be a request the rules allow
/// from the client, and must re-identify to the link Graph gave.
fn paging_problems(s: &Suite, run: &Run, p: &Pseudonymizer) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["@odata.nextLink", "@odata.deltaLink"] {
        let (Some(orig), Some(link)) = (run.original.get(key), run.sanitized.get(key)) else {
            if run.original.get(key).is_some() {
                out.push(format!(
                    "{key} was removed: a client could not read the next page"
                ));
            }
            continue;
        };
        let (Some(orig), Some(link)) = (orig.as_str(), link.as_str()) else {
            out.push(format!("{key} is not a string after sanitizing"));
            continue;
        };
        let (path, query) = split_url(link);
        let endpoint = match s.rules.match_request(
            Request {
                method: "GET",
                path: &path,
                query: query.as_deref(),
            },
            Side::Client,
        ) {
            Ok(allowed) => allowed.endpoint,
            Err(r) => {
                out.push(format!(
                    "the client's follow-up request ({key}) would be refused: {r}"
                ));
                continue;
            }
        };
        match reidentify_for(endpoint, &path, query.as_deref(), p) {
            Ok(r) => {
                let (opath, oquery) = split_url(orig);
                let norm = |pth: &str, q: Option<&str>| {
                    let full = match q {
                        Some(q) => format!("{pth}?{q}"),
                        None => pth.to_string(),
                    };
                    percent_encoding::percent_decode_str(&full)
                        .decode_utf8_lossy()
                        .into_owned()
                };
                if norm(&r.path, r.query.as_deref()) != norm(&opath, oquery.as_deref()) {
                    out.push(format!(
                        "{key} does not re-identify to Graph's link:\n  graph: {orig}\n  after: {}",
                        norm(&r.path, r.query.as_deref())
                    ));
                }
            }
            Err(e) => out.push(format!("{key}: {e}")),
        }
    }
    out
}

/// What the sanitized output `doc` (pretty-printed: `out`) must not hold:
/// the tenant's planted values (`sensitive-values.yaml`), and anything the
/// generic detectors find (e-mail addresses in clear, phone numbers, IP
/// and MAC addresses, credentials in URLs), wherever it comes from.
pub(super) fn leaks(doc: &Value, out: &str, sensitive: &Sensitive) -> Vec<String> {
    let mut found = Vec::new();
    let lower = out.to_lowercase();
    for (kind, list) in [
        ("name", &sensitive.people),
        ("text", &sensitive.text),
        ("phone", &sensitive.phones),
        ("address", &sensitive.emails),
    ] {
        for v in list {
            if !v.trim().is_empty() && lower.contains(&v.to_lowercase()) {
                found.push(format!("leak: {kind} `{v}` is in the sanitized output"));
            }
        }
    }
    for f in veil_engine::detect::find_in_json(doc) {
        found.push(format!(
            "leak: {} `{}` at {} (generic detector)",
            f.finding.kind, f.finding.text, f.path
        ));
    }
    found
}

/// `$.value[3].from` → `$.value[*].from`.
fn report(c: &CorpusArgs) -> anyhow::Result<ExitCode> {
    let p = golden_pseudonymizer()?;
    let mut dead_total = 0;
    for s in suites(c)? {
        println!(
            "# {} [{}] — {}",
            s.connector,
            s.variant,
            s.rules_file.display()
        );
        let mut matches: BTreeMap<(usize, usize), usize> = BTreeMap::new();
        for sample in &s.samples {
            let run = run_sample(&s, sample, &p)?;
            for (t, m) in run.report.matches.iter().enumerate() {
                *matches.entry((run.endpoint, t)).or_default() += m;
            }
            // Every value that leaves, by JSON path, with what happened to it.
            let mut leaving: BTreeMap<String, (BTreeMap<&'static str, usize>, Vec<String>)> =
                BTreeMap::new();
            for o in super::review::outcomes(&run.original, &run.sanitized) {
                if o.what == super::review::What::Removed {
                    continue;
                }
                let entry = leaving.entry(super::review::general(&o.path)).or_default();
                *entry.0.entry(o.what.name()).or_default() += 1;
                if let Some(after) = &o.after {
                    let shown = match after {
                        Value::String(v) => format!("{:?}", truncate(v, 60)),
                        other => other.to_string(),
                    };
                    if entry.1.len() < 3 && !entry.1.contains(&shown) {
                        entry.1.push(shown);
                    }
                }
            }
            println!("\n## {} ({})", sample.file, sample.url);
            if let Some(d) = &sample.description {
                println!("   {d}");
            }
            if leaving.is_empty() {
                println!("   nothing leaves");
            }
            for (path, (whats, examples)) in leaving {
                let whats: Vec<String> = whats.iter().map(|(w, n)| format!("{w} ×{n}")).collect();
                println!(
                    "   {path}: {} — e.g. {}",
                    whats.join(", "),
                    examples.join(", ")
                );
            }
        }
        println!("\n## transform matches over all samples");
        for ep in &s.rules.endpoints {
            for (t, rt) in ep.sanitizer.transforms().iter().enumerate() {
                let n = matches.get(&(ep.index, t)).copied().unwrap_or(0);
                let flag = if n == 0 && has_sample(&s, ep.index) {
                    dead_total += 1;
                    "  <- DEAD: matches nothing in any sample"
                } else {
                    ""
                };
                println!("   {} #{t} {}: {n}{flag}", ep.label, rt.transform.name());
            }
        }
        println!();
    }
    if dead_total > 0 {
        println!("{dead_total} dead transform(s)");
    }
    Ok(ExitCode::SUCCESS)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

fn lint(c: &CorpusArgs) -> anyhow::Result<ExitCode> {
    let p = golden_pseudonymizer()?;
    let mut findings = Vec::new();
    for s in suites(c)? {
        let file = s.rules_file.display().to_string();
        for w in &s.rules.warnings {
            findings.push(format!("{file}: overlap: {w}"));
        }
        if !s.rules.default_deny {
            findings.push(format!(
                "{file}: `defaultDeny: true` is not set: an endpoint without a `responseSchema` passes every property Graph returns, including ones Microsoft adds later"
            ));
            findings.extend(
                psoxy_differences(&s.rules)
                    .into_iter()
                    .map(|f| format!("{file}: {f}")),
            );
        }
        let mut hits: BTreeMap<(usize, usize), usize> = BTreeMap::new();
        // (endpoint, transform, path) → whether the path selected anything
        // in the schema-filtered sample (before any transform).
        let mut path_hits: BTreeMap<(usize, usize, usize), bool> = BTreeMap::new();
        let mut sampled = vec![false; s.rules.endpoints.len()];
        // The curated samples and the all-properties ones: a path that
        // selects nothing in either selects nothing Graph documents.
        let all_dir = s.dir.join("all-properties");
        let all_samples = all_properties_samples(&s)?;
        let original = s.dir.join("original");
        let runs = s
            .samples
            .iter()
            .map(|x| (&original, x))
            .chain(all_samples.iter().map(|x| (&all_dir, x)));
        for (dir, sample) in runs {
            let run = run_sample_in(&s, dir, sample, &p)
                .with_context(|| format!("{}: {}", s.connector, sample.file))?;
            sampled[run.endpoint] = true;
            for (t, m) in run.report.matches.iter().enumerate() {
                *hits.entry((run.endpoint, t)).or_default() += m;
            }
            let ep = &s.rules.endpoints[run.endpoint];
            let mut filtered = run.original.clone();
            if let Some(schema) = ep.sanitizer.schema() {
                schema.apply(&mut filtered);
            }
            for (t, rt) in ep.sanitizer.transforms().iter().enumerate() {
                for (i, path) in rt.paths.iter().enumerate() {
                    let hit = veil_engine::jsonpath::compile(path)
                        .map(|c| c.matches_any(&filtered))
                        .unwrap_or(false);
                    *path_hits.entry((run.endpoint, t, i)).or_default() |= hit;
                }
            }
        }
        for ep in &s.rules.endpoints {
            if !sampled[ep.index] {
                findings.push(format!(
                    "{file}: endpoints[{}] `{}` has no sample",
                    ep.index, ep.label
                ));
                continue;
            }
            for (t, rt) in ep.sanitizer.transforms().iter().enumerate() {
                if hits.get(&(ep.index, t)).copied().unwrap_or(0) == 0 {
                    findings.push(format!(
                        "{file}: endpoints[{}] `{}` transforms[{t}] ({}) matches nothing in any sample",
                        ep.index,
                        ep.label,
                        rt.transform.name()
                    ));
                    continue;
                }
                for (i, path) in rt.paths.iter().enumerate() {
                    if !path_hits.get(&(ep.index, t, i)).copied().unwrap_or(false) {
                        findings.push(format!(
                            "{file}: endpoints[{}] `{}` transforms[{t}] ({}) jsonPaths[{i}] `{path}` matches nothing in any sample",
                            ep.index,
                            ep.label,
                            rt.transform.name()
                        ));
                    }
                }
            }
            findings.extend(
                shadowed(ep)
                    .into_iter()
                    .map(|f| format!("{file}: endpoints[{}] `{}`: {f}", ep.index, ep.label)),
            );
        }
    }
    for f in &findings {
        println!("{f}");
    }
    println!("\n{} finding(s)", findings.len());
    Ok(if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn review(c: &CorpusArgs, out: &Path) -> anyhow::Result<ExitCode> {
    use super::review::{page, ReviewedSample, ReviewedSuite};
    let p = golden_pseudonymizer()?;
    let suites = suites(c)?;
    let mut runs: Vec<Vec<(&Sample, Run)>> = Vec::new();
    for s in &suites {
        let mut list = Vec::new();
        for sample in &s.samples {
            let run = run_sample(s, sample, &p)
                .with_context(|| format!("{}: {}", s.connector, sample.file))?;
            list.push((sample, run));
        }
        runs.push(list);
    }
    let reviewed: Vec<ReviewedSuite<'_>> = suites
        .iter()
        .zip(&runs)
        .map(|(s, list)| ReviewedSuite {
            title: format!(
                "{} [{}] — {}",
                s.connector,
                s.variant,
                s.rules_file.display()
            ),
            endpoints: s
                .rules
                .endpoints
                .iter()
                .map(|ep| {
                    let samples = list
                        .iter()
                        .filter(|(_, r)| r.endpoint == ep.index)
                        .map(|(sample, r)| ReviewedSample {
                            file: &sample.file,
                            url: &sample.url,
                            original: &r.original,
                            sanitized: &r.sanitized,
                        })
                        .collect();
                    (ep, samples)
                })
                .collect(),
        })
        .collect();
    let rules_source = match &c.rules {
        Some(file) => format!("the rule file {}", file.display()),
        None => format!("the rule files in {}", c.rules_dir.display()),
    };
    let html = page(
        &reviewed,
        &format!(
            "{rules_source} and the samples in {} (golden test secrets)",
            c.samples_dir.display()
        ),
    );
    std::fs::write(out, html).with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// Where a Psoxy rule file behaves differently under Veil, on purpose (see
/// "Migrating from Psoxy" in the README): said once per endpoint and kind.
fn psoxy_differences(rules: &RuleSet) -> Vec<String> {
    use veil_engine::transform::Transform;
    let mut out = Vec::new();
    for ep in &rules.endpoints {
        if ep.sanitizer.schema().is_none() {
            out.push(format!(
                "endpoints[{}] `{}` has no `responseSchema`: every property not redacted leaves Veil",
                ep.index, ep.label
            ));
        }
        for (t, rt) in ep.sanitizer.transforms().iter().enumerate() {
            let note = match &rt.transform {
                Transform::Tokenize(tk) if tk.regex.is_some() => {
                    "tokenize with `regex`: a value the regex does not match becomes null under Veil (Psoxy passes it unchanged), and every match is tokenized (Psoxy: one whole-value match)"
                }
                Transform::Tokenize(_) => {
                    "a blank value becomes null under Veil (Psoxy passes it unchanged)"
                }
                _ => continue,
            };
            out.push(format!(
                "endpoints[{}] `{}` transforms[{t}] ({}): {note}",
                ep.index,
                ep.label,
                rt.transform.name()
            ));
        }
    }
    out
}

/// Transforms on a path that an earlier `redact` already removed.
fn shadowed(ep: &veil_engine::rules::CompiledEndpoint) -> Vec<String> {
    let ts = ep.sanitizer.transforms();
    let mut out = String::new();
    for (i, earlier) in ts.iter().enumerate() {
        if earlier.transform.name() != "redact" {
            continue;
        }
        for later in &ts[i + 1..] {
            for q in &later.paths {
                for pth in &earlier.paths {
                    let (pn, qn) = (
                        veil_engine::jsonpath::normalize(pth),
                        veil_engine::jsonpath::normalize(q),
                    );
                    let covered =
                        qn == pn || (qn.starts_with(&pn) && qn[pn.len()..].starts_with(['.', '[']));
                    if covered {
                        let _ = writeln!(
                            out,
                            "`{q}` ({}) is already removed by redact `{pth}`",
                            later.transform.name()
                        );
                    }
                }
            }
        }
    }
    out.lines().map(str::to_string).collect()
}
