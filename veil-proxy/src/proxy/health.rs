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
//! - A request with `X-Psoxy-Health-Check` from an authenticated caller
//!   gets the same report with Psoxy's field names added
//!   ([`HealthInfo::to_psoxy_json`]) and Psoxy's statuses: 200 when ready,
//!   412 when misconfigured, so a client's connection test written against
//!   Psoxy passes unchanged.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::normalize::Target;
use super::{respond, Proxy, RequestContext, WARN_DEVELOPMENT_TOKEN};

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
    /// The upstream host (Psoxy's `configuredHost`).
    pub configured_host: String,
    /// Settings whose absence makes the deployment unhealthy, by their
    /// variable names (Psoxy's `missingConfigProperties`).
    pub missing_settings: Vec<String>,
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
        self.problems.is_empty() && self.missing_settings.is_empty()
    }

    /// The status of a Psoxy health check: 200 when ready, 412
    /// (precondition failed) when misconfigured.
    pub fn psoxy_status(&self) -> http::StatusCode {
        if self.healthy() {
            http::StatusCode::OK
        } else {
            http::StatusCode::PRECONDITION_FAILED
        }
    }

    /// The report for an authenticated Psoxy health check: Veil's report
    /// ([`Self::to_json`]) with Psoxy's field names added, so a client
    /// written against Psoxy reads it unchanged. Psoxy's `rules` is the
    /// rules' hash (a string), so Veil's `rules` object moves to
    /// `rulesSource`/`rulesSha256`.
    ///
    /// - `configuredSource`: the connector; `configuredHost`: the upstream
    ///   host;
    /// - `nonDefaultSalt`: a salt is configured and is not a published or
    ///   default value — always `true` in a running Veil, which refuses to
    ///   start otherwise;
    /// - `missingConfigProperties`: the missing settings' variable names;
    /// - `pseudonymImplementation`: the pseudonym scheme;
    /// - `pseudonymizeAppIds`: `null` — Veil has no such switch, the rules
    ///   say what happens to application ids;
    /// - `warningMessages`: the problems, then the warnings;
    /// - `callerIp`: the caller's address as Veil saw it.
    pub fn to_psoxy_json(
        &self,
        caller_ip: Option<std::net::IpAddr>,
        graph_token: serde_json::Value,
    ) -> serde_json::Value {
        let mut report = self.to_json();
        report["graphToken"] = graph_token;
        let fields = json!({
            "configuredSource": self.connector,
            "configuredHost": self.configured_host,
            "nonDefaultSalt": !self.salt_fingerprint.is_empty(),
            "missingConfigProperties": self.missing_settings,
            "pseudonymImplementation": self.scheme,
            "pseudonymizeAppIds": null,
            "rules": self.rules_sha256,
            "rulesSource": self.rules_source,
            "rulesSha256": self.rules_sha256,
            "warningMessages": self.problems.iter().chain(&self.warnings).collect::<Vec<_>>(),
            "callerIp": caller_ip.map(|ip| ip.to_string()),
        });
        if let (Some(out), serde_json::Value::Object(add)) = (report.as_object_mut(), fields) {
            out.extend(add);
        }
        report
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

impl Proxy {
    /// Phase 3: the health report when one is asked for (see the module
    /// doc for who gets what), else `None`.
    pub(super) async fn health_check(
        &self,
        req: &Request<Bytes>,
        ctx: &RequestContext,
        target: &Target,
    ) -> Option<Response<Bytes>> {
        let psoxy = req.headers().contains_key(PSOXY_HEALTH_HEADER);
        let asked = psoxy
            || (target.path == HEALTH_PATH && matches!(*req.method(), Method::GET | Method::HEAD));
        if !asked {
            return None;
        }
        let h = &self.inner.config.health;
        let status = if h.healthy() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        if self.authenticate(req, ctx).await.is_err() {
            // Anyone who can reach Veil: whether it is up, nothing more.
            let body = Bytes::from(public_json(h.healthy()).to_string());
            return Some(respond::json_response(status, body, Vec::new(), false));
        }
        let tokens = &self.inner.tokens;
        let graph_token = tokens
            .status()
            .to_json(tokens.kind(), tokens.development_only());
        let (status, mut report) = if psoxy {
            (
                h.psoxy_status(),
                h.to_psoxy_json(ctx.remote_ip, graph_token),
            )
        } else {
            let mut report = h.to_json();
            report["graphToken"] = graph_token;
            (status, report)
        };
        if tokens.development_only() {
            // The warning that says where this deployment's token comes from.
            if let Some(w) = h
                .warnings
                .iter()
                .find(|w| w.starts_with(WARN_DEVELOPMENT_TOKEN))
            {
                report["graphToken"]["warning"] = w.as_str().into();
            }
        }
        let body = Bytes::from(serde_json::to_vec_pretty(&report).unwrap_or_default());
        Some(respond::json_response(
            status,
            body,
            self.veil_headers(),
            false,
        ))
    }
}
