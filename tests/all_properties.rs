//! Leak test of the shipped rules against all-properties samples.
//!
//! `example-api-responses/<connector>/all-properties/` holds, for every
//! endpoint of the shipped rule files, a Graph v1.0 response that carries every
//! property Microsoft publishes for the returned type(s) (generated from the
//! Graph SDK's model classes by `scripts/graph-samples/generate.py`), with
//! unique personal data planted in each property that can hold it and listed
//! in `planted.json`. The samples are built from Graph's metadata, not from
//! what the rules expect, so a property the rules forgot shows up here.
//!
//! For every connector, both rule variants and every sample, this test
//! sanitizes the sample with the endpoint the rules pick for its URL and fails
//! if any planted value survives anywhere in the output: in a value, inside a
//! longer string, or in a key. In the `clear-ids` variant, person object ids
//! (`person_id`) may leave in clear; in the default variant they must not, in
//! any letter case. A refused URL or a sanitize error (fail closed) also
//! fails: every endpoint must answer.
//!
//! `KNOWN_LEAKING` lists the (connector, variant) pairs whose rules are known
//! to leak today: they still run and print their leaks, but do not fail. A
//! listed pair that no longer leaks fails, so the list cannot go stale.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use veil_engine::{
    split_url, EmailPolicy, PolicyRequest, PseudonymConfig, Pseudonymizer, RequestSide, RuleSet,
    Scheme, Secret,
};

/// The connectors with shipped rules and all-properties samples.
const CONNECTORS: &[&str] = &[
    "entra-id",
    "outlook-mail",
    "outlook-cal",
    "msft-teams",
    "outlook-contacts",
    "outlook-mail-received",
];

/// Rule variants: name and rule-file suffix.
const VARIANTS: &[(&str, &str)] = &[("default", ""), ("clear-ids", ".clear-ids")];

/// (connector, variant) pairs whose rules leak planted values today. Their
/// leaks are printed but do not fail the test; refusals and sanitize errors
/// still fail. Empty this list when the allowlist rules land.
const KNOWN_LEAKING: &[(&str, &str)] = &[];

/// Planted kind that the clear-ids variant may output in clear.
const PERSON_ID: &str = "person_id";

const SALT: &str = "all-properties-test-salt-0123456789-0123456789";
const KEY: &str = "all-properties-test-key-0123456789-0123456789";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Requests {
    samples: Vec<SampleRef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleRef {
    file: String,
    url: String,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlantedFile {
    #[allow(dead_code)]
    generator: String,
    #[serde(rename = "msgraphSdk")]
    #[allow(dead_code)]
    msgraph_sdk: String,
    planted: Vec<Planted>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Planted {
    file: String,
    path: String,
    kind: String,
    value: String,
    /// Further substrings that betray the value (its marker, a normalized
    /// phone number…); matched in any letter case.
    #[serde(default)]
    needles: Vec<String>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn samples_dir(connector: &str) -> PathBuf {
    root()
        .join("example-api-responses")
        .join(connector)
        .join("all-properties")
}

fn rules(connector: &str, suffix: &str) -> RuleSet {
    let path = root()
        .join("rules")
        .join(format!("{connector}{suffix}.yaml"));
    RuleSet::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn requests(connector: &str) -> Vec<SampleRef> {
    let path = samples_dir(connector).join("requests.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run scripts/graph-samples/generate.py)",
            path.display()
        )
    });
    let r: Requests =
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!r.samples.is_empty(), "{}: no samples", path.display());
    r.samples
}

fn planted(connector: &str) -> Vec<Planted> {
    let path = samples_dir(connector).join("planted.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let p: PlantedFile =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!p.planted.is_empty(), "{}: nothing planted", path.display());
    p.planted
}

fn pseudonymizer() -> Pseudonymizer {
    Pseudonymizer::new(PseudonymConfig {
        scheme: Scheme::Hmac,
        salt: Secret::from(SALT),
        encryption_keys: vec![("k1".into(), Secret::from(KEY))],
        email: EmailPolicy::default(),
    })
    .expect("test pseudonymizer")
}

fn request(url: &str) -> (String, Option<String>) {
    split_url(url)
}

/// The endpoint index the rules pick for a sample's upstream URL.
fn endpoint_of(rules: &RuleSet, url: &str) -> Result<usize, String> {
    let (path, query) = request(url);
    rules
        .match_request(
            PolicyRequest {
                method: "GET",
                path: &path,
                query: query.as_deref(),
            },
            RequestSide::Upstream,
        )
        .map(|a| a.endpoint.index)
        .map_err(|r| r.to_string())
}

/// Every key and string value of `v`, with its JSON path.
fn strings(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let p = child_path(path, k);
                out.push((format!("{p} (key)"), k.clone()));
                strings(child, &p, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                strings(child, &format!("{path}[{i}]"), out);
            }
        }
        Value::String(s) => out.push((path.to_string(), s.clone())),
        _ => {}
    }
}

fn child_path(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}['{key}']")
    }
}

