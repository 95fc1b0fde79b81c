//! A minimal AWS client: SigV4-signed calls (the `aws-sigv4` crate) over
//! Veil's own `reqwest` client, for the few AWS APIs Veil calls (STS,
//! SSM Parameter Store, Secrets Manager, Cognito identity pools).
//!
//! - Credentials come from the environment only (`AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), which is what Lambda
//!   provides from the function's execution role.
//! - The region is `AWS_REGION`, then `AWS_DEFAULT_REGION`.
//! - Endpoints are overridable exactly as the AWS SDKs do it:
//!   `AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`.
//! - Two protocols: awsJson1.1 ([`AwsClient::json_call`]) and the query
//!   protocol ([`AwsClient::query_call`], XML answers parsed with `roxmltree`).
//!
//! Every AWS error answer is mapped to an [`AwsError`] whose message says
//! what to change (which IAM action on which resource, which name in which
//! region) and never contains a credential or a secret value.

use std::time::SystemTime;

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

use veil_engine::secret::Secret;

/// The access key id of the AWS credentials (set by Lambda from the execution role).
pub const ENV_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
/// The secret access key of the AWS credentials (set by Lambda).
pub const ENV_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// The session token of temporary AWS credentials (set by Lambda).
pub const ENV_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
/// The AWS region (set by Lambda); takes precedence over `AWS_DEFAULT_REGION`.
pub const ENV_REGION: &str = "AWS_REGION";
/// The AWS region when `AWS_REGION` is not set.
pub const ENV_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
/// An endpoint URL for every AWS service (after the per-service variables).
pub const ENV_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
/// The endpoint URL of STS.
pub const ENV_ENDPOINT_URL_STS: &str = "AWS_ENDPOINT_URL_STS";
/// The endpoint URL of SSM (Parameter Store).
pub const ENV_ENDPOINT_URL_SSM: &str = "AWS_ENDPOINT_URL_SSM";
/// The endpoint URL of Secrets Manager.
pub const ENV_ENDPOINT_URL_SECRETS_MANAGER: &str = "AWS_ENDPOINT_URL_SECRETS_MANAGER";
/// The endpoint URL of Cognito identity pools.
pub const ENV_ENDPOINT_URL_COGNITO_IDENTITY: &str = "AWS_ENDPOINT_URL_COGNITO_IDENTITY";

/// The largest AWS answer Veil reads (the APIs it calls answer a few KiB).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// The longest excerpt of an AWS error message put into Veil's messages.
const MAX_AWS_MESSAGE_CHARS: usize = 300;

pub use crate::env::Lookup;

/// The AWS services Veil calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Sts,
    Ssm,
    SecretsManager,
    CognitoIdentity,
}

impl Service {
    /// The SigV4 signing name, the endpoint prefix and the IAM action prefix.
    pub fn signing_name(self) -> &'static str {
        match self {
            Service::Sts => "sts",
            Service::Ssm => "ssm",
            Service::SecretsManager => "secretsmanager",
            Service::CognitoIdentity => "cognito-identity",
        }
    }

    /// The service-specific endpoint variable (`AWS_ENDPOINT_URL_<SERVICE>`).
    pub fn endpoint_env(self) -> &'static str {
        match self {
            Service::Sts => ENV_ENDPOINT_URL_STS,
            Service::Ssm => ENV_ENDPOINT_URL_SSM,
            Service::SecretsManager => ENV_ENDPOINT_URL_SECRETS_MANAGER,
            Service::CognitoIdentity => ENV_ENDPOINT_URL_COGNITO_IDENTITY,
        }
    }

    const ALL: [Service; 4] = [
        Service::Sts,
        Service::Ssm,
        Service::SecretsManager,
        Service::CognitoIdentity,
    ];
}

/// What went wrong, for callers that react differently (retry, wording).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// A variable is missing or invalid.
    Config,
    /// No credentials in the environment.
    NoCredentials,
    /// AWS rejected the credentials (wrong, expired, bad signature).
    InvalidCredentials,
    /// The role is not allowed to do this.
    AccessDenied,
    /// The named parameter, secret or pool does not exist (in that region).
    NotFound,
    /// AWS asked to slow down.
    Throttled,
    /// AWS could not be reached or answered 5xx.
    Unavailable,
    /// Any other error answer of AWS.
    Service,
    /// AWS answered success with something Veil cannot read.
    InvalidResponse,
}

