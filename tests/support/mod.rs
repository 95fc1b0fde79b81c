//! Shared helpers of the end-to-end tests: a recording test Graph server,
//! a guard that runs the real `veil serve` binary, raw HTTP/1.1 over TCP,
//! and the sample data of `example-api-responses/`.
//!
//! Every server binds 127.0.0.1 only.
#![allow(dead_code)]

pub mod entra;
pub mod moto;
pub mod sts;

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;
use regex::Regex;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use veil_engine::Planted;

/// Test secrets: at least 32 bytes, not the published example values.
pub const SALT: &str = "e2e-salt-7Qm2vX9kLp4RtZ8nWc3HyB6dFj1sGa5e";
pub const KEY: &str = "e2e-key-Hs4Nq8Lw2Xe6Tz9Rb3Vm7Kp1Yc5Dg0Uf";
/// The Graph token Veil sends upstream (`VEIL_UPSTREAM_TOKEN`).
pub const UPSTREAM_TOKEN: &str = "dev-token";
/// The shipped connectors.
pub const CONNECTORS: [&str; 4] = ["entra-id", "outlook-mail", "outlook-cal", "msft-teams"];
/// The Graph base URL that sanitized paging links carry.
pub const GRAPH: &str = "https://graph.microsoft.com";

/// Every environment variable Veil reads (src/runtime.rs,
/// veil-proxy/src/config.rs, veil-proxy/src/token), plus proxies and the
/// log filter: removed from the child's environment so that the test
/// process's environment cannot change what is tested.
pub const VEIL_ENV: &[&str] = &[
    "VEIL_SALT",
    "VEIL_ENCRYPTION_KEY",
    "VEIL_ENCRYPTION_KEYS",
    "VEIL_SCHEME",
    "VEIL_METRICS_LISTEN",
    "VEIL_EMAIL_DOMAIN_POLICY",
    "VEIL_EMAIL_IGNORE_DOTS",
    "VEIL_CONNECTOR",
    "VEIL_RULES",
    "VEIL_RULES_VARIANT",
    "VEIL_UPSTREAM",
    "VEIL_UPSTREAM_TIMEOUT_SECS",
    "VEIL_UPSTREAM_MAX_BODY_MB",
    "VEIL_BODY_BUDGET_MB",
    "VEIL_PUBLIC_BASE_URL",
    "VEIL_HEADER_READ_TIMEOUT_SECS",
    "VEIL_IDLE_TIMEOUT_SECS",
    "VEIL_BODY_READ_TIMEOUT_SECS",
    "VEIL_MAX_CONNECTIONS",
    "VEIL_MAX_IN_FLIGHT",
    "VEIL_UPSTREAM_TOKEN",
    "VEIL_CALLER_ISSUER",
    "VEIL_CALLER_AUDIENCES",
    "VEIL_CALLER_SUBJECTS",
    "VEIL_CALLER_EMAILS",
    "VEIL_CALLER_JWKS_URL",
    "VEIL_CALLER_IP_ALLOWLIST",
    "VEIL_ALLOWED_CALLER_ARNS",
    "VEIL_ALLOW_UNAUTHENTICATED",
    "VEIL_TOKEN_PROVIDER",
    "VEIL_TENANT_ID",
    "VEIL_CLIENT_ID",
    "VEIL_ENTRA_AUTHORITY",
    "VEIL_GRAPH_SCOPE",
    "VEIL_GCP_AUDIENCE",
    "GCE_METADATA_HOST",
    "VEIL_FEDERATED_TOKEN_FILE",
    "AZURE_FEDERATED_TOKEN_FILE",
    "VEIL_SALT_FILE",
    "VEIL_SALT_SSM_PARAMETER",
    "VEIL_SALT_SECRET_ID",
    "VEIL_ENCRYPTION_KEYS_FILE",
    "VEIL_ENCRYPTION_KEYS_SSM_PARAMETER",
    "VEIL_ENCRYPTION_KEYS_SECRET_ID",
    "VEIL_AWS_STS_AUDIENCE",
    "VEIL_AWS_STS_SIGNING_ALGORITHM",
    "VEIL_AWS_STS_DURATION_SECS",
    "VEIL_COGNITO_IDENTITY_POOL_ID",
    "VEIL_COGNITO_DEVELOPER_PROVIDER",
    "VEIL_COGNITO_LOGIN",
    "VEIL_COGNITO_IDENTITY_ID",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_SSM",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_ENDPOINT_URL_COGNITO_IDENTITY",
    "AWS_LAMBDA_RUNTIME_API",
    "PORT",
    "RUST_LOG",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
];

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub use veil_test_support::free_port;

