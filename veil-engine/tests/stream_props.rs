//! Property tests: the streaming sanitizer and the DOM sanitizer (the
//! reference) give the same bytes, the same report and the same errors on
//! random documents under random rule sets (random `responseSchema` with
//! `$ref`/`anyOf`, random transforms over a pool of JSONPaths with filters,
//! indexes and slices), including documents written the way serde_json
//! would not write them (escapes, exponents, `-0`, long integers, blanks),
//! duplicate member names and broken JSON.

mod common;

use proptest::prelude::*;
use serde_json::{json, Value};
use veil_engine::{sanitize_body_dom, sanitize_body_streaming, BodyError, RuleSet, Scheme};

const KEYS: &[&str] = &[
    "a",
    "b",
    "id",
    "name",
    "value",
    "emailAddress",
    "address",
    "type",
    "x y",
    "@odata.nextLink",
    "\\u0061",
    "é",
];

const STRING_PIECES: &[&str] = &[
    "x",
    "a",
    "ann@contoso.example",
    "é",
    "\\n",
    "\\u0041",
    "\\/",
    "\\\"",
    "\\ud83d\\ude00",
    "\\\\",
    "<p>",
    "12 34",
    "\\u001f",
    "Zoë Núñez",
    "\\ud800",
    "\\udc00x",
];

const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "1.0",
    "1.50",
    "1e5",
    "1.0e5",
    "-1E-2",
    "2E+3",
    "123456789012345678",
    "1234567890123456789",
    "12345678901234567890",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "0.1",
    "1e308",
    "3.141592653589793238",
    "-0.0",
    "1e-400",
];

const SEPS: &[&str] = &[",", " , ", ",\n\t", ",\r\n  "];

const PATHS: &[&str] = &[
    "$..a",
    "$..b",
    "$..id",
    "$..name",
    "$..emailAddress",
    "$..emailAddress.address",
    "$.value[*]",
    "$.value[*].id",
    "$..value[*].emailAddress",
    "$.a.b",
    "$..value[0]",
    "$.value[-1]",
    "$.value[1:]",
    "$.value[::2]",
    "$..value[?(@.type == 'x')]",
    "$..value[?(@.type == 'x')].id",
    "$.*",
    "$..*",
    "$['x y']",
    "$.a[*].b",
    "$..b[*]",
    "$..address",
    "$.value[0,2].a",
    "$..type",
];

const METHODS: &[&str] = &[
    "!<redact>",
    "!<pseudonymize>",
    "!<tokenize>",
    "!<redactRegexMatches>\n        redactions: ['[0-9]']",
    "!<pseudonymizeEmailHeader>",
    "!<filterTokenByRegex>\n        filters: ['[a-z]+']",
    "!<redactExceptPhrases>\n        allowedPhrases: ['x']",
];

fn pick(pool: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    prop::sample::select(pool)
}

fn string() -> impl Strategy<Value = String> {
    prop::collection::vec(pick(STRING_PIECES), 0..4).prop_map(|p| format!("\"{}\"", p.concat()))
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => string(),
        2 => pick(NUMBERS).prop_map(String::from),
        1 => pick(&["true", "false", "null"]).prop_map(String::from),
    ]
}

/// A document as raw JSON text.
fn doc() -> impl Strategy<Value = String> {
    let tree = scalar().prop_recursive(5, 80, 6, |inner| {
        prop_oneof![
            (prop::collection::vec(inner.clone(), 0..5), pick(SEPS))
                .prop_map(|(items, sep)| format!("[{}]", items.join(sep))),
            (
                prop::collection::vec((pick(KEYS), inner), 0..6),
                pick(SEPS),
                any::<bool>()
            )
                .prop_map(|(members, sep, spaced)| {
                    let colon = if spaced { " : " } else { ":" };
                    let m: Vec<String> = members
                        .into_iter()
                        .map(|(k, v)| format!("\"{k}\"{colon}{v}"))
                        .collect();
                    format!("{{{}}}", m.join(sep))
                }),
        ]
    });
    let page = prop::collection::vec(tree.clone(), 0..4).prop_map(|items| {
        format!(
            "{{\"value\": [{}], \"@odata.nextLink\": \"x\"}}",
            items.join(",")
        )
    });
    (prop_oneof![tree, page], pick(&["", " ", "\n", "\t\r\n "]))
        .prop_map(|(t, ws)| format!("{ws}{t}{ws}"))
}

