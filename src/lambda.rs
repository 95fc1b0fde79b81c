//! The AWS Lambda host: the same pipeline, hosted by `lambda_http`
//! (Function URL and API Gateway v2 payloads). Selected automatically when
//! `AWS_LAMBDA_RUNTIME_API` is set. The proxy — rules, keys, HTTP client,
//! token cache — is built once per container and reused by every invocation.
//!
//! Lambda buffers responses up to 6 MB. Veil gzips large sanitized pages for
//! callers that accept gzip; with `VEIL_LAMBDA_INVOKE_MODE=RESPONSE_STREAM`
//! (Function URL invoke mode `RESPONSE_STREAM`) responses are streamed and
//! have no such limit.
//!
//! Veil reads the event itself rather than through `lambda_http`'s
//! conversion, which panics on events it cannot turn into a request (an
//! invalid host or query, bad base64) and turns those into invocation
//! errors. Here an event that is not a usable Function URL / HTTP API
//! (payload format 2.0) request is answered with a 400 and a JSON error
//! body, like every other refusal.

use std::convert::Infallible;
use std::process::ExitCode;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_ENCODING, COOKIE, SET_COOKIE};
use http_body_util::{BodyDataStream, Full};
use lambda_http::aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_http::lambda_runtime::{self, LambdaEvent, MetadataPrelude, StreamResponse};
use lambda_http::Body;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use veil_proxy::{
    ConfigError, ErrorKind, Lookup, Phase, Problems, ProcessEnv, Proxy, ProxyError, RequestContext,
    RequestMetrics, MAX_REQUEST_BODY,
};

use crate::runtime::{self, Host, Options};

/// `BUFFERED` (default) or `RESPONSE_STREAM`, as the Function URL is configured.
pub const ENV_INVOKE_MODE: &str = "VEIL_LAMBDA_INVOKE_MODE";

/// Whether [`ENV_INVOKE_MODE`] says `RESPONSE_STREAM` (else `BUFFERED`,
/// the default); any other value is a problem.
fn response_streaming(env: Lookup<'_>) -> Result<bool, ConfigError> {
    match env.get(ENV_INVOKE_MODE) {
        None => Ok(false),
        Some(m) if m.trim().eq_ignore_ascii_case("BUFFERED") => Ok(false),
        Some(m) if m.trim().eq_ignore_ascii_case("RESPONSE_STREAM") => Ok(true),
        Some(m) => Err(ConfigError::invalid(
            ENV_INVOKE_MODE,
            format!(
                "`{}` is not an invoke mode: set `BUFFERED` or `RESPONSE_STREAM`, as the Function URL's InvokeMode is",
                m.chars().take(40).collect::<String>()
            ),
        )),
    }
}

/// Lambda's limit for a buffered response payload, less room for headers.
const BUFFERED_LIMIT: usize = 6 * 1024 * 1024 - 64 * 1024;