/// An HTTP client for tests: no proxy, no automatic gzip (so the raw body
/// is what Veil sent), generous timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .gzip(false)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("reqwest client")
}

// ---------------------------------------------------------------------------
// Sample data
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Sample {
    pub connector: String,
    pub file: String,
    /// `https://graph.microsoft.com/v1.0/…` as in `requests.yaml`.
    pub url: String,
    pub body: Bytes,
}

impl Sample {
    /// The path and query, as Graph receives them.
    pub fn target(&self) -> &str {
        self.url.strip_prefix(GRAPH).unwrap_or(&self.url)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("sample is JSON")
    }
}

#[derive(serde::Deserialize)]
struct RequestsFile {
    samples: Vec<RequestEntry>,
}

#[derive(serde::Deserialize)]
struct RequestEntry {
    file: String,
    url: String,
}

static SAMPLES: LazyLock<Vec<Sample>> = LazyLock::new(|| {
    let mut out = Vec::new();
    for connector in CONNECTORS {
        let dir = repo().join("example-api-responses").join(connector);
        let text = std::fs::read_to_string(dir.join("requests.yaml")).expect("requests.yaml");
        let parsed: RequestsFile = serde_yaml_ng::from_str(&text).expect("requests.yaml parses");
        for entry in parsed.samples {
            let body = std::fs::read(dir.join("original").join(&entry.file)).expect("sample");
            out.push(Sample {
                connector: connector.to_string(),
                file: entry.file,
                url: entry.url,
                body: Bytes::from(body),
            });
        }
    }
    out
});

/// Every sample of a connector.
pub fn samples(connector: &str) -> Vec<Sample> {
    SAMPLES
        .iter()
        .filter(|s| s.connector == connector)
        .cloned()
        .collect()
}

/// One sample, by connector and file name.
pub fn sample(connector: &str, file: &str) -> Sample {
    SAMPLES
        .iter()
        .find(|s| s.connector == connector && s.file == file)
        .cloned()
        .unwrap_or_else(|| panic!("no sample {connector}/{file}"))
}

/// The values planted in the sample tenant (`sensitive-values.yaml`).
static PLANTED: LazyLock<Planted> = LazyLock::new(|| {
    let path = repo().join("example-api-responses/sensitive-values.yaml");
    let text = std::fs::read_to_string(path).expect("sensitive-values.yaml");
    serde_yaml_ng::from_str(&text).expect("sensitive-values.yaml parses")
});

static GUID_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").expect("regex")
});

/// What leaves Veil and should not: the one leak check `veil rules test`
/// runs too ([`Planted::leaks`]: planted values outside pseudonyms' opaque
/// text, and the generic detectors — addresses in clear, phone numbers,
/// IP and MAC addresses, credentials in URLs).
pub fn leaks(text: &str) -> Vec<String> {
    PLANTED
        .leaks(text)
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The object ids of the tenant's people (from the directory samples).
pub fn user_guids() -> Vec<String> {
    let mut out = Vec::new();
    for file in ["users.json", "users-page2.json"] {
        for u in sample("entra-id", file).json()["value"]
            .as_array()
            .expect("value")
        {
            out.push(u["id"].as_str().expect("id").to_string());
        }
    }
    out
}

pub fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn loose(s: &str) -> String {
    GUID_RE.replace_all(s, "{guid}").into_owned()
}

// ---------------------------------------------------------------------------
// The recording test Graph server
// ---------------------------------------------------------------------------

/// A request the test Graph server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The request target as received (origin-form: raw path and query).
    pub target: String,
    /// Lower-case names, in the order received.
    pub headers: Vec<(String, String)>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// What the server answers for a path.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub delay: Duration,
    pub gzip: bool,
    /// Announce this many more bytes than are sent (the connection then
    /// ends mid-body).
    pub short_by: usize,
}

