//! `veil serve` with a bad configuration: it refuses to start and names
//! every problem at once, one a line, each with its setting, so that an
//! operator fixes them all in one round instead of one per deployment.

mod support;

use std::process::Stdio;

use support::*;

/// Runs `veil serve` expecting it to refuse to start; returns its stderr.
fn refused_start(config: VeilConfig) -> String {
    let out = config
        .command(free_port())
        .stderr(Stdio::piped())
        .output()
        .expect("run veil");
    assert!(!out.status.success(), "veil started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn every_bad_setting_is_reported_in_one_error() {
    // Three independent mistakes, in three parts of the configuration: the
    // upstream deadline, the caller IP allowlist and the token provider;
    // plus one of `veil serve`'s own settings.
    let err = refused_start(
        VeilConfig::new("entra-id", "https://graph.microsoft.com")
            .env("VEIL_UPSTREAM_TIMEOUT_SECS", "soon")
            .env("VEIL_CALLER_IP_ALLOWLIST", "10.0.0.0/8,not-a-range")
            .env("VEIL_TOKEN_PROVIDER", "azure")
            .env("VEIL_METRICS_LISTEN", "nowhere"),
    );
    assert!(
        err.contains("veil: error: 4 configuration problems:\n"),
        "{err}"
    );
    let problems: Vec<&str> = err.lines().filter_map(|l| l.strip_prefix("  - ")).collect();
    assert_eq!(problems.len(), 4, "{err}");
    for (setting, fix) in [
        (
            "VEIL_UPSTREAM_TIMEOUT_SECS",
            "must be a positive whole number of seconds",
        ),
        (
            "VEIL_CALLER_IP_ALLOWLIST",
            "`not-a-range` is not a CIDR range",
        ),
        ("VEIL_TOKEN_PROVIDER", "`azure` is not a token provider"),
        ("VEIL_METRICS_LISTEN", "give IP:PORT"),
    ] {
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with(setting) && p.contains(fix)),
            "{setting}: {err}"
        );
    }
    // The secrets were fine, and nothing is said about them.
    assert!(!err.contains("VEIL_SALT"), "{err}");
}

#[test]
fn flags_are_named_like_variables() {
    let err = refused_start(
        VeilConfig::new("entra-id", "http://graph.example")
            .env("VEIL_SALT", "short")
            .env("VEIL_PUBLIC_BASE_URL", "ftp://veil.example"),
    );
    assert!(err.contains("3 configuration problems:"), "{err}");
    // The flag's value is at fault, so the flag is named.
    assert!(
        err.contains("  - --upstream: the upstream base URL `http://graph.example` is plain http"),
        "{err}"
    );
    assert!(
        err.contains(
            "  - the pseudonymization salt (env:VEIL_SALT) is too short for the hmac scheme"
        ),
        "{err}"
    );
    assert!(err.contains("  - VEIL_PUBLIC_BASE_URL: "), "{err}");
}
