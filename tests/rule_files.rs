//! The shipped rule files and their samples: goldens, variants, schema.

use std::path::Path;
use std::process::Command;

use veil_engine::RuleSet;

fn veil(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(args)
        .output()
        .expect("run veil")
}

#[test]
fn every_sample_matches_its_golden_and_leaks_nothing() {
    let out = veil(&["rules", "test"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(" passed, 0 failed"), "{text}");
}

#[test]
fn the_rules_test_catches_a_leak() {
    // Let subjects and previews through the mail rules' allowlist in a
    // copy: the test loop must fail, naming the leak.
    let out = on_edited_mail_rules(
        "test",
        "            importance: { type: string }\n",
        "            importance: { type: string }\n            subject: { type: string }\n            bodyPreview: { type: string }\n",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("leak: text"), "{text}");
}

/// Runs `veil rules <command>` for outlook-mail on a copy of its shipped
/// rules in which `from` (which must occur) is replaced by `to`.
fn on_edited_mail_rules(command: &str, from: &str, to: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let rules = std::fs::read_to_string("rules/outlook-mail.yaml").unwrap();
    let edited = rules.replacen(from, to, 1);
    assert_ne!(rules, edited, "`{from}` is not in the mail rules");
    std::fs::write(dir.path().join("outlook-mail.yaml"), edited).unwrap();
    veil(&[
        "rules",
        command,
        "--connector",
        "outlook-mail",
        "--rules-dir",
        dir.path().to_str().unwrap(),
    ])
}

#[test]
fn committed_schema_is_the_generated_one() {
    let out = veil(&["rules", "schema"]);
    assert!(out.status.success());
    let committed = std::fs::read_to_string("rules/veil-rules.schema.json").unwrap();
    assert_eq!(
        committed.trim(),
        String::from_utf8_lossy(&out.stdout).trim(),
        "rules/veil-rules.schema.json is stale: run `cargo run -- rules schema > rules/veil-rules.schema.json`"
    );
}

/// The clear-ids variant differs from the default only in ids: same
/// endpoints, same query policy, same redactions and pseudonyms; no
/// tokenize; no `p~`-only parameters.
#[test]
fn clear_ids_variants_differ_only_in_ids() {
    for connector in [
        "entra-id",
        "outlook-mail",
        "outlook-cal",
        "msft-teams",
        "outlook-contacts",
        "outlook-mail-received",
    ] {
        let d = RuleSet::from_file(Path::new(&format!("rules/{connector}.yaml"))).unwrap();
        let c =
            RuleSet::from_file(Path::new(&format!("rules/{connector}.clear-ids.yaml"))).unwrap();
        assert_eq!(d.endpoints.len(), c.endpoints.len(), "{connector}");
        assert_eq!(
            d.connector.as_ref().unwrap().graph_permissions,
            c.connector.as_ref().unwrap().graph_permissions
        );
        let mut tokenized = 0;
        for (a, b) in d.endpoints.iter().zip(&c.endpoints) {
            assert_eq!(a.label, b.label);
            assert_eq!(a.methods, b.methods);
            assert_eq!(a.allowed_query, b.allowed_query);
            let keep = |e: &veil_engine::CompiledEndpoint| {
                e.sanitizer
                    .transforms()
                    .iter()
                    .filter(|t| t.transform.name() != "tokenize")
                    .map(|t| (t.transform.name(), t.paths.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(keep(a), keep(b), "{connector} {}", a.label);
            tokenized += a
                .sanitizer
                .transform_names()
                .iter()
                .filter(|n| **n == "tokenize")
                .count();
            // The clear-ids variant tokenizes nothing but Graph's directory
            // `$skiptoken`, which embeds the last page's UPN.
            for t in b.sanitizer.transforms() {
                if let veil_engine::Transform::Tokenize(tk) = &t.transform {
                    assert!(
                        tk.regex
                            .as_ref()
                            .is_some_and(|r| r.as_str().contains("skiptoken")),
                        "{connector} {}: a tokenize other than the $skiptoken one",
                        b.label
                    );
                }
            }
            assert!(
                b.path_param_schemas.iter().all(|(_, s)| !s.reversible),
                "{connector} {}",
                b.label
            );
        }
        assert!(
            tokenized > 0,
            "{connector}: the default variant tokenizes ids"
        );
        assert_eq!(
            c.connector.as_ref().unwrap().variant.as_deref(),
            Some("clear-ids")
        );
    }
}

#[test]
fn only_get_and_head_anywhere() {
    for entry in std::fs::read_dir("rules").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let rs = RuleSet::from_file(&path).unwrap();
            for ep in &rs.endpoints {
                assert!(
                    ep.methods.iter().all(|m| m == "GET" || m == "HEAD"),
                    "{} {}",
                    path.display(),
                    ep.label
                );
            }
            assert!(
                rs.warnings.is_empty(),
                "{}: {:?}",
                path.display(),
                rs.warnings
            );
        }
    }
}

#[test]
fn per_user_paths_refuse_raw_ids_in_the_default_variant() {
    use veil_engine::{PolicyRequest, RequestSide};
    let rs = RuleSet::from_file(Path::new("rules/outlook-mail.yaml")).unwrap();
    for raw in [
        "5d1f8c3a-92b4-4e6f-a7c1-3b8e0d4f2a61",
        "priya.raman@contoso.example",
        "Priya.Raman%40contoso.example",
    ] {
        let path = format!("/v1.0/users/{raw}/mailFolders/SentItems/messages");
        let r = rs.match_request(
            PolicyRequest {
                method: "GET",
                path: &path,
                query: None,
            },
            RequestSide::Client,
        );
        assert!(r.is_err(), "{raw} accepted");
    }
    let ok = rs.match_request(
        PolicyRequest {
            method: "GET",
            path: "/v1.0/users/p~AAAAAAAAAAAAAAAAAAAA/mailFolders/SentItems/messages",
            query: None,
        },
        RequestSide::Client,
    );
    assert!(ok.is_ok());
}

#[test]
fn lint_is_clean_on_the_shipped_rules_and_flags_psoxy_semantics() {
    let out = veil(&["rules", "lint", "--connector", "outlook-mail"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("defaultDeny") && !text.contains("Psoxy"),
        "{text}"
    );
    // The same rules without the default-deny profile, as a Psoxy file
    // would be: lint says what that means.
    let out = on_edited_mail_rules("lint", "defaultDeny: true\n", "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("`defaultDeny: true` is not set"), "{text}");
    assert!(
        text.contains(
            "a value the regex does not match becomes null under Veil (Psoxy passes it unchanged)"
        ),
        "{text}"
    );
}

#[test]
fn each_person_has_one_pseudonym_string_across_connectors() {
    // Every `t~<hash>@domain` in every default golden of every connector:
    // one hash (one person) must always come with the same domain text, so
    // a vendor joins a person across entra-id, mail, calendar and Teams.
    let re = regex::Regex::new(r"t~([A-Za-z0-9_-]{43})@([A-Za-z0-9.-]+)").unwrap();
    let mut seen: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    let mut files = 0;
    for connector in [
        "entra-id",
        "outlook-mail",
        "outlook-cal",
        "msft-teams",
        "outlook-contacts",
        "outlook-mail-received",
    ] {
        let dir = std::path::Path::new("example-api-responses")
            .join(connector)
            .join("sanitized");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            files += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            for c in re.captures_iter(&text) {
                seen.entry(c[1].to_string())
                    .or_default()
                    .insert(c[0].to_string());
            }
        }
    }
    assert!(files >= 40, "{files} golden files");
    assert!(seen.len() >= 20, "{} people", seen.len());
    let split: Vec<_> = seen.iter().filter(|(_, v)| v.len() > 1).collect();
    assert!(
        split.is_empty(),
        "people with several pseudonym strings: {split:?}"
    );
}

/// Every reversible token a shipped rule file makes, and every `p~`
/// parameter it takes, has a kind: so no token of one kind (a user) is
/// accepted where another belongs (a chat). Parameters are bound by name.
#[test]
fn every_reversible_token_and_parameter_in_shipped_rules_has_a_kind() {
    use veil_engine::{TokenKind, Transform};
    let (mut tokenizers, mut params) = (0, 0);
    for entry in std::fs::read_dir("rules").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let file = path.display().to_string();
        let rs = RuleSet::from_file(&path).unwrap();
        for ep in &rs.endpoints {
            for (i, t) in ep.sanitizer.transforms().iter().enumerate() {
                if let Transform::Tokenize(tk) = &t.transform {
                    tokenizers += 1;
                    assert!(
                        tk.kind.is_some(),
                        "{file} `{}` transforms[{i}] {:?}: tokenize without `kind`",
                        ep.label,
                        t.paths
                    );
                }
            }
            for (name, s) in ep.path_param_schemas.iter().chain(&ep.query_param_schemas) {
                if !s.reversible {
                    continue;
                }
                params += 1;
                let expected = match name.as_str() {
                    "userId" => TokenKind::User,
                    "chatId" => TokenKind::Chat,
                    "meetingId" => TokenKind::Event,
                    "$skiptoken" => TokenKind::Page,
                    other => panic!("{file} `{}`: no kind known for `{other}`", ep.label),
                };
                assert_eq!(
                    s.token_kind,
                    Some(expected),
                    "{file} `{}`: parameter `{name}`",
                    ep.label
                );
            }
        }
    }
    assert!(tokenizers >= 60, "{tokenizers} tokenize transforms");
    assert!(params >= 20, "{params} reversible parameters");
}

/// `veil rules <args>` run in `dir` (not the repository).
fn veil_in(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run veil");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn rule_tools_work_on_a_rule_file_outside_the_repository() {
    let repo = std::env::current_dir().unwrap();
    let samples = repo.join("example-api-responses");
    let dir = tempfile::tempdir().unwrap();
    // Any name: the connector comes from the file's `connector.name`.
    std::fs::copy(
        "rules/outlook-cal.yaml",
        dir.path().join("calendar-v2.yaml"),
    )
    .unwrap();
    // No samples here: the error says which were expected and how to point at them.
    let (ok, text) = veil_in(
        dir.path(),
        &["rules", "test", "--rules", "calendar-v2.yaml"],
    );
    assert!(!ok, "{text}");
    for needle in [
        "no samples for connector `outlook-cal`",
        "outlook-cal/requests.yaml",
        "--samples-dir DIR",
    ] {
        assert!(text.contains(needle), "`{needle}` not in: {text}");
    }
    let samples_arg = samples.to_str().unwrap();
    for command in ["test", "lint", "report"] {
        let (ok, text) = veil_in(
            dir.path(),
            &[
                "rules",
                command,
                "--rules",
                "calendar-v2.yaml",
                "--samples-dir",
                samples_arg,
            ],
        );
        assert!(ok, "rules {command}: {text}");
        assert!(!text.contains("[clear-ids]"), "only the one file: {text}");
    }
    let (ok, text) = veil_in(
        dir.path(),
        &[
            "rules",
            "test",
            "--rules",
            "calendar-v2.yaml",
            "--samples-dir",
            samples_arg,
        ],
    );
    assert!(
        ok && text.contains("outlook-cal [default]") && text.contains(" passed, 0 failed"),
        "{text}"
    );
    let (ok, text) = veil_in(
        dir.path(),
        &[
            "rules",
            "review",
            "--rules",
            "calendar-v2.yaml",
            "--samples-dir",
            samples_arg,
            "--out",
            "review.html",
        ],
    );
    assert!(ok, "{text}");
    let html = std::fs::read_to_string(dir.path().join("review.html")).unwrap();
    assert!(
        html.contains("the rule file calendar-v2.yaml"),
        "review names its source"
    );
    // A directory of rule files needs `<connector>.yaml`; the error says so.
    let (ok, text) = veil_in(
        dir.path(),
        &[
            "rules",
            "test",
            "--rules-dir",
            ".",
            "--connector",
            "outlook-cal",
            "--samples-dir",
            samples_arg,
        ],
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("outlook-cal.yaml")
            && text.contains("`<connector>.yaml`")
            && text.contains("--rules FILE"),
        "{text}"
    );
}

/// A connector of one endpoint and one sample in `dir`: the sample holds
/// personal data that `sensitive-values.yaml` does not list.
fn tiny_connector(dir: &Path, kept: &[&str]) {
    let conn = dir.join("samples").join("tiny");
    std::fs::create_dir_all(conn.join("original")).unwrap();
    std::fs::write(
        conn.join("requests.yaml"),
        "samples:\n  - file: rooms.json\n    url: https://graph.microsoft.com/v1.0/places/microsoft.graph.room\n",
    )
    .unwrap();
    std::fs::write(
        conn.join("original").join("rooms.json"),
        r#"{"value": [{"id": "5f1c2b9e-0d7a-4c3e-9b18-6a2e4d8c1f07", "building": "North",
          "phone": "+1 425 555 0199", "address": "10.20.30.40",
          "bookingUrl": "https://rooms.contoso.example/book?room=7&pwd=hunter2"}]}"#,
    )
    .unwrap();
    let props: String = kept
        .iter()
        .map(|k| format!("                {k}: {{ type: string }}\n"))
        .collect();
    std::fs::write(
        dir.join("tiny.yaml"),
        format!(
            "defaultDeny: true\nendpoints:\n  - pathTemplate: /v1.0/places/microsoft.graph.room\n    allowedQueryParams: []\n    responseSchema:\n      type: object\n      properties:\n        value:\n          type: array\n          items:\n            type: object\n            properties:\n{props}"
        ),
    )
    .unwrap();
}

