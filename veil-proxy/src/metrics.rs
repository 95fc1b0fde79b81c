//! Request metrics, in the form each host's ecosystem reads natively.
//!
//! [`crate::proxy::Proxy::handle`] puts one [`RequestMetrics`] in every
//! response's extensions: the request's endpoint template, status, latency,
//! the upstream phase's latency, which check refused it, how the call to
//! Graph failed, and how many values each kind of transform changed. The
//! host turns it into metrics:
//!
//! - `veil serve --metrics-listen ADDR` records it in [`Metrics`] and
//!   serves the Prometheus text exposition at `/metrics` on that separate
//!   address (see `src/cli/serve/metrics.rs`);
//! - the Lambda host prints one CloudWatch Embedded Metric Format line per
//!   request ([`emf_line`]); CloudWatch Logs extracts the metrics from it.
//!
//! Both carry the same figures. Every label value comes from a bounded
//! set (endpoint templates of the rules, status codes, the refusal and
//! cause names below, transform kinds): never a raw path, id or query.
//!
//! The registry and the exposition format are the Prometheus project's
//! own Rust client, `prometheus-client` (no default features: no
//! protobuf), rather than a hand-written encoder: it gets the escaping,
//! the cumulative histogram buckets and the `_total` counter naming right
//! and costs three small crates.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde_json::{json, Map, Value};

use crate::proxy::{Refusal, UpstreamCause};
use crate::token::TokenRefreshes;

/// What one request did, for the host's metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestMetrics {
    pub connector: String,
    /// The endpoint template that matched (`None`: refused before or at
    /// matching).
    pub endpoint: Option<String>,
    pub status: u16,
    /// From the request's arrival at the pipeline to its answer.
    pub latency: Duration,
    /// The upstream phase (Graph token, call(s), body), when it ran.
    pub upstream_latency: Option<Duration>,
    pub refusal: Option<Refusal>,
    pub upstream_cause: Option<UpstreamCause>,
    /// Values changed by each kind of transform (`responseSchema` for the
    /// values the schema allowlist dropped); kinds with no change are
    /// left out.
    pub transformed: Vec<(&'static str, u64)>,
}

/// The label value for "no endpoint matched".
pub(crate) const NO_ENDPOINT: &str = "-";

/// Upper bounds of the upstream latency buckets, in seconds: Graph answers
/// in tens of milliseconds to seconds; Veil's own deadline is 25 s.
pub(crate) const LATENCY_BUCKETS: [f64; 12] = [
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
];

