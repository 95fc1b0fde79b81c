//! The pipeline in-process, with a scripted [`GraphClient`] and a counting
//! token provider: the 401 retry, the consent eviction, redirects and the
//! upstream deadline, without sockets. (`tests/proxy_e2e.rs` and
//! `tests/faults.rs` test the same over TCP.)

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use veil_engine::{
    EmailPolicy, PseudonymConfig, Pseudonymizer, RuleSet, SanitizerPath, Scheme, Secret,
};

use super::upstream::{GraphClient, UpstreamResponse};
use super::*;
use crate::token::{BoxFuture, TokenError};

const RULES: &str = r#"
endpoints:
  - pathTemplate: /v1.0/users
    transforms:
      - !<redact>
        jsonPaths:
          - "$..displayName"
"#;

/// Graph as a script: one answer per call, in order; every call recorded.
struct ScriptedGraph {
    answers: Mutex<VecDeque<(StatusCode, HeaderMap, &'static str)>>,
    /// (bearer, path and query) of each call.
    calls: Mutex<Vec<(String, String)>>,
    /// How long each call takes.
    delay: Duration,
    deadline: Duration,
}

impl ScriptedGraph {
    fn new(answers: Vec<(StatusCode, &'static str)>) -> Arc<ScriptedGraph> {
        Arc::new(ScriptedGraph {
            answers: Mutex::new(
                answers
                    .into_iter()
                    .map(|(s, b)| (s, HeaderMap::new(), b))
                    .collect(),
            ),
            calls: Mutex::default(),
            delay: Duration::ZERO,
            deadline: Duration::from_secs(5),
        })
    }

    fn calls(&self) -> Vec<(String, String)> {
        self.calls.lock().unwrap().clone()
    }
}

impl GraphClient for ScriptedGraph {
    fn total_timeout(&self) -> Duration {
        self.deadline
    }

    fn send<'a>(
        &'a self,
        _method: &'a Method,
        path_and_query: &'a str,
        _headers: Vec<(HeaderName, HeaderValue)>,
        bearer: &'a str,
    ) -> BoxFuture<'a, Result<UpstreamResponse, ProxyError>> {
        Box::pin(async move {
            self.calls
                .lock()
                .unwrap()
                .push((bearer.to_string(), path_and_query.to_string()));
            tokio::time::sleep(self.delay).await;
            let (status, headers, body) = self
                .answers
                .lock()
                .unwrap()
                .pop_front()
                .expect("Graph called more often than scripted");
            Ok(UpstreamResponse {
                status,
                headers,
                body: Bytes::from_static(body.as_bytes()),
                reservation: None,
            })
        })
    }
}

/// A token provider that hands out `token-1`, `token-2`, … and counts what
/// the pipeline asks of it.
#[derive(Default)]
struct CountingTokens {
    issued: AtomicUsize,
    rejected: AtomicUsize,
    accepted: AtomicUsize,
    forbidden: AtomicUsize,
}

impl TokenProvider for CountingTokens {
    fn kind(&self) -> &'static str {
        "counting"
    }

    fn token(&self) -> BoxFuture<'_, Result<Secret, TokenError>> {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move { Ok(Secret::from(format!("token-{n}").as_str())) })
    }

    fn invalidate_rejected(&self, _rejected: &Secret) -> bool {
        self.rejected.fetch_add(1, Ordering::SeqCst);
        true
    }

    fn token_accepted(&self) {
        self.accepted.fetch_add(1, Ordering::SeqCst);
    }

    fn invalidate_after_forbidden(&self) -> bool {
        self.forbidden.fetch_add(1, Ordering::SeqCst);
        true
    }
}