pub fn run() -> anyhow::Result<ExitCode> {
    crate::logging::init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // The invoke mode's problem is reported with the proxy's.
        let mut problems = Problems::new();
        let streaming = problems.check(response_streaming(&ProcessEnv));
        let started = runtime::start(Host::Lambda, &Options::default(), &ProcessEnv, problems).await;
        let proxy = match started {
            Ok(p) => p,
            Err(e) => {
                // A configuration error: say exactly what, then fail the init
                // so Lambda reports it (and no request is ever served).
                tracing::error!(target: "veil::lambda", error = %format!("{e:#}"), "configuration error; Veil cannot start");
                return Err(e);
            }
        };
        // `start` fails when the invoke mode had a problem.
        let streaming = streaming.unwrap_or(false);
        tracing::info!(target: "veil::lambda", connector = %proxy.health().connector, streaming, "ready");
        let result = if streaming {
            let svc = lambda_runtime::service_fn(move |event: LambdaEvent<Value>| {
                let proxy = proxy.clone();
                async move {
                    let resp = handle_event(&proxy, event.payload, usize::MAX).await;
                    emit_metrics(&proxy, &resp);
                    Ok::<_, Infallible>(into_stream_response(resp))
                }
            });
            lambda_runtime::run(svc).await
        } else {
            let svc = lambda_runtime::service_fn(move |event: LambdaEvent<Value>| {
                let proxy = proxy.clone();
                async move {
                    // `{"veil":"doctor"}` from `aws lambda invoke` runs the
                    // doctor with the function's own identity.
                    if let Some(answer) = crate::lambda_doctor::respond(&event.payload).await {
                        return Ok::<Value, Infallible>(answer);
                    }
                    let resp = handle_event(&proxy, event.payload, BUFFERED_LIMIT).await;
                    emit_metrics(&proxy, &resp);
                    Ok(serde_json::to_value(into_buffered_response(resp)).unwrap_or_else(|_| {
                        serde_json::json!({
                            "statusCode": 500,
                            "headers": {"content-type": "application/json"},
                            "body": "{\"error\":{\"code\":\"internal\",\"message\":\"the response could not be encoded\"}}"
                        })
                    }))
                }
            });
            lambda_runtime::run(svc).await
        };
        result.map_err(|e| anyhow::anyhow!("Lambda runtime: {e}"))
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A request built from a Lambda event, with what the event says about
/// the caller.
#[derive(Debug)]
struct EventRequest {
    request: http::Request<Bytes>,
    caller_arn: Option<String>,
    request_id: Option<String>,
}

/// Why an event is no usable request (the 400's message).
fn bad_event(why: impl std::fmt::Display) -> ProxyError {
    ProxyError::new(
        Phase::Normalize,
        ErrorKind::BadRequest,
        format!(
            "the Lambda event is not a usable Function URL or HTTP API request (payload format \
             2.0): {why}"
        ),
    )
}

/// Builds the request from a Function URL / HTTP API (payload format 2.0)
/// event; never panics, whatever the event holds.
fn event_request(event: Value) -> Result<EventRequest, ProxyError> {
    if !event.is_object() {
        return Err(bad_event("it is not a JSON object"));
    }
    let ev: ApiGatewayV2httpRequest = serde_json::from_value(event).map_err(bad_event)?;
    if ev.version.as_deref() != Some("2.0") {
        return Err(bad_event("`version` is not \"2.0\""));
    }
    let path = ev
        .raw_path
        .as_deref()
        .filter(|p| p.starts_with('/'))
        .ok_or_else(|| bad_event("`rawPath` is missing or does not start with `/`"))?;
    let mut target = path.to_string();
    if let Some(q) = ev.raw_query_string.as_deref().filter(|q| !q.is_empty()) {
        target.push('?');
        target.push_str(q);
    }
    let uri: http::Uri = http::uri::PathAndQuery::try_from(target.as_str())
        .map_err(|_| bad_event("`rawPath` and `rawQueryString` do not form a request target"))?
        .into();
    // The body is kept as the event carries it: Veil forwards no request
    // body and refuses any that is not empty, so it is never decoded.
    let body = ev.body.map(Bytes::from).unwrap_or_default();
    let mut request = http::Request::builder()
        .method(ev.request_context.http.method.clone())
        .uri(uri)
        .body(body)
        .map_err(bad_event)?;
    if ev.is_base64_encoded {
        request.extensions_mut().insert(Base64Body);
    }
    *request.headers_mut() = ev.headers;
    if let Some(cookies) = ev.cookies.filter(|c| !c.is_empty()) {
        let joined = HeaderValue::from_str(&cookies.join("; "))
            .map_err(|_| bad_event("`cookies` do not form a Cookie header"))?;
        request.headers_mut().insert(COOKIE, joined);
    }
    let ctx = ev.request_context;
    Ok(EventRequest {
        request,
        caller_arn: ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.iam.as_ref())
            .and_then(|i| i.user_arn.clone()),
        request_id: ctx.request_id,
    })
}

async fn handle_event(proxy: &Proxy, event: Value, limit: usize) -> http::Response<Bytes> {
    let EventRequest {
        mut request,
        caller_arn,
        request_id,
    } = match event_request(event) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(target: "veil::lambda", error = %e.message, "malformed event refused");
            return refused_before_pipeline(proxy, &e);
        }
    };
    request.extensions_mut().insert(RequestContext {
        remote_ip: None,
        aws_caller_arn: caller_arn,
        host_built_uri: true,
        request_id: Some(request_id.unwrap_or_else(crate::logging::request_id)),
    });
    if body_size(&request) > MAX_REQUEST_BODY {
        let e = ProxyError::new(
            Phase::Normalize,
            ErrorKind::PayloadTooLarge,
            format!(
                "the request body is larger than Veil accepts ({} KiB); Graph requests through Veil carry no body",
                MAX_REQUEST_BODY / 1024
            ),
        );
        tracing::warn!(target: "veil::lambda", error = %e.message, "request body too large");
        return refused_before_pipeline(proxy, &e);
    }
    let resp = proxy.handle(request).await;
    if resp.body().len() > limit {
        let e = ProxyError::new(
            Phase::Respond,
            ErrorKind::ResponseTooLarge,
            "the sanitized response exceeds Lambda's 6 MB buffered limit: send `Accept-Encoding: gzip`, ask for a smaller page ($top), or deploy with invoke mode RESPONSE_STREAM",
        )
        .with_detail(format!("{} bytes over a limit of {limit}", resp.body().len()));
        tracing::warn!(target: "veil::lambda", error_code = e.kind.code(), error_detail = e.detail.as_deref().unwrap_or("-"), "response too large for a buffered answer");
        let figures = resp.extensions().get::<RequestMetrics>().cloned();
        let mut refused = veil_proxy::error_response(&e, Vec::new());
        if let Some(mut figures) = figures {
            figures.status = refused.status().as_u16();
            refused.extensions_mut().insert(figures);
        }
        return refused;
    }
    resp
}