/// A `responseSchema` node.
fn schema() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(json!({})),
        Just(json!({"type": "string"})),
        Just(json!({"type": "integer"})),
        Just(json!({"type": "number"})),
        Just(json!({"type": "boolean"})),
        Just(json!({"type": "null"})),
        Just(json!({"type": "array"})),
        Just(json!({"type": "object"})),
        Just(json!({"$ref": "#/definitions/D"})),
        Just(json!({"const": "x"})),
        Just(json!({"type": "string", "const": "a"})),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec((pick(&KEYS[..10]), inner.clone()), 0..5).prop_map(|props| {
                let mut m = serde_json::Map::new();
                for (k, s) in props {
                    m.insert(k.replace("\\u0061", "a"), s);
                }
                json!({"type": "object", "properties": m})
            }),
            inner
                .clone()
                .prop_map(|s| json!({"type": "array", "items": s})),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|alts| json!({"anyOf": alts})),
            // Alternatives told apart by a member's `const` (as Graph's
            // `@odata.type` discriminators are written).
            (inner.clone(), inner, pick(&["anyOf", "oneOf"])).prop_map(|(a, b, key)| {
                json!({ key: [
                    {"type": "object", "properties": {"type": {"const": "x"}, "a": a}},
                    {"type": "object", "properties": {"type": {"const": "y"}, "b": b}},
                    {"type": "string", "const": "x"},
                ]})
            }),
        ]
    })
}

#[derive(Debug, Clone)]
struct Rules {
    schema: Option<(Value, Value)>,
    transforms: Vec<(&'static str, Vec<&'static str>, Option<&'static str>)>,
}

fn rules() -> impl Strategy<Value = Rules> {
    let transform = (
        pick(METHODS),
        prop::collection::vec(pick(PATHS), 1..4),
        prop::option::weighted(0.05, pick(&["$..a", "$..[?(@.type == 'x')]"])),
    );
    (
        prop::option::weighted(0.7, (schema(), schema())),
        prop::collection::vec(transform, 0..4),
    )
        .prop_map(|(schema, transforms)| Rules { schema, transforms })
}

impl Rules {
    fn yaml(&self) -> String {
        let mut s = String::from("endpoints:\n  - pathTemplate: /x\n");
        if let Some((root, def)) = &self.schema {
            let mut root = root.clone();
            if let Value::Object(m) = &mut root {
                m.insert("definitions".into(), json!({ "D": def }));
            }
            s.push_str(&format!("    responseSchema: {root}\n"));
        }
        if !self.transforms.is_empty() {
            s.push_str("    transforms:\n");
        }
        for (method, paths, when) in &self.transforms {
            s.push_str(&format!(
                "      - {method}\n        jsonPaths: {}\n",
                serde_json::to_string(paths).unwrap()
            ));
            if let Some(w) = when {
                s.push_str(&format!("        applyOnlyWhen: \"{w}\"\n"));
            }
        }
        s
    }
}

/// Both paths on one body; returns whether the stream path answered.
fn check(rules: &RuleSet, body: &[u8]) -> Result<bool, TestCaseError> {
    let e = &rules.endpoints[0];
    let p = common::pseudonymizer(Scheme::Hmac);
    let dom = sanitize_body_dom(&e.sanitizer, body, p, &e.label);
    let streamed = sanitize_body_streaming(&e.sanitizer, body, p, &e.label);
    let full = e.sanitize_bytes(body, p);
    let show = String::from_utf8_lossy(body);
    match (&dom, &streamed) {
        (Ok(d), Ok(Some(s))) => {
            prop_assert_eq!(
                String::from_utf8_lossy(&d.0),
                String::from_utf8_lossy(&s.0),
                "body {}",
                show
            );
            prop_assert_eq!(&d.1, &s.1, "report, body {}", show);
        }
        // Deferred to the DOM path (duplicate member names).
        (_, Ok(None)) => {}
        (Err(BodyError::InvalidJson { .. }), Err(_)) => {}
        (Err(d), Err(s)) => prop_assert_eq!(d, s, "body {}", show),
        _ => prop_assert!(
            false,
            "dom {:?} vs stream {:?}, body {}",
            dom,
            streamed,
            show
        ),
    }
    match (&dom, &full) {
        (Ok(d), Ok(f)) => prop_assert_eq!(d, f),
        (Err(_), Err(_)) => {}
        _ => prop_assert!(false, "dom {:?} vs sanitize_bytes {:?}", dom, full),
    }
    // Read in pieces: the same as from memory, streamed exactly when it
    // streams from memory.
    for piece in common::PIECE_SIZES {
        common::same_in_pieces(e, body, piece, p, &show);
    }
    Ok(matches!(streamed, Ok(Some(_))))
}

fn load(r: &Rules) -> Option<RuleSet> {
    // A random schema may be refused at load (e.g. `$ref` without
    // definitions); such rule sets are not the subject here.
    RuleSet::from_str("props.yaml", &r.yaml()).ok()
}

proptest! {
    // PROPTEST_CASES raises the count for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(3000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn stream_equals_dom(r in rules(), d in doc()) {
        let Some(rules) = load(&r) else { return Ok(()) };
        check(&rules, d.as_bytes())?;
    }