/// An AWS call that failed. The message says what to fix and contains no
/// credential and no secret value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AwsError {
    pub kind: AwsErrorKind,
    /// The AWS error code (`AccessDeniedException`, `ParameterNotFound`, …).
    pub code: Option<String>,
    pub message: String,
    /// Whether trying again later may help.
    pub retryable: bool,
}

impl AwsError {
    fn new(kind: AwsErrorKind, message: impl Into<String>) -> AwsError {
        AwsError {
            kind,
            code: None,
            message: message.into(),
            retryable: matches!(kind, AwsErrorKind::Throttled | AwsErrorKind::Unavailable),
        }
    }

    fn config(message: impl Into<String>) -> AwsError {
        AwsError::new(AwsErrorKind::Config, message)
    }
}

/// AWS credentials from the environment.
#[derive(Clone)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Option<Secret>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Credentials {
    /// Reads `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and the optional
    /// `AWS_SESSION_TOKEN`.
    pub fn from_lookup(env: Lookup<'_>) -> Result<Credentials, AwsError> {
        match (env.get(ENV_ACCESS_KEY_ID), env.get(ENV_SECRET_ACCESS_KEY)) {
            (Some(id), Some(secret)) => Ok(Credentials {
                access_key_id: id.trim().to_string(),
                secret_access_key: Secret::from(secret.trim()),
                session_token: env.get(ENV_SESSION_TOKEN).map(|t| Secret::from(t.trim())),
            }),
            (None, None) => Err(AwsError::new(
                AwsErrorKind::NoCredentials,
                format!(
                    "no AWS credentials in the environment ({ENV_ACCESS_KEY_ID}, \
                     {ENV_SECRET_ACCESS_KEY}, {ENV_SESSION_TOKEN}): on Lambda the execution \
                     role provides them; elsewhere set them (Veil reads no credential files \
                     and no instance metadata)"
                ),
            )),
            (Some(_), None) => Err(AwsError::new(
                AwsErrorKind::NoCredentials,
                format!("{ENV_ACCESS_KEY_ID} is set but {ENV_SECRET_ACCESS_KEY} is not: set both (on Lambda the execution role provides them)"),
            )),
            (None, Some(_)) => Err(AwsError::new(
                AwsErrorKind::NoCredentials,
                format!("{ENV_SECRET_ACCESS_KEY} is set but {ENV_ACCESS_KEY_ID} is not: set both (on Lambda the execution role provides them)"),
            )),
        }
    }

    /// The access key id (not a secret; shown in messages about credentials).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }
}

/// Credentials, region and endpoint overrides, read once.
#[derive(Clone, Debug)]
pub struct AwsConfig {
    credentials: Credentials,
    region: Option<String>,
    endpoints: Vec<(Service, String)>,
    endpoint_all: Option<String>,
}

/// Whether a string can be an AWS region name (it goes into a host name).
pub fn is_valid_region(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-')
}

