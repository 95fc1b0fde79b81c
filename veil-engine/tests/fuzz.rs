//! Fuzzing on stable Rust (proptest): rule files, JSON documents and request
//! targets generated to be odd — deep, wide, huge or negative numbers,
//! unusual Unicode, broken YAML — run through the rule loader, the sanitizer
//! and re-identification. The properties: nothing panics, planted values
//! never come out, a decrypted value never steers the upstream request, and
//! every case finishes (proptest runs them one after another, each bounded
//! by the input sizes below).
//!
//! The number of cases per property is `VEIL_FUZZ_CASES` (default 512,
//! which keeps this file to well under a minute in CI). For a longer local
//! run:
//!
//! ```text
//! VEIL_FUZZ_CASES=20000 cargo test --release -p veil-engine --test fuzz
//! ```

use std::sync::LazyLock;

use proptest::prelude::*;
use serde_json::{Map, Number, Value};
use veil_engine::{
    reidentify, reidentify_for, EmailPolicy, PseudonymConfig, Pseudonymizer, RuleSet, Scheme,
    Secret, TokenKind,
};

/// Cases per property (`VEIL_FUZZ_CASES`, default 512).
fn cases() -> u32 {
    std::env::var("VEIL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        // Shrinking a failure is useful; unbounded shrinking is not.
        max_shrink_iters: 2048,
        ..ProptestConfig::default()
    }
}

static P: LazyLock<Pseudonymizer> = LazyLock::new(|| {
    Pseudonymizer::new(PseudonymConfig {
        scheme: Scheme::Hmac,
        salt: Secret::from("fuzz-salt-Vq8Xe2Lw6Nr1Kz9Ut4Cb7Hm3Jy5Pd0Gs"),
        encryption_keys: vec![(
            "k1".into(),
            Secret::from("fuzz-key-Rt3Wq9Zp2Lx7Vn4Tb8Hc1Jm6Fd5Gs0Ya"),
        )],
        email: EmailPolicy::default(),
    })
    .expect("fuzz pseudonymizer")
});

/// The shipped rule files: loaded as they are, and mutated.
const SHIPPED: &[(&str, &str)] = &[
    ("entra-id.yaml", include_str!("../../rules/entra-id.yaml")),
    (
        "msft-teams.yaml",
        include_str!("../../rules/msft-teams.yaml"),
    ),
    (
        "outlook-mail.yaml",
        include_str!("../../rules/outlook-mail.yaml"),
    ),
    (
        "outlook-cal.yaml",
        include_str!("../../rules/outlook-cal.yaml"),
    ),
];

static SHIPPED_RULES: LazyLock<Vec<RuleSet>> = LazyLock::new(|| {
    SHIPPED
        .iter()
        .map(|(n, t)| RuleSet::from_str(n, t).unwrap_or_else(|e| panic!("{n}: {e}")))
        .collect()
});

/// Strings with odd Unicode: controls, bidi overrides, zero-width and
/// combining characters, astral planes, look-alikes of `.` and `/`.
fn odd_string() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-zA-Z0-9 ._@:-]{0,8}",
        Just("\u{202e}".to_string()),
        Just("\u{200b}".to_string()),
        Just("\u{feff}".to_string()),
        Just("e\u{301}".to_string()),
        Just("\u{ff0e}\u{ff0f}".to_string()),
        Just("\u{1f600}".to_string()),
        Just("\u{0}\u{1}\u{7f}\u{85}".to_string()),
        Just("'\"\\%25%2e%2F".to_string()),
        Just("p~".to_string()),
        Just("..".to_string()),
        Just(".".to_string()),
        Just("'".to_string()),
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..6).prop_map(|v| v.concat())
}

/// Numbers serde_json can hold, including the awkward ones.
fn odd_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        Just(Value::from(i64::MIN)),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        Just(Value::from(-0.0)),
        Just(Value::from(1e308)),
        Just(Value::from(5e-324)),
    ]
}

/// Keys: mostly the ones the rules look at, so transforms fire.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "id", "mail", "displayName", "userPrincipalName", "value", "emailAddress",
            "address", "subject", "body", "content", "from", "user", "members",
            "@odata.nextLink", "chatId", "joinWebUrl", "proxyAddresses",
        ])
        .prop_map(String::from),
        1 => odd_string(),
    ]
}

/// Deep and wide JSON documents.
fn odd_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        odd_number(),
        odd_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(12, 400, 24, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..24).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..24)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Rules whose transforms cover every planted key.