    #[test]
    fn stream_equals_dom_on_broken_json(
        r in rules(),
        d in doc(),
        at in any::<prop::sample::Index>(),
        byte in prop::sample::select(vec![b',', b']', b'}', b'"', b'\\', 0x01, b'0', b' ', 0xff, b'{', b'[', b':']),
        truncate in any::<bool>(),
    ) {
        let Some(rules) = load(&r) else { return Ok(()) };
        let mut b = d.into_bytes();
        let i = at.index(b.len() + 1);
        if truncate {
            b.truncate(i);
        } else {
            b.insert(i, byte);
        }
        check(&rules, &b)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Escape sequences, valid or not, in a string that is copied and in one
    /// that is skipped: accepted exactly when serde_json accepts them.
    #[test]
    fn escapes_agree_with_serde_json(
        pieces in prop::collection::vec(
            pick(&["\\", "u", "d800", "DBFF", "dc00", "DFFF", "D83D", "DE00", "0041", "00", "\"", "n", "x", "G", "/", "é", "\u{1}"]),
            0..8,
        )
    ) {
        let inner = pieces.concat();
        let rules = [
            common::rules("      - !<redact>\n        jsonPaths: ['$..zzz']\n"),
            common::rules("      - !<redact>\n        jsonPaths: ['$..t']\n"),
        ];
        for body in [format!("\"{inner}\""), format!("{{\"t\": \"{inner}\"}}")] {
            let serde_ok = serde_json::from_slice::<Value>(body.as_bytes()).is_ok();
            for r in &rules {
                let e = &r.endpoints[0];
                let p = common::pseudonymizer(Scheme::Hmac);
                let s = sanitize_body_streaming(&e.sanitizer, body.as_bytes(), p, &e.label);
                match s {
                    Ok(Some(out)) => {
                        prop_assert!(serde_ok, "accepted {:?}", body);
                        prop_assert_eq!(Ok(out), sanitize_body_dom(&e.sanitizer, body.as_bytes(), p, &e.label));
                    }
                    Ok(None) => prop_assert!(false, "deferred {:?}", body),
                    Err(_) => prop_assert!(!serde_ok, "refused {:?}", body),
                }
            }
        }
    }
}

/// The Graph-like shape the shipped rules see: a page object with `value[]`.
#[test]
fn random_runs_mostly_stream() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut loaded, mut streamed) = (0, 0);
    for _ in 0..1000 {
        let r = rules().new_tree(&mut runner).unwrap().current();
        let d = doc().new_tree(&mut runner).unwrap().current();
        let Some(rules) = load(&r) else { continue };
        if !rules.endpoints[0].sanitizer.streams() {
            continue;
        }
        if serde_json::from_slice::<Value>(d.as_bytes()).is_err() {
            // Lone surrogates make some documents invalid.
            check(&rules, d.as_bytes()).unwrap();
            continue;
        }
        loaded += 1;
        if check(&rules, d.as_bytes()).unwrap_or_else(|e| panic!("{e}\nrules:\n{}", r.yaml())) {
            streamed += 1;
        }
    }
    eprintln!("{loaded} streamable rule sets, {streamed} streamed");
    assert!(loaded > 300, "too few rule sets load: {loaded}");
    // Only bodies with a duplicate member name in an object that is read
    // defer to the DOM path.
    assert!(
        streamed * 10 > loaded * 7,
        "{streamed} of {loaded} streamed"
    );
}