fn check_endpoint(name: &str, value: &str) -> Result<String, AwsError> {
    let url = reqwest::Url::parse(value.trim())
        .map_err(|e| AwsError::config(format!("{name}: `{value}` is not a URL ({e})")))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(AwsError::config(format!(
            "{name}: `{value}` must be an http(s) URL with a host"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
        return Err(AwsError::config(format!(
            "{name}: the endpoint URL must not carry credentials or a query"
        )));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

impl AwsConfig {
    /// Reads credentials (required), region and endpoint overrides.
    pub fn from_lookup(env: Lookup<'_>) -> Result<AwsConfig, AwsError> {
        let credentials = Credentials::from_lookup(env)?;
        let region = match (env.get(ENV_REGION), env.get(ENV_DEFAULT_REGION)) {
            (Some(r), _) => Some((ENV_REGION, r)),
            (None, Some(r)) => Some((ENV_DEFAULT_REGION, r)),
            (None, None) => None,
        };
        let region = match region {
            Some((name, r)) => {
                let r = r.trim().to_string();
                if !is_valid_region(&r) {
                    return Err(AwsError::config(format!(
                        "{name}: `{r}` is not an AWS region name (like eu-west-1)"
                    )));
                }
                Some(r)
            }
            None => None,
        };
        let mut endpoints = Vec::new();
        for service in Service::ALL {
            if let Some(v) = env.get(service.endpoint_env()) {
                endpoints.push((service, check_endpoint(service.endpoint_env(), &v)?));
            }
        }
        let endpoint_all = env
            .get(ENV_ENDPOINT_URL)
            .map(|v| check_endpoint(ENV_ENDPOINT_URL, &v))
            .transpose()?;
        Ok(AwsConfig {
            credentials,
            region,
            endpoints,
            endpoint_all,
        })
    }

    /// `AWS_REGION`, else `AWS_DEFAULT_REGION`.
    pub fn region(&self) -> Result<&str, AwsError> {
        self.region.as_deref().ok_or_else(|| {
            AwsError::config(format!(
                "no AWS region: set {ENV_REGION} (Lambda sets it) or {ENV_DEFAULT_REGION}"
            ))
        })
    }

    /// The endpoint of a service in a region: the override when set, else
    /// the regional endpoint `https://<service>.<region>.amazonaws.com`
    /// (`amazonaws.com.cn` in the China regions).
    pub fn endpoint(&self, service: Service, region: &str) -> String {
        if let Some((_, url)) = self.endpoints.iter().find(|(s, _)| *s == service) {
            return url.clone();
        }
        if let Some(url) = &self.endpoint_all {
            return url.clone();
        }
        let suffix = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        format!("https://{}.{region}.{suffix}", service.signing_name())
    }
}

/// What a call is about, for the error messages.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    pub service: Service,
    /// The region the call goes to (and is signed for).
    pub region: &'a str,
    /// The API action (`GetParameter`); the IAM action is `<service>:<action>`.
    pub action: &'a str,
    /// The IAM resource to allow (an ARN, or `*`).
    pub resource: &'a str,
    /// What was looked up, for "not found" (`SSM parameter `/veil/salt``).
    pub what: &'a str,
}

impl Call<'_> {
    /// `ssm:GetParameter`.
    pub fn iam_action(&self) -> String {
        format!("{}:{}", self.service.signing_name(), self.action)
    }
}

/// The code and message of an AWS error answer, whatever the protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorBody {
    pub code: Option<String>,
    pub message: Option<String>,
}

/// Reads an AWS error answer: awsJson (`__type`, `message`/`Message`), the
/// query protocol (`<ErrorResponse><Error><Code>…`), or the
/// `x-amzn-ErrorType` header.
pub fn parse_error_body(header_type: Option<&str>, body: &[u8]) -> ErrorBody {
    let clean_code = |c: &str| -> String {
        // `com.amazonaws.ssm#ParameterNotFound`, `ParameterNotFound:http://…`
        let c = c.rsplit('#').next().unwrap_or(c);
        let c = c.split(':').next().unwrap_or(c);
        c.trim().to_string()
    };
    let mut out = ErrorBody::default();
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body) {
        out.code = map
            .get("__type")
            .or_else(|| map.get("code"))
            .or_else(|| map.get("Code"))
            .and_then(|v| v.as_str())
            .map(clean_code);
        out.message = map
            .get("message")
            .or_else(|| map.get("Message"))
            .and_then(|v| v.as_str())
            .map(str::to_string);
    } else if let Ok(text) = std::str::from_utf8(body) {
        if let Ok(doc) = roxmltree::Document::parse(text) {
            let error = doc
                .descendants()
                .find(|n| n.is_element() && n.tag_name().name() == "Error");
            if let Some(error) = error {
                let child = |name: &str| {
                    error
                        .children()
                        .find(|n| n.is_element() && n.tag_name().name() == name)
                        .and_then(|n| n.text())
                        .map(|t| t.trim().to_string())
                };
                out.code = child("Code").map(|c| clean_code(&c));
                out.message = child("Message");
            }
        }
    }
    if out.code.is_none() {
        out.code = header_type.map(clean_code).filter(|c| !c.is_empty());
    }
    out.message = out.message.map(|m| excerpt(&m));
    out
}

/// A bounded, single-line excerpt of an AWS message.
fn excerpt(message: &str) -> String {
    let one_line: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let one_line = one_line.trim();
    if one_line.chars().count() > MAX_AWS_MESSAGE_CHARS {
        let cut: String = one_line.chars().take(MAX_AWS_MESSAGE_CHARS).collect();
        format!("{cut}…")
    } else {
        one_line.to_string()
    }
}

