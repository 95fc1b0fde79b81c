//! Phase 2, the health check: answered for Psoxy's `X-Psoxy-Health-Check`
//! request header and on `GET /healthz`. Shows what is configured —
//! fingerprints, never secrets — and every configuration problem.

use serde_json::json;

/// The path of Veil's own health check.
pub const HEALTH_PATH: &str = "/healthz";
/// The request header Psoxy clients send.
pub const PSOXY_HEALTH_HEADER: &str = "x-psoxy-health-check";

/// What the health check reports.
#[derive(Debug, Clone, Default)]
pub struct HealthInfo {
    pub connector: String,
    pub rules_source: String,
    pub rules_sha256: String,
    pub salt_fingerprint: String,
    pub key_ids: Vec<String>,
    pub scheme: String,
    pub token_provider: String,
    pub caller_auth: String,
    /// Problems that make the deployment unhealthy.
    pub problems: Vec<String>,
    /// Things an operator must know (development token, no caller auth).
    pub warnings: Vec<String>,
}

impl HealthInfo {
    pub fn healthy(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "status": if self.healthy() { "ok" } else { "unhealthy" },
            "version": env!("CARGO_PKG_VERSION"),
            "connector": self.connector,
            "rules": {"source": self.rules_source, "sha256": self.rules_sha256},
            "pseudonyms": {"scheme": self.scheme, "saltFingerprint": self.salt_fingerprint, "encryptionKeyIds": self.key_ids},
            "tokenProvider": self.token_provider,
            "callerAuth": self.caller_auth,
            "problems": self.problems,
            "warnings": self.warnings,
        })
    }
}