#[test]
fn the_rules_test_runs_the_generic_detectors_and_shows_what_update_changed() {
    let dir = tempfile::tempdir().unwrap();
    let test = |update: bool| {
        let mut args = vec![
            "rules",
            "test",
            "--rules",
            "tiny.yaml",
            "--samples-dir",
            "samples",
        ];
        if update {
            args.push("--update");
        }
        veil_in(dir.path(), &args)
    };
    tiny_connector(dir.path(), &["id", "building"]);
    let (ok, text) = test(true);
    assert!(ok, "{text}");
    assert!(
        text.contains("new golden samples/tiny/sanitized/rooms.json"),
        "{text}"
    );
    assert!(
        text.contains("1 golden file(s) written with changes"),
        "{text}"
    );
    let (ok, text) = test(false);
    assert!(ok && text.contains("1 passed, 0 failed"), "{text}");

    // The allowlist now lets a phone number, an IP address and a link with
    // a password through: none is in sensitive-values.yaml (there is none),
    // the generic detectors find each.
    tiny_connector(
        dir.path(),
        &["id", "building", "phone", "address", "bookingUrl"],
    );
    let (ok, text) = test(false);
    assert!(!ok, "{text}");
    for needle in [
        "leak: phone `+1 425 555 0199` at $.value[0].phone (generic detector)",
        "leak: ipv4 `10.20.30.40` at $.value[0].address (generic detector)",
        "leak: url-credential `&pwd=hunter2` at $.value[0].bookingUrl (generic detector)",
    ] {
        assert!(text.contains(needle), "`{needle}` not in: {text}");
    }
    // `--update` writes the golden all the same, and shows what changed in it.
    let (ok, text) = test(true);
    assert!(!ok, "{text}");
    assert!(
        text.contains("updated golden samples/tiny/sanitized/rooms.json (-1 +4 lines)")
            && text.contains("+ \"phone\": \"+1 425 555 0199\",")
            && text.contains("+ \"address\": \"10.20.30.40\","),
        "{text}"
    );
    // Back to the first allowlist; then an update that changes nothing
    // shows no change.
    tiny_connector(dir.path(), &["id", "building"]);
    let (ok, text) = test(true);
    assert!(ok, "{text}");
    assert!(
        text.contains("updated golden") && text.contains("(-4 +1 lines)"),
        "{text}"
    );
    let (ok, text) = test(true);
    assert!(ok && !text.contains("updated golden"), "{text}");
    assert!(
        text.contains("0 golden file(s) written with changes"),
        "{text}"
    );
}