/// Maps an AWS error answer to an actionable error.
pub fn map_error(call: &Call<'_>, status: u16, body: &ErrorBody) -> AwsError {
    let code = body.code.clone().unwrap_or_default();
    let said = match &body.message {
        Some(m) if !m.is_empty() => format!(" (AWS said: {m})"),
        _ => String::new(),
    };
    let action = call.iam_action();
    let region = call.region;
    let (kind, message) = match code.as_str() {
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation"
        | "AuthorizationError" => (
            AwsErrorKind::AccessDenied,
            format!(
                "AWS denied {action} on {} in region {region}: allow the action `{action}` on \
                 the resource `{}` in the policy of the role Veil runs as{said}",
                call.what, call.resource
            ),
        ),
        "ParameterNotFound" | "ResourceNotFoundException" | "NoSuchEntity" => (
            AwsErrorKind::NotFound,
            format!(
                "{} was not found in region {region}: check the name (or ARN) and the region{said}",
                call.what
            ),
        ),
        "InvalidClientTokenId" | "UnrecognizedClientException" | "SignatureDoesNotMatch"
        | "IncompleteSignature" | "InvalidSignatureException" | "ExpiredToken"
        | "ExpiredTokenException" | "MissingAuthenticationToken"
        | "MissingAuthenticationTokenException" | "InvalidAccessKeyId" => (
            AwsErrorKind::InvalidCredentials,
            format!(
                "AWS rejected the credentials in the environment ({code}) when calling {action}: \
                 {ENV_ACCESS_KEY_ID}, {ENV_SECRET_ACCESS_KEY} and {ENV_SESSION_TOKEN} are wrong, \
                 incomplete or expired (on Lambda the execution role provides them; do not \
                 override them){said}"
            ),
        ),
        "Throttling" | "ThrottlingException" | "TooManyRequestsException"
        | "RequestLimitExceeded" | "ThrottledException" => (
            AwsErrorKind::Throttled,
            format!("AWS throttled {action} for {} ({code}); try again later{said}", call.what),
        ),
        _ if status >= 500 => (
            AwsErrorKind::Unavailable,
            format!(
                "{action} for {} failed with HTTP {status} {code} in region {region}; try again later{said}",
                call.what
            ),
        ),
        _ if status == 429 => (
            AwsErrorKind::Throttled,
            format!("AWS throttled {action} for {} (HTTP 429); try again later{said}", call.what),
        ),
        "" => (
            AwsErrorKind::Service,
            format!(
                "{action} for {} failed with HTTP {status} in region {region} and no AWS error code{said}",
                call.what
            ),
        ),
        _ => (
            AwsErrorKind::Service,
            format!(
                "{action} for {} failed in region {region}: {code}{said}",
                call.what
            ),
        ),
    };
    let mut e = AwsError::new(kind, message);
    e.code = body.code.clone();
    e
}

/// The text of the element at `path` (local names, namespaces ignored),
/// starting with the root element: `["GetWebIdentityTokenResponse",
/// "GetWebIdentityTokenResult", "WebIdentityToken"]`. `Ok(None)` when the
/// element is absent; `Err` when the document is not XML.
pub fn xml_text(xml: &str, path: &[&str]) -> Result<Option<String>, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("not XML: {e}"))?;
    let Some((first, rest)) = path.split_first() else {
        return Ok(None);
    };
    let mut node = doc.root_element();
    if node.tag_name().name() != *first {
        return Ok(None);
    }
    for name in rest {
        match node
            .children()
            .find(|n| n.is_element() && n.tag_name().name() == *name)
        {
            Some(n) => node = n,
            None => return Ok(None),
        }
    }
    Ok(Some(node.text().unwrap_or_default().trim().to_string()))
}

/// A SigV4 client for one AWS configuration.
#[derive(Clone, Debug)]
pub struct AwsClient {
    http: reqwest::Client,
    config: AwsConfig,
}

impl AwsClient {
    pub fn new(http: reqwest::Client, config: AwsConfig) -> AwsClient {
        AwsClient { http, config }
    }

    /// From the process environment.
    pub fn from_env(http: reqwest::Client) -> Result<AwsClient, AwsError> {
        Ok(AwsClient::new(
            http,
            AwsConfig::from_lookup(&crate::env::ProcessEnv)?,
        ))
    }

    pub fn config(&self) -> &AwsConfig {
        &self.config
    }

