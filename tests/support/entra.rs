//! A strict test Entra ID, a test OIDC issuer and a test GCP metadata
//! server, all on one real HTTP/1.1 server on 127.0.0.1:
//!
//! - `GET /issuer/.well-known/openid-configuration`, `GET /issuer/jwks`:
//!   the issuer of host tokens (RSA test key `tests/fixtures/keys/rsa1.pem`);
//! - `GET /computeMetadata/v1/instance/service-accounts/default/identity`:
//!   the GCP metadata server; refuses requests without
//!   `Metadata-Flavor: Google` (403, like the real one) and answers an ID
//!   token signed by the issuer key;
//! - `POST /{tenant}/oauth2/v2.0/token`: Entra's token endpoint. It checks
//!   the form exactly (content type, every field, no extra), verifies the
//!   client assertion's signature against the issuer's JWKS (fetched over
//!   HTTP through discovery, as Entra does), checks `iss`/`sub`/`aud`/`exp`
//!   against the configured federated credential, counts exchanges, answers
//!   Entra's real error shapes and, on success, an access token (a JWT
//!   signed by `entra-rsa.pem`) that carries `roles` once admin consent is
//!   granted.
//!
//! [`TestEntra::graph_authorizer`] makes the test Graph server accept
//! exactly those access tokens: 401 for anything else, 403
//! `Authorization_RequestDenied` for a token without roles.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use veil_test_support::keys;

use super::{decode as pct_decode, Reply};

/// The tenant the test Entra knows.
pub const TENANT_ID: &str = "7c4b1a2e-0d3f-4e5a-9b6c-8d7e6f5a4b3c";
/// The Application (client) ID of Veil's app registration.
pub const CLIENT_ID: &str = "2f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f";
/// The Object ID of the same app (the classic mistake for `VEIL_CLIENT_ID`).
pub const OBJECT_ID: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
/// The unique id of the GCP service account the metadata server speaks for.
pub const GCP_SUBJECT: &str = "117230000000000000001";
/// The default audience of federated credentials.
pub const AUDIENCE: &str = "api://AzureADTokenExchange";
/// The scope Veil asks for by default.
pub const SCOPE: &str = "https://graph.microsoft.com/.default";
/// The Graph application permissions granted after admin consent.
pub const ROLES: [&str; 2] = ["User.Read.All", "Mail.ReadBasic.All"];

const ISSUER_KID: &str = "issuer-key-1";
const ENTRA_KID: &str = "entra-key-1";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn issuer_key() -> EncodingKey {
    keys::rsa_key(keys::RSA1_PEM)
}

fn entra_key() -> EncodingKey {
    keys::rsa_key(keys::RSA2_PEM)
}

fn jwk(key: &EncodingKey, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(key, Algorithm::RS256).expect("jwk");
    jwk.common.key_id = Some(kid.into());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// The federated identity credential configured on the app registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedCredential {
    pub issuer: String,
    pub subject: String,
    pub audience: String,
}

struct State {
    base: String,
    credential: Mutex<FederatedCredential>,
    consent: AtomicBool,
    /// The application permissions consented (the `roles` of access tokens).
    roles: Mutex<Vec<String>>,
    expires_in: AtomicU64,
    /// Token requests that reached the endpoint (any outcome).
    exchanges: AtomicUsize,
    /// Access tokens issued.
    issued: AtomicU64,
    /// Access tokens with a lower sequence number are refused by Graph (401).
    revoked_below: AtomicU64,
    metadata_fetches: AtomicUsize,
    metadata_refused: AtomicUsize,
    /// Every host token this server signed (to check none leaks).
    host_tokens: Mutex<Vec<String>>,
    /// Claims of each accepted client assertion, in order.
    assertions: Mutex<Vec<Value>>,
    /// Requests that broke the protocol (wrong form, content type…).
    violations: Mutex<Vec<String>>,
    http: reqwest::Client,
}