impl Reply {
    pub fn new(status: u16, content_type: &str, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
            delay: Duration::ZERO,
            gzip: false,
            short_by: 0,
        }
    }

    pub fn json(status: u16, body: &Value) -> Reply {
        Reply::new(
            status,
            "application/json",
            serde_json::to_vec(body).expect("json"),
        )
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }

    pub fn gzip(mut self) -> Reply {
        self.gzip = true;
        self
    }

    pub fn short_by(mut self, n: usize) -> Reply {
        self.short_by = n;
        self
    }
}

/// Decides Graph's answer to a request's `Authorization` header (`None`
/// lets the request through); replaces the `dev-token` check.
pub type Authorizer = Arc<dyn Fn(Option<&str>) -> Option<Reply> + Send + Sync>;

struct GraphState {
    authorizer: Mutex<Option<Authorizer>>,
    connector: String,
    /// (decoded path, reply): the first whose path equals the request's
    /// decoded path answers; `*` answers every path.
    scripts: Mutex<Vec<(String, Reply)>>,
    recorded: Mutex<Vec<Recorded>>,
}

pub use veil_test_support::server::serve_http;

/// A real HTTP/1.1 server standing in for Microsoft Graph: it records every
/// request and answers from scripts, else from the connector's samples.
pub struct GraphServer {
    pub addr: SocketAddr,
    state: Arc<GraphState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GraphServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GraphServer {
    /// Starts a server answering from `connector`'s samples.
    pub async fn start(connector: &str) -> GraphServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind graph");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(GraphState {
            connector: connector.to_string(),
            scripts: Mutex::new(Vec::new()),
            recorded: Mutex::new(Vec::new()),
            authorizer: Mutex::new(None),
        });
        let task = serve_http(listener, state.clone(), |state, req| async move {
            handle(&state, req).await
        });
        GraphServer { addr, state, task }
    }

    /// `http://127.0.0.1:<port>`: what `--upstream` gets.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers requests whose percent-decoded path is `path` (or every
    /// request, for `*`) with `reply`; the latest script for a path wins.
    pub fn script(&self, path: &str, reply: Reply) {
        self.state
            .scripts
            .lock()
            .unwrap()
            .insert(0, (decode(path), reply));
    }

    /// Checks `Authorization` with `check` instead of expecting `dev-token`.
    pub fn authorize_with(&self, check: Authorizer) {
        *self.state.authorizer.lock().unwrap() = Some(check);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.recorded.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.state.recorded.lock().unwrap().len()
    }

    pub fn last(&self) -> Recorded {
        self.requests()
            .pop()
            .expect("the Graph server received a request")
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) {
        let until = Instant::now() + timeout;
        while self.count() < n {
            assert!(
                Instant::now() < until,
                "the Graph server received {} requests, expected {n}",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn graph_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({"error": {"code": code, "message": message, "innerError": {
            "date": "2026-11-06T10:00:00",
            "request-id": "0a1b2c3d-0000-4000-8000-000000000001",
            "client-request-id": "0a1b2c3d-0000-4000-8000-000000000001"
        }}}),
    )
}

/// Graph-like headers on every answer, two of which Veil passes on and two
/// it must not.
fn graph_headers(reply: Reply) -> Reply {
    reply
        .header("request-id", "7f0c6a4e-1d2b-4c3a-9e8f-000000000042")
        .header("client-request-id", "7f0c6a4e-1d2b-4c3a-9e8f-000000000042")
        .header(
            "x-ms-ags-diagnostic",
            "{\"ServerInfo\":{\"DataCenter\":\"West Europe\"}}",
        )
        .header("set-cookie", "graph-session=secret-cookie; Path=/")
}

async fn handle(state: &GraphState, req: hyper::Request<Incoming>) -> hyper::Response<TestBody> {
    let recorded = Recorded {
        method: req.method().as_str().to_string(),
        target: req.uri().to_string(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    };
    state.recorded.lock().unwrap().push(recorded.clone());
    let reply = answer(state, &recorded);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let head = recorded.method == "HEAD";
    build(reply, head)
}

/// What Graph would answer: strict about the token and the method first.
fn answer(state: &GraphState, req: &Recorded) -> Reply {
    let authorizer = state.authorizer.lock().unwrap().clone();
    let expected = format!("Bearer {UPSTREAM_TOKEN}");
    if let Some(check) = authorizer {
        if let Some(refused) = check(req.header("authorization")) {
            return refused;
        }
    } else if req.header("authorization") != Some(expected.as_str()) {
        return graph_error(
            401,
            "InvalidAuthenticationToken",
            "Access token validation failure. Invalid audience.",
        );
    }
    if req.method != "GET" && req.method != "HEAD" {
        return graph_error(
            405,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.",
        );
    }
    let (path, query) = match req.target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (req.target.as_str(), None),
    };
    let path = decode(path);
    if let Some((_, reply)) = state
        .scripts
        .lock()
        .unwrap()
        .iter()
        .find(|(p, _)| *p == path || p == "*")
    {
        return reply.clone();
    }
    let full = match query {
        Some(q) => format!("{path}?{}", decode(q)),
        None => path.clone(),
    };
    let candidates: Vec<&Sample> = SAMPLES
        .iter()
        .filter(|s| s.connector == state.connector)
        .collect();
    let sample_full = |s: &Sample| decode(s.target());
    let sample_path = |s: &Sample| decode(s.target().split('?').next().unwrap_or(""));
    let found = candidates
        .iter()
        .find(|s| sample_full(s) == full)
        .or_else(|| {
            candidates
                .iter()
                .find(|s| loose(&sample_full(s)) == loose(&full))
        })
        .or_else(|| {
            candidates
                .iter()
                .find(|s| loose(&sample_path(s)) == loose(&path))
        });
    match found {
        Some(s) => graph_headers(Reply::new(
            200,
            "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8",
            s.body.clone(),
        )),
        None => graph_error(
            404,
            "Request_ResourceNotFound",
            "Resource does not exist or one of its queried reference-property objects are not present.",
        ),
    }
}

fn build(reply: Reply, head: bool) -> hyper::Response<TestBody> {
    let mut body = reply.body.clone();
    let mut builder = hyper::Response::builder().status(reply.status);
    for (n, v) in &reply.headers {
        builder = builder.header(n.as_str(), v.as_str());
    }
    if reply.gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&body).expect("gzip");
        body = Bytes::from(enc.finish().expect("gzip"));
        builder = builder.header("content-encoding", "gzip");
    }
    if head {
        body = Bytes::new();
    }
    let body = if reply.short_by > 0 {
        builder = builder.header("content-length", (body.len() + reply.short_by).to_string());
        TestBody::Broken(
            Some(body),
            Box::pin(tokio::time::sleep(Duration::from_millis(100))),
        )
    } else {
        TestBody::Full(Some(body))
    };
    builder.body(body).expect("response")
}

