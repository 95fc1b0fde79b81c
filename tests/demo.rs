//! `veil demo` — the README's first command — plays every connector's calls
//! over real TCP and shows nothing of the fictional people in clear, except
//! on the original side of its original-vs-sanitized comparisons.

use std::process::Command;

use serde_json::Value;

/// Marks a comparison line: `   │ what path original → as sent`.
const COMPARISON: &str = "   │ ";

#[test]
fn demo_plays_every_connector_and_leaks_nothing() {
    let out = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["demo", "--no-serve", "--port", "0"])
        .output()
        .expect("run veil demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "list users",
        "sent mail",
        "next page",
        "refused: the inbox",
        "calendar view",
        "Teams chats",
        "groups",
        "Outlook contacts",
        "received mail",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    assert!(text.contains("DEMO KEYS"));
    // What the client gets: no name or address in clear. On a comparison
    // line only the part after `→` is what left Veil.
    let sent_parts = text.lines().map(|l| match l.strip_prefix(COMPARISON) {
        Some(c) => c.rsplit_once(" → ").map_or("", |(_, after)| after),
        None => l,
    });
    let names = [
        "Priya",
        "Raman",
        "Moreau",
        "Núñez",
        "Ångström",
        "Hannah",
        "Becker",
        "Carvalho",
        "counter-proposal",
        "Wiśniewski",
        "Rosewood",
        "+44 20",
        "@contoso.example\"",
    ];
    for line in sent_parts {
        for name in names {
            assert!(
                !line.contains(name) || line.contains("t~"),
                "`{name}` in clear in the demo output: {line}\n{text}"
            );
        }
        // The demo's own lines (its headings with local URLs, the requests,
        // the log lines) are not what the client got.
        let own =
            !line.starts_with("   ") || line.starts_with("   log: ") || line.starts_with("   GET ");
        if !own {
            let found = veil_engine::find_personal_data(line);
            assert!(
                found.is_empty(),
                "the detectors find {found:?} in what the demo client got: {line}"
            );
        }
    }
}

#[test]
fn demo_shows_originals_beside_what_left_and_the_log_line_of_each_call() {
    let out = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["demo", "--no-serve", "--port", "0"])
        .output()
        .expect("run veil demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let comparisons: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix(COMPARISON))
        .collect();
    // The first user's original values, and what became of each.
    let has = |what: &str, needle: &str| {
        comparisons
            .iter()
            .any(|c| c.starts_with(what) && c.contains(needle))
    };
    assert!(
        has("removed", "displayName") && has("removed", "\"Priya Raman\" → (removed)"),
        "{text}"
    );
    assert!(
        has("pseudonymized", "\"priya.raman@contoso.example\" → \"t~"),
        "{text}"
    );
    assert!(has("tokenized", "→ \"p~"), "{text}");
    assert!(has("removed", "subject"), "the sent mail's subject: {text}");
    assert!(has("kept", "sentDateTime"), "{text}");
    assert!(text.contains("original (from the sample tenant) → as the client got it"));
    // One access-log line per call, in `veil serve`'s JSON format.
    let calls = text.lines().filter(|l| l.starts_with("── ")).count();
    let logs: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("   log: "))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(calls >= 8, "{text}");
    assert_eq!(logs.len(), calls, "{text}");
    for l in &logs {
        assert_eq!(l["target"], "veil::access", "{l}");
    }
    assert!(logs.iter().any(|l| l["status"] == 200
        && l["endpoint"] == "/v1.0/users/{userId}/mailFolders/SentItems/messages"));
    assert!(logs
        .iter()
        .any(|l| l["status"] == 403 && l["error_code"] == "blocked_by_rules"));
}