    /// An awsJson1.1 call: `POST /` with `X-Amz-Target: <target>` and a
    /// JSON body; the JSON answer.
    pub async fn json_call(
        &self,
        call: &Call<'_>,
        target: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, AwsError> {
        let body = serde_json::to_vec(body).map_err(|e| {
            AwsError::new(
                AwsErrorKind::Config,
                format!("{}: request body: {e}", call.iam_action()),
            )
        })?;
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target),
        ];
        let answer = self.send(call, &headers, body).await?;
        serde_json::from_slice(&answer).map_err(|e| {
            AwsError::new(
                AwsErrorKind::InvalidResponse,
                format!(
                    "{} for {} answered with a body that is not JSON ({e}); is {} an endpoint of {}?",
                    call.iam_action(),
                    call.what,
                    self.config.endpoint(call.service, call.region),
                    call.service.signing_name()
                ),
            )
        })
    }

    /// A query-protocol call: a form `POST /` with `Action`, `Version` and
    /// the parameters; the XML answer as text (read it with [`xml_text`]).
    pub async fn query_call(
        &self,
        call: &Call<'_>,
        version: &str,
        params: &[(&str, String)],
    ) -> Result<String, AwsError> {
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("Action", call.action);
            form.append_pair("Version", version);
            for (k, v) in params {
                form.append_pair(k, v);
            }
            form.finish().into_bytes()
        };
        let headers = [(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )];
        let answer = self.send(call, &headers, body).await?;
        String::from_utf8(answer).map_err(|_| {
            AwsError::new(
                AwsErrorKind::InvalidResponse,
                format!(
                    "{} answered with a body that is not UTF-8",
                    call.iam_action()
                ),
            )
        })
    }

    async fn send(
        &self,
        call: &Call<'_>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Vec<u8>, AwsError> {
        let base = self.config.endpoint(call.service, call.region);
        let url = format!("{base}/");
        let creds = &self.config.credentials;
        let secret_key = std::str::from_utf8(creds.secret_access_key.expose())
            .map_err(|_| AwsError::config(format!("{ENV_SECRET_ACCESS_KEY} is not UTF-8")))?;
        let session_token = match &creds.session_token {
            Some(t) => Some(
                std::str::from_utf8(t.expose())
                    .map_err(|_| AwsError::config(format!("{ENV_SESSION_TOKEN} is not UTF-8")))?
                    .to_string(),
            ),
            None => None,
        };
        let identity = aws_credential_types::Credentials::new(
            creds.access_key_id.clone(),
            secret_key.to_string(),
            session_token,
            None,
            "environment",
        )
        .into();
        let signing_failed = |e: String| {
            AwsError::config(format!(
                "{}: could not sign the request: {e}",
                call.iam_action()
            ))
        };
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(call.region)
            .name(call.service.signing_name())
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| signing_failed(e.to_string()))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(&body),
        )
        .map_err(|e| signing_failed(e.to_string()))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| signing_failed(e.to_string()))?
            .into_parts();
        let mut request = self.http.post(&url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        let response = request.body(body).send().await.map_err(|e| {
            AwsError::new(
                AwsErrorKind::Unavailable,
                format!(
                    "{} for {}: could not reach {base} ({}); check the network path to AWS \
                     (VPC endpoints or NAT for a Lambda in a VPC) and {}/{ENV_ENDPOINT_URL}",
                    call.iam_action(),
                    call.what,
                    without_url(&e),
                    call.service.endpoint_env()
                ),
            )
        })?;
        let status = response.status().as_u16();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = read_limited(response, call).await?;
        if (200..300).contains(&status) {
            Ok(bytes)
        } else {
            Err(map_error(
                call,
                status,
                &parse_error_body(error_type.as_deref(), &bytes),
            ))
        }
    }
}

/// A reqwest error without its URL (already in the message): the chain
/// of causes (connection refused, DNS, TLS) or what kind of failure it was.
fn without_url(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut parts = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    if parts.is_empty() {
        parts.push(
            if e.is_connect() {
                "connection failed"
            } else {
                "request failed"
            }
            .into(),
        );
    }
    parts.join(": ")
}