/// A response body: complete, or one that fails a moment after its bytes
/// went out (the connection then ends before the announced length).
pub enum TestBody {
    Full(Option<Bytes>),
    Broken(Option<Bytes>, std::pin::Pin<Box<tokio::time::Sleep>>),
}

impl hyper::body::Body for TestBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        use std::future::Future as _;
        use std::task::Poll;
        match self.get_mut() {
            TestBody::Full(data) => {
                Poll::Ready(data.take().map(|d| Ok(hyper::body::Frame::data(d))))
            }
            TestBody::Broken(data, pause) => match data.take() {
                Some(d) => Poll::Ready(Some(Ok(hyper::body::Frame::data(d)))),
                None => match pause.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => {
                        Poll::Ready(Some(Err(std::io::Error::other("connection cut"))))
                    }
                },
            },
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            TestBody::Full(Some(d)) => hyper::body::SizeHint::with_exact(d.len() as u64),
            TestBody::Full(None) => hyper::body::SizeHint::with_exact(0),
            TestBody::Broken(..) => hyper::body::SizeHint::default(),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, TestBody::Full(None))
    }
}

// ---------------------------------------------------------------------------
// The real binary
// ---------------------------------------------------------------------------

/// How to run `veil serve`.
#[derive(Debug, Clone)]
pub struct VeilConfig {
    pub connector: String,
    pub upstream: String,
    pub allow_unauthenticated: bool,
    pub env: Vec<(String, String)>,
}