/// The server. Stops when dropped.
pub struct TestEntra {
    pub addr: std::net::SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestEntra {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestEntra {
    /// Starts with a federated credential for the GCP service account
    /// (`issuer()`, [`GCP_SUBJECT`], [`AUDIENCE`]) and admin consent granted.
    pub async fn start() -> TestEntra {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind entra");
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}");
        let state = Arc::new(State {
            credential: Mutex::new(FederatedCredential {
                issuer: format!("{base}/issuer"),
                subject: GCP_SUBJECT.into(),
                audience: AUDIENCE.into(),
            }),
            base,
            consent: AtomicBool::new(true),
            roles: Mutex::new(ROLES.iter().map(|r| r.to_string()).collect()),
            expires_in: AtomicU64::new(3599),
            exchanges: AtomicUsize::new(0),
            issued: AtomicU64::new(0),
            revoked_below: AtomicU64::new(0),
            metadata_fetches: AtomicUsize::new(0),
            metadata_refused: AtomicUsize::new(0),
            host_tokens: Mutex::new(Vec::new()),
            assertions: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
        });
        let task = super::serve_http(listener, state.clone(), |state, req| async move {
            handle(&state, req).await
        });
        TestEntra { addr, state, task }
    }

    /// `VEIL_ENTRA_AUTHORITY`.
    pub fn authority(&self) -> String {
        self.state.base.clone()
    }

    /// The issuer of host tokens (`iss`).
    pub fn issuer(&self) -> String {
        format!("{}/issuer", self.state.base)
    }

    /// `GCE_METADATA_HOST`.
    pub fn metadata_host(&self) -> String {
        self.addr.to_string()
    }

    pub fn set_credential(&self, c: FederatedCredential) {
        *self.state.credential.lock().unwrap() = c;
    }

    pub fn credential(&self) -> FederatedCredential {
        self.state.credential.lock().unwrap().clone()
    }

    /// Whether issued access tokens carry the granted roles.
    pub fn set_consent(&self, granted: bool) {
        self.state.consent.store(granted, Ordering::SeqCst);
    }

    /// The permissions consented for the app (default [`ROLES`]).
    pub fn set_roles(&self, roles: &[&str]) {
        *self.state.roles.lock().unwrap() = roles.iter().map(|r| r.to_string()).collect();
    }

    /// `expires_in` of issued access tokens (default 3599).
    pub fn set_expires_in(&self, secs: u64) {
        self.state.expires_in.store(secs, Ordering::SeqCst);
    }

    /// Graph refuses (401) every access token issued so far.
    pub fn revoke_issued(&self) {
        let issued = self.state.issued.load(Ordering::SeqCst);
        self.state.revoked_below.store(issued + 1, Ordering::SeqCst);
    }

    pub fn exchanges(&self) -> usize {
        self.state.exchanges.load(Ordering::SeqCst)
    }

    pub fn issued(&self) -> u64 {
        self.state.issued.load(Ordering::SeqCst)
    }

    pub fn metadata_fetches(&self) -> usize {
        self.state.metadata_fetches.load(Ordering::SeqCst)
    }

    pub fn metadata_refused(&self) -> usize {
        self.state.metadata_refused.load(Ordering::SeqCst)
    }

    /// Claims of the accepted client assertions, in order.
    pub fn assertions(&self) -> Vec<Value> {
        self.state.assertions.lock().unwrap().clone()
    }

    /// Protocol violations seen (must stay empty).
    pub fn violations(&self) -> Vec<String> {
        self.state.violations.lock().unwrap().clone()
    }

    /// Every host token signed so far (by the metadata server or
    /// [`TestEntra::host_token`]).
    pub fn host_tokens(&self) -> Vec<String> {
        self.state.host_tokens.lock().unwrap().clone()
    }

    /// A host token signed by the issuer key.
    pub fn host_token(&self, sub: &str, aud: &str, extra: Value) -> String {
        sign_host_token(&self.state, sub, aud, extra)
    }

    /// The test Graph server's check of `Authorization`.
    pub fn graph_authorizer(&self) -> super::Authorizer {
        let state = self.state.clone();
        Arc::new(move |header: Option<&str>| graph_check(&state, header))
    }
}

fn sign_host_token(state: &State, sub: &str, aud: &str, extra: Value) -> String {
    let t = now();
    let mut claims = json!({
        "iss": format!("{}/issuer", state.base),
        "sub": sub,
        "aud": aud,
        "iat": t,
        "exp": t + 3600,
    });
    if let Value::Object(more) = extra {
        for (k, v) in more {
            claims[k] = v;
        }
    }
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(ISSUER_KID.into());
    let token = encode(&header, &claims, &issuer_key()).expect("sign");
    state.host_tokens.lock().unwrap().push(token.clone());
    token
}

type Resp = hyper::Response<Full<Bytes>>;

fn reply(status: u16, content_type: &str, body: impl Into<Bytes>) -> Resp {
    hyper::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .expect("response")
}

fn json_reply(status: u16, v: &Value) -> Resp {
    reply(status, "application/json; charset=utf-8", v.to_string())
}

async fn handle(state: &State, req: hyper::Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().clone();
    if method == hyper::Method::GET && path == "/issuer/.well-known/openid-configuration" {
        return json_reply(
            200,
            &json!({
                "issuer": format!("{}/issuer", state.base),
                "jwks_uri": format!("{}/issuer/jwks", state.base),
                "id_token_signing_alg_values_supported": ["RS256"],
            }),
        );
    }
    if method == hyper::Method::GET && path == "/issuer/jwks" {
        return json_reply(200, &json!({"keys": [jwk(&issuer_key(), ISSUER_KID)]}));
    }
    if method == hyper::Method::GET
        && path == "/computeMetadata/v1/instance/service-accounts/default/identity"
    {
        return metadata(state, req.headers(), &query);
    }
    if let Some(tenant) = path
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix("/oauth2/v2.0/token"))
    {
        let tenant = tenant.to_string();
        let headers = req.headers().clone();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if method != hyper::Method::POST {
            violation(state, format!("{method} on the token endpoint"));
            return entra_error(
                state,
                405,
                "invalid_request",
                900561,
                "The endpoint only accepts POST requests.",
            );
        }
        state.exchanges.fetch_add(1, Ordering::SeqCst);
        return token_endpoint(state, &tenant, &headers, &body).await;
    }
    reply(404, "text/plain", "not found")
}