async fn read_limited(
    mut response: reqwest::Response,
    call: &Call<'_>,
) -> Result<Vec<u8>, AwsError> {
    let mut out = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if out.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(AwsError::new(
                        AwsErrorKind::InvalidResponse,
                        format!(
                            "{} answered with more than {MAX_RESPONSE_BYTES} bytes",
                            call.iam_action()
                        ),
                    ));
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(out),
            Err(e) => {
                return Err(AwsError::new(
                    AwsErrorKind::Unavailable,
                    format!(
                        "{} for {}: the answer was cut off ({})",
                        call.iam_action(),
                        call.what,
                        without_url(&e)
                    ),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::lookup;

    const CREDS: [(&str, &str); 2] = [
        (ENV_ACCESS_KEY_ID, "AKIDEXAMPLE"),
        (
            ENV_SECRET_ACCESS_KEY,
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        ),
    ];

    fn call() -> Call<'static> {
        Call {
            service: Service::Ssm,
            region: "eu-west-1",
            action: "GetParameter",
            resource: "arn:aws:ssm:eu-west-1:*:parameter/veil/salt",
            what: "SSM parameter `/veil/salt`",
        }
    }

    #[test]
    fn no_credentials_says_where_they_come_from() {
        let e = AwsConfig::from_lookup(&lookup(&[(ENV_REGION, "eu-west-1")])).unwrap_err();
        assert_eq!(e.kind, AwsErrorKind::NoCredentials);
        assert!(
            e.message
                .contains("no AWS credentials in the environment (AWS_ACCESS_KEY_ID"),
            "{e}"
        );
        assert!(
            e.message
                .contains("on Lambda the execution role provides them"),
            "{e}"
        );
        let e = AwsConfig::from_lookup(&lookup(&[CREDS[0]])).unwrap_err();
        assert!(e.message.contains("AWS_SECRET_ACCESS_KEY is not"), "{e}");
    }

    #[test]
    fn credentials_debug_is_redacted() {
        let mut pairs = CREDS.to_vec();
        pairs.push((ENV_SESSION_TOKEN, "session-token-value"));
        let c = AwsConfig::from_lookup(&lookup(&pairs)).unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("EXAMPLEKEY") && !shown.contains("session-token-value"),
            "{shown}"
        );
    }

    #[test]
    fn region_precedence_and_validation() {
        let mut pairs = CREDS.to_vec();
        pairs.push((ENV_DEFAULT_REGION, "us-east-2"));
        let c = AwsConfig::from_lookup(&lookup(&pairs)).unwrap();
        assert_eq!(c.region().unwrap(), "us-east-2");
        pairs.push((ENV_REGION, "eu-central-1"));
        let c = AwsConfig::from_lookup(&lookup(&pairs)).unwrap();
        assert_eq!(c.region().unwrap(), "eu-central-1");
        let c = AwsConfig::from_lookup(&lookup(&CREDS)).unwrap();
        assert!(c.region().unwrap_err().message.contains("AWS_REGION"));
        let mut bad = CREDS.to_vec();
        bad.push((ENV_REGION, "evil.com/x"));
        let e = AwsConfig::from_lookup(&lookup(&bad)).unwrap_err();
        assert!(
            e.message
                .starts_with("AWS_REGION: `evil.com/x` is not an AWS region"),
            "{e}"
        );
    }

    #[test]
    fn endpoints_follow_the_sdk_precedence() {
        let c = AwsConfig::from_lookup(&lookup(&CREDS)).unwrap();
        assert_eq!(
            c.endpoint(Service::Sts, "eu-west-1"),
            "https://sts.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            c.endpoint(Service::CognitoIdentity, "us-east-1"),
            "https://cognito-identity.us-east-1.amazonaws.com"
        );
        assert_eq!(
            c.endpoint(Service::Ssm, "cn-north-1"),
            "https://ssm.cn-north-1.amazonaws.com.cn"
        );
        let mut pairs = CREDS.to_vec();
        pairs.push((ENV_ENDPOINT_URL, "http://127.0.0.1:5000/"));
        pairs.push((ENV_ENDPOINT_URL_SECRETS_MANAGER, "http://127.0.0.1:6000"));
        let c = AwsConfig::from_lookup(&lookup(&pairs)).unwrap();
        assert_eq!(
            c.endpoint(Service::SecretsManager, "eu-west-1"),
            "http://127.0.0.1:6000"
        );
        assert_eq!(
            c.endpoint(Service::Ssm, "eu-west-1"),
            "http://127.0.0.1:5000"
        );
        let mut bad = CREDS.to_vec();
        bad.push((ENV_ENDPOINT_URL_STS, "ftp://x"));
        let e = AwsConfig::from_lookup(&lookup(&bad)).unwrap_err();
        assert!(e.message.starts_with("AWS_ENDPOINT_URL_STS:"), "{e}");
    }

    #[test]
    fn json_errors_are_parsed() {
        let b = parse_error_body(
            None,
            br#"{"__type":"com.amazonaws.ssm#ParameterNotFound","message":"Parameter /veil/salt not found."}"#,
        );
        assert_eq!(b.code.as_deref(), Some("ParameterNotFound"));
        assert_eq!(
            b.message.as_deref(),
            Some("Parameter /veil/salt not found.")
        );
        let b = parse_error_body(
            None,
            br#"{"__type":"ResourceNotFoundException:http://internal.amazon.com/","Message":"x"}"#,
        );
        assert_eq!(b.code.as_deref(), Some("ResourceNotFoundException"));
        let b = parse_error_body(Some("AccessDeniedException:http://x"), b"");
        assert_eq!(b.code.as_deref(), Some("AccessDeniedException"));
    }

    #[test]
    fn xml_errors_are_parsed() {
        let xml = br#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>AccessDenied</Code>
    <Message>User: arn:aws:sts::1:assumed-role/veil/x is not authorized to perform: sts:GetWebIdentityToken</Message>
  </Error><RequestId>r</RequestId></ErrorResponse>"#;
        let b = parse_error_body(None, xml);
        assert_eq!(b.code.as_deref(), Some("AccessDenied"));
        assert!(b.message.unwrap().contains("not authorized"));
        assert_eq!(parse_error_body(None, b"<html>oops"), ErrorBody::default());
    }

    #[test]
    fn access_denied_names_action_and_resource() {
        let e = map_error(
            &call(),
            400,
            &ErrorBody {
                code: Some("AccessDeniedException".into()),
                message: Some("not authorized".into()),
            },
        );
        assert_eq!(e.kind, AwsErrorKind::AccessDenied);
        assert!(!e.retryable);
        assert!(
            e.message.contains(
                "allow the action `ssm:GetParameter` on the resource `arn:aws:ssm:eu-west-1:*:parameter/veil/salt`"
            ),
            "{e}"
        );
    }

    #[test]
    fn not_found_names_what_and_region() {
        let e = map_error(
            &call(),
            400,
            &ErrorBody {
                code: Some("ParameterNotFound".into()),
                message: None,
            },
        );
        assert_eq!(e.kind, AwsErrorKind::NotFound);
        assert!(
            e.message
                .starts_with("SSM parameter `/veil/salt` was not found in region eu-west-1"),
            "{e}"
        );
    }

    #[test]
    fn credentials_throttling_and_outages_are_classified() {
        let body = |c: &str| ErrorBody {
            code: Some(c.into()),
            message: None,
        };
        let e = map_error(&call(), 400, &body("UnrecognizedClientException"));
        assert_eq!(e.kind, AwsErrorKind::InvalidCredentials);
        assert!(e.message.contains("AWS_SESSION_TOKEN"), "{e}");
        let e = map_error(&call(), 400, &body("ThrottlingException"));
        assert!(e.retryable && e.kind == AwsErrorKind::Throttled);
        let e = map_error(&call(), 503, &ErrorBody::default());
        assert!(e.retryable && e.kind == AwsErrorKind::Unavailable);
        let e = map_error(&call(), 400, &body("ValidationException"));
        assert_eq!(e.kind, AwsErrorKind::Service);
        assert!(
            e.message.contains("ValidationException") && !e.retryable,
            "{e}"
        );
    }

    #[test]
    fn long_aws_messages_are_cut() {
        let long = "x".repeat(1000);
        let b = parse_error_body(
            None,
            format!(r#"{{"__type":"X","message":"{long}"}}"#).as_bytes(),
        );
        assert!(b.message.unwrap().chars().count() <= MAX_AWS_MESSAGE_CHARS + 1);
    }

    #[test]
    fn xml_text_follows_the_path() {
        let xml = r#"<GetWebIdentityTokenResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetWebIdentityTokenResult><WebIdentityToken> a.b.c </WebIdentityToken></GetWebIdentityTokenResult>
</GetWebIdentityTokenResponse>"#;
        let path = [
            "GetWebIdentityTokenResponse",
            "GetWebIdentityTokenResult",
            "WebIdentityToken",
        ];
        assert_eq!(xml_text(xml, &path).unwrap().as_deref(), Some("a.b.c"));
        assert_eq!(xml_text(xml, &path[..2]).unwrap().as_deref(), Some(""));
        assert_eq!(xml_text(xml, &["Other"]).unwrap(), None);
        assert!(xml_text("not xml", &path).is_err());
    }
}
