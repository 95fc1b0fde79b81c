//! Sanitizer benchmark: realistic Graph pages of sent messages (1 000
//! messages ≈ 2 MB, 5 000 ≈ 10 MB), sanitized by the DOM path (parse into a
//! `Value`, rules, serialize) and by the streaming path
//! (`CompiledEndpoint::sanitize_bytes`), and by the streaming path reading
//! the page in 64 KiB pieces (`sanitize_body_streaming_read`, one pass, as each
//! pass of `veil sanitize --compact FILE`), against the baseline of the same
//! run: serde_json parse and serialize of the same page. Rule sets: the
//! shipped `rules/outlook-mail.yaml` (the Sent Items endpoint) and an inline
//! set of about 20 JSONPaths, mostly `$..field` recursive descent, without a
//! schema. Runs are interleaved so machine noise hits all alike; medians are
//! reported with their ratio to the baseline.
//!
//! The `reader:` lines compare ways to read the page: serde_json's fastest
//! event path (`from_slice::<IgnoredAny>`, the floor of a transcoder built on
//! serde_json's `Deserializer`), and the streaming scanner skipping the whole
//! page (a schema that keeps nothing) and copying it (no rules).
//!
//! Run: `cargo bench -p veil-engine --bench sanitize`
//! (`VEIL_BENCH_ROUNDS` sets the rounds, default 15).
//!
//! For peak-memory measurements (`/usr/bin/time -v` on the bench binary):
//! `VEIL_BENCH_WRITE_PAGE=FILE` writes the 10 MB page and exits;
//! `VEIL_BENCH_ONCE=dom:FILE` or `stream:FILE` sanitizes FILE once with the
//! shipped rules by that path and exits (`dom-allowlist:FILE`,
//! `stream-allowlist:FILE`: the inline allowlist; `pieces:FILE`: FILE read
//! in pieces by `sanitize_body_read_to`, the output discarded).

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::de::IgnoredAny;
use serde_json::{json, Value};
use veil_engine::{
    sanitize_body_read_to, sanitize_body_streaming_read, BodyOptions, CompiledEndpoint,
    EmailPolicy, PolicyRequest, PseudonymConfig, Pseudonymizer, RequestSide, RuleSet, Scheme,
    Secret,
};

/// A reader handing out a page 64 KiB at a time, as a file does.
struct Chunks<'a>(&'a [u8]);

impl std::io::Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.0.len()).min(64 * 1024);
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

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

/// A default-deny allowlist of the kind the shipped rules move to: the
/// schema drops most of each message before any transform runs.
const ALLOWLIST: &str = r#"
endpoints:
  - pathTemplate: /v1.0/users/{userId}/mailFolders/SentItems/messages
    responseSchema:
      type: object
      properties:
        '@odata.nextLink': {type: string}
        value:
          type: array
          items: {$ref: '#/definitions/Message'}
      definitions:
        Message:
          type: object
          properties:
            id: {type: string}
            createdDateTime: {type: string}
            sentDateTime: {type: string}
            receivedDateTime: {type: string}
            hasAttachments: {type: boolean}
            importance: {type: string}
            conversationId: {type: string}
            isRead: {type: boolean}
            isDraft: {type: boolean}
            sender: {$ref: '#/definitions/Recipient'}
            from: {$ref: '#/definitions/Recipient'}
            toRecipients: {type: array, items: {$ref: '#/definitions/Recipient'}}
            ccRecipients: {type: array, items: {$ref: '#/definitions/Recipient'}}
            bccRecipients: {type: array, items: {$ref: '#/definitions/Recipient'}}
        Recipient:
          type: object
          properties:
            emailAddress:
              type: object
              properties:
                address: {type: string}
    transforms:
      - !<pseudonymize>
        jsonPaths: ["$..emailAddress.address"]
      - !<tokenize>
        jsonPaths: ["$..conversationId", "$..id"]
      - !<tokenize>
        jsonPaths: ["$.['@odata.nextLink']"]
        regex: "^https://graph\\.microsoft\\.com/v1\\.0/users/([^/]+)/"
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

