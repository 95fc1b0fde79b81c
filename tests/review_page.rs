//! `veil rules review` as a reviewer sees it: the page is written, loaded in
//! headless Chromium (Debian's `chromium`, installed by
//! `scripts/install-browser.sh`), and the rendered DOM is checked; a
//! screenshot is kept in `target/artifacts/review.png`.
//!
//! The page must work offline: Chromium runs with its network features off
//! and the page has no script and no external reference.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chromium() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("chromium");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`chromium` is not on PATH: run `bash scripts/install-browser.sh` (scripts/test.sh does)"
    );
}

fn headless(profile: &Path) -> Command {
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

#[test]
fn the_review_page_renders_offline_with_every_change_marked() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("review.html");
    let out = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["rules", "review", "--connector", "outlook-mail", "--out"])
        .arg(&page)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing to fetch.
    for external in ["<script", "src=", "href=\"http", "@import", "url("] {
        assert!(!html.contains(external), "the page references `{external}`");
    }

    let dom = headless(&dir.path().join("profile"))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        dom.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    // Both rule sets of the connector, each endpoint, each sample.
    assert!(
        dom.contains("outlook-mail [default]"),
        "{}",
        &dom[..dom.len().min(2000)]
    );
    assert!(dom.contains("outlook-mail [clear-ids]"));
    let endpoints = dom.matches("<section class=\"endpoint\">").count();
    assert!(endpoints >= 16, "{endpoints} endpoint sections");
    assert!(dom.matches("<article class=\"sample\">").count() >= 16);
    // Changes are marked, by kind, with the step that made them.
    for what in ["removed", "pseudonymized", "tokenized", "kept"] {
        assert!(
            dom.contains(&format!("data-what=\"{what}\"")),
            "no value marked {what}"
        );
    }
    assert!(dom.contains("responseSchema (not in the allowlist)"));
    assert!(dom.contains("pseudonymize"));
    // The detectors ran over everything that leaves, and found nothing.
    assert!(dom.contains("detectors: no e-mail address"));
    assert!(!dom.contains("class=\"bad detectors\""));
    // Personal data of the sample tenant is in the originals (left
    // column) — the page shows what was removed — but every such value is
    // marked as not sent.
    assert!(dom.contains("Priya"), "the original column is shown");

    let artifacts = repo().join("target").join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("review.png");
    let _ = std::fs::remove_file(&shot);
    let status = headless(&dir.path().join("profile-shot"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1400,1800")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    assert!(
        png.len() > 20_000,
        "a nearly empty screenshot ({} bytes)",
        png.len()
    );
}
