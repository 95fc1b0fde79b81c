//! A strict local stand-in for AWS STS that implements exactly one call,
//! `GetWebIdentityToken` (moto 5.2.5 does not implement it), with the wire
//! format of the STS API model (botocore `sts/2011-06-15/service-2.json`):
//!
//! - `POST /`, `Content-Type: application/x-www-form-urlencoded`, query
//!   protocol form `Action=GetWebIdentityToken&Version=2011-06-15`,
//!   `Audience.member.N` (1–10), `SigningAlgorithm` (`RS256`|`ES384`),
//!   optional `DurationSeconds` (60–3600); any other parameter is refused;
//! - a SigV4 `Authorization` header, scoped to `<date>/<region>/sts/aws4_request`
//!   and verified by re-signing the request with the known secret key;
//! - the answer `GetWebIdentityTokenResponse/GetWebIdentityTokenResult/
//!   {WebIdentityToken, Expiration}`, errors as `<ErrorResponse><Error>`.
//!
//! The token is an RS256 JWT from the test key
//! `tests/fixtures/keys/rsa1.pem`: `iss` =
//! `https://<uuid>.tokens.sts.global.api.aws`, `sub` = the role ARN, `aud`
//! = the requested audience. ES384 is answered with an error (the test
//! server has no P-384 key), which no test asks for.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::json;
use tokio::net::TcpListener;
use veil_test_support::keys;

/// The issuer of the tokens (the per-account STS issuer shape).
pub const ISSUER: &str = "https://4c0e2b9a-7d61-4f3e-a8b5-2c9d1e0f7a63.tokens.sts.global.api.aws";
/// The role the tokens are for.
pub const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/veil-outlook-mail";

fn encoding_key() -> EncodingKey {
    keys::rsa_key(keys::RSA1_PEM)
}

/// The key that verifies the tokens.
pub fn decoding_key() -> DecodingKey {
    let jwk = Jwk::from_encoding_key(&encoding_key(), Algorithm::RS256).expect("jwk");
    DecodingKey::from_jwk(&jwk).expect("decoding key")
}

/// One `GetWebIdentityToken` request as the server saw it.
#[derive(Debug, Clone)]
pub struct StsRequest {
    pub params: Vec<(String, String)>,
    pub authorization: String,
    pub security_token: Option<String>,
}

impl StsRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct State {
    access_key_id: String,
    secret_access_key: String,
    region: String,
    requests: Mutex<Vec<StsRequest>>,
    /// (HTTP status, error code, message) to answer instead of a token.
    fail: Mutex<Option<(u16, String, String)>>,
}

/// The running server; stops on drop.
pub struct StsServer {
    pub port: u16,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StsServer {
    /// Accepts requests signed with these credentials for `region`.
    pub async fn start(access_key_id: &str, secret_access_key: &str, region: &str) -> StsServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(State {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            region: region.into(),
            requests: Mutex::new(Vec::new()),
            fail: Mutex::new(None),
        });
        let task = super::serve_http(listener, state.clone(), move |state, req| async move {
            handle(&state, port, req).await
        });
        StsServer { port, state, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Answer every request with this AWS error.
    pub fn fail_with(&self, status: u16, code: &str, message: &str) {
        *self.state.fail.lock().unwrap() = Some((status, code.into(), message.into()));
    }

    /// The well-formed requests received (before any scripted failure).
    pub fn requests(&self) -> Vec<StsRequest> {
        self.state.requests.lock().unwrap().clone()
    }
}

type Response = hyper::Response<Full<Bytes>>;

fn xml(status: u16, body: String) -> Response {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "text/xml")
        .body(Full::new(Bytes::from(body)))
        .expect("response")
}

fn error(status: u16, code: &str, message: &str) -> Response {
    xml(
        status,
        format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
             <Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
             <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>"
        ),
    )
}

