//! A tiny real HTTP/1.1 server on 127.0.0.1 for the unit tests (token
//! providers, the issuer's discovery document and JWKS):
//! it records every request and answers from a script.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
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
pub struct Canned {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    /// Further response headers.
    pub headers: Vec<(String, String)>,
    pub delay: Duration,
}

impl Canned {
    pub fn json(status: u16, body: serde_json::Value) -> Canned {
        Canned {
            status,
            content_type: "application/json; charset=utf-8".into(),
            body: body.to_string().into_bytes(),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn text(status: u16, body: &str) -> Canned {
        Canned {
            status,
            content_type: "text/plain".into(),
            body: body.as_bytes().to_vec(),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Canned {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn delay(mut self, d: Duration) -> Canned {
        self.delay = d;
        self
    }
}

type Responder = dyn Fn(usize, &Recorded) -> Canned + Send + Sync;

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
    /// Answers the n-th request with `script[n]`, the last one thereafter.
    pub async fn start(script: Vec<Canned>) -> TestServer {
        assert!(!script.is_empty());
        TestServer::respond_with(move |i, _| script[i.min(script.len() - 1)].clone()).await
    }

    /// Answers with `f(index, request)`.
    pub async fn respond_with(
        f: impl Fn(usize, &Recorded) -> Canned + Send + Sync + 'static,
    ) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let recorded: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let f: Arc<Responder> = Arc::new(f);
        let rec = recorded.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let (rec, f) = (rec.clone(), f.clone());
                tokio::spawn(async move {
                    let Some(req) = read_request(&mut stream).await else {
                        return;
                    };
                    let index = {
                        let mut all = rec.lock().unwrap();
                        all.push(req.clone());
                        all.len() - 1
                    };
                    let canned = f(index, &req);
                    if !canned.delay.is_zero() {
                        tokio::time::sleep(canned.delay).await;
                    }
                    let mut head = format!(
                        "HTTP/1.1 {} X\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n",
                        canned.status,
                        canned.content_type,
                        canned.body.len()
                    );
                    for (name, value) in &canned.headers {
                        head.push_str(&format!("{name}: {value}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(&canned.body).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        TestServer {
            addr,
            recorded,
            task,
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.recorded.lock().unwrap().len()
    }
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Recorded> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buf[end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Recorded {
        method,
        target,
        headers,
        body,
    })
}
