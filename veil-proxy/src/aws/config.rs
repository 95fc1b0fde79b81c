//! Credentials, region and endpoints, read from the environment.

use veil_engine::Secret;

use super::{AwsError, AwsErrorKind, Lookup, Service};

/// The access key id of the AWS credentials (set by Lambda from the execution role).
pub(crate) const ENV_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
/// The secret access key of the AWS credentials (set by Lambda).
pub(crate) const ENV_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// The session token of temporary AWS credentials (set by Lambda).
pub(crate) const ENV_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
/// The AWS region (set by Lambda); takes precedence over `AWS_DEFAULT_REGION`.
pub(crate) const ENV_REGION: &str = "AWS_REGION";
/// The AWS region when `AWS_REGION` is not set.
pub(crate) const ENV_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
/// An endpoint URL for every AWS service (after the per-service variables).
pub(crate) const ENV_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
/// The endpoint URL of STS.
pub(crate) const ENV_ENDPOINT_URL_STS: &str = "AWS_ENDPOINT_URL_STS";
/// The endpoint URL of SSM (Parameter Store).
pub(crate) const ENV_ENDPOINT_URL_SSM: &str = "AWS_ENDPOINT_URL_SSM";
/// The endpoint URL of Secrets Manager.
pub(crate) const ENV_ENDPOINT_URL_SECRETS_MANAGER: &str = "AWS_ENDPOINT_URL_SECRETS_MANAGER";
/// The endpoint URL of Cognito identity pools.
pub(crate) const ENV_ENDPOINT_URL_COGNITO_IDENTITY: &str = "AWS_ENDPOINT_URL_COGNITO_IDENTITY";

/// AWS credentials from the environment.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub(super) access_key_id: String,
    pub(super) secret_access_key: Secret,
    pub(super) session_token: Option<Secret>,
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
    pub(crate) fn from_lookup(env: Lookup<'_>) -> Result<Credentials, AwsError> {
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
}

/// Credentials, region and endpoint overrides, read once.
#[derive(Clone, Debug)]
pub struct AwsConfig {
    pub(super) credentials: Credentials,
    region: Option<String>,
    endpoints: Vec<(Service, String)>,
    endpoint_all: Option<String>,
}

/// Whether a string can be an AWS region name (it goes into a host name).
pub(crate) fn is_valid_region(region: &str) -> bool {
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