/// `$.value[3].from.user.id` -> `$.value[*].from.user.id`.
fn shape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' if in_index => {
                in_index = false;
                out.push_str("*]");
            }
            c if in_index && c.is_ascii_digit() => {}
            c => {
                if in_index {
                    // Not an array index (e.g. `['@odata.type']`): keep it.
                    in_index = false;
                    out.pop();
                    out.push('[');
                }
                out.push(c);
            }
        }
    }
    out
}

struct Leak {
    file: String,
    out_path: String,
    kind: String,
    source: String,
    value: String,
}

/// Planted values of `mine` that occur in `text` (a key or string of the output).
fn leaked_in<'p>(text: &str, mine: &[&'p Planted], clear_ids: bool) -> Vec<&'p Planted> {
    let lower = text.to_lowercase();
    mine.iter()
        .copied()
        .filter(|p| !(clear_ids && p.kind == PERSON_ID))
        .filter(|p| {
            text.contains(&p.value)
                || lower.contains(&p.value.to_lowercase())
                || p.needles.iter().any(|n| lower.contains(&n.to_lowercase()))
        })
        .collect()
}

struct Outcome {
    planted: usize,
    checked: usize,
    leaks: Vec<Leak>,
    errors: Vec<String>,
}

fn run(connector: &str, variant: &str, suffix: &str, p: &Pseudonymizer) -> Outcome {
    let rules = rules(connector, suffix);
    let planted = planted(connector);
    let clear_ids = variant == "clear-ids";
    let mut by_file: BTreeMap<&str, Vec<&Planted>> = BTreeMap::new();
    for e in &planted {
        by_file.entry(e.file.as_str()).or_default().push(e);
    }
    let reqs = requests(connector);
    let mut errors = Vec::new();
    let mut leaks = Vec::new();
    for name in by_file.keys() {
        if !reqs.iter().any(|r| r.file == *name) {
            errors.push(format!(
                "planted.json names {name}, which requests.yaml does not list"
            ));
        }
    }
    for s in &reqs {
        let path = samples_dir(connector).join(&s.file);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let mut doc: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                errors.push(format!("{}: not JSON: {e}", path.display()));
                continue;
            }
        };
        let (upath, query) = request(&s.url);
        let allowed = match rules.match_request(
            PolicyRequest {
                method: "GET",
                path: &upath,
                query: query.as_deref(),
            },
            RequestSide::Upstream,
        ) {
            Ok(a) => a,
            Err(r) => {
                errors.push(format!(
                    "{}: the rules refuse the URL {}: {r}",
                    s.file, s.url
                ));
                continue;
            }
        };
        if let Err(e) = allowed.endpoint.sanitize(&mut doc, p) {
            errors.push(format!(
                "{}: sanitize failed (fail closed, but the endpoint must answer): {e}",
                s.file
            ));
            continue;
        }
        let mine: &[&Planted] = by_file.get(s.file.as_str()).map_or(&[], |v| v.as_slice());
        let mut found = Vec::new();
        strings(&doc, "$", &mut found);
        for (out_path, text) in &found {
            for hit in leaked_in(text, mine, clear_ids) {
                leaks.push(Leak {
                    file: s.file.clone(),
                    out_path: out_path.clone(),
                    kind: hit.kind.clone(),
                    source: hit.path.clone(),
                    value: hit.value.clone(),
                });
            }
        }
    }
    let checked = planted
        .iter()
        .filter(|p| !(clear_ids && p.kind == PERSON_ID))
        .count();
    Outcome {
        planted: planted.len(),
        checked,
        leaks,
        errors,
    }
}

