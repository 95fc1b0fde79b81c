//! `veil demo` — the README's first command — plays every connector's calls
//! over real TCP and shows nothing of the fictional people in clear.

use std::process::Command;

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
    for name in [
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
        "@contoso.example\",",
    ] {
        let leaked = text.lines().any(|l| l.contains(name) && !l.contains("t~"));
        assert!(!leaked, "`{name}` in clear in the demo output:\n{text}");
    }
}