async fn handle(state: &State, port: u16, req: hyper::Request<Incoming>) -> Response {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(400, "MalformedInput", "unreadable body"),
    };
    if parts.method != hyper::Method::POST || parts.uri.path() != "/" || parts.uri.query().is_some()
    {
        return error(
            400,
            "InvalidAction",
            "the query protocol is POST / with a form body",
        );
    }
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type").unwrap_or_default();
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return error(
            400,
            "InvalidParameterValue",
            "Content-Type must be application/x-www-form-urlencoded",
        );
    }
    if let Err(why) = verify_signature(state, port, &parts, &body) {
        return error(403, "SignatureDoesNotMatch", &why);
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let get = |name: &str| {
        let mut values = params
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        (first, values.next().is_some())
    };
    match get("Action") {
        (Some("GetWebIdentityToken"), false) => {}
        _ => {
            return error(
                400,
                "InvalidAction",
                "only GetWebIdentityToken is implemented",
            )
        }
    }
    if get("Version") != (Some("2011-06-15"), false) {
        return error(400, "InvalidParameterValue", "Version must be 2011-06-15");
    }
    let mut audiences = Vec::new();
    for (k, v) in &params {
        match k.as_str() {
            "Action" | "Version" | "SigningAlgorithm" | "DurationSeconds" => {}
            k if k.starts_with("Audience.member.") => {
                let n: usize = match k["Audience.member.".len()..].parse() {
                    Ok(n) if n >= 1 => n,
                    _ => return error(400, "InvalidParameterValue", "bad Audience member index"),
                };
                audiences.push((n, v.clone()));
            }
            other => {
                return error(
                    400,
                    "InvalidParameterValue",
                    &format!("unknown parameter {other}"),
                )
            }
        }
    }
    audiences.sort();
    let in_order = audiences.iter().enumerate().all(|(i, (n, _))| *n == i + 1);
    if audiences.is_empty() || audiences.len() > 10 || !in_order {
        return error(
            400,
            "ValidationError",
            "Audience must have 1 to 10 members numbered from 1",
        );
    }
    if audiences
        .iter()
        .any(|(_, a)| a.is_empty() || a.len() > 1000)
    {
        return error(
            400,
            "ValidationError",
            "an Audience is not 1 to 1000 characters",
        );
    }
    let algorithm = match get("SigningAlgorithm") {
        (Some("RS256"), false) => Algorithm::RS256,
        (Some("ES384"), false) => {
            return error(400, "ValidationError", "this test server signs RS256 only")
        }
        _ => {
            return error(
                400,
                "ValidationError",
                "SigningAlgorithm must be RS256 or ES384",
            )
        }
    };
    let duration = match get("DurationSeconds") {
        (None, false) => 300,
        (Some(d), false) => match d.parse::<u64>() {
            Ok(n) if (60..=3600).contains(&n) => n,
            _ => return error(400, "ValidationError", "DurationSeconds must be 60 to 3600"),
        },
        _ => return error(400, "ValidationError", "DurationSeconds given twice"),
    };
    state.requests.lock().unwrap().push(StsRequest {
        params: params.clone(),
        authorization: header("authorization").unwrap_or_default(),
        security_token: header("x-amz-security-token"),
    });
    if let Some((status, code, message)) = state.fail.lock().unwrap().clone() {
        return error(status, &code, &message);
    }
    let now = SystemTime::now();
    let iat = now.duration_since(UNIX_EPOCH).expect("clock").as_secs();
    let aud: Vec<&str> = audiences.iter().map(|(_, a)| a.as_str()).collect();
    let claims = json!({
        "iss": ISSUER,
        "sub": ROLE_ARN,
        "aud": if aud.len() == 1 { json!(aud[0]) } else { json!(aud) },
        "iat": iat,
        "nbf": iat,
        "exp": iat + duration,
        "jti": format!("veil-test-{iat}-{}", state.requests.lock().unwrap().len()),
        "https://sts.amazonaws.com/": {"aws_account": "123456789012", "source_region": state.region},
    });
    let mut jwt_header = Header::new(algorithm);
    jwt_header.kid = Some("sts-test-key-1".into());
    let token = jsonwebtoken::encode(&jwt_header, &claims, &encoding_key()).expect("sign JWT");
    let expiration = humantime::format_rfc3339_seconds(now + Duration::from_secs(duration));
    xml(
        200,
        format!(
            "<GetWebIdentityTokenResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n\
             \x20 <GetWebIdentityTokenResult>\n\
             \x20   <WebIdentityToken>{token}</WebIdentityToken>\n\
             \x20   <Expiration>{expiration}</Expiration>\n\
             \x20 </GetWebIdentityTokenResult>\n\
             \x20 <ResponseMetadata><RequestId>6f8a2b3c-0000-4000-8000-000000000001</RequestId></ResponseMetadata>\n\
             </GetWebIdentityTokenResponse>"
        ),
    )
}