fn proxy(graph: Arc<ScriptedGraph>, tokens: Arc<CountingTokens>) -> Proxy {
    let pseudonymizer = Pseudonymizer::new(PseudonymConfig {
        scheme: Scheme::Hmac,
        salt: Secret::from("0123456789abcdef0123456789abcdef"),
        encryption_keys: vec![("k1".into(), Secret::from("k".repeat(32).as_str()))],
        email: EmailPolicy::default(),
    })
    .unwrap();
    Proxy::with_graph_client(
        RuleSet::from_str("test.yaml", RULES).unwrap(),
        Arc::new(pseudonymizer),
        tokens,
        graph,
        ProxyConfig {
            connector: "test".into(),
            caller_auth: CallerAuthMode::Unauthenticated,
            ip_allowlist: Vec::new(),
            limits: Limits::default(),
            health: HealthInfo::default(),
            body: Default::default(),
        },
    )
}

async fn get(proxy: &Proxy, target: &str) -> (StatusCode, HeaderMap, String) {
    let req = Request::builder()
        .method(Method::GET)
        .uri(target)
        .body(Bytes::new())
        .unwrap();
    let resp = proxy.handle(req).await;
    let (parts, body) = resp.into_parts();
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

const USERS: &str = r#"{"value":[{"id":"1","displayName":"Priya Raman"}]}"#;
const EXPIRED: &str = r#"{"error":{"code":"InvalidAuthenticationToken","message":"Lifetime validation failed for priya@contoso.example"}}"#;

#[tokio::test]
async fn a_graph_401_gets_one_retry_with_a_fresh_token() {
    let graph = ScriptedGraph::new(vec![
        (StatusCode::UNAUTHORIZED, EXPIRED),
        (StatusCode::OK, USERS),
    ]);
    let tokens = Arc::new(CountingTokens::default());
    let (status, _, body) = get(&proxy(graph.clone(), tokens.clone()), "/v1.0/users").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!body.contains("Priya"), "{body}");
    let calls = graph.calls();
    assert_eq!(
        calls,
        [
            ("token-1".to_string(), "/v1.0/users".to_string()),
            ("token-2".to_string(), "/v1.0/users".to_string()),
        ]
    );
    assert_eq!(tokens.rejected.load(Ordering::SeqCst), 1);
    assert_eq!(tokens.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_second_401_is_answered_and_not_retried_again() {
    let graph = ScriptedGraph::new(vec![
        (StatusCode::UNAUTHORIZED, EXPIRED),
        (StatusCode::UNAUTHORIZED, EXPIRED),
    ]);
    let tokens = Arc::new(CountingTokens::default());
    let (status, headers, body) = get(&proxy(graph.clone(), tokens.clone()), "/v1.0/users").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(graph.calls().len(), 2, "one retry only");
    assert_eq!(
        tokens.accepted.load(Ordering::SeqCst),
        0,
        "a 401 is no acceptance"
    );
    // Graph's code, never its text (it quotes the request).
    assert!(body.contains("InvalidAuthenticationToken"), "{body}");
    assert!(!body.contains("priya"), "{body}");
    assert_eq!(headers[respond::HEADER_PSOXY_ERROR], "API_ERROR");
}

#[tokio::test]
async fn missing_consent_evicts_the_cached_token_without_a_retry() {
    let graph = ScriptedGraph::new(vec![(
        StatusCode::FORBIDDEN,
        r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges"}}"#,
    )]);
    let tokens = Arc::new(CountingTokens::default());
    let (status, _, body) = get(&proxy(graph.clone(), tokens.clone()), "/v1.0/users").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(graph.calls().len(), 1);
    assert_eq!(tokens.forbidden.load(Ordering::SeqCst), 1);
    assert_eq!(tokens.rejected.load(Ordering::SeqCst), 0);
    assert!(
        body.contains("admin consent"),
        "the hint names the fix: {body}"
    );
}

#[tokio::test]
async fn a_redirect_from_graph_is_answered_502_and_not_followed() {
    let graph = ScriptedGraph::new(vec![]);
    let mut location = HeaderMap::new();
    location.insert(
        http::header::LOCATION,
        HeaderValue::from_static("https://evil.example/collect?priya@contoso.example"),
    );
    graph.answers.lock().unwrap().push_back((
        StatusCode::FOUND,
        location,
        r#"{"error":{"code":"Moved","message":"see priya@contoso.example"}}"#,
    ));
    let tokens = Arc::new(CountingTokens::default());
    let (status, headers, body) = get(&proxy(graph.clone(), tokens), "/v1.0/users").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(graph.calls().len(), 1, "a redirect is never followed");
    assert!(headers.get(http::header::LOCATION).is_none());
    assert!(!body.contains("evil") && !body.contains("priya"), "{body}");
}

#[tokio::test]
async fn the_whole_upstream_phase_has_one_deadline() {
    let graph = Arc::new(ScriptedGraph {
        answers: Mutex::new(
            [(StatusCode::OK, HeaderMap::new(), USERS)]
                .into_iter()
                .collect(),
        ),
        calls: Mutex::default(),
        delay: Duration::from_millis(500),
        deadline: Duration::from_millis(50),
    });
    let tokens = Arc::new(CountingTokens::default());
    let (status, headers, body) = get(&proxy(graph, tokens), "/v1.0/users").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(body.contains("upstream_timeout"), "{body}");
    assert!(!body.contains("Priya"), "{body}");
    assert!(
        headers.contains_key(respond::HEADER_PSOXY_ERROR),
        "{headers:?}"
    );
}

#[tokio::test]
async fn a_refused_request_never_reaches_graph() {
    let graph = ScriptedGraph::new(vec![]);
    let tokens = Arc::new(CountingTokens::default());
    let p = proxy(graph.clone(), tokens.clone());
    for target in ["/v1.0/groups", "/v1.0/users/../groups", "/v1.0/users/1"] {
        let (status, _, body) = get(&p, target).await;
        assert!(status.is_client_error(), "{target}: {status} {body}");
    }
    assert!(graph.calls().is_empty());
    assert_eq!(tokens.issued.load(Ordering::SeqCst), 0, "no token fetched");
}

/// A 2xx body's nesting is checked by the sanitizer as it reads the body
/// (the upstream checks only other bodies): past the limit the caller gets
/// 502 `upstream_response_too_large` and nothing of the body, on the
/// streaming and on the DOM path, also where the nesting hides in a member
/// the rules drop and after a duplicate member name (which sends the body to
/// the DOM path). At the limit the body is answered.
#[tokio::test]
async fn a_2xx_body_nesting_past_the_limit_is_refused_on_every_path() {
    let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let max = upstream::DEFAULT_MAX_DEPTH;
    // The page, its list and the user are three containers; `x` is not kept
    // by the rules.
    let deep_in_dropped = |n: usize| {
        format!(
            r#"{{"value":[{{"id":"1","displayName":"Priya Raman","x":{}}}]}}"#,
            nest(n)
        )
    };
    let after_duplicate = |n: usize| {
        format!(
            r#"{{"value":[{{"id":"1","id":"2","displayName":"Priya Raman","x":{}}}]}}"#,
            nest(n)
        )
    };
    for path in [SanitizerPath::Streaming, SanitizerPath::Dom] {
        for (name, body, refused) in [
            ("dropped member", deep_in_dropped(max - 3), false),
            ("dropped member", deep_in_dropped(max - 2), true),
            ("after a duplicate", after_duplicate(max - 3), false),
            ("after a duplicate", after_duplicate(max - 2), true),
        ] {
            let body: &'static str = Box::leak(body.into_boxed_str());
            let graph = ScriptedGraph::new(vec![(StatusCode::OK, body)]);
            let mut proxy = proxy(graph, Arc::new(CountingTokens::default()));
            Arc::get_mut(&mut proxy.inner).unwrap().config.body.path = path;
            let (status, _, answer) = get(&proxy, "/v1.0/users").await;
            let case = format!("{path:?}, {name}, refused {refused}: {answer}");
            assert!(!answer.contains("Priya"), "{case}");
            if refused {
                assert_eq!(status, StatusCode::BAD_GATEWAY, "{case}");
                assert!(answer.contains("upstream_response_too_large"), "{case}");
                assert!(
                    answer.contains(&format!("nests deeper than Veil accepts ({max} levels)")),
                    "{case}"
                );
            } else {
                assert_eq!(status, StatusCode::OK, "{case}");
            }
        }
    }
}