const PLANT_RULES: &str = r#"
endpoints:
  - pathTemplate: /x
    transforms:
      - !<redact>
        jsonPaths: ["$..displayName", "$..body"]
      - !<pseudonymize>
        jsonPaths: ["$..mail", "$..address"]
      - !<tokenize>
        jsonPaths: ["$..id"]
        kind: user
      - !<redactRegexMatches>
        jsonPaths: ["$..subject"]
        redactions: ["PLANTED[A-Z]+[0-9]+"]
"#;

static PLANT: LazyLock<RuleSet> =
    LazyLock::new(|| RuleSet::from_str("plant.yaml", PLANT_RULES).expect("plant rules"));

/// Puts `value` under `key` in the `pick`-th object of `doc` (or wraps it).
fn plant(doc: &mut Value, key: &str, value: &Value, pick: usize) {
    fn walk(v: &mut Value, n: &mut usize, key: &str, value: &Value) -> bool {
        if let Value::Object(m) = v {
            if *n == 0 {
                m.insert(key.to_string(), value.clone());
                return true;
            }
            *n -= 1;
        }
        match v {
            Value::Array(a) => a.iter_mut().any(|c| walk(c, n, key, value)),
            Value::Object(m) => m.values_mut().any(|c| walk(c, n, key, value)),
            _ => false,
        }
    }
    let mut n = pick;
    if !walk(doc, &mut n, key, value) {
        let mut m = Map::new();
        m.insert("wrapped".into(), doc.take());
        m.insert(key.to_string(), value.clone());
        *doc = Value::Object(m);
    }
}

/// Random edits of a text: deletions, duplications, insertions of YAML
/// punctuation, at positions chosen by the fuzzer.
fn mutate(text: &str, edits: &[(prop::sample::Index, u8, String)]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for (at, op, ins) in edits {
        if chars.is_empty() {
            chars.extend(ins.chars());
            continue;
        }
        let i = at.index(chars.len());
        match op % 4 {
            0 => {
                let end = (i + 1 + ins.len()).min(chars.len());
                chars.drain(i..end);
            }
            1 => {
                let end = (i + 16).min(chars.len());
                let dup: Vec<char> = chars[i..end].to_vec();
                chars.splice(i..i, dup);
            }
            _ => {
                chars.splice(i..i, ins.chars());
            }
        }
    }
    chars.into_iter().collect()
}

