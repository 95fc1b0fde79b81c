//! AWS errors: reading an error answer (whatever the protocol) and
//! mapping it to an [`AwsError`] that says what to change.

use super::{Service, ENV_ACCESS_KEY_ID, ENV_SECRET_ACCESS_KEY, ENV_SESSION_TOKEN};

/// The longest excerpt of an AWS error message put into Veil's messages.
pub(super) const MAX_AWS_MESSAGE_CHARS: usize = 300;

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
    pub(super) fn new(kind: AwsErrorKind, message: impl Into<String>) -> AwsError {
        AwsError {
            kind,
            code: None,
            message: message.into(),
            retryable: matches!(kind, AwsErrorKind::Throttled | AwsErrorKind::Unavailable),
        }
    }

    pub(super) fn config(message: impl Into<String>) -> AwsError {
        AwsError::new(AwsErrorKind::Config, message)
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
pub(crate) struct ErrorBody {
    pub code: Option<String>,
    pub message: Option<String>,
}

/// Reads an AWS error answer: awsJson (`__type`, `message`/`Message`), the
/// query protocol (`<ErrorResponse><Error><Code>…`), or the
/// `x-amzn-ErrorType` header.
pub(crate) fn parse_error_body(header_type: Option<&str>, body: &[u8]) -> ErrorBody {
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
pub(crate) fn map_error(call: &Call<'_>, status: u16, body: &ErrorBody) -> AwsError {
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