/// The answer to an event refused before the pipeline, with its figures.
fn refused_before_pipeline(proxy: &Proxy, e: &ProxyError) -> http::Response<Bytes> {
    let mut resp = veil_proxy::error_response(e, Vec::new());
    let figures = RequestMetrics {
        connector: proxy.health().connector.clone(),
        status: resp.status().as_u16(),
        refusal: e.refusal(),
        ..RequestMetrics::default()
    };
    resp.extensions_mut().insert(figures);
    resp
}

/// The request body's size once decoded: a base64 body is kept as the
/// event carries it, so its decoded size is three quarters of it.
fn body_size(request: &http::Request<Bytes>) -> usize {
    let encoded = request.body().len();
    if request.extensions().get::<Base64Body>().is_some() {
        encoded / 4 * 3
    } else {
        encoded
    }
}

/// Marks a request whose body the event carried base64-encoded.
#[derive(Debug, Clone, Copy)]
struct Base64Body;

/// Graph token exchanges already counted in an earlier EMF record.
static REFRESHES_REPORTED: AtomicU64 = AtomicU64::new(0);

/// The request's CloudWatch Embedded Metric Format record (see
/// [`veil_proxy::emf_line`]); the token exchanges since the
/// previous record are counted in this one.
fn metrics_record(proxy: &Proxy, resp: &http::Response<Bytes>) -> Option<Value> {
    let figures = resp.extensions().get::<RequestMetrics>()?;
    let r = proxy.token_refreshes();
    let total = r.succeeded + r.failed;
    let since = total.saturating_sub(REFRESHES_REPORTED.swap(total, Ordering::Relaxed));
    Some(veil_proxy::emf_line(
        figures,
        since,
        std::time::SystemTime::now(),
    ))
}

/// Prints the request's EMF record on stdout (one line), where CloudWatch
/// Logs picks it up.
fn emit_metrics(proxy: &Proxy, resp: &http::Response<Bytes>) {
    if let Some(record) = metrics_record(proxy, resp) {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{record}");
    }
}

/// The buffered (payload format 2.0) answer: text bodies as they are,
/// compressed or binary ones base64-encoded.
fn into_buffered_response(resp: http::Response<Bytes>) -> ApiGatewayV2httpResponse {
    let (parts, body) = resp.into_parts();
    let mut headers = parts.headers;
    let cookies = take_cookies(&mut headers);
    let text = !headers.contains_key(CONTENT_ENCODING) && std::str::from_utf8(&body).is_ok();
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(parts.status.as_u16());
    out.headers = headers;
    out.cookies = cookies;
    if !body.is_empty() {
        out.body = Some(if text {
            Body::Text(String::from_utf8_lossy(&body).into_owned())
        } else {
            Body::Binary(body.to_vec())
        });
        out.is_base64_encoded = !text;
    }
    out
}

/// The streamed answer (`RESPONSE_STREAM`).
fn into_stream_response(
    resp: http::Response<Bytes>,
) -> StreamResponse<BodyDataStream<Full<Bytes>>> {
    let (parts, body) = resp.into_parts();
    let mut headers = parts.headers;
    let cookies = take_cookies(&mut headers);
    StreamResponse {
        metadata_prelude: MetadataPrelude {
            status_code: parts.status,
            headers,
            cookies,
        },
        stream: BodyDataStream::new(Full::new(body)),
    }
}

