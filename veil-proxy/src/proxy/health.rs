//! Phase 3, the health check: answered for Psoxy's `X-Psoxy-Health-Check`
//! request header and on `GET /healthz`, after the caller IP allowlist.
//!
//! - A caller that does not authenticate (no token, a bad one, or the
//!   issuer's keys are unavailable) gets only `{"status":"ok"}` (200) or
//!   `{"status":"unavailable"}` (503): enough for a load balancer, nothing
//!   about the deployment (no tenant, client or host identity, no Entra
//!   error text, no fingerprint, no version).
//! - An authenticated caller (or any caller with `--allow-unauthenticated`,
//!   where anyone may read through Veil anyway) gets the details: what is
//!   configured — fingerprints, never secrets — every configuration
//!   problem, and the Graph token's state.

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

/// The answer for a caller that did not authenticate.
pub fn public_json(healthy: bool) -> serde_json::Value {
    json!({"status": if healthy { "ok" } else { "unavailable" }})
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
