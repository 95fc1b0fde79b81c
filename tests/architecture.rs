//! The crate boundaries `ARCHITECTURE.md` describes: the engine computes and
//! never touches the network, the proxy never reaches into the binary.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `[dependencies]` names of a crate's manifest.
fn dependencies(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let mut out = Vec::new();
    let mut in_deps = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps {
            if let Some((name, _)) = line.split_once(['.', '=', ' ']) {
                if !name.is_empty() && !name.starts_with('#') {
                    out.push(name.trim().to_string());
                }
            }
        }
    }
    out
}

fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

const NETWORK_CRATES: &[&str] = &[
    "tokio",
    "hyper",
    "hyper-util",
    "reqwest",
    "http",
    "bytes",
    "tower",
    "tracing",
    "lambda_http",
    "aws-sigv4",
    "aws-credential-types",
    "jsonwebtoken",
    "veil-proxy",
];

#[test]
fn the_engine_depends_on_nothing_that_does_io() {
    let deps = dependencies(&repo().join("veil-engine/Cargo.toml"));
    assert!(deps.contains(&"serde_json".to_string()), "parsed: {deps:?}");
    for d in &deps {
        assert!(
            !NETWORK_CRATES.contains(&d.as_str()) && !d.starts_with("aws"),
            "veil-engine depends on `{d}`: the engine must stay pure (no runtime, HTTP, cloud or logging); put that code in veil-proxy"
        );
    }
    let mut files = Vec::new();
    rust_sources(&repo().join("veil-engine/src"), &mut files);
    assert!(files.len() > 10);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for word in [
            "tokio::",
            "reqwest::",
            "hyper::",
            "veil_proxy::",
            "std::net::",
            "std::process::",
        ] {
            assert!(
                !text.contains(word),
                "{} uses `{word}`: the engine must stay pure",
                f.display()
            );
        }
    }
}

#[test]
fn the_libraries_never_reach_into_the_binary() {
    let deps = dependencies(&repo().join("veil-proxy/Cargo.toml"));
    assert!(
        deps.contains(&"veil-engine".to_string()),
        "parsed: {deps:?}"
    );
    assert!(
        !deps.iter().any(|d| d == "veil"),
        "veil-proxy depends on the binary"
    );
    let deps = dependencies(&repo().join("veil-engine/Cargo.toml"));
    assert!(!deps.iter().any(|d| d.starts_with("veil")), "{deps:?}");
}
