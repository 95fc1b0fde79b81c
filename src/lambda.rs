//! The AWS Lambda host: the same pipeline, hosted by `lambda_http`
//! (Function URL and API Gateway v2 payloads). Selected automatically when
//! `AWS_LAMBDA_RUNTIME_API` is set. The proxy — rules, keys, HTTP client,
//! token cache — is built once per container and reused by every invocation.
//!
//! Lambda buffers responses up to 6 MB. Veil gzips large sanitized pages for
//! callers that accept gzip; with `VEIL_LAMBDA_INVOKE_MODE=RESPONSE_STREAM`
//! (Function URL invoke mode `RESPONSE_STREAM`) responses are streamed and
//! have no such limit.

use std::process::ExitCode;

use bytes::Bytes;
use lambda_http::request::RequestContext as LambdaContext;
use lambda_http::{Body, Request, RequestExt, Response};
use veil_proxy::config::var;
use veil_proxy::proxy::{ErrorKind, Phase, Proxy, ProxyError, RequestContext};

use crate::runtime::{self, Host, Options};

/// `BUFFERED` (default) or `RESPONSE_STREAM`, as the Function URL is configured.
pub const ENV_INVOKE_MODE: &str = "VEIL_LAMBDA_INVOKE_MODE";

/// Lambda's limit for a buffered response payload, less room for headers.
const BUFFERED_LIMIT: usize = 6 * 1024 * 1024 - 64 * 1024;

pub fn run() -> anyhow::Result<ExitCode> {
    crate::logging::init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let proxy = match runtime::from_env(Host::Lambda, &Options::default()).await {
            Ok(p) => p,
            Err(e) => {
                // A configuration error: say exactly what, then fail the init
                // so Lambda reports it (and no request is ever served).
                tracing::error!(target: "veil::lambda", error = %format!("{e:#}"), "configuration error; Veil cannot start");
                return Err(e);
            }
        };
        let streaming = var(ENV_INVOKE_MODE).is_some_and(|m| m.eq_ignore_ascii_case("RESPONSE_STREAM"));
        tracing::info!(target: "veil::lambda", connector = %proxy.health().connector, streaming, "ready");
        let result = if streaming {
            let svc = lambda_http::service_fn(move |req: Request| {
                let proxy = proxy.clone();
                async move {
                    let resp = handle(&proxy, req, usize::MAX).await;
                    let (parts, body) = resp.into_parts();
                    Ok::<_, std::convert::Infallible>(Response::from_parts(parts, http_body_util::Full::new(body)))
                }
            });
            lambda_http::run_with_streaming_response(svc).await
        } else {
            let svc = lambda_http::service_fn(move |req: Request| {
                let proxy = proxy.clone();
                async move {
                    let resp = handle(&proxy, req, BUFFERED_LIMIT).await;
                    let (parts, body) = resp.into_parts();
                    Ok::<_, std::convert::Infallible>(Response::from_parts(parts, Body::Binary(body.to_vec())))
                }
            });
            crate::lambda_doctor::run_buffered(svc).await
        };
        result.map_err(|e| anyhow::anyhow!("Lambda runtime: {e}"))
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn handle(proxy: &Proxy, req: Request, limit: usize) -> http::Response<Bytes> {
    let (caller_arn, request_id) = match req.request_context_ref() {
        Some(LambdaContext::ApiGatewayV2(ctx)) => (
            ctx.authorizer
                .as_ref()
                .and_then(|a| a.iam.as_ref())
                .and_then(|i| i.user_arn.clone()),
            ctx.request_id.clone(),
        ),
        _ => (None, None),
    };
    let (parts, body) = req.into_parts();
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(t) => Bytes::from(t),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    let mut req = http::Request::from_parts(parts, body);
    req.extensions_mut().insert(RequestContext {
        remote_ip: None,
        aws_caller_arn: caller_arn,
        host_built_uri: true,
        request_id: Some(request_id.unwrap_or_else(crate::logging::request_id)),
    });
    let resp = proxy.handle(req).await;
    if resp.body().len() > limit {
        let e = ProxyError::new(
            Phase::Respond,
            ErrorKind::UpstreamInvalid,
            "the sanitized response exceeds Lambda's 6 MB buffered limit: send `Accept-Encoding: gzip`, ask for a smaller page ($top), or deploy with invoke mode RESPONSE_STREAM",
        );
        return veil_proxy::proxy::respond::error_response(&e, Vec::new());
    }
    resp
}
