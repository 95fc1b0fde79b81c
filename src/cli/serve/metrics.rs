//! The separate Prometheus listener of `veil serve --metrics-listen`.

use super::*;

/// Starts the metrics listener: `GET /metrics` answers the Prometheus
/// text, anything else 404. Plain HTTP/1.1, one request per connection.
pub(super) fn start_metrics(listener: TcpListener, proxy: &Proxy) -> anyhow::Result<Arc<Metrics>> {
    let source = proxy.clone();
    let metrics = Arc::new(Metrics::new(move || source.token_refreshes()));
    let addr = listener.local_addr()?;
    tracing::info!(target: "veil::serve", %addr, path = "/metrics", "metrics listening");
    let served = metrics.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(target: "veil::serve", error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let metrics = served.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let metrics = metrics.clone();
                    async move {
                        let found = req.uri().path() == "/metrics"
                            && matches!(*req.method(), http::Method::GET | http::Method::HEAD);
                        let resp = if found {
                            hyper::Response::builder()
                                .header(
                                    http::header::CONTENT_TYPE,
                                    veil_proxy::METRICS_CONTENT_TYPE,
                                )
                                .body(Full::new(Bytes::from(metrics.encode())))
                        } else {
                            hyper::Response::builder()
                                .status(http::StatusCode::NOT_FOUND)
                                .body(Full::new(Bytes::from_static(
                                    b"not found: metrics are at /metrics\n",
                                )))
                        };
                        Ok::<_, std::convert::Infallible>(resp.unwrap_or_default())
                    }
                });
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .keep_alive(false)
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10));
                let _ = tokio::time::timeout(
                    Duration::from_secs(30),
                    builder.serve_connection(TokioIo::new(stream), service),
                )
                .await;
            });
        }
    });
    Ok(metrics)
}