type Labels2 = [(&'static str, String); 2];
type Labels1 = [(&'static str, String); 1];

/// The Prometheus registry of `veil serve`.
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels2, Counter>,
    upstream_latency: Family<Labels1, Histogram>,
    refusals: Family<Labels1, Counter>,
    upstream_errors: Family<Labels1, Counter>,
    transformed: Family<Labels1, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Reads the token provider's exchange counts at each scrape.
struct TokenRefreshCollector(Arc<dyn Fn() -> TokenRefreshes + Send + Sync>);

impl std::fmt::Debug for TokenRefreshCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenRefreshCollector")
    }
}

impl Collector for TokenRefreshCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counts = (self.0)();
        let mut family = encoder.encode_descriptor(
            "veil_graph_token_refreshes",
            "Graph token exchanges at Entra ID, by outcome",
            None,
            MetricType::Counter,
        )?;
        for (outcome, n) in [("ok", counts.succeeded), ("error", counts.failed)] {
            let labels = [("outcome", outcome)];
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

impl Metrics {
    /// A registry whose token refresh counts are read from `refreshes` at
    /// each scrape.
    pub fn new(refreshes: impl Fn() -> TokenRefreshes + Send + Sync + 'static) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<Labels2, Counter>::default();
        let upstream_latency = Family::<Labels1, Histogram>::new_with_constructor(
            (|| Histogram::new(LATENCY_BUCKETS)) as fn() -> Histogram,
        );
        let refusals = Family::<Labels1, Counter>::default();
        let upstream_errors = Family::<Labels1, Counter>::default();
        let transformed = Family::<Labels1, Counter>::default();
        registry.register(
            "veil_requests",
            "Requests answered, by endpoint template (- when none matched) and status",
            requests.clone(),
        );
        registry.register(
            "veil_upstream_latency_seconds",
            "Time of the upstream phase (Graph token, call, body), by endpoint template",
            upstream_latency.clone(),
        );
        registry.register(
            "veil_refusals",
            "Requests refused, by the check that refused them",
            refusals.clone(),
        );
        registry.register(
            "veil_upstream_errors",
            "Calls to Graph that failed, by cause",
            upstream_errors.clone(),
        );
        registry.register(
            "veil_values_transformed",
            "Values changed in Graph's answers, by transform kind (responseSchema: dropped by the allowlist)",
            transformed.clone(),
        );
        registry.register_collector(Box::new(TokenRefreshCollector(Arc::new(refreshes))));
        Metrics {
            registry,
            requests,
            upstream_latency,
            refusals,
            upstream_errors,
            transformed,
        }
    }

    /// Counts one request.
    pub fn record(&self, m: &RequestMetrics) {
        let endpoint = m.endpoint.clone().unwrap_or_else(|| NO_ENDPOINT.into());
        self.requests
            .get_or_create(&[
                ("endpoint", endpoint.clone()),
                ("status", m.status.to_string()),
            ])
            .inc();
        if let Some(d) = m.upstream_latency {
            self.upstream_latency
                .get_or_create(&[("endpoint", endpoint)])
                .observe(d.as_secs_f64());
        }
        if let Some(r) = m.refusal {
            self.refusals
                .get_or_create(&[("reason", r.as_str().to_string())])
                .inc();
        }
        if let Some(c) = m.upstream_cause {
            self.upstream_errors
                .get_or_create(&[("cause", c.as_str().to_string())])
                .inc();
        }
        for (kind, n) in &m.transformed {
            self.transformed
                .get_or_create(&[("transform", (*kind).to_string())])
                .inc_by(*n);
        }
    }

    /// The text exposition (OpenMetrics 1.0, which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The `Content-Type` of [`Metrics::encode`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The CloudWatch namespace of [`emf_line`].
pub(crate) const EMF_NAMESPACE: &str = "Veil";

/// One CloudWatch Embedded Metric Format record for a request: `Requests`,
/// `Latency` and `UpstreamLatency` by connector, endpoint template and
/// status; `Refusals` by connector and refusal reason; `UpstreamErrors` by
/// connector and cause; `GraphTokenRefreshes` (the exchanges since the
/// previous record, `token_refreshes`) and `ValuesTransformed.<kind>` by
/// connector. Metrics a request did not produce are left out.
pub fn emf_line(m: &RequestMetrics, token_refreshes: u64, at: SystemTime) -> Value {
    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    let mut root = Map::new();
    let mut directives = Vec::new();
    let metric = |name: &str, unit: &str| json!({"Name": name, "Unit": unit});

    root.insert("Connector".into(), m.connector.clone().into());
    root.insert(
        "Endpoint".into(),
        m.endpoint
            .clone()
            .unwrap_or_else(|| NO_ENDPOINT.into())
            .into(),
    );
    root.insert("Status".into(), m.status.to_string().into());
    root.insert("Requests".into(), 1.into());
    root.insert("Latency".into(), ms(m.latency).into());
    let mut request_metrics = vec![
        metric("Requests", "Count"),
        metric("Latency", "Milliseconds"),
    ];
    if let Some(d) = m.upstream_latency {
        root.insert("UpstreamLatency".into(), ms(d).into());
        request_metrics.push(metric("UpstreamLatency", "Milliseconds"));
    }
    directives.push(json!({
        "Namespace": EMF_NAMESPACE,
        "Dimensions": [["Connector", "Endpoint", "Status"], ["Connector"]],
        "Metrics": request_metrics,
    }));
    if let Some(r) = m.refusal {
        root.insert("RefusalReason".into(), r.as_str().into());
        root.insert("Refusals".into(), 1.into());
        directives.push(json!({
            "Namespace": EMF_NAMESPACE,
            "Dimensions": [["Connector", "RefusalReason"]],
            "Metrics": [metric("Refusals", "Count")],
        }));
    }
    if let Some(c) = m.upstream_cause {
        root.insert("UpstreamErrorCause".into(), c.as_str().into());
        root.insert("UpstreamErrors".into(), 1.into());
        directives.push(json!({
            "Namespace": EMF_NAMESPACE,
            "Dimensions": [["Connector", "UpstreamErrorCause"]],
            "Metrics": [metric("UpstreamErrors", "Count")],
        }));
    }
    let mut per_connector = Vec::new();
    if token_refreshes > 0 {
        root.insert("GraphTokenRefreshes".into(), token_refreshes.into());
        per_connector.push(metric("GraphTokenRefreshes", "Count"));
    }
    for (kind, n) in &m.transformed {
        let name = format!("ValuesTransformed.{kind}");
        root.insert(name.clone(), (*n).into());
        per_connector.push(metric(&name, "Count"));
    }
    if !per_connector.is_empty() {
        directives.push(json!({
            "Namespace": EMF_NAMESPACE,
            "Dimensions": [["Connector"]],
            "Metrics": per_connector,
        }));
    }
    let timestamp = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut out = Map::new();
    out.insert(
        "_aws".into(),
        json!({"Timestamp": timestamp, "CloudWatchMetrics": directives}),
    );
    out.extend(root);
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> RequestMetrics {
        RequestMetrics {
            connector: "outlook-mail".into(),
            endpoint: Some("/v1.0/users".into()),
            status: 200,
            latency: Duration::from_millis(42),
            upstream_latency: Some(Duration::from_millis(30)),
            refusal: None,
            upstream_cause: None,
            transformed: vec![("pseudonymize", 3), ("redact", 2)],
        }
    }

    #[test]
    fn prometheus_text_counts_requests_latency_and_transforms() {
        let m = Metrics::new(|| TokenRefreshes {
            succeeded: 4,
            failed: 1,
        });
        m.record(&figures());
        m.record(&figures());
        m.record(&RequestMetrics {
            endpoint: None,
            status: 403,
            refusal: Some(Refusal::NoEndpoint),
            upstream_latency: None,
            transformed: Vec::new(),
            ..figures()
        });
        m.record(&RequestMetrics {
            status: 502,
            upstream_cause: Some(UpstreamCause::Dns),
            transformed: Vec::new(),
            ..figures()
        });
        let text = m.encode();
        for line in [
            r#"veil_requests_total{endpoint="/v1.0/users",status="200"} 2"#,
            r#"veil_requests_total{endpoint="-",status="403"} 1"#,
            r#"veil_requests_total{endpoint="/v1.0/users",status="502"} 1"#,
            r#"veil_refusals_total{reason="no_endpoint"} 1"#,
            r#"veil_upstream_errors_total{cause="dns"} 1"#,
            r#"veil_values_transformed_total{transform="pseudonymize"} 6"#,
            r#"veil_values_transformed_total{transform="redact"} 4"#,
            r#"veil_upstream_latency_seconds_count{endpoint="/v1.0/users"} 3"#,
            r#"veil_upstream_latency_seconds_bucket{le="0.025",endpoint="/v1.0/users"} 0"#,
            r#"veil_upstream_latency_seconds_bucket{le="0.05",endpoint="/v1.0/users"} 3"#,
            r#"veil_graph_token_refreshes_total{outcome="ok"} 4"#,
            r#"veil_graph_token_refreshes_total{outcome="error"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn one_emf_record_per_request() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let v = emf_line(&figures(), 1, at);
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_123u64);
        assert_eq!(v["Connector"], "outlook-mail");
        assert_eq!(v["Endpoint"], "/v1.0/users");
        assert_eq!(v["Status"], "200");
        assert_eq!(v["Requests"], 1);
        assert_eq!(v["Latency"], 42.0);
        assert_eq!(v["UpstreamLatency"], 30.0);
        assert_eq!(v["GraphTokenRefreshes"], 1);
        assert_eq!(v["ValuesTransformed.pseudonymize"], 3);
        // Every metric a directive names is in the record, and every
        // dimension too.
        for d in v["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            assert_eq!(d["Namespace"], EMF_NAMESPACE);
            for m in d["Metrics"].as_array().unwrap() {
                let name = m["Name"].as_str().unwrap();
                assert!(v[name].is_number(), "{name}: {v}");
            }
            for set in d["Dimensions"].as_array().unwrap() {
                for dim in set.as_array().unwrap() {
                    assert!(v[dim.as_str().unwrap()].is_string(), "{dim}: {v}");
                }
            }
        }
        let refused = emf_line(
            &RequestMetrics {
                endpoint: None,
                status: 401,
                refusal: Some(Refusal::CallerAuth),
                upstream_latency: None,
                transformed: Vec::new(),
                ..figures()
            },
            0,
            at,
        );
        assert_eq!(refused["RefusalReason"], "caller_auth");
        assert_eq!(refused["Refusals"], 1);
        assert_eq!(refused["Endpoint"], "-");
        assert!(refused.get("UpstreamLatency").is_none());
        assert!(refused.get("GraphTokenRefreshes").is_none());
        assert_eq!(
            refused["_aws"]["CloudWatchMetrics"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
}
