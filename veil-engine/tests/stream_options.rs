//! The host options of the sanitizer (`BodyOptions`): the public
//! base URL of paging links, the DOM path switch, and writing the output to
//! a sink as it is produced (`sanitize_body_to`). Each is checked
//! against the DOM path, the reference.

mod common;

use std::path::Path;

use serde_json::{json, Value};
use veil_engine::{
    sanitize_body_read_to, sanitize_body_to, sanitize_body_with, split_url, BodyError, BodyOptions,
    BodyWriteError, CompiledEndpoint, PolicyRequest, PublicBase, RequestSide, RuleSet,
    SanitizerPath, Scheme,
};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn endpoint<'r>(rules: &'r RuleSet, url: &str) -> &'r CompiledEndpoint {
    let (path, query) = split_url(url);
    rules
        .match_request(
            PolicyRequest {
                method: "GET",
                path: &path,
                query: query.as_deref(),
            },
            RequestSide::Upstream,
        )
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .endpoint
}

fn opts(base: Option<&str>, path: SanitizerPath) -> BodyOptions {
    BodyOptions {
        public_base: base.map(|b| PublicBase::parse(b).unwrap()),
        path,
        max_depth: None,
    }
}

/// Sanitized by every way there is: streaming, DOM path, and written to a
/// sink (both paths). All must agree; returns the bytes.
fn all_ways(e: &CompiledEndpoint, body: &[u8], base: Option<&str>) -> Vec<u8> {
    let p = common::pseudonymizer(Scheme::Hmac);
    let (streamed, report) = sanitize_body_with(
        &e.sanitizer,
        body,
        p,
        &e.label,
        &opts(base, SanitizerPath::Streaming),
    )
    .unwrap();
    let (dom, dom_report) = sanitize_body_with(
        &e.sanitizer,
        body,
        p,
        &e.label,
        &opts(base, SanitizerPath::Dom),
    )
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&streamed),
        String::from_utf8_lossy(&dom),
        "streaming and DOM path differ"
    );
    assert_eq!(report, dom_report);
    for path in [SanitizerPath::Streaming, SanitizerPath::Dom] {
        let mut written = Vec::new();
        let r = sanitize_body_to(
            &e.sanitizer,
            body,
            p,
            &e.label,
            &opts(base, path),
            &mut written,
        )
        .unwrap();
        assert_eq!(r, report, "{path:?}");
        assert!(written == streamed, "sanitize_to ({path:?}) differs");
    }
    streamed
}

#[test]
fn paging_links_point_at_the_public_base_on_both_paths() {
    let rules = RuleSet::from_file(&root().join("rules/entra-id.yaml")).unwrap();
    let body =
        std::fs::read(root().join("example-api-responses/entra-id/original/users.json")).unwrap();
    let e = endpoint(&rules, "/v1.0/users?$top=6");
    assert!(e.sanitizer.streams(), "the test needs a streaming endpoint");

    let graph: Value = serde_json::from_slice(&all_ways(e, &body, None)).unwrap();
    let graph_next = graph["@odata.nextLink"].as_str().unwrap();
    assert!(
        graph_next.starts_with("https://graph.microsoft.com/v1.0/users?"),
        "{graph_next}"
    );
    assert!(graph_next.contains("$skiptoken=p~"), "{graph_next}");

    let veil: Value =
        serde_json::from_slice(&all_ways(e, &body, Some("https://veil.example.com/"))).unwrap();
    let next = veil["@odata.nextLink"].as_str().unwrap();
    assert_eq!(
        next,
        graph_next.replacen("https://graph.microsoft.com", "https://veil.example.com", 1)
    );
    // Only the paging links change.
    let (mut a, mut b) = (graph.clone(), veil.clone());
    a.as_object_mut().unwrap().remove("@odata.nextLink");
    b.as_object_mut().unwrap().remove("@odata.nextLink");
    assert_eq!(a, b);
}

