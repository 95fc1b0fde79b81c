//! The streaming sanitizer against the DOM sanitizer (the reference) on
//! every shipped sample with every shipped rule variant: same bytes, same
//! report, and the stream path really taken.
//!
//! Samples: `example-api-responses/*/original/` and
//! `example-api-responses/*/all-properties/`, with the URLs of their
//! `requests.yaml`. Each sample is run through the endpoint its URL selects and, for more
//! rule/body combinations, through every other endpoint of its connector's
//! rule files; as the file is written (pretty) and re-serialized compactly.
//! With the endpoint its URL selects, each sample is also read in pieces
//! (`sanitize_body_read_to`, pieces of 1, 7 and 4096 bytes and whole):
//! the same output as from memory.

mod common;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use veil_engine::{
    sanitize_body_dom, sanitize_body_streaming, split_url, PolicyRequest, RequestSide, RuleSet,
    Scheme,
};

#[derive(Deserialize)]
struct Requests {
    samples: Vec<Sample>,
}

#[derive(Deserialize)]
struct Sample {
    file: String,
    url: String,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The connectors with samples, and their rule files (all variants).
fn connectors() -> Vec<(String, Vec<PathBuf>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root().join("example-api-responses")).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("requests.yaml").exists() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let mut rules: Vec<PathBuf> = std::fs::read_dir(root().join("rules"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let f = p.file_name().unwrap().to_string_lossy();
                f.ends_with(".yaml")
                    && (f == format!("{name}.yaml") || f.starts_with(&format!("{name}.")))
            })
            .collect();
        rules.sort();
        assert!(!rules.is_empty(), "no rule file for {name}");
        out.push((name, rules));
    }
    out.sort();
    assert!(out.len() >= 4, "samples not found");
    out
}

/// Runs both paths; panics on any difference. Returns whether the stream
/// path handled it (true) or deferred to the DOM path.
fn same(rules: &RuleSet, ep: usize, body: &[u8], scheme: Scheme, what: &str) -> bool {
    let p = common::pseudonymizer(scheme);
    let e = &rules.endpoints[ep];
    let dom = sanitize_body_dom(&e.sanitizer, body, p, &e.label);
    let streamed = sanitize_body_streaming(&e.sanitizer, body, p, &e.label);
    let full = e.sanitize_bytes(body, p);
    match (&dom, &streamed) {
        (Ok((d, dr)), Ok(Some((s, sr)))) => {
            assert!(
                d == s,
                "{what}: output differs\n dom:    {}\n stream: {}",
                String::from_utf8_lossy(d),
                String::from_utf8_lossy(s)
            );
            assert_eq!(dr, sr, "{what}: report differs");
        }
        (Err(d), Err(s)) => assert_eq!(d, s, "{what}: errors differ"),
        (_, Ok(None)) => {}
        _ => panic!("{what}: dom {dom:?} vs stream {streamed:?}"),
    }
    assert_eq!(
        dom, full,
        "{what}: sanitize_bytes differs from the DOM path"
    );
    matches!(streamed, Ok(Some(_)))
}

#[test]
fn every_sample_every_rule_variant_every_endpoint() {
    let (mut runs, mut streamed, mut matched) = (0usize, 0usize, 0usize);
    let mut pieces = 0usize;
    for (name, rule_files) in connectors() {
        let dir = root().join("example-api-responses").join(&name);
        // The recorded samples, and the all-properties ones where present.
        let mut samples = Vec::new();
        for (reqs, files) in [
            (dir.join("requests.yaml"), dir.join("original")),
            (
                dir.join("all-properties").join("requests.yaml"),
                dir.join("all-properties"),
            ),
        ] {
            let Ok(text) = std::fs::read_to_string(&reqs) else {
                continue;
            };
            let reqs: Requests = serde_yaml_ng::from_str(&text).unwrap();
            for s in reqs.samples {
                samples.push((files.join(&s.file), s));
            }
        }
        for rf in &rule_files {
            let rules = RuleSet::from_file(rf).unwrap_or_else(|e| panic!("{e}"));
            for (file, s) in &samples {
                let pretty = std::fs::read(file).unwrap();
                let doc: Value = serde_json::from_slice(&pretty).unwrap();
                let compact = serde_json::to_vec(&doc).unwrap();
                let (path, query) = split_url(&s.url);
                let selected = rules
                    .match_request(
                        PolicyRequest {
                            method: "GET",
                            path: &path,
                            query: query.as_deref(),
                        },
                        RequestSide::Upstream,
                    )
                    .ok()
                    .map(|a| a.endpoint.index);
                for ep in 0..rules.endpoints.len() {
                    for (form, body) in [("pretty", &pretty), ("compact", &compact)] {
                        let what = format!(
                            "{} {} endpoint {} ({form})",
                            rf.display(),
                            s.file,
                            rules.endpoints[ep].label
                        );
                        let schemes: &[Scheme] = if Some(ep) == selected {
                            matched += 1;
                            &[Scheme::Hmac, Scheme::Psoxy]
                        } else {
                            &[Scheme::Hmac]
                        };
                        for &scheme in schemes {
                            let streams = rules.endpoints[ep].sanitizer.streams();
                            runs += usize::from(streams);
                            if same(&rules, ep, body, scheme, &what) {
                                assert!(streams, "{what}: streamed rules that should not");
                                streamed += 1;
                            }
                            if Some(ep) == selected && scheme == Scheme::Hmac {
                                let p = common::pseudonymizer(scheme);
                                let e = &rules.endpoints[ep];
                                for piece in common::PIECE_SIZES {
                                    let s = common::same_in_pieces(e, body, piece, p, &what);
                                    assert_eq!(s, streams, "{what}: pieces of {piece}");
                                    pieces += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "{runs} runs ({matched} with the endpoint the URL selects), {streamed} streamed, \
         {pieces} read in pieces"
    );
    assert!(pieces >= 160, "too few runs read in pieces: {pieces}");
    assert!(
        matched >= 40,
        "too few samples matched their endpoint: {matched}"
    );
    // Every endpoint whose rules allow streaming streams every sample: only
    // bodies with duplicate member names may defer, and the samples have none.
    assert!(runs > 0, "no endpoint streams");
    assert_eq!(streamed, runs, "some runs did not stream");
}
