//! Sanitizer benchmark: a realistic Graph page of 1 000 sent messages
//! (≥ 2 MB) sanitized with a rule set of about 20 JSONPaths, mostly `$..field`
//! recursive descent, against the baseline of the same run: serde_json
//! parse and serialize of the same page. Runs are interleaved so machine
//! noise hits both alike; medians are reported with their ratio.
//!
//! Run: `cargo bench -p veil-engine --bench sanitize`

use std::hint::black_box;
use std::time::{Duration, Instant};

use veil_engine::pseudonym::{EmailPolicy, PseudonymConfig, Pseudonymizer, Scheme};
use veil_engine::rules::RuleSet;
use veil_engine::secret::Secret;
use serde_json::{json, Value};

const RULES: &str = r#"
endpoints:
  - pathTemplate: /v1.0/users/{userId}/mailFolders/SentItems/messages
    transforms:
      - !<redact>
        jsonPaths:
          - "$..subject"
          - "$..body"
          - "$..bodyPreview"
          - "$..uniqueBody"
          - "$..internetMessageHeaders"
          - "$..extensions"
          - "$..flag"
          - "$..webLink"
          - "$..categories"
          - "$..emailAddress.name"
      - !<pseudonymize>
        jsonPaths:
          - "$..emailAddress.address"
          - "$..sender.emailAddress.address"
      - !<redactRegexMatches>
        jsonPaths:
          - "$..internetMessageId"
        redactions:
          - "^<[^@]*"
      - !<tokenize>
        jsonPaths:
          - "$..parentFolderId"
          - "$..conversationId"
      - !<tokenize>
        jsonPaths:
          - "$.['@odata.nextLink', '@odata.prevLink']"
        regex: "^https://graph\\.microsoft\\.com/v1\\.0/users/([^/]+)/"
      - !<redact>
        jsonPaths:
          - "$..changeKey"
          - "$..replyTo[*]"
"#;

fn person(i: usize) -> Value {
    let first = [
        "Priya", "Alex", "Zoë", "José", "Wei", "Fatima", "Kenji", "Grace", "Mateus", "Ana",
    ][i % 10];
    let last = [
        "Raman",
        "Moreau",
        "Ångström",
        "Núñez",
        "Li",
        "Al-Sayed",
        "Watanabe",
        "O'Neil",
        "Silva",
        "Kowalska",
    ][(i / 10) % 10];
    let domain = if i.is_multiple_of(7) {
        "fabrikam.example"
    } else {
        "contoso.example"
    };
    json!({"emailAddress": {"name": format!("{first} {last}"), "address": format!("{}.{}{}@{domain}", first.to_lowercase(), last.to_lowercase(), i % 50)}})
}