#[test]
fn nesting_limit_is_serde_jsons() {
    let rules = common::rules("      - !<redact>\n        jsonPaths: ['$..zzz']\n");
    for depth in [126, 127, 128, 129] {
        let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let e = &rules.endpoints[0];
        let p = common::pseudonymizer(Scheme::Hmac);
        let dom = sanitize_body_dom(&e.sanitizer, body.as_bytes(), p, &e.label);
        let s = sanitize_body_streaming(&e.sanitizer, body.as_bytes(), p, &e.label);
        assert_eq!(dom.is_ok(), depth <= 127, "depth {depth}");
        match s {
            Ok(Some(out)) => assert_eq!(Ok(out), dom, "depth {depth}"),
            Err(err) => assert_eq!(Err(err), dom, "depth {depth}"),
            Ok(None) => panic!("depth {depth}: deferred"),
        }
    }
}

#[test]
fn numbers_and_strings_are_written_as_serde_json_writes_them() {
    let rules = common::rules("      - !<redact>\n        jsonPaths: ['$..zzz']\n");
    let e = &rules.endpoints[0];
    let p = common::pseudonymizer(Scheme::Hmac);
    let body = br#"[1.0e5, -0, 1E2, 0.10, 12345678901234567890, 123456789012345678901, "\u00e9\/\u0041", "a\u001fb"]"#;
    let (out, _) = sanitize_body_streaming(&e.sanitizer, body, p, &e.label)
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"[100000.0,-0.0,100.0,0.1,12345678901234567890,1.2345678901234567e+20,"é/A","a\u001fb"]"#
    );
}