#[test]
fn only_top_level_graph_links_are_rewritten() {
    let rules = common::rules("      - !<redact>\n        jsonPaths: [\"$..secret\"]\n");
    let e = &rules.endpoints[0];
    let body = json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users",
        "@odata.deltaLink": "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=abc",
        "@odata.nextLink": "https://graph.microsoft.com.evil.example/v1.0/users",
        "value": [{"@odata.nextLink": "https://graph.microsoft.com/v1.0/x", "secret": 1}]
    });
    let out: Value = serde_json::from_slice(&all_ways(
        e,
        &serde_json::to_vec(&body).unwrap(),
        Some("http://127.0.0.1:8080"),
    ))
    .unwrap();
    assert_eq!(
        out["@odata.deltaLink"],
        "http://127.0.0.1:8080/v1.0/users/delta?$deltatoken=abc"
    );
    assert_eq!(out["@odata.nextLink"], body["@odata.nextLink"]);
    assert_eq!(out["@odata.context"], body["@odata.context"]);
    assert_eq!(
        out["value"][0]["@odata.nextLink"],
        "https://graph.microsoft.com/v1.0/x"
    );
    assert!(out["value"][0].get("secret").is_none());
    // An escaped link is the same link.
    let escaped = br#"{"@odata.nextLink":"https:\/\/graph.microsoft.com\/v1.0\/users?$top=1"}"#;
    let out: Value =
        serde_json::from_slice(&all_ways(e, escaped, Some("https://veil.example.com"))).unwrap();
    assert_eq!(
        out["@odata.nextLink"],
        "https://veil.example.com/v1.0/users?$top=1"
    );
}