fn page() -> Value {
    let user = "48d31887-5fad-4d73-a9f5-3c356e68a038";
    let messages: Vec<Value> = (0..1000)
        .map(|i| {
            let to: Vec<Value> = (0..(2 + i % 5)).map(|k| person(i * 3 + k)).collect();
            let cc: Vec<Value> = (0..(i % 3)).map(|k| person(i * 5 + k + 1)).collect();
            json!({
                "@odata.etag": format!("W/\"CQAAABYAAAB{i:08}\""),
                "id": format!("AAMkAGI2TG93AAA{i:020}="),
                "createdDateTime": "2026-11-02T09:15:00Z",
                "lastModifiedDateTime": "2026-11-02T09:15:02Z",
                "changeKey": format!("CQAAABYAAAB{i:010}"),
                "categories": ["Blue category"],
                "receivedDateTime": "2026-11-02T09:15:00Z",
                "sentDateTime": "2026-11-02T09:14:58Z",
                "hasAttachments": i.is_multiple_of(4),
                "internetMessageId": format!("<MW4PR{i:06}.namprd.prod.outlook.com@contoso.example>"),
                "subject": format!("Re: Q{} planning for the Fabrikam rollout #{i}", i % 4 + 1),
                "bodyPreview": "Hi all, following up on yesterday's discussion about the budget and the timeline for the rollout.",
                "importance": "normal",
                "parentFolderId": "AQMkAGI2TAAA-SentItems",
                "conversationId": format!("AAQkAGI2TG93{:016}=", i / 3),
                "conversationIndex": "AQHZ1234567890abcdef==",
                "isDeliveryReceiptRequested": false,
                "isReadReceiptRequested": false,
                "isRead": true,
                "isDraft": false,
                "webLink": format!("https://outlook.office365.com/owa/?ItemID=AAMkAGI2TG93AAA{i:020}%3D&exvsurl=1&viewmodel=ReadMessageItem"),
                "inferenceClassification": "focused",
                "body": {"contentType": "html", "content": format!("<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head><body><p>Hi team,</p><p>Following up on the rollout plan #{i}: the budget review is on Thursday and we still need numbers from the Fabrikam side. Please send them before noon.</p><p>Thanks,<br>Priya</p></body></html>")},
                "sender": person(i),
                "from": person(i),
                "toRecipients": to,
                "ccRecipients": cc,
                "bccRecipients": [],
                "replyTo": [],
                "flag": {"flagStatus": "notFlagged"}
            })
        })
        .collect();
    json!({
        "@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#users('{user}')/mailFolders('SentItems')/messages"),
        "value": messages,
        "@odata.nextLink": format!("https://graph.microsoft.com/v1.0/users/{user}/mailFolders/SentItems/messages?$skip=1000"),
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rules = RuleSet::from_str("bench.yaml", RULES).expect("bench rules load");
    let endpoint = &rules.endpoints[0];
    let paths: usize = endpoint
        .sanitizer
        .transforms()
        .iter()
        .map(|t| t.paths.len())
        .sum();
    let p = Pseudonymizer::new(PseudonymConfig {
        scheme: Scheme::Hmac,
        salt: Secret::from("bench-salt-bench-salt-bench-salt-0123456789"),
        encryption_keys: vec![(
            "k1".into(),
            Secret::from("bench-key-bench-key-bench-key-0123456789"),
        )],
        email: EmailPolicy::default(),
    })
    .expect("pseudonymizer");
    let body = serde_json::to_vec(&page()).expect("serialize page");

    let baseline = |b: &[u8]| {
        let v: Value = serde_json::from_slice(b).expect("parse");
        serde_json::to_vec(&v).expect("serialize")
    };
    let sanitize = |b: &[u8]| {
        let mut v: Value = serde_json::from_slice(b).expect("parse");
        endpoint.sanitize(&mut v, &p).expect("sanitize");
        serde_json::to_vec(&v).expect("serialize")
    };
    // Warm up, and show that the work is real.
    let out = sanitize(&body);
    assert!(!String::from_utf8_lossy(&out).contains("Fabrikam rollout"));
    for _ in 0..5 {
        black_box(baseline(black_box(&body)));
        black_box(sanitize(black_box(&body)));
    }
    let rounds: usize = std::env::var("VEIL_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let (mut tb, mut ts) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        black_box(baseline(black_box(&body)));
        tb.push(t.elapsed());
        let t = Instant::now();
        black_box(sanitize(black_box(&body)));
        ts.push(t.elapsed());
    }
    let (b, s) = (median(tb), median(ts));
    println!(
        "page: {:.2} MB, 1000 messages; rule set: {} transforms, {} JSONPaths",
        body.len() as f64 / 1e6,
        endpoint.sanitizer.transforms().len(),
        paths
    );
    println!(
        "baseline (serde_json parse + serialize): median {:.2} ms over {rounds} rounds",
        b.as_secs_f64() * 1e3
    );
    println!(
        "sanitize (parse + rules + serialize):    median {:.2} ms over {rounds} rounds",
        s.as_secs_f64() * 1e3
    );
    println!(
        "ratio sanitize / baseline: {:.2} (target <= 1.50)",
        s.as_secs_f64() / b.as_secs_f64()
    );
}