/// Checks the SigV4 `Authorization` header: credential scope
/// `<key id>/<date>/<region>/sts/aws4_request`, then the signature itself by
/// re-signing the signed headers and the body with the known secret key.
fn verify_signature(
    state: &State,
    port: u16,
    parts: &hyper::http::request::Parts,
    body: &[u8],
) -> Result<(), String> {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let auth = header("authorization").ok_or("no Authorization header")?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("Authorization is not AWS4-HMAC-SHA256")?;
    let mut credential = None;
    let mut signed_headers = None;
    for item in rest.split(", ") {
        match item.split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", _)) => {}
            _ => return Err(format!("unexpected Authorization item `{item}`")),
        }
    }
    let credential = credential.ok_or("no Credential")?;
    let signed_headers = signed_headers.ok_or("no SignedHeaders")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, terminal] = scope.as_slice() else {
        return Err(format!("malformed credential scope `{credential}`"));
    };
    if *key_id != state.access_key_id {
        return Err(format!("unknown access key {key_id}"));
    }
    if *region != state.region {
        return Err(format!(
            "Credential should be scoped to a valid region, not '{region}'"
        ));
    }
    if *service != "sts" || *terminal != "aws4_request" {
        return Err(format!(
            "Credential should be scoped to correct service: 'sts', not '{service}'"
        ));
    }
    let amz_date = header("x-amz-date").ok_or("no X-Amz-Date")?;
    if !amz_date.starts_with(date) || amz_date.len() != 16 {
        return Err("X-Amz-Date does not match the credential scope".into());
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &amz_date[0..4],
        &amz_date[4..6],
        &amz_date[6..8],
        &amz_date[9..11],
        &amz_date[11..13],
        &amz_date[13..15]
    );
    let time = humantime::parse_rfc3339(&rfc3339).map_err(|e| format!("X-Amz-Date: {e}"))?;
    let skew = SystemTime::now()
        .duration_since(time)
        .unwrap_or_else(|e| e.duration());
    if skew > Duration::from_secs(300) {
        return Err("Signature expired".into());
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    for required in ["host", "x-amz-date", "content-type"] {
        if !names.contains(&required) {
            return Err(format!("SignedHeaders lacks {required}"));
        }
    }
    let session_token = header("x-amz-security-token").map(str::to_string);
    if session_token.is_some() != names.contains(&"x-amz-security-token") {
        return Err("X-Amz-Security-Token must be signed".into());
    }
    // Re-sign: the signer adds host, x-amz-date and x-amz-security-token itself.
    let mut to_sign = Vec::new();
    for name in &names {
        if matches!(*name, "host" | "x-amz-date" | "x-amz-security-token") {
            continue;
        }
        let value = header(name).ok_or_else(|| format!("signed header {name} is missing"))?;
        to_sign.push((*name, value));
    }
    let host = header("host").ok_or("no Host header")?;
    if host != format!("127.0.0.1:{port}") {
        return Err(format!("unexpected Host {host}"));
    }
    let identity = aws_credential_types::Credentials::new(
        state.access_key_id.clone(),
        state.secret_access_key.clone(),
        session_token,
        None,
        "sts-test-server",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&state.region)
        .name("sts")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let url = format!("http://{host}/");
    let signable = SignableRequest::new(
        "POST",
        url.as_str(),
        to_sign.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let expected = instructions
        .headers()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.to_string())
        .ok_or("the signer produced no Authorization")?;
    if expected != auth {
        return Err(
            "The request signature we calculated does not match the signature you provided".into(),
        );
    }
    Ok(())
}