#[test]
fn output_written_in_pieces_is_the_whole_output() {
    // A page far larger than one piece of output, with transforms, removed
    // members and removed elements along the way.
    let rules = common::rules(
        "      - !<redact>\n        jsonPaths: [\"$..subject\", \"$.value[*].flag\"]\n      - !<pseudonymize>\n        jsonPaths: [\"$..address\"]\n",
    );
    let e = &rules.endpoints[0];
    let value: Vec<Value> = (0..3000)
        .map(|i| {
            json!({
                "id": format!("id-{i}"),
                "subject": format!("subject {i} with some words"),
                "flag": {"status": "x"},
                "to": [{"address": format!("user{}@contoso.example", i % 97), "n": i}],
                "text": "\u{e9}\\\"",
            })
        })
        .collect();
    let body = serde_json::to_vec(&json!({
        "@odata.nextLink": "https://graph.microsoft.com/v1.0/x?$skip=3000",
        "value": value
    }))
    .unwrap();
    assert!(body.len() > 4 * 64 * 1024);
    all_ways(e, &body, None);
    all_ways(e, &body, Some("https://veil.example.com"));
    // A duplicate member name takes the DOM path; the sink gets its output.
    all_ways(e, br#"{"a":1,"value":[{"address":"x@y.z"}],"a":2}"#, None);
}

#[test]
fn nothing_is_written_when_the_body_fails() {
    let rules = common::rules("      - !<pseudonymize>\n        jsonPaths: [\"$..address\"]\n");
    let e = &rules.endpoints[0];
    let p = common::pseudonymizer(Scheme::Hmac);
    let mut big: Vec<u8> = serde_json::to_vec(&json!({
        "value": (0..5000).map(|i| json!({"address": format!("u{i}@x.example")})).collect::<Vec<_>>()
    }))
    .unwrap();
    // Invalid JSON at the very end, after many pieces' worth of output.
    big.truncate(big.len() - 1);
    for path in [SanitizerPath::Streaming, SanitizerPath::Dom] {
        let mut written = Vec::new();
        let err = sanitize_body_to(
            &e.sanitizer,
            &big,
            p,
            &e.label,
            &opts(None, path),
            &mut written,
        )
        .unwrap_err();
        assert!(
            matches!(err, BodyWriteError::Body(BodyError::InvalidJson { .. })),
            "{err}"
        );
        assert!(
            written.is_empty(),
            "{path:?}: {} bytes written",
            written.len()
        );
    }
    // A transform failure (pseudonymize on an object) at the end likewise.
    let mut value: Vec<Value> = (0..5000)
        .map(|i| json!({"address": format!("u{i}@x.example")}))
        .collect();
    value.push(json!({"address": {"x": 1}}));
    let bad = serde_json::to_vec(&json!({ "value": value })).unwrap();
    for path in [SanitizerPath::Streaming, SanitizerPath::Dom] {
        let mut written = Vec::new();
        let err = sanitize_body_to(
            &e.sanitizer,
            &bad,
            p,
            &e.label,
            &opts(None, path),
            &mut written,
        )
        .unwrap_err();
        assert!(
            matches!(err, BodyWriteError::Body(BodyError::Transform(_))),
            "{err}"
        );
        assert!(
            written.is_empty(),
            "{path:?}: {} bytes written",
            written.len()
        );
    }
}

#[test]
fn public_base_urls_are_checked() {
    for (url, want) in [
        ("https://veil.example.com", "https://veil.example.com"),
        ("https://veil.example.com/", "https://veil.example.com"),
        (
            "https://Veil.Example.com:8443",
            "https://veil.example.com:8443",
        ),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:3000/", "http://localhost:3000"),
        ("http://[::1]:9000", "http://[::1]:9000"),
        ("https://[2001:db8::1]", "https://[2001:db8::1]"),
    ] {
        assert_eq!(PublicBase::parse(url).unwrap().as_str(), want, "{url}");
    }
    for (url, says) in [
        ("veil.example.com", "must start with https://"),
        ("ftp://veil.example.com", "must start with https://"),
        (
            "http://veil.example.com",
            "plain http:// only for a loopback",
        ),
        ("http://10.0.0.1", "plain http:// only for a loopback"),
        ("https://veil.example.com/prod", "no path"),
        ("https://veil.example.com?x=1", "no path"),
        ("https://veil.example.com#f", "no path"),
        ("https://user@veil.example.com", "user information"),
        ("https://veil.example.com:0", "is not a port"),
        ("https://veil.example.com:99999", "is not a port"),
        ("https://veil.example.com:", "is not a port"),
        ("https://", "is not a host"),
        ("https://veil..example.com", "is not a host"),
        ("https://veil_example.com", "is not a host"),
        ("https://\"veil\".com", "is not a host"),
    ] {
        let err = PublicBase::parse(url).unwrap_err().to_string();
        assert!(err.contains(says), "{url}: {err}");
    }
}

/// A host's nesting limit (`max_depth`) refuses a body that nests deeper,
/// on both paths and written to a sink or read in pieces: wherever the
/// nesting is (in a member the rules drop, in one they buffer, after a
/// duplicate member name that sends the body to the DOM path). At the
/// limit the body is sanitized as without one.
#[test]
fn a_nesting_limit_refuses_deeper_bodies_on_every_path() {
    let rules = common::rules(
        "      - !<redact>\n        jsonPaths: [\"$..subject\"]\n      - !<pseudonymize>\n        jsonPaths: [\"$..address\"]\n",
    );
    let e = &rules.endpoints[0];
    let p = common::pseudonymizer(Scheme::Hmac);
    let nest = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    // Each body holds `n` arrays inside three containers.
    let bodies = |n: usize| {
        [
            format!(
                r#"{{"value":[{{"address":"a@b.example","deep":{}}}]}}"#,
                nest(n)
            ),
            format!(
                r#"{{"value":[{{"subject":{},"address":"a@b.example"}}]}}"#,
                nest(n)
            ),
            format!(
                r#"{{"value":[{{"address":"a@b.example","address":"c@d.example","deep":{}}}]}}"#,
                nest(n)
            ),
        ]
    };
    let max = 8;
    for path in [SanitizerPath::Streaming, SanitizerPath::Dom] {
        let limited = BodyOptions {
            max_depth: Some(max),
            ..opts(None, path)
        };
        for body in bodies(max - 3) {
            let free = sanitize_body_with(
                &e.sanitizer,
                body.as_bytes(),
                p,
                &e.label,
                &opts(None, path),
            );
            let capped = sanitize_body_with(&e.sanitizer, body.as_bytes(), p, &e.label, &limited);
            assert_eq!(
                capped.map(|(out, _)| out),
                free.map(|(out, _)| out),
                "{path:?}: {body}"
            );
        }
        for body in bodies(max - 2) {
            let case = format!("{path:?}: {body}");
            let err = sanitize_body_with(&e.sanitizer, body.as_bytes(), p, &e.label, &limited)
                .unwrap_err();
            assert_eq!(err, BodyError::TooDeep { max }, "{case}");
            // Written to a sink, from memory and read in pieces: nothing.
            let (mut from_memory, mut from_pieces) = (Vec::new(), Vec::new());
            let results = [
                sanitize_body_to(
                    &e.sanitizer,
                    body.as_bytes(),
                    p,
                    &e.label,
                    &limited,
                    &mut from_memory,
                ),
                sanitize_body_read_to(
                    &e.sanitizer,
                    || Ok(body.as_bytes()),
                    p,
                    &e.label,
                    &limited,
                    &mut from_pieces,
                ),
            ];
            for result in results {
                assert!(
                    matches!(
                        result,
                        Err(BodyWriteError::Body(BodyError::TooDeep { max: 8 }))
                    ),
                    "{case}: {result:?}"
                );
            }
            assert!(from_memory.is_empty() && from_pieces.is_empty(), "{case}");
            // Without the limit, serde_json's 127 levels: accepted.
            assert!(
                sanitize_body_with(
                    &e.sanitizer,
                    body.as_bytes(),
                    p,
                    &e.label,
                    &opts(None, path)
                )
                .is_ok(),
                "{case}"
            );
        }
    }
}