fn page(n: usize) -> Value {
    let user = "48d31887-5fad-4d73-a9f5-3c356e68a038";
    let messages: Vec<Value> = (0..n)
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
        "@odata.nextLink": format!("https://graph.microsoft.com/v1.0/users/{user}/mailFolders/SentItems/messages?$skip={n}"),
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs the candidates interleaved `rounds` times; returns their medians.
fn race(rounds: usize, candidates: &mut [&mut dyn FnMut()]) -> Vec<Duration> {
    for c in candidates.iter_mut() {
        c();
    }
    let mut times = vec![Vec::new(); candidates.len()];
    for _ in 0..rounds {
        for (i, c) in candidates.iter_mut().enumerate() {
            let t = Instant::now();
            c();
            times[i].push(t.elapsed());
        }
    }
    times.into_iter().map(median).collect()
}

fn sent_items(rules: &RuleSet) -> &CompiledEndpoint {
    rules
        .match_request(
            PolicyRequest {
                method: "GET",
                path: "/v1.0/users/48d31887-5fad-4d73-a9f5-3c356e68a038/mailFolders/SentItems/messages",
                query: Some("$top=10"),
            },
            RequestSide::Upstream,
        )
        .expect("the Sent Items endpoint")
        .endpoint
}

fn main() {
    let inline = RuleSet::from_str("bench.yaml", RULES).expect("bench rules load");
    let shipped_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/outlook-mail.yaml");
    let shipped =
        RuleSet::from_file(std::path::Path::new(shipped_path)).expect("shipped rules load");
    let allowlist = RuleSet::from_str("allowlist.yaml", ALLOWLIST).expect("allowlist rules load");
    let keep_nothing = RuleSet::from_str(
        "keep-nothing.yaml",
        "endpoints:\n  - pathTemplate: /x\n    responseSchema: {type: object}\n",
    )
    .expect("rules load");
    let no_rules =
        RuleSet::from_str("none.yaml", "endpoints:\n  - pathTemplate: /x\n").expect("rules load");
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
    if let Ok(path) = std::env::var("VEIL_BENCH_WRITE_PAGE") {
        std::fs::write(
            &path,
            serde_json::to_vec(&page(5000)).expect("serialize page"),
        )
        .expect("write the page");
        return;
    }
    if let Ok(spec) = std::env::var("VEIL_BENCH_ONCE") {
        let (how, path) = spec
            .split_once(':')
            .expect("VEIL_BENCH_ONCE=dom:FILE or stream:FILE");
        let endpoint = sent_items(&shipped);
        if how == "pieces" {
            let mut out = std::io::sink();
            sanitize_body_read_to(
                &endpoint.sanitizer,
                || std::fs::File::open(path),
                &p,
                &endpoint.label,
                &BodyOptions::default(),
                &mut out,
            )
            .expect("sanitize_read_to");
            println!("pieces: {path} sanitized");
            return;
        }
        let body = std::fs::read(path).expect("read the page");
        let out = match how {
            "dom" => {
                let mut v: Value = serde_json::from_slice(&body).expect("parse");
                endpoint.sanitize(&mut v, &p).expect("sanitize");
                serde_json::to_vec(&v).expect("serialize")
            }
            "stream" => {
                endpoint
                    .sanitize_bytes(&body, &p)
                    .expect("sanitize_bytes")
                    .0
            }
            "dom-allowlist" => {
                let mut v: Value = serde_json::from_slice(&body).expect("parse");
                allowlist.endpoints[0]
                    .sanitize(&mut v, &p)
                    .expect("sanitize");
                serde_json::to_vec(&v).expect("serialize")
            }
            "stream-allowlist" => {
                allowlist.endpoints[0]
                    .sanitize_bytes(&body, &p)
                    .expect("sanitize_bytes")
                    .0
            }
            other => panic!("unknown path {other}"),
        };
        println!("{how}: {} bytes in, {} bytes out", body.len(), out.len());
        return;
    }
    let rounds: usize = std::env::var("VEIL_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);

    println!(
        "| page | rules | baseline ms | DOM ms | stream ms | pieces ms | DOM / baseline | stream / baseline | pieces / baseline |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut reader_lines = Vec::new();
    for n in [1000, 5000] {
        let body = serde_json::to_vec(&page(n)).expect("serialize page");
        let mb = body.len() as f64 / 1e6;
        for (name, endpoint) in [
            ("rules/outlook-mail.yaml", sent_items(&shipped)),
            ("inline, no schema", &inline.endpoints[0]),
            ("inline allowlist (responseSchema)", &allowlist.endpoints[0]),
        ] {
            let dom = |b: &[u8]| {
                let mut v: Value = serde_json::from_slice(b).expect("parse");
                endpoint.sanitize(&mut v, &p).expect("sanitize");
                serde_json::to_vec(&v).expect("serialize")
            };
            // Show that the work is real and both paths agree.
            let streamed = endpoint
                .sanitize_bytes(&body, &p)
                .expect("sanitize_bytes")
                .0;
            assert_eq!(streamed, dom(&body), "{name}: stream and DOM differ");
            assert!(!String::from_utf8_lossy(&streamed).contains("Fabrikam rollout"));
            assert!(endpoint.sanitizer.streams(), "{name}: rules do not stream");
            let pieces = sanitize_body_streaming_read(&endpoint.sanitizer, &mut Chunks(&body), &p)
                .expect("read")
                .expect("streams in pieces")
                .0;
            assert_eq!(streamed, pieces, "{name}: in pieces and from memory differ");
            let t = race(
                rounds,
                &mut [
                    &mut || {
                        let v: Value = serde_json::from_slice(black_box(&body)).expect("parse");
                        black_box(serde_json::to_vec(&v).expect("serialize"));
                    },
                    &mut || {
                        black_box(dom(black_box(&body)));
                    },
                    &mut || {
                        black_box(
                            endpoint
                                .sanitize_bytes(black_box(&body), &p)
                                .expect("stream"),
                        );
                    },
                    &mut || {
                        black_box(
                            sanitize_body_streaming_read(
                                &endpoint.sanitizer,
                                &mut Chunks(black_box(&body)),
                                &p,
                            )
                            .expect("pieces"),
                        );
                    },
                ],
            );
            println!(
                "| {mb:.1} MB ({n} messages) | {name} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} (target <= 0.60) | {:.2} |",
                ms(t[0]),
                ms(t[1]),
                ms(t[2]),
                ms(t[3]),
                t[1].as_secs_f64() / t[0].as_secs_f64(),
                t[2].as_secs_f64() / t[0].as_secs_f64(),
                t[3].as_secs_f64() / t[0].as_secs_f64(),
            );
        }
        let skip = &keep_nothing.endpoints[0];
        let copy = &no_rules.endpoints[0];
        let t = race(
            rounds,
            &mut [
                &mut || {
                    let v: Value = serde_json::from_slice(black_box(&body)).expect("parse");
                    black_box(serde_json::to_vec(&v).expect("serialize"));
                },
                &mut || {
                    black_box(
                        serde_json::from_slice::<IgnoredAny>(black_box(&body)).expect("parse"),
                    );
                },
                &mut || {
                    black_box(skip.sanitize_bytes(black_box(&body), &p).expect("skip"));
                },
                &mut || {
                    black_box(copy.sanitize_bytes(black_box(&body), &p).expect("copy"));
                },
            ],
        );
        reader_lines.push(format!(
            "reader, {mb:.1} MB: serde_json Value parse+serialize {:.2} ms; serde_json IgnoredAny (visitor floor) {:.2} ms; scanner skipping all {:.2} ms; scanner copying all {:.2} ms",
            ms(t[0]),
            ms(t[1]),
            ms(t[2]),
            ms(t[3]),
        ));
    }
    for l in reader_lines {
        println!("{l}");
    }
    println!("(medians over {rounds} interleaved rounds)");
}