impl VeilConfig {
    /// `--connector <c> --upstream <u> --allow-unauthenticated`, with the
    /// test salt, key and Graph token.
    pub fn new(connector: &str, upstream: &str) -> VeilConfig {
        VeilConfig {
            connector: connector.into(),
            upstream: upstream.into(),
            allow_unauthenticated: true,
            env: vec![
                ("VEIL_SALT".into(), SALT.into()),
                ("VEIL_ENCRYPTION_KEY".into(), KEY.into()),
                ("VEIL_UPSTREAM_TOKEN".into(), UPSTREAM_TOKEN.into()),
            ],
        }
    }

    pub fn env(mut self, name: &str, value: &str) -> VeilConfig {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.into(), value.into()));
        self
    }

    /// Removes a variable set so far (e.g. `VEIL_UPSTREAM_TOKEN`).
    pub fn unset(mut self, name: &str) -> VeilConfig {
        self.env.retain(|(n, _)| n != name);
        self
    }

    pub fn authenticated(mut self) -> VeilConfig {
        self.allow_unauthenticated = false;
        self
    }

    /// The command, for a given listen port; stdout discarded.
    pub fn command(&self, port: u16) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_veil"));
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--connector")
            .arg(&self.connector)
            .arg("--upstream")
            .arg(&self.upstream);
        if self.allow_unauthenticated {
            cmd.arg("--allow-unauthenticated");
        }
        for name in VEIL_ENV {
            cmd.env_remove(name);
        }
        for (n, v) in &self.env {
            cmd.env(n, v);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        cmd
    }

    pub async fn start(self) -> Veil {
        Veil::start(self).await
    }
}

/// A running `veil serve`; killed on drop.
pub struct Veil {
    child: Option<Child>,
    pub port: u16,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Veil {
    pub async fn start(config: VeilConfig) -> Veil {
        let probe = client();
        for attempt in 0..5 {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = free_port();
            let stderr = dir.path().join(format!("stderr-{attempt}.log"));
            let file = std::fs::File::create(&stderr).expect("stderr file");
            let child = config
                .command(port)
                .stderr(Stdio::from(file))
                .spawn()
                .expect("spawn veil");
            let mut veil = Veil {
                child: Some(child),
                port,
                base: format!("http://127.0.0.1:{port}"),
                stderr,
                _dir: dir,
            };
            if veil.wait_ready(&probe).await {
                return veil;
            }
            // Someone took the port in between: try another one.
        }
        panic!("could not start veil on a free port");
    }

    /// Polls `GET /healthz`; false if the port was taken.
    async fn wait_ready(&mut self, probe: &reqwest::Client) -> bool {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.try_wait() {
                let log = self.stderr();
                if log.contains("cannot listen") {
                    return false;
                }
                panic!("veil exited early ({status}):\n{log}");
            }
            let ready = probe
                .get(format!("{}/healthz", self.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if ready.is_ok() {
                return true;
            }
            assert!(
                Instant::now() < until,
                "veil did not become ready:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    /// `127.0.0.1:<port>`, for raw TCP.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child").id()
    }

    /// Everything Veil wrote on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The structured access-log lines (`target` `veil::access`).
    pub fn access_log(&self) -> Vec<Value> {
        self.stderr()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "veil::access")
            .collect()
    }

    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().expect("try_wait"))
    }

    /// Waits for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let until = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            assert!(Instant::now() < until, "veil did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM (through `kill`, as `nix` is not available).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }
}

