//! Shared helpers of the veil-engine integration tests.
#![allow(dead_code)]

use std::sync::LazyLock;

use serde_json::Value;
use veil_engine::{
    EmailPolicy, PseudonymConfig, Pseudonymizer, RuleSet, SanitizeReport, Scheme, Secret,
};

pub const SALT: &str = "test-salt-0123456789-0123456789-0123456789";
pub const KEY: &str = "test-key-0123456789-0123456789-0123456789";

fn build(scheme: Scheme) -> Pseudonymizer {
    Pseudonymizer::new(PseudonymConfig {
        scheme,
        salt: Secret::from(SALT),
        encryption_keys: vec![("k1".into(), Secret::from(KEY))],
        email: EmailPolicy::default(),
    })
    .expect("test pseudonymizer")
}

static HMAC: LazyLock<Pseudonymizer> = LazyLock::new(|| build(Scheme::Hmac));
// The psoxy scheme derives its key with PBKDF2 (65 536 rounds): build once.
static PSOXY: LazyLock<Pseudonymizer> = LazyLock::new(|| build(Scheme::Psoxy));

pub fn pseudonymizer(scheme: Scheme) -> &'static Pseudonymizer {
    match scheme {
        Scheme::Hmac => &HMAC,
        Scheme::Psoxy => &PSOXY,
    }
}

/// Rules with one endpoint `/x` and the given transforms (YAML list items).
pub fn rules(transforms: &str) -> RuleSet {
    let src = format!("endpoints:\n  - pathTemplate: /x\n    transforms:\n{transforms}");
    RuleSet::from_str("test.yaml", &src).unwrap_or_else(|e| panic!("{e}"))
}

pub fn run(rules: &RuleSet, mut doc: Value) -> Result<(Value, SanitizeReport), String> {
    let p = pseudonymizer(Scheme::Hmac);
    let report = rules.endpoints[0]
        .sanitize(&mut doc, p)
        .map_err(|e| e.to_string())?;
    Ok((doc, report))
}
