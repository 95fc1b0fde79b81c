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

mod config;
mod error;

pub use config::*;
pub use error::*;

/// The largest AWS answer Veil reads (the APIs it calls answer a few KiB).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

pub(crate) use crate::env::Lookup;

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

/// A document that is not XML.
#[derive(Debug, thiserror::Error)]
#[error("not XML: {0}")]
pub(crate) struct NotXml(roxmltree::Error);

/// The text of the element at `path` (local names, namespaces ignored),
/// starting with the root element: `["GetWebIdentityTokenResponse",
/// "GetWebIdentityTokenResult", "WebIdentityToken"]`. `Ok(None)` when the
/// element is absent; `Err` when the document is not XML.
pub(crate) fn xml_text(xml: &str, path: &[&str]) -> Result<Option<String>, NotXml> {
    let doc = roxmltree::Document::parse(xml).map_err(NotXml)?;
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
