//! Phase 9: the access-log line and the request's figures for the host's
//! metrics ([`crate::metrics`]).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Response};

use super::{
    CallerAuthMode, CallerIdentity, Proxy, ProxyError, Refusal, RequestContext, UpstreamCause,
};
use crate::metrics::RequestMetrics;
use veil_engine::{RequestCheck, SanitizeReport};

/// What the log line says about a request.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(super) endpoint: Option<String>,
    pub(super) upstream_status: Option<u16>,
    /// The whole upstream phase (token, call(s), body), also when it failed.
    pub(super) upstream_latency: Option<Duration>,
    pub(super) report: Option<SanitizeReport>,
    /// The endpoint's transforms' kinds, in rule order (as in `report`).
    pub(super) transform_kinds: Vec<&'static str>,
    pub(super) bytes_in: usize,
    pub(super) error: Option<ProxyError>,
    /// The caller passed authentication (Veil's headers may be shown).
    pub(super) authenticated: bool,
    /// Who the caller is, when authentication says.
    pub(super) caller: Option<CallerIdentity>,
    /// The target came from `X-Psoxy-TargetPath` / `X-Psoxy-TargetQuery`.
    pub(super) target_from_headers: bool,
}

impl Proxy {
    /// The request's figures for the host's metrics.
    pub(super) fn figures(
        &self,
        resp: &Response<Bytes>,
        out: Outcome,
        started: Instant,
    ) -> RequestMetrics {
        let mut transformed: Vec<(&'static str, u64)> = Vec::new();
        if let Some(report) = &out.report {
            if report.schema_changes > 0 {
                transformed.push(("responseSchema", report.schema_changes as u64));
            }
            for (kind, n) in out.transform_kinds.iter().zip(&report.changes) {
                if *n == 0 {
                    continue;
                }
                match transformed.iter_mut().find(|(k, _)| k == kind) {
                    Some((_, total)) => *total += *n as u64,
                    None => transformed.push((kind, *n as u64)),
                }
            }
        }
        RequestMetrics {
            connector: self.inner.config.connector.clone(),
            endpoint: out.endpoint,
            status: resp.status().as_u16(),
            latency: started.elapsed(),
            upstream_latency: out.upstream_latency,
            refusal: out.error.as_ref().and_then(ProxyError::refusal),
            upstream_cause: out.error.as_ref().and_then(|e| e.upstream_cause),
            transformed,
        }
    }

    pub(super) fn log(
        &self,
        ctx: &RequestContext,
        method: &Method,
        resp: &Response<Bytes>,
        out: &Outcome,
        started: Instant,
    ) {
        // A JSON array (the JSON log formatter writes it as one).
        let changes = serde_json::to_string(
            &out.report
                .as_ref()
                .map(|r| r.changes.as_slice())
                .unwrap_or_default(),
        )
        .unwrap_or_else(|_| "[]".into());
        let (issuer, subject) = match &out.caller {
            Some(CallerIdentity::Oidc { issuer, subject }) => (issuer.as_str(), subject.as_str()),
            _ => ("-", "-"),
        };
        // The ARN AWS verified, also for a caller the ARN list refuses.
        let arn = match (&out.caller, &self.inner.config.caller_auth) {
            (Some(CallerIdentity::AwsIam { arn }), _) => arn.as_str(),
            (_, CallerAuthMode::AwsIam { .. }) => ctx.aws_caller_arn.as_deref().unwrap_or("-"),
            _ => "-",
        };
        let e = out.error.as_ref();
        tracing::info!(
            target: "veil::access",
            request_id = ctx.request_id.as_deref().unwrap_or("-"),
            connector = %self.inner.config.connector,
            method = %method,
            endpoint = out.endpoint.as_deref().unwrap_or("-"),
            status = resp.status().as_u16(),
            upstream_status = out.upstream_status.unwrap_or(0),
            latency_ms = started.elapsed().as_secs_f64() * 1e3,
            upstream_ms = out.upstream_latency.map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0),
            bytes_in = out.bytes_in,
            bytes_out = resp.body().len(),
            transform_changes = %changes,
            target_source = if out.target_from_headers { "x-psoxy-target-headers" } else { "request-line" },
            caller_issuer = issuer,
            caller_subject = subject,
            caller_arn = arn,
            error_phase = e.map(|e| e.phase.as_str()).unwrap_or("-"),
            error_code = e.map(|e| e.kind.code()).unwrap_or("-"),
            refusal = e.and_then(ProxyError::refusal).map(Refusal::as_str).unwrap_or("-"),
            upstream_error = e.and_then(|e| e.upstream_cause).map(UpstreamCause::as_str).unwrap_or("-"),
            error_message = e.map(|e| e.message.as_str()).unwrap_or("-"),
            error_detail = e.and_then(|e| e.detail.as_deref()).unwrap_or("-"),
        );
    }
}

/// Which check of the rules refused a request. `$select` and `$expand`
/// naming a property outside the `responseSchema` are told apart from the
/// other query-parameter checks by the policy's message for them
/// (`` query parameter `$select`: … ``).
pub(super) fn refusal_of(r: &veil_engine::RequestRefusal) -> Refusal {
    match &r.check {
        RequestCheck::Path => Refusal::NoEndpoint,
        RequestCheck::Method => Refusal::Method,
        RequestCheck::PathParam(_) => Refusal::PathParam,
        RequestCheck::Query => Refusal::QueryParam,
        RequestCheck::QueryParam(name) => {
            let schema_check = r
                .message
                .starts_with(&format!("query parameter `{name}`: "));
            match name.to_ascii_lowercase().as_str() {
                "$select" if schema_check => Refusal::SelectProperty,
                "$expand" if schema_check => Refusal::ExpandProperty,
                _ => Refusal::QueryParam,
            }
        }
    }
}