impl Drop for Veil {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// A Graph server for `connector` and a Veil in front of it.
pub async fn start_pair(connector: &str) -> (GraphServer, Veil) {
    let graph = GraphServer::start(connector).await;
    let veil = VeilConfig::new(connector, &graph.url()).start().await;
    (graph, veil)
}

/// Replaces Graph's base URL in a sanitized paging link with Veil's.
pub fn through_veil(veil: &Veil, link: &str) -> String {
    let rest = link
        .strip_prefix(GRAPH)
        .unwrap_or_else(|| panic!("not a Graph link: {link}"));
    veil.url(rest)
}

/// The `p~` token of every user of `/v1.0/users` (outlook-mail and
/// outlook-cal serve the same directory sample), by raw object id.
pub async fn user_tokens(veil: &Veil, connector: &str) -> HashMap<String, String> {
    let s = sample(connector, "users.json");
    let resp = client()
        .get(veil.url(s.target()))
        .send()
        .await
        .expect("GET users");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("users JSON");
    let original = s.json();
    let mut map = HashMap::new();
    for (raw, sanitized) in original["value"]
        .as_array()
        .unwrap()
        .iter()
        .zip(body["value"].as_array().expect("value"))
    {
        let token = sanitized["id"].as_str().expect("id").to_string();
        assert!(token.starts_with("p~"), "{token}");
        map.insert(raw["id"].as_str().unwrap().to_string(), token);
    }
    map
}

// ---------------------------------------------------------------------------
// Raw HTTP/1.1 over TCP
// ---------------------------------------------------------------------------

/// A response read off the wire.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Sends `request` exactly as given and reads the answer until the server
/// closes the connection (send `Connection: close`).
pub async fn send_raw(addr: &str, request: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may answer (and close) before reading everything.
    let _ = stream.write_all(request).await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if let Some(resp) = parse_complete(&buf) {
                return Some(resp);
            }
        }
        None
    })
    .await
    .expect("the server answered in time");
    read.or_else(|| parse_complete(&buf)).unwrap_or_else(|| {
        panic!(
            "no complete HTTP response: {:?}",
            String::from_utf8_lossy(&buf)
        )
    })
}

/// Parses a complete response (by `Content-Length`), if `buf` holds one.
fn parse_complete(buf: &[u8]) -> Option<RawResponse> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = &buf[end + 4..];
    let len = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    if body.len() < len {
        return None;
    }
    Some(RawResponse {
        status,
        headers,
        body: body[..len].to_vec(),
    })
}

/// A `GET` request with `Host` (unless `extra` has one) and
/// `Connection: close`, plus `extra` header lines.
pub fn get_request(target: &str, extra: &[&str]) -> Vec<u8> {
    let mut s = format!("GET {target} HTTP/1.1\r\n");
    if !extra
        .iter()
        .any(|h| h.to_ascii_lowercase().starts_with("host:"))
    {
        s.push_str("Host: 127.0.0.1\r\n");
    }
    for h in extra {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("Connection: close\r\n\r\n");
    s.into_bytes()
}

/// Asserts Veil's JSON error shape: `{"error":{"code":…,"message":…}}`.
pub fn assert_error_shape(body: &Value, code: &str) {
    let err = body
        .get("error")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("not an error body: {body}"));
    // `innerError` (Graph's request id and date) is the only optional member.
    let keys: Vec<&str> = err
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "innerError")
        .collect();
    assert_eq!(keys, ["code", "message"], "{body}");
    assert_eq!(err["code"], code, "{body}");
    assert!(err["message"].is_string(), "{body}");
}

// ---------------------------------------------------------------------------
// Fault injection and limits (hardening and fault tests)
// ---------------------------------------------------------------------------

/// Runs `veil serve` with `config`, expects it to refuse to start (exit
/// code 1 within 60 s), returns its stderr.
pub fn serve_refused(config: &VeilConfig) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("stderr");
    let mut child = config
        .command(free_port())
        .stderr(Stdio::from(std::fs::File::create(&log).expect("log")))
        .spawn()
        .expect("spawn veil");
    let until = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "veil did not refuse to start:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        status.code(),
        Some(1),
        "veil did not refuse as expected: {text}"
    );
    text
}

/// Raises this process's soft open-file limit to at least `want` (up to
/// the hard limit) when it is lower; returns the limit in force. Tests that
/// hold many sockets themselves call it: each of their client sockets costs
/// this process a descriptor, on top of Veil's own.
pub fn ensure_open_files(want: u64) -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let now = getrlimit(Resource::Nofile);
    let current = now.current.unwrap_or(u64::MAX);
    if current >= want {
        return current;
    }
    let target = now.maximum.map_or(want, |max| want.min(max));
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum: now.maximum,
        },
    );
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Open descriptors and resident memory (KiB) of a process, from /proc.
pub fn process_usage(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    (fds, rss)
}