fn yaml_bits() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            ":",
            "- ",
            "\n",
            "  ",
            "!<redact>",
            "!<tokenize>",
            "&a",
            "*a",
            "<<: *a",
            "{",
            "}",
            "[",
            "]",
            "'",
            "\"",
            "#",
            "|",
            ">",
            "~",
            "null",
            "1e999",
            "-.inf",
            "$..",
            "[?(@",
            "jsonPaths",
            "pathTemplate: /{x}",
            "kind: chat",
            "\t",
            "%YAML 1.2\n",
            "---\n",
        ])
        .prop_map(String::from),
        odd_string(),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// The loader never panics on a mutated shipped rule file or on noise,
    /// and a file that loads also matches and sanitizes without panicking.
    #[test]
    fn rule_loader_never_panics(
        which in 0usize..4,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), yaml_bits()), 0..6),
        noise in prop::collection::vec(yaml_bits(), 0..12),
        doc in odd_json(),
    ) {
        let (name, text) = SHIPPED[which];
        let mutated = mutate(text, &edits);
        if let Ok(rules) = RuleSet::from_str(name, &mutated) {
            for ep in &rules.endpoints {
                let mut d = doc.clone();
                let _ = ep.sanitize(&mut d, &P);
            }
        }
        let _ = RuleSet::from_str("noise.yaml", &noise.concat());
        let _ = RuleSet::from_str("noise.json", &noise.concat());
    }

    /// Planted values never leave the sanitizer, whatever the document.
    #[test]
    fn planted_values_never_leave(
        mut doc in odd_json(),
        picks in prop::collection::vec(0usize..64, 5),
        tag in "[0-9]{6}",
    ) {
        let name = Value::String(format!("PLANTEDNAME{tag}"));
        let mail = Value::String(format!("planted.mail{tag}@contoso.example"));
        let id = Value::String(format!("PLANTEDID{tag}"));
        let subject = Value::String(format!("weekly PLANTEDSUBJECT{tag} sync"));
        let body = serde_json::json!({"content": format!("PLANTEDBODY{tag}"), "n": [1, 2]});
        plant(&mut doc, "displayName", &name, picks[0]);
        plant(&mut doc, "mail", &mail, picks[1]);
        plant(&mut doc, "id", &id, picks[2]);
        plant(&mut doc, "subject", &subject, picks[3]);
        plant(&mut doc, "body", &body, picks[4]);
        // Failing closed (an error) is fine: the document is not sent then.
        if PLANT.endpoints[0].sanitize(&mut doc, &P).is_ok() {
            let text = serde_json::to_string(&doc).unwrap();
            prop_assert!(!text.contains("PLANTED"), "leaked: {}", text);
            prop_assert!(!text.contains(&format!("mail{tag}")), "leaked: {}", text);
        }
    }

    /// Shipped rules on arbitrary documents: no panic.
    #[test]
    fn shipped_rules_never_panic(doc in odd_json(), which in 0usize..4, ep in any::<prop::sample::Index>()) {
        let rules = &SHIPPED_RULES[which];
        let ep = &rules.endpoints[ep.index(rules.endpoints.len())];
        let mut d = doc;
        let _ = ep.sanitize(&mut d, &P);
    }

    /// JSON text as a body arrives: deep nesting (past serde_json's limit),
    /// long numbers, escapes. Parsing refuses or the sanitizer runs.
    #[test]
    fn json_text_never_panics(depth in 0usize..300, digits in "[0-9]{1,400}", s in odd_string(), which in 0usize..4) {
        let inner = format!(
            "{{\"id\":\"{}\",\"n\":{digits},\"f\":-{digits}.{digits}e-{digits},\"u\":\"\\ud800\\udc00\"}}",
            s.replace('\\', "\\\\").replace('"', "\\\"").chars().filter(|c| !c.is_control()).collect::<String>()
        );
        let text = format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth));
        if let Ok(mut doc) = serde_json::from_str::<Value>(&text) {
            for ep in &SHIPPED_RULES[which].endpoints {
                let _ = ep.sanitize(&mut doc, &P);
            }
        }
    }

    /// Re-identification of arbitrary targets: no panic, and whatever a
    /// token decrypts to never becomes a dot segment, a separator or a
    /// quote in the upstream request.
    #[test]
    fn reidentify_never_lets_a_value_steer(
        segs in prop::collection::vec(odd_string(), 0..6),
        plain in odd_string(),
        filter_plain in odd_string(),
        kind in prop::option::of(prop::sample::select(TokenKind::ALL.to_vec())),
        raw_query in "[ -~]{0,40}",
    ) {
        let token = P.encrypt_kind(&plain, kind).unwrap();
        let filter_token = P.encrypt(&filter_plain).unwrap();
        let mut path = String::new();
        for s in &segs {
            path.push('/');
            path.push_str(&percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string());
        }
        path.push('/');
        path.push_str(&token);
        let query = format!("$filter=id%20eq%20'{filter_token}'&{raw_query}");
        if let Ok(r) = reidentify(&path, Some(&query), &P) {
            let last = r.path.rsplit('/').next().unwrap_or_default();
            prop_assert!(last != "." && last != "..", "dot segment from {:?}", plain);
            prop_assert_eq!(r.path.matches('/').count(), segs.len() + 1, "a separator from {:?}", plain);
            let q = r.query.unwrap_or_default();
            let filter = q.split('&').next().unwrap_or_default();
            prop_assert_eq!(filter.matches('\'').count(), 2, "a quote from {:?}", filter_plain);
        }
        // Raw noise, also with tokens spliced in.
        let _ = reidentify(&format!("/{raw_query}{token}"), Some(&raw_query), &P);
    }

    /// A token is accepted only by a slot of its kind (or one without a kind).
    #[test]
    fn kinds_are_enforced(kind in prop::option::of(prop::sample::select(TokenKind::ALL.to_vec()))) {
        static KINDS: LazyLock<RuleSet> = LazyLock::new(|| {
            RuleSet::from_str("kinds.yaml", "endpoints:\n  - pathTemplate: /v1.0/chats/{chatId}\n    pathParameterSchemas:\n      chatId: { format: reversible-pseudonym, kind: chat }\n").unwrap()
        });
        let token = P.encrypt_kind("19:abc_def@thread.v2", kind).unwrap();
        let path = format!("/v1.0/chats/{token}");
        let ep = KINDS
            .match_request(
                veil_engine::PolicyRequest { method: "GET", path: &path, query: None },
                veil_engine::RequestSide::Client,
            )
            .unwrap()
            .endpoint;
        let r = reidentify_for(ep, &path, None, &P);
        prop_assert_eq!(r.is_ok(), kind == Some(TokenKind::Chat));
    }
}