fn metadata(state: &State, headers: &hyper::HeaderMap, query: &str) -> Resp {
    if headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
        state.metadata_refused.fetch_add(1, Ordering::SeqCst);
        return reply(
            403,
            "text/html; charset=UTF-8",
            "Your client does not have permission to get URL from this server. Missing Metadata-Flavor:Google header.",
        );
    }
    let params = parse_form(query.as_bytes());
    let audience = params
        .iter()
        .find(|(k, _)| k == "audience")
        .map(|(_, v)| v.clone());
    let Some(audience) = audience.filter(|a| !a.is_empty()) else {
        return reply(400, "text/plain", "non-empty audience parameter required");
    };
    state.metadata_fetches.fetch_add(1, Ordering::SeqCst);
    let full = params.iter().any(|(k, v)| k == "format" && v == "full");
    let extra = if full {
        json!({"azp": GCP_SUBJECT, "email": "veil@contoso-analytics.iam.gserviceaccount.com", "email_verified": true})
    } else {
        json!({})
    };
    let token = sign_host_token(state, GCP_SUBJECT, &audience, extra);
    reply(200, "text/html; charset=utf-8", token)
}

fn violation(state: &State, what: String) {
    state.violations.lock().unwrap().push(what);
}

/// Entra's error shape.
fn entra_error(state: &State, status: u16, error: &str, code: u32, text: &str) -> Resp {
    let trace = format!(
        "{:08x}-0000-4000-8000-{:012x}",
        code,
        state.exchanges.load(Ordering::SeqCst)
    );
    let correlation = "5f4e3d2c-1b0a-4987-8654-3210fedcba98";
    let timestamp = "2026-11-06 10:00:00Z";
    json_reply(
        status,
        &json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {timestamp}").replacen(" Trace ID:", "\r\nTrace ID:", 1).replacen(" Correlation ID:", "\r\nCorrelation ID:", 1).replacen(" Timestamp:", "\r\nTimestamp:", 1),
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("{}/error?code={code}", state.base),
        }),
    )
}

pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body).replace('+', " ");
    text.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (pct_decode(k), pct_decode(v)),
            None => (pct_decode(kv), String::new()),
        })
        .collect()
}

async fn token_endpoint(
    state: &State,
    tenant: &str,
    headers: &hyper::HeaderMap,
    body: &[u8],
) -> Resp {
    if tenant != TENANT_ID {
        return entra_error(state, 400, "invalid_request", 90002, &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."));
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type != "application/x-www-form-urlencoded" {
        violation(state, format!("content type `{content_type}`"));
        return entra_error(
            state,
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        );
    }
    let form = parse_form(body);
    let names: Vec<&str> = form.iter().map(|(k, _)| k.as_str()).collect();
    let unique: HashSet<&str> = names.iter().copied().collect();
    let expected: HashSet<&str> = [
        "client_id",
        "scope",
        "grant_type",
        "client_assertion_type",
        "client_assertion",
    ]
    .into_iter()
    .collect();
    if unique != expected || names.len() != expected.len() {
        violation(state, format!("form fields {names:?}"));
        return entra_error(
            state,
            400,
            "invalid_request",
            900144,
            "The request body must contain exactly the client credentials parameters.",
        );
    }
    let get = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    if get("grant_type") != "client_credentials" {
        violation(state, format!("grant_type `{}`", get("grant_type")));
        return entra_error(
            state,
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    if get("client_assertion_type") != ASSERTION_TYPE {
        violation(
            state,
            format!("client_assertion_type `{}`", get("client_assertion_type")),
        );
        return entra_error(
            state,
            400,
            "invalid_request",
            50027,
            "Invalid client_assertion_type.",
        );
    }
    if get("scope") != SCOPE {
        violation(state, format!("scope `{}`", get("scope")));
        return entra_error(
            state,
            400,
            "invalid_scope",
            70011,
            "The provided request must include a 'scope' input parameter.",
        );
    }
    let client_id = get("client_id");
    if client_id != CLIENT_ID {
        return entra_error(state, 400, "unauthorized_client", 700016, &format!("Application with identifier '{client_id}' was not found in the directory 'Contoso'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."));
    }
    let assertion = get("client_assertion");
    let Some(claims) = unverified(assertion) else {
        return entra_error(
            state,
            400,
            "invalid_client",
            50027,
            "JWT token is invalid or malformed.",
        );
    };
    let cred = state.credential.lock().unwrap().clone();
    let claim = |n: &str| {
        claims
            .get(n)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if claim("iss") != cred.issuer {
        return entra_error(state, 400, "invalid_request", 700211, &format!("No matching federated identity record found for presented assertion issuer '{}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.", claim("iss")));
    }
    // The issuer's keys, by discovery, as Entra fetches them.
    let jwks = match fetch_jwks(state, &cred.issuer).await {
        Ok(j) => j,
        Err(e) => {
            violation(state, format!("cannot fetch the issuer's JWKS: {e}"));
            return entra_error(
                state,
                400,
                "invalid_client",
                700027,
                "Client assertion failed signature validation.",
            );
        }
    };
    let header = decode_header(assertion).ok();
    let key = header
        .as_ref()
        .and_then(|h| h.kid.clone())
        .and_then(|kid| jwks.find(&kid).cloned())
        .and_then(|k| DecodingKey::from_jwk(&k).ok());
    let Some(key) = key else {
        return entra_error(
            state,
            400,
            "invalid_client",
            700027,
            "Client assertion failed signature validation. (Reason - The key was not found.)",
        );
    };
    let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
    validation.validate_aud = false;
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    if let Err(e) = decode::<Value>(assertion, &key, &validation) {
        return match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => entra_error(
                state,
                400,
                "invalid_client",
                700024,
                "Client assertion is not within its valid time range.",
            ),
            _ => entra_error(
                state,
                400,
                "invalid_client",
                700027,
                "Client assertion failed signature validation.",
            ),
        };
    }
    if claim("sub") != cred.subject {
        return entra_error(state, 400, "invalid_request", 700213, &format!("No matching federated identity record found for presented assertion subject '{}'. Please note that the matching is done using a case-sensitive comparison. Check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation", claim("sub")));
    }
    let auds: Vec<String> = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    if !auds.contains(&cred.audience) {
        return entra_error(state, 400, "invalid_request", 700212, &format!("No matching federated identity record found for presented assertion audience '{}'. Please note that the matching is done using a case-sensitive comparison. Check your federated identity credential Subject, Audience and Issuer against the presented assertion.", auds.join(",")));
    }
    state.assertions.lock().unwrap().push(claims.clone());
    // Success: an app-only Graph token.
    let seq = state.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let t = now();
    let expires_in = state.expires_in.load(Ordering::SeqCst);
    let mut access = json!({
        "aud": "https://graph.microsoft.com",
        "iss": format!("https://sts.windows.net/{TENANT_ID}/"),
        "iat": t, "nbf": t, "exp": t + expires_in,
        "appid": CLIENT_ID,
        "idtyp": "app",
        "tid": TENANT_ID,
        "sub": "0e1d2c3b-4a59-4687-9a8b-7c6d5e4f3a2b",
        "uti": format!("seq-{seq}"),
        "seq": seq,
    });
    if state.consent.load(Ordering::SeqCst) {
        access["roles"] = json!(*state.roles.lock().unwrap());
    }
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(ENTRA_KID.into());
    let token = encode(&header, &access, &entra_key()).expect("sign access token");
    json_reply(
        200,
        &json!({"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in, "access_token": token}),
    )
}

async fn fetch_jwks(state: &State, issuer: &str) -> Result<jsonwebtoken::jwk::JwkSet, String> {
    let config: Value = state
        .http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let uri = config["jwks_uri"].as_str().ok_or("no jwks_uri")?;
    state
        .http
        .get(uri)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())
}

fn unverified(jwt: &str) -> Option<Value> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = jwt.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

fn graph_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({"error": {"code": code, "message": message, "innerError": {
            "date": "2026-11-06T10:00:00",
            "request-id": "0a1b2c3d-0000-4000-8000-000000000002",
            "client-request-id": "0a1b2c3d-0000-4000-8000-000000000002"
        }}}),
    )
}

/// Graph's check: a valid, unrevoked access token of the test Entra, with roles.
fn graph_check(state: &State, header: Option<&str>) -> Option<Reply> {
    let invalid = || {
        Some(graph_error(
            401,
            "InvalidAuthenticationToken",
            "Access token validation failure. Invalid audience.",
        ))
    };
    let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return invalid();
    };
    let key = DecodingKey::from_jwk(&jwk(&entra_key(), ENTRA_KID)).expect("key");
    let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
    validation.set_audience(&["https://graph.microsoft.com"]);
    validation.set_issuer(&[format!("https://sts.windows.net/{TENANT_ID}/")]);
    validation.leeway = 0;
    let Ok(data) = decode::<Value>(token, &key, &validation) else {
        return invalid();
    };
    let claims = data.claims;
    if claims["seq"].as_u64().unwrap_or(0) < state.revoked_below.load(Ordering::SeqCst) {
        return invalid();
    }
    let roles = claims["roles"].as_array().map(Vec::len).unwrap_or(0);
    if roles == 0 {
        return Some(graph_error(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        ));
    }
    None
}