/// An HTTP server that forwards every request to `target` while up and
/// answers `down_reply` while down: a token endpoint or a JWKS that fails
/// on demand.
pub struct Switch {
    pub addr: SocketAddr,
    state: Arc<SwitchState>,
    task: tokio::task::JoinHandle<()>,
}

struct SwitchState {
    target: String,
    up: std::sync::atomic::AtomicBool,
    down_reply: Reply,
    forwarded: std::sync::atomic::AtomicUsize,
    refused: std::sync::atomic::AtomicUsize,
    http: reqwest::Client,
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Switch {
    pub async fn start(target: &str, down_reply: Reply) -> Switch {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind switch");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(SwitchState {
            target: target.trim_end_matches('/').to_string(),
            up: std::sync::atomic::AtomicBool::new(true),
            down_reply,
            forwarded: Default::default(),
            refused: Default::default(),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
        });
        let task = serve_http(listener, state.clone(), |state, req| async move {
            switch(&state, req).await
        });
        Switch { addr, state, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_up(&self, up: bool) {
        self.state.up.store(up, std::sync::atomic::Ordering::SeqCst);
    }

    /// Requests forwarded while up.
    pub fn forwarded(&self) -> usize {
        self.state
            .forwarded
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Requests answered with the failure while down.
    pub fn refused(&self) -> usize {
        self.state.refused.load(std::sync::atomic::Ordering::SeqCst)
    }
}

async fn switch(state: &SwitchState, req: hyper::Request<Incoming>) -> hyper::Response<TestBody> {
    use http_body_util::BodyExt as _;
    use std::sync::atomic::Ordering;
    if !state.up.load(Ordering::SeqCst) {
        state.refused.fetch_add(1, Ordering::SeqCst);
        return build(state.down_reply.clone(), false);
    }
    state.forwarded.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut out = state
        .http
        .request(parts.method.clone(), format!("{}{target}", state.target))
        .body(body);
    for (n, v) in &parts.headers {
        if n != hyper::header::HOST && n != hyper::header::CONTENT_LENGTH {
            out = out.header(n, v);
        }
    }
    match out.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let ct = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_string();
            let body = resp.bytes().await.unwrap_or_default();
            build(Reply::new(status, &ct, body), false)
        }
        Err(_) => build(
            Reply::new(502, "text/plain", "switch: target unreachable"),
            false,
        ),
    }
}

/// What a [`FaultServer`] does with each request it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Sends the head and part of the body, then nothing more (until the
    /// peer goes away).
    StallBody,
    /// Sends the head and part of the body, then resets the connection.
    ResetMidBody,
    /// Sends nothing; records when the peer closes the connection.
    HoldUntilClosed,
}

/// A raw-TCP upstream that misbehaves on purpose.
pub struct FaultServer {
    pub addr: SocketAddr,
    requests: Arc<std::sync::atomic::AtomicUsize>,
    peer_closed: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultServer {
    pub async fn start(fault: Fault) -> FaultServer {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fault");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peer_closed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (r, c) = (requests.clone(), peer_closed.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let (r, c) = (r.clone(), c.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    r.fetch_add(1, Ordering::SeqCst);
                    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{\"value\":[{\"id\":\"";
                    match fault {
                        Fault::StallBody | Fault::ResetMidBody => {
                            let _ = stream.write_all(head.as_bytes()).await;
                            let _ = stream.flush().await;
                            if fault == Fault::ResetMidBody {
                                tokio::time::sleep(Duration::from_millis(100)).await;
                                // Zero linger: closing sends a reset.
                                let _ = stream.set_zero_linger();
                                drop(stream);
                                return;
                            }
                        }
                        Fault::HoldUntilClosed => {}
                    }
                    // Wait (bounded) for the peer to go away.
                    let closed = tokio::time::timeout(Duration::from_secs(120), async {
                        loop {
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(_) => {}
                            }
                        }
                    })
                    .await;
                    if closed.is_ok() {
                        c.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        FaultServer {
            addr,
            requests,
            peer_closed,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests whose head arrived.
    pub fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Connections the peer (Veil) closed.
    pub fn peer_closed(&self) -> usize {
        self.peer_closed.load(std::sync::atomic::Ordering::SeqCst)
    }
}
