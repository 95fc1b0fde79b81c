//! A real HTTP/1.1 server on 127.0.0.1 built from routes: each
//! `(method, path)` answers with a handler's [`Reply`]; anything else gets
//! `404`. Every request is recorded.
//!
//! ```text
//! let jwks = TestServer::start(
//!     Routes::new().get("/jwks", |_| Reply::json(200, &keys).header("cache-control", "max-age=3600")),
//! ).await;
//! assert_eq!(jwks.count("/jwks"), 0);
//! ```

use std::borrow::Borrow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Path and query, as sent.
    pub target: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// How long to wait before answering.
    pub delay: Duration,
}

impl Reply {
    /// `body` with this content type.
    pub fn bytes(status: u16, content_type: &str, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    pub fn json(status: u16, body: impl Borrow<Value>) -> Reply {
        Reply::bytes(
            status,
            "application/json; charset=utf-8",
            body.borrow().to_string(),
        )
    }

    pub fn text(status: u16, body: &str) -> Reply {
        Reply::bytes(status, "text/plain", body.to_string())
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;
type Fallback = Arc<dyn Fn(usize, &Recorded) -> Reply + Send + Sync>;

/// The routes of a [`TestServer`].
#[derive(Default, Clone)]
pub struct Routes {
    routes: HashMap<(String, String), Handler>,
    /// Answers what no route does, with the request's index (from 0).
    fallback: Option<Fallback>,
}

impl Routes {
    pub fn new() -> Routes {
        Routes::default()
    }

    /// Answers `method path` with `handler(request)`.
    pub fn route(
        mut self,
        method: &str,
        path: &str,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> Routes {
        self.routes
            .insert((method.to_string(), path.to_string()), Arc::new(handler));
        self
    }

    pub fn get(
        self,
        path: &str,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> Routes {
        self.route("GET", path, handler)
    }

    /// Answers every request no route matches with `handler(index, request)`
    /// (instead of `404`).
    pub fn otherwise(
        mut self,
        handler: impl Fn(usize, &Recorded) -> Reply + Send + Sync + 'static,
    ) -> Routes {
        self.fallback = Some(Arc::new(handler));
        self
    }

    fn answer(&self, index: usize, request: &Recorded) -> Reply {
        let route = self
            .routes
            .get(&(request.method.clone(), request.path.clone()));
        match (route, &self.fallback) {
            (Some(handler), _) => handler(request),
            (None, Some(fallback)) => fallback(index, request),
            (None, None) => Reply::json(404, serde_json::json!({})),
        }
    }
}

/// Serves HTTP/1.1 on `listener` until the returned task is aborted: each
/// request goes to `handle` with a clone of `state`. Every test server
/// (this module's, and the end-to-end tests' Graph, Entra and STS) runs on
/// this one accept loop.
pub fn serve_http<S, H, F, B>(
    listener: TcpListener,
    state: Arc<S>,
    handle: H,
) -> tokio::task::JoinHandle<()>
where
    S: Send + Sync + 'static,
    H: Fn(Arc<S>, hyper::Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = hyper::Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (state, handle) = (state.clone(), handle.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<Incoming>| {
                    let fut = handle(state.clone(), req);
                    async move { Ok::<_, Infallible>(fut.await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// The server; stops when dropped.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub async fn start(routes: Routes) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let recorded: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let state = Arc::new((recorded.clone(), routes));
        let task = serve_http(listener, state, |state, req| async move {
            let (log, routes) = &*state;
            let request = record(req).await;
            let index = {
                let mut log = log.lock().unwrap();
                log.push(request.clone());
                log.len() - 1
            };
            let reply = routes.answer(index, &request);
            if !reply.delay.is_zero() {
                tokio::time::sleep(reply.delay).await;
            }
            let mut response = hyper::Response::builder().status(reply.status);
            for (name, value) in &reply.headers {
                response = response.header(name, value);
            }
            response
                .body(Full::new(reply.body))
                .expect("valid test reply")
        });
        TestServer {
            addr,
            recorded,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers every request with `handler(index, request)`.
    pub async fn respond_with(
        handler: impl Fn(usize, &Recorded) -> Reply + Send + Sync + 'static,
    ) -> TestServer {
        TestServer::start(Routes::new().otherwise(handler)).await
    }

    /// Answers the n-th request with `script[n]`, the last one thereafter.
    pub async fn script(script: Vec<Reply>) -> TestServer {
        assert!(!script.is_empty(), "an empty script");
        TestServer::respond_with(move |n, _| script[n.min(script.len() - 1)].clone()).await
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().unwrap().clone()
    }

    /// How many requests there were.
    pub fn count(&self) -> usize {
        self.recorded.lock().unwrap().len()
    }

    /// How many requests had this path.
    pub fn hits(&self, path: &str) -> usize {
        self.recorded
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .count()
    }
}

async fn record(req: hyper::Request<Incoming>) -> Recorded {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        target: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_string(), |p| p.to_string()),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn routes_answer_and_every_request_is_recorded() {
        let server = TestServer::start(Routes::new().get("/a", |r| {
            Reply::json(200, serde_json::json!({"q": r.target})).header("x-test", "1")
        }))
        .await;
        let (status, head, body) = get(&server, "/a?x=1").await;
        assert_eq!(status, 200);
        assert!(head.contains("x-test: 1"), "{head}");
        assert_eq!(body, r#"{"q":"/a?x=1"}"#);
        assert_eq!(get(&server, "/b").await.0, 404);
        assert_eq!((server.hits("/a"), server.hits("/b")), (1, 1));
        assert_eq!(server.requests()[0].header("host"), Some("127.0.0.1"));
    }

    #[tokio::test]
    async fn a_script_answers_in_order_then_repeats_its_last_reply() {
        let server = TestServer::script(vec![
            Reply::text(503, "busy"),
            Reply::text(200, "ok").delay(Duration::from_millis(50)),
        ])
        .await;
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(get(&server, "/any").await.0);
        }
        assert_eq!(statuses, [503, 200, 200]);
        assert_eq!(server.count(), 3);
    }

    async fn get(server: &TestServer, target: &str) -> (u16, String, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let request =
            format!("GET {target} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_ascii_lowercase(), body.to_string())
    }
}