#[test]
fn no_planted_value_survives_sanitizing() {
    let p = pseudonymizer();
    let mut failures = Vec::new();
    for (connector, variant) in KNOWN_LEAKING {
        assert!(
            CONNECTORS.contains(connector) && VARIANTS.iter().any(|(v, _)| v == variant),
            "KNOWN_LEAKING names an unknown pair ({connector}, {variant})"
        );
    }
    for connector in CONNECTORS {
        for (variant, suffix) in VARIANTS {
            let o = run(connector, variant, suffix, &p);
            let leaked: BTreeSet<(&str, &str)> = o
                .leaks
                .iter()
                .map(|l| (l.file.as_str(), l.value.as_str()))
                .collect();
            println!(
                "{connector} [{variant}]: planted {} (checked {}), leaked {}, leak sites {}, errors {}",
                o.planted,
                o.checked,
                leaked.len(),
                o.leaks.len(),
                o.errors.len()
            );
            let mut by_shape: BTreeMap<(String, String), usize> = BTreeMap::new();
            for l in &o.leaks {
                *by_shape
                    .entry((shape(&l.out_path), l.kind.clone()))
                    .or_default() += 1;
            }
            let mut top: Vec<_> = by_shape.into_iter().collect();
            top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            for ((path, kind), n) in top.iter().take(20) {
                println!("    {n:5}  {path}  [{kind}]");
            }
            for l in &o.leaks {
                println!(
                    "    leak {} {}  [{}] planted at {}: {:?}",
                    l.file, l.out_path, l.kind, l.source, l.value
                );
            }
            let known = KNOWN_LEAKING.contains(&(*connector, *variant));
            for e in &o.errors {
                failures.push(format!("{connector} [{variant}] {e}"));
            }
            if !o.leaks.is_empty() && !known {
                let mut msg = format!(
                    "{connector} [{variant}]: {} planted values leak:",
                    leaked.len()
                );
                for l in &o.leaks {
                    msg.push_str(&format!(
                        "\n    {} {}  [{}] planted at {}: {:?}",
                        l.file, l.out_path, l.kind, l.source, l.value
                    ));
                }
                failures.push(msg);
            }
            if o.leaks.is_empty() && known {
                failures.push(format!(
                    "{connector} [{variant}] no longer leaks: remove it from KNOWN_LEAKING in tests/all_properties.rs"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n"));
}

#[test]
fn every_endpoint_has_an_all_properties_sample() {
    let mut missing = Vec::new();
    for connector in CONNECTORS {
        let reqs = requests(connector);
        for (variant, suffix) in VARIANTS {
            let rules = rules(connector, suffix);
            let served: BTreeSet<usize> = reqs
                .iter()
                .filter_map(|s| endpoint_of(&rules, &s.url).ok())
                .collect();
            for ep in &rules.endpoints {
                if !served.contains(&ep.index) {
                    missing.push(format!(
                        "{connector} [{variant}]: endpoint `{}` has no all-properties sample \
                         (add it to scripts/graph-samples/generate.py and regenerate)",
                        ep.label
                    ));
                }
            }
        }
    }
    assert!(missing.is_empty(), "\n{}\n", missing.join("\n"));
}

#[test]
fn planted_values_occur_in_their_samples() {
    // Guards the corpus itself: a planted value that is not in its sample
    // would make the leak test pass vacuously.
    let mut problems = Vec::new();
    for connector in CONNECTORS {
        let planted = planted(connector);
        let mut texts: BTreeMap<String, String> = BTreeMap::new();
        for s in requests(connector) {
            let path: &Path = &samples_dir(connector).join(&s.file);
            let text =
                std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let doc: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let mut found = Vec::new();
            strings(&doc, "$", &mut found);
            let all: Vec<String> = found.into_iter().map(|(_, s)| s).collect();
            texts.insert(s.file.clone(), all.join("\n"));
        }
        for e in &planted {
            match texts.get(&e.file) {
                Some(t) if t.contains(&e.value) => {}
                Some(_) => problems.push(format!(
                    "{connector}/{}: planted {:?} ({}) does not occur",
                    e.file, e.value, e.kind
                )),
                None => problems.push(format!("{connector}: no sample {}", e.file)),
            }
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}