#[test]
fn duplicate_member_names_defer_to_the_dom() {
    let rules = common::rules("      - !<redact>\n        jsonPaths: ['$..zzz']\n");
    let e = &rules.endpoints[0];
    let p = common::pseudonymizer(Scheme::Hmac);
    let body = br#"{"a":1,"b":2,"\u0061":3}"#;
    assert_eq!(
        sanitize_body_streaming(&e.sanitizer, body, p, &e.label),
        Ok(None)
    );
    let (out, _) = e.sanitize_bytes(body, p).unwrap();
    assert_eq!(out, br#"{"a":3,"b":2}"#);
}

#[test]
fn invalid_json_names_line_and_column() {
    let rules = common::rules("      - !<redact>\n        jsonPaths: ['$..zzz']\n");
    let e = &rules.endpoints[0];
    let p = common::pseudonymizer(Scheme::Hmac);
    let err = e.sanitize_bytes(b"{\n  \"a\": [1,]\n}", p).unwrap_err();
    match err {
        BodyError::InvalidJson { line, column, .. } => assert_eq!((line, column), (2, 11)),
        other => panic!("{other:?}"),
    }
}

/// Tokens at the edge of the grammar, alone and inside subtrees that are
/// copied, transformed and skipped: the stream path accepts exactly what
/// serde_json accepts and writes what it writes.
#[test]
fn edge_tokens_agree_with_serde_json() {
    let tokens = [
        "0",
        "-0",
        "01",
        "-01",
        "1.",
        ".5",
        "+1",
        "-",
        "1e",
        "1e+",
        "--1",
        "0x1",
        "1.5e308",
        "1.5e309",
        "-1e400",
        "1e-400",
        "1E400",
        "tru",
        "nul",
        "nulll",
        "true",
        "[1,]",
        "{\"a\":1,}",
        "{,}",
        "[,1]",
        "[1 2]",
        "{\"a\" 1}",
        "{1:2}",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\u12G4\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"\\ud83d\\ude00\"",
        "\"\\ud800\\\\\"",
        "\"a\tb\"",
        "\"\u{7f}\"",
        "\"\\/\"",
        "\"\\b\\f\\n\\r\\t\"",
        "[]",
        "{}",
        "[[]]",
        "\"",
        "\"abc",
        "[",
        "{",
        "]",
        "}",
        "",
        " ",
        "1 2",
        "\u{feff}1",
        "{\"a\":1}x",
        "18446744073709551616",
        "-9223372036854775809",
        "123456789012345678",
        "1234567890123456789",
    ];
    let rules = [
        common::rules("      - !<redact>\n        jsonPaths: ['$..zzz']\n"),
        common::rules("      - !<pseudonymize>\n        jsonPaths: ['$..t']\n"),
        common::rules("      - !<redact>\n        jsonPaths: ['$..t']\n"),
        RuleSet::from_str(
            "s.yaml",
            "endpoints:\n  - pathTemplate: /x\n    responseSchema: {type: object, properties: {k: {type: integer}}}\n",
        )
        .unwrap(),
    ];
    let mut cases = 0;
    for t in tokens {
        for body in [
            t.to_string(),
            format!("{{\"k\": 1, \"t\": {t}, \"u\": [{t}]}}"),
            format!("[{t}, {{\"t\": [{t}]}}]"),
        ] {
            for r in &rules {
                cases += 1;
                let e = &r.endpoints[0];
                let p = common::pseudonymizer(Scheme::Hmac);
                let serde_ok = serde_json::from_slice::<Value>(body.as_bytes()).is_ok();
                let dom = sanitize_body_dom(&e.sanitizer, body.as_bytes(), p, &e.label);
                match sanitize_body_streaming(&e.sanitizer, body.as_bytes(), p, &e.label) {
                    Ok(Some(s)) => {
                        assert!(serde_ok, "stream accepted {body:?}");
                        assert_eq!(Ok(s), dom, "{body:?}");
                    }
                    // No duplicate names here: deferring would mean the
                    // scanner refused JSON serde_json accepts.
                    Ok(None) => panic!("{body:?} deferred"),
                    Err(BodyError::InvalidJson { .. }) => {
                        assert!(!serde_ok, "stream refused {body:?}")
                    }
                    Err(err) => assert_eq!(Err(err), dom, "{body:?}"),
                }
            }
        }
    }
    assert!(cases > 600);
}

/// Objects in a list repeat their members in order, and the streaming path
/// takes each member's decision from the object before while the names
/// match. Whatever follows such a run — the same members, fewer, more,
/// reordered, a duplicate (plain or escaped, among few or many members,
/// in the object or one inside it) — the answer is the DOM path's, and a
/// duplicate still sends the body to the DOM path. The same holds for the
/// first object of the next response, which the members kept from the
/// passes before predict.
#[test]
fn repeated_objects_reuse_decisions_and_still_find_duplicates() {
    let rules = common::rules("      - !<redact>\n        jsonPaths: ['$..d', '$.value[*].b.x']\n");
    let many = |extra: &str| {
        let names: Vec<String> = (0..40).map(|i| format!(r#""k{i}":{i}"#)).collect();
        format!("{{{}{extra}}}", names.join(","))
    };
    let base = r#"{"a":1,"b":{"c":2,"x":"y"},"d":3}"#;
    let cases: Vec<(String, bool)> = vec![
        (base.to_string(), false),
        (r#"{"a":1,"b":{"c":2,"x":"y"},"d":3,"a":4}"#.into(), true),
        (r#"{"a":1,"\u0062":{"c":2,"x":"y"},"d":3}"#.into(), false),
        (r#"{"a":1,"\u0061":5}"#.into(), true),
        (r#"{"a":1,"b":{"c":2,"x":"y"}}"#.into(), false),
        (r#"{"a":1,"b":{"c":2,"x":"y"},"d":3,"e":4}"#.into(), false),
        (r#"{"d":3,"a":1}"#.into(), false),
        (r#"{"a":1,"b":{"c":2,"x":"y","c":3},"d":3}"#.into(), true),
        (r#"{"a":1,"b":{"c":2,"x":"y"},"d":3,"b":1}"#.into(), true),
        (many(""), false),
        (many(r#","k5":0"#), true),
        (many(r#","k40":0,"k39":1"#), true),
        (many(r#","k40":0"#), false),
    ];
    for (tail, duplicate) in &cases {
        for before in [vec![base.to_string(); 3], vec![many(""); 2], vec![]] {
            let mut items = before.clone();
            items.push(tail.clone());
            // And the same run once more after it: the members kept must
            // be the last object's.
            items.extend(before.iter().cloned());
            let body = format!(r#"{{"value":[{}]}}"#, items.join(","));
            let streamed = check(&rules, body.as_bytes()).unwrap();
            assert_eq!(streamed, !duplicate, "{body}");
            // The next response alone: its first object is predicted by
            // the members the passes over this one left for the endpoint.
            let next = format!(r#"{{"value":[{tail}]}}"#);
            let streamed = check(&rules, next.as_bytes()).unwrap();
            assert_eq!(streamed, !duplicate, "{next}");
        }
    }
}

/// A member name read with escapes is never matched byte for byte against
/// the next object's names: its text may hold a quote or a backslash, and
/// the same bytes unescaped are another name or not JSON at all.
#[test]
fn names_with_escapes_are_not_matched_as_bytes() {
    let rules = common::rules("      - !<redact>\n        jsonPaths: ['$..d']\n");
    // (the run before, the object after, whether it is JSON)
    let cases: &[(&str, &str, bool)] = &[
        (r#"{"a\"b":1,"d":2}"#, r#"{"a"b":1,"d":2}"#, false),
        (r#"{"a\\b":1,"d":2}"#, r#"{"a\b":1,"d":2}"#, true),
        (r#"{"a\u0022b":1}"#, r#"{"a"b":1}"#, false),
        (r#"{"\u0061":1,"d":2}"#, r#"{"a":1,"d":2}"#, true),
        (r#"{"a":1,"d":2}"#, r#"{"\u0061":1,"d":2}"#, true),
        (r#"{"a":1,"d":2}"#, r#"{ "a" :1, "d" : 2}"#, true),
        (r#"{"ab":1,"d":2}"#, r#"{"a":1,"d":2}"#, true),
        (r#"{"a":1,"d":2}"#, r#"{"ab":1,"d":2}"#, true),
        (r#"{"a":1,"d":2}"#, r#"{"a"#, false),
    ];
    for (run, after, json) in cases {
        let body = format!(r#"{{"value":[{run},{run},{after},{run}]}}"#);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).is_ok(),
            *json,
            "{body}"
        );
        let streamed = check(&rules, body.as_bytes()).unwrap();
        assert_eq!(streamed, *json, "{body}");
    }
}

/// A `pseudonymize` whose output the pseudonymizer's cache holds is
/// written from the cache. Whether nothing was cached yet (the first of
/// repeated addresses computed, the rest from the cache), or everything
/// was: the same bytes and the same report as the DOM path, for a plain
/// `pseudonymize` and for the options the cache leaves to the transform.
#[test]
fn cached_pseudonyms_stream_as_computed_ones() {
    let body = br#"{"value":[{"a":"x@contoso.example","b":"x@contoso.example"},{"a":"y@fabrikam.example","b":"  "},{"a":"x@contoso.example","b":"Q@X.example"},{"a":7,"b":"q@x.example"}]}"#;
    let transforms = [
        "      - !<pseudonymize>\n        jsonPaths: ['$..a', '$..b']\n",
        "      - !<pseudonymize>\n        jsonPaths: ['$..a', '$..b']\n        encoding: URL_SAFE_HASH_ONLY\n",
        "      - !<pseudonymize>\n        jsonPaths: ['$..a', '$..b']\n        includeReversible: true\n",
        "      - !<pseudonymize>\n        jsonPaths: ['$..a', '$..b']\n        encoding: JSON\n",
        "      - !<pseudonymize>\n        jsonPaths: ['$..a', '$..b']\n        encoding: JSON\n        includeOriginal: true\n",
        "      - !<pseudonymize>\n        jsonPaths: ['$..a', '$..b']\n        onlyIfRegex: '^x'\n",
        "      - !<pseudonymize>\n        jsonPaths: ['$..a']\n      - !<pseudonymize>\n        jsonPaths: ['$..b']\n",
    ];
    for scheme in [Scheme::Hmac, Scheme::Psoxy] {
        for t in transforms {
            let rules = common::rules(t);
            let e = &rules.endpoints[0];
            let p = common::build(scheme);
            let cold = sanitize_body_streaming(&e.sanitizer, body, &p, &e.label)
                .unwrap()
                .unwrap();
            let warm = sanitize_body_streaming(&e.sanitizer, body, &p, &e.label)
                .unwrap()
                .unwrap();
            let dom = sanitize_body_dom(&e.sanitizer, body, &p, &e.label).unwrap();
            let show = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            assert_eq!(show(&cold.0), show(&dom.0), "{t}");
            assert_eq!(show(&warm.0), show(&dom.0), "{t}");
            assert_eq!(cold.1, dom.1, "{t}");
            assert_eq!(warm.1, dom.1, "{t}");
            if !t.contains("includeOriginal") {
                assert!(!show(&warm.0).contains("x@contoso"), "{}", show(&warm.0));
            }
        }
    }
}
