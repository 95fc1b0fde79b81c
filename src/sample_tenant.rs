//! A sample Microsoft 365 tenant for `veil demo`: a local HTTP server that
//! answers Graph requests from the connector samples in
//! `example-api-responses/<connector>/original/`, with paging.
//!
//! It checks what Graph would check — a bearer token, GET/HEAD only — and
//! finds the sample whose request URL has the same shape: ids in the path
//! match any id, and query parameters must agree except `$select` and
//! `$top`. A paging request for a page the samples do not have gets the
//! last, empty page.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use tokio::net::TcpListener;

#[derive(Deserialize)]
struct Requests {
    samples: Vec<SampleEntry>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct SampleEntry {
    file: String,
    url: String,
    #[serde(default)]
    description: Option<String>,
}

struct Sample {
    shape: String,
    query: BTreeMap<String, String>,
    body: Bytes,
}

/// The loaded samples of every connector.
pub struct Tenant {
    samples: Vec<Sample>,
    token: String,
}

/// Query parameters that do not change which sample answers.
const IGNORED: &[&str] = &["$select", "$top", "$count", "$orderby", "$expand"];

fn decode(s: &str) -> String {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// `/v1.0/users/<guid>/messages` → `/v1.0/users/{}/messages`, lower case.
fn shape(path: &str) -> String {
    decode(path)
        .split('/')
        .map(|seg| {
            let looks_like_id = seg.len() >= 20
                || seg.contains('@')
                || seg.starts_with("19:")
                || seg.starts_with("p~");
            if looks_like_id && !seg.contains('(') {
                "{}".to_string()
            } else {
                seg.to_ascii_lowercase()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn query_map(q: Option<&str>) -> BTreeMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k).to_ascii_lowercase(), decode(v))
        })
        .filter(|(k, _)| !IGNORED.contains(&k.as_str()))
        .collect()
}

impl Tenant {
    /// Loads every connector's samples under `dir`.
    pub fn load(dir: &Path, token: &str) -> anyhow::Result<Tenant> {
        let mut samples = Vec::new();
        let entries = std::fs::read_dir(dir).with_context(|| {
            format!("cannot read the sample tenant's responses in {} (run from the repository root, or pass --samples DIR)", dir.display())
        })?;
        // Sorted, so that where two connectors answer the same request
        // (`/v1.0/users`), the same sample answers on every machine.
        let mut dirs: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        dirs.sort();
        for dir in dirs {
            let reqs = dir.join("requests.yaml");
            let Ok(text) = std::fs::read_to_string(&reqs) else {
                continue;
            };
            let parsed: Requests =
                serde_yaml_ng::from_str(&text).with_context(|| reqs.display().to_string())?;
            for s in parsed.samples {
                let file = dir.join("original").join(&s.file);
                let body = std::fs::read(&file).with_context(|| file.display().to_string())?;
                let (path, query) = veil_engine::split_url(&s.url);
                samples.push(Sample {
                    shape: shape(&path),
                    query: query_map(query.as_deref()),
                    body: Bytes::from(body),
                });
            }
        }
        if samples.is_empty() {
            return Err(anyhow!("no samples found in {}", dir.display()));
        }
        Ok(Tenant {
            samples,
            token: token.to_string(),
        })
    }

    /// Answers one request the way Graph would.
    pub fn answer(
        &self,
        method: &http::Method,
        path_and_query: &str,
        authorization: Option<&str>,
    ) -> (u16, Bytes) {
        let err = |status: u16, code: &str, msg: &str| {
            (
                status,
                Bytes::from(
                    serde_json::json!({"error": {"code": code, "message": msg}}).to_string(),
                ),
            )
        };
        if authorization != Some(format!("Bearer {}", self.token).as_str()) {
            return err(
                401,
                "InvalidAuthenticationToken",
                "Access token is empty or invalid.",
            );
        }
        if !(method == http::Method::GET || method == http::Method::HEAD) {
            return err(
                405,
                "Request_BadRequest",
                "Specified HTTP method is not allowed for the request target.",
            );
        }
        let (path, query) = path_and_query
            .split_once('?')
            .map_or((path_and_query, None), |(p, q)| (p, Some(q)));
        let want_shape = shape(path);
        let want = query_map(query);
        let same_shape: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.shape == want_shape)
            .collect();
        if let Some(s) = same_shape.iter().find(|s| s.query == want) {
            return (200, s.body.clone());
        }
        let paging = want
            .keys()
            .any(|k| matches!(k.as_str(), "$skip" | "$skiptoken" | "$deltatoken"));
        if paging && !same_shape.is_empty() {
            // A page the samples do not hold: the last page, empty.
            return (200, Bytes::from_static(br#"{"value":[]}"#));
        }
        if let Some(s) = same_shape
            .iter()
            .find(|s| s.query.keys().all(|k| want.contains_key(k)))
        {
            return (200, s.body.clone());
        }
        err(
            404,
            "Request_ResourceNotFound",
            "The sample tenant has no such resource.",
        )
    }
}

/// Serves the tenant on `listener` until the process ends.
pub async fn serve(listener: TcpListener, tenant: Arc<Tenant>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let tenant = tenant.clone();
        let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let tenant = tenant.clone();
            async move {
                let pq = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/")
                    .to_string();
                let auth = req
                    .headers()
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok());
                let (status, body) = tenant.answer(req.method(), &pq, auth);
                let resp = hyper::Response::builder()
                    .status(status)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .header("request-id", "00000000-0000-4000-8000-000000000000")
                    .body(Full::new(body))
                    .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())));
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        tokio::spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Binds the tenant on a free loopback port.
pub async fn start(dir: &Path, token: &str) -> anyhow::Result<SocketAddr> {
    let tenant = Arc::new(Tenant::load(dir, token)?);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve(listener, tenant));
    Ok(addr)
}