/// Lambda carries `Set-Cookie` apart from the other headers.
fn take_cookies(headers: &mut http::HeaderMap) -> Vec<String> {
    let cookies = headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|c| String::from_utf8_lossy(c.as_bytes()).into_owned())
        .collect();
    headers.remove(SET_COOKIE);
    cookies
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        serde_json::from_str(include_str!(
            "../tests/fixtures/lambda/function-url-get.json"
        ))
        .unwrap()
    }

    #[test]
    fn the_invoke_mode_is_one_of_two() {
        use veil_proxy::MapEnv;
        let mode = |v: &str| response_streaming(&MapEnv::new(&[(ENV_INVOKE_MODE, v)]));
        assert_eq!(response_streaming(&MapEnv::default()), Ok(false));
        assert_eq!(mode("BUFFERED"), Ok(false));
        assert_eq!(mode("response_stream"), Ok(true));
        let e = mode("STREAMING").unwrap_err();
        assert_eq!(e.setting, ENV_INVOKE_MODE);
        assert!(
            e.to_string()
                .starts_with("VEIL_LAMBDA_INVOKE_MODE: `STREAMING` is not an invoke mode"),
            "{e}"
        );
    }

    fn refusal(e: Value) -> String {
        let err = event_request(e).unwrap_err();
        let resp = veil_proxy::error_response(&err, Vec::new());
        assert_eq!(resp.status(), 400);
        let body: Value = serde_json::from_slice(resp.body()).unwrap();
        assert!(body.is_object(), "{body}");
        err.message
    }

    #[test]
    fn a_function_url_event_becomes_the_request() {
        let mut e = event();
        e["cookies"] = json!(["a=1", "b=2"]);
        let r = event_request(e).unwrap();
        assert_eq!(r.request.method(), "GET");
        assert_eq!(r.request.uri().to_string(), "/v1.0/users?$top=2");
        assert_eq!(r.request.headers()["accept"], "application/json");
        assert_eq!(r.request.headers()["cookie"], "a=1; b=2");
        assert!(r.request.body().is_empty());
    }

    #[test]
    fn malformed_events_are_a_400_never_a_panic() {
        let cases: Vec<(Value, &str)> = vec![
            (json!("hello"), "not a JSON object"),
            (json!([1, 2]), "not a JSON object"),
            (json!(null), "not a JSON object"),
            (json!({}), "missing field"),
            (
                {
                    let mut e = event();
                    e["version"] = json!("1.0");
                    e
                },
                "`version`",
            ),
            (
                {
                    let mut e = event();
                    e.as_object_mut().unwrap().remove("rawPath");
                    e
                },
                "`rawPath`",
            ),
            (
                {
                    let mut e = event();
                    e["rawPath"] = json!("users");
                    e
                },
                "`rawPath`",
            ),
            (
                {
                    let mut e = event();
                    e["rawPath"] = json!("/a b");
                    e
                },
                "request target",
            ),
            (
                {
                    let mut e = event();
                    e["rawQueryString"] = json!("a=\u{1}");
                    e
                },
                "request target",
            ),
            (
                {
                    let mut e = event();
                    e["rawPath"] = json!(42);
                    e
                },
                "payload format",
            ),
            (
                {
                    let mut e = event();
                    e["headers"] = json!({"bad header": "x"});
                    e
                },
                "payload format",
            ),
            (
                {
                    let mut e = event();
                    e["headers"] = json!({"x": "a\nb"});
                    e
                },
                "payload format",
            ),
            (
                {
                    let mut e = event();
                    e["cookies"] = json!(["a=\n"]);
                    e
                },
                "`cookies`",
            ),
            (
                {
                    let mut e = event();
                    e["requestContext"]["http"]["method"] = json!("GE T");
                    e
                },
                "payload format",
            ),
        ];
        for (e, what) in cases {
            let shown = e.to_string();
            let m = refusal(e);
            assert!(m.contains(what), "{shown}: {m}");
        }
        // Bad base64 is no panic either: the body is kept as it came (and a
        // non-empty body is refused by the proxy).
        let mut e = event();
        e["body"] = json!("%%% not base64");
        e["isBase64Encoded"] = json!(true);
        let r = event_request(e).unwrap();
        assert_eq!(&r.request.body()[..], b"%%% not base64");
    }

    #[test]
    fn responses_keep_text_as_text_and_encode_the_rest() {
        let resp = http::Response::builder()
            .status(403)
            .header("content-type", "application/json")
            .header("set-cookie", "s=1")
            .body(Bytes::from_static(b"{\"error\":{}}"))
            .unwrap();
        let out = into_buffered_response(resp);
        assert_eq!(out.status_code, 403);
        assert_eq!(out.body, Some(Body::Text("{\"error\":{}}".into())));
        assert!(!out.is_base64_encoded);
        assert_eq!(out.cookies, ["s=1"]);
        assert!(!out.headers.contains_key("set-cookie"));
        let gz = http::Response::builder()
            .header("content-encoding", "gzip")
            .body(Bytes::from_static(&[0x1f, 0x8b, 0]))
            .unwrap();
        let out = into_buffered_response(gz);
        assert!(out.is_base64_encoded);
        assert_eq!(out.body, Some(Body::Binary(vec![0x1f, 0x8b, 0])));
        let s = into_stream_response(
            http::Response::builder()
                .status(200)
                .body(Bytes::from_static(b"x"))
                .unwrap(),
        );
        assert_eq!(s.metadata_prelude.status_code, 200);
    }

    /// A proxy for entra-id in front of the sample tenant, the way a
    /// Function URL with `AWS_IAM` auth runs it.
    async fn sample_proxy() -> Proxy {
        use veil_engine::{EmailPolicy, PseudonymConfig, Scheme, Secret};
        use veil_proxy::{CallerAuthMode, UpstreamConfig};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("example-api-responses");
        let tenant = crate::sample_tenant::start(&dir, "lambda-test-token")
            .await
            .unwrap();
        runtime::build(runtime::Parts {
            connector: "entra-id".into(),
            rules: veil_engine::load_builtin_rules("entra-id", "default").unwrap(),
            pseudonym: PseudonymConfig {
                scheme: Scheme::Hmac,
                salt: Secret::from("lambda-test-salt-0123456789abcdef"),
                encryption_keys: vec![(
                    "k1".into(),
                    Secret::from("lambda-test-key-0123456789abcdef"),
                )],
                email: EmailPolicy::default(),
            },
            tokens: std::sync::Arc::new(veil_proxy::StaticToken::new(Secret::from(
                "lambda-test-token",
            ))),
            upstream: UpstreamConfig {
                base_url: format!("http://{tenant}"),
                ..UpstreamConfig::default()
            },
            caller_auth: CallerAuthMode::AwsIam {
                allowed_arns: Vec::new(),
            },
            warnings: Vec::new(),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn each_request_gives_one_emf_record() {
        let proxy = sample_proxy().await;
        let resp = handle_event(&proxy, event(), BUFFERED_LIMIT).await;
        assert_eq!(resp.status(), 200, "{:?}", resp.body());
        let record = metrics_record(&proxy, &resp).expect("a record");
        // One line of JSON, as CloudWatch Logs reads it.
        assert!(!record.to_string().contains('\n'));
        assert_eq!(record["Connector"], "entra-id");
        assert_eq!(record["Endpoint"], "/v1.0/users");
        assert_eq!(record["Status"], "200");
        assert_eq!(record["Requests"], 1);
        assert!(
            record["UpstreamLatency"]
                .as_f64()
                .is_some_and(|ms| ms > 0.0),
            "{record}"
        );
        assert!(
            record["ValuesTransformed.pseudonymize"].as_u64() >= Some(2),
            "{record}"
        );
        let directives = record["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert!(
            directives.iter().all(|d| d["Namespace"] == "Veil"),
            "{record}"
        );
        assert!(record["_aws"]["Timestamp"].as_u64() > Some(1_700_000_000_000));

        // A refused request: the reason, no upstream latency.
        let mut e = event();
        e["rawPath"] = serde_json::json!("/v1.0/users/x/mailFolders/Inbox/messages");
        e["rawQueryString"] = serde_json::json!("");
        let resp = handle_event(&proxy, e, BUFFERED_LIMIT).await;
        assert_eq!(resp.status(), 403);
        let record = metrics_record(&proxy, &resp).unwrap();
        assert_eq!(record["RefusalReason"], "no_endpoint", "{record}");
        assert_eq!(record["Refusals"], 1);
        assert_eq!(record["Endpoint"], "-");
        assert!(record.get("UpstreamLatency").is_none(), "{record}");

        // A body over the limit: 413 before the pipeline, counted.
        let mut e = event();
        e["body"] = serde_json::json!("x".repeat(MAX_REQUEST_BODY + 1));
        let resp = handle_event(&proxy, e, BUFFERED_LIMIT).await;
        assert_eq!(resp.status(), 413);
        let body: Value = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!(body["error"]["code"], "request_too_large");
        let record = metrics_record(&proxy, &resp).unwrap();
        assert_eq!(record["RefusalReason"], "request_size", "{record}");
        assert_eq!(record["Status"], "413");

        // Over the buffered limit: its own code, still counted.
        let resp = handle_event(&proxy, event(), 10).await;
        assert_eq!(resp.status(), 502);
        let body: Value = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!(body["error"]["code"], "response_too_large");
        let record = metrics_record(&proxy, &resp).unwrap();
        assert_eq!(record["Status"], "502");
        assert_eq!(record["Endpoint"], "/v1.0/users");
    }
}
