//! The host identity on AWS through a Cognito identity pool with a
//! developer provider: `GetOpenIdTokenForDeveloperIdentity` (awsJson1.1,
//! `AWSCognitoIdentityService.GetOpenIdTokenForDeveloperIdentity`), signed
//! with the role's credentials. Cognito answers with an OpenID token
//! (`iss` = `https://cognito-identity.amazonaws.com`, `aud` = the pool id,
//! `sub` = the Cognito identity id) for Entra ID to exchange.
//!
//! The region is the pool id's prefix (`eu-west-1:…`), so the pool is
//! always looked up where it lives.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::aws::{AwsClient, AwsConfig, AwsError, Call, Lookup, Service};
use crate::env::{ConfigError, ConfigErrors, Problems};
use crate::token::{BoxFuture, HostIdentity, ProviderConfigError, TokenError};
use veil_engine::Secret;

/// The identity pool id, `<region>:<uuid>`.
pub const ENV_IDENTITY_POOL_ID: &str = "VEIL_COGNITO_IDENTITY_POOL_ID";
/// The pool's developer provider name (as configured on the pool).
pub const ENV_DEVELOPER_PROVIDER: &str = "VEIL_COGNITO_DEVELOPER_PROVIDER";
/// The developer user identifier Veil logs in as (e.g. `veil-outlook-mail`).
pub const ENV_LOGIN: &str = "VEIL_COGNITO_LOGIN";
/// Optional: the Cognito identity id, when it is known in advance.
pub const ENV_IDENTITY_ID: &str = "VEIL_COGNITO_IDENTITY_ID";

const TARGET: &str = "AWSCognitoIdentityService.GetOpenIdTokenForDeveloperIdentity";
const ACTION: &str = "GetOpenIdTokenForDeveloperIdentity";

/// Settings of the Cognito provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CognitoSettings {
    pub identity_pool_id: String,
    /// The region part of the pool id.
    pub region: String,
    pub developer_provider: String,
    pub login: String,
    pub identity_id: Option<String>,
}

fn required(env: Lookup<'_>, name: &str, what: &str) -> Result<String, ConfigError> {
    env.get(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ConfigError::missing(name, format!("{what} (aws-cognito)")))
}

/// Checks the API model's bounds on a string: length and allowed characters.
fn check(
    name: &str,
    value: &str,
    max: usize,
    ok: impl Fn(char) -> bool,
) -> Result<(), ConfigError> {
    if value.len() > max || !value.chars().all(ok) {
        return Err(ConfigError::invalid(
            name,
            format!("`{value}` is not valid (at most {max} characters of the allowed set)"),
        ));
    }
    Ok(())
}

impl CognitoSettings {
    /// Reads and validates `VEIL_COGNITO_*`, reporting every problem.
    pub fn from_lookup(env: Lookup<'_>) -> Result<CognitoSettings, ConfigErrors> {
        let mut problems = Problems::new();
        let identity_pool_id = problems.check(required(
            env,
            ENV_IDENTITY_POOL_ID,
            "the identity pool id (`<region>:<uuid>`)",
        ));
        let region = identity_pool_id.as_deref().and_then(|pool| {
            problems.check(match pool.split_once(':') {
                Some((region, id))
                    if crate::aws::is_valid_region(region)
                        && !id.is_empty()
                        && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') =>
                {
                    Ok(region.to_string())
                }
                _ => Err(ConfigError::invalid(
                    ENV_IDENTITY_POOL_ID,
                    format!(
                        "`{pool}` is not an identity pool id \
                         (`<region>:<uuid>`, as the Cognito console shows it)"
                    ),
                )),
            })
        });
        let developer_provider = problems
            .check(required(
                env,
                ENV_DEVELOPER_PROVIDER,
                "the developer provider name of the identity pool",
            ))
            .filter(|provider| {
                problems
                    .check(check(ENV_DEVELOPER_PROVIDER, provider, 128, |c| {
                        c.is_alphanumeric() || "_.-".contains(c)
                    }))
                    .is_some()
            });
        let login = problems
            .check(required(
                env,
                ENV_LOGIN,
                "the developer user identifier Veil logs in as",
            ))
            .filter(|login| {
                problems
                    .check(check(ENV_LOGIN, login, 1024, |c| !c.is_control()))
                    .is_some()
            });
        let identity_id = env.get(ENV_IDENTITY_ID).map(|v| v.trim().to_string());
        if let Some(id) = &identity_id {
            problems.check(check(ENV_IDENTITY_ID, id, 55, |c| {
                c.is_ascii_alphanumeric() || c == '-' || c == ':'
            }));
        }
        problems.finish(|| CognitoSettings {
            identity_pool_id: identity_pool_id.unwrap_or_default(),
            region: region.unwrap_or_default(),
            developer_provider: developer_provider.unwrap_or_default(),
            login: login.unwrap_or_default(),
            identity_id,
        })
    }

    /// The request body.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "IdentityPoolId": self.identity_pool_id,
            "Logins": { self.developer_provider.clone(): self.login },
        });
        if let Some(id) = &self.identity_id {
            body["IdentityId"] = json!(id);
        }
        body
    }

    /// The IAM resource of the pool.
    pub fn pool_arn(&self) -> String {
        format!(
            "arn:aws:cognito-identity:{}:*:identitypool/{}",
            self.region, self.identity_pool_id
        )
    }
}

/// Host tokens from a Cognito identity pool's developer provider.
#[derive(Debug)]
pub struct AwsCognito {
    client: AwsClient,
    settings: CognitoSettings,
}

/// From the process environment.
pub fn from_env(http: reqwest::Client) -> Result<Arc<dyn HostIdentity>, ProviderConfigError> {
    Ok(Arc::new(AwsCognito::from_lookup(
        http,
        &crate::env::ProcessEnv,
    )?))
}

impl AwsCognito {
    /// Reads credentials, endpoint and `VEIL_COGNITO_*`.
    pub fn from_lookup(
        http: reqwest::Client,
        env: Lookup<'_>,
    ) -> Result<AwsCognito, ProviderConfigError> {
        // Every problem at once: the settings' and the AWS client's.
        let settings = CognitoSettings::from_lookup(env).map_err(ProviderConfigError::Settings);
        let config = AwsConfig::from_lookup(env).map_err(|cause| ProviderConfigError::Aws {
            provider: "aws-cognito",
            cause,
        });
        let (settings, config) =
            crate::env::both(settings, config).map_err(ProviderConfigError::Several)?;
        Ok(AwsCognito {
            client: AwsClient::new(http, config),
            settings,
        })
    }

    pub fn settings(&self) -> &CognitoSettings {
        &self.settings
    }

    async fn get(&self) -> Result<Secret, TokenError> {
        let s = &self.settings;
        let arn = s.pool_arn();
        let what = format!("Cognito identity pool `{}`", s.identity_pool_id);
        let call = Call {
            service: Service::CognitoIdentity,
            region: &s.region,
            action: ACTION,
            resource: &arn,
            what: &what,
        };
        let answer = self
            .client
            .json_call(&call, TARGET, &s.body())
            .await
            .map_err(|e| self.explain(e))?;
        parse_response(&answer)
    }

    fn explain(&self, e: AwsError) -> TokenError {
        let s = &self.settings;
        let message = match e.code.as_deref() {
            Some("ResourceNotFoundException") => format!(
                "aws-cognito: the identity pool `{}` was not found in region {}: check \
                 {ENV_IDENTITY_POOL_ID} (the part before ':' is the pool's region) ({e})",
                s.identity_pool_id, s.region
            ),
            Some("NotAuthorizedException") => format!(
                "aws-cognito: Cognito refused the developer login: the identity pool's developer \
                 provider name must be exactly `{}` ({ENV_DEVELOPER_PROVIDER}), and the role must \
                 be allowed `cognito-identity:{ACTION}` on `{}` ({e})",
                s.developer_provider,
                s.pool_arn()
            ),
            _ => format!("aws-cognito: {e}"),
        };
        TokenError {
            message,
            retryable: e.retryable,
        }
    }
}

/// Reads `Token` out of the answer.
pub fn parse_response(answer: &Value) -> Result<Secret, TokenError> {
    match answer.get("Token").and_then(Value::as_str) {
        Some(t) if !t.trim().is_empty() => Ok(Secret::from(t.trim())),
        _ => Err(TokenError {
            message: format!("aws-cognito: the {ACTION} answer is unusable: it holds no Token"),
            retryable: false,
        }),
    }
}

impl HostIdentity for AwsCognito {
    fn kind(&self) -> &'static str {
        "aws-cognito"
    }

    fn fetch(&self) -> BoxFuture<'_, Result<Secret, TokenError>> {
        Box::pin(self.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws;
    use crate::env::lookup;

    const POOL: &str = "eu-west-1:0f7d4c9a-5b1e-4a7f-9c3d-2e8b6a1f4d0c";

    fn full() -> Vec<(&'static str, &'static str)> {
        vec![
            (ENV_IDENTITY_POOL_ID, POOL),
            (ENV_DEVELOPER_PROVIDER, "login.veil.example"),
            (ENV_LOGIN, "veil-outlook-mail"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ]
    }

    #[test]
    fn settings_and_body() {
        let s = CognitoSettings::from_lookup(&lookup(&full())).unwrap();
        assert_eq!(s.region, "eu-west-1");
        assert_eq!(
            s.body(),
            json!({"IdentityPoolId": POOL, "Logins": {"login.veil.example": "veil-outlook-mail"}})
        );
        let mut pairs = full();
        pairs.push((
            ENV_IDENTITY_ID,
            "eu-west-1:11111111-2222-3333-4444-555555555555",
        ));
        let s = CognitoSettings::from_lookup(&lookup(&pairs)).unwrap();
        assert_eq!(
            s.body()["IdentityId"],
            "eu-west-1:11111111-2222-3333-4444-555555555555"
        );
        assert_eq!(
            s.pool_arn(),
            format!("arn:aws:cognito-identity:eu-west-1:*:identitypool/{POOL}")
        );
    }

    #[test]
    fn missing_and_invalid_settings_name_the_variable() {
        for missing in [ENV_IDENTITY_POOL_ID, ENV_DEVELOPER_PROVIDER, ENV_LOGIN] {
            let pairs: Vec<_> = full().into_iter().filter(|(k, _)| *k != missing).collect();
            let e = CognitoSettings::from_lookup(&lookup(&pairs))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(&format!("{missing} is not set")), "{e}");
        }
        let mut pairs = full();
        pairs[0] = (ENV_IDENTITY_POOL_ID, "not-a-pool");
        let e = CognitoSettings::from_lookup(&lookup(&pairs))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("VEIL_COGNITO_IDENTITY_POOL_ID: `not-a-pool` is not an identity pool id"),
            "{e}"
        );
        let mut pairs = full();
        pairs[1] = (ENV_DEVELOPER_PROVIDER, "bad provider!");
        let e = CognitoSettings::from_lookup(&lookup(&pairs))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("VEIL_COGNITO_DEVELOPER_PROVIDER"), "{e}");
        // Every problem at once, each naming its variable.
        let e = CognitoSettings::from_lookup(&lookup(&[(ENV_IDENTITY_ID, "bad id!")])).unwrap_err();
        let settings: Vec<&str> = e.problems().iter().map(|p| p.setting.as_str()).collect();
        assert_eq!(
            settings,
            [
                ENV_IDENTITY_POOL_ID,
                ENV_DEVELOPER_PROVIDER,
                ENV_LOGIN,
                ENV_IDENTITY_ID
            ]
        );
        let pairs: Vec<_> = full()
            .into_iter()
            .filter(|(k, _)| !k.starts_with("AWS_"))
            .collect();
        let e = AwsCognito::from_lookup(reqwest::Client::new(), &lookup(&pairs))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("aws-cognito: no AWS credentials in the environment"),
            "{e}"
        );
    }

    #[test]
    fn pool_not_found_and_refusals_are_explained() {
        let c = AwsCognito::from_lookup(reqwest::Client::new(), &lookup(&full())).unwrap();
        assert_eq!(c.kind(), "aws-cognito");
        let arn = c.settings.pool_arn();
        let call = Call {
            service: Service::CognitoIdentity,
            region: "eu-west-1",
            action: ACTION,
            resource: &arn,
            what: "Cognito identity pool",
        };
        let body = aws::parse_error_body(
            None,
            br#"{"__type":"ResourceNotFoundException","message":"IdentityPoolId 'x' not found."}"#,
        );
        let e = c.explain(aws::map_error(&call, 400, &body));
        assert!(
            e.message.starts_with(&format!(
                "aws-cognito: the identity pool `{POOL}` was not found in region eu-west-1: check VEIL_COGNITO_IDENTITY_POOL_ID"
            )),
            "{e}"
        );
        let body = aws::parse_error_body(Some("NotAuthorizedException"), b"{}");
        let e = c.explain(aws::map_error(&call, 400, &body));
        assert!(
            e.message.contains("must be exactly `login.veil.example`"),
            "{e}"
        );
        let body = aws::ErrorBody {
            code: Some("AccessDeniedException".into()),
            message: None,
        };
        let e = c.explain(aws::map_error(&call, 400, &body));
        assert!(
            e.message.contains(&format!(
                "allow the action `cognito-identity:GetOpenIdTokenForDeveloperIdentity` on the resource `{arn}`"
            )),
            "{e}"
        );
    }

    #[test]
    fn response_is_parsed() {
        assert_eq!(
            parse_response(&json!({"IdentityId": "x", "Token": "a.b.c"}))
                .unwrap()
                .expose(),
            b"a.b.c"
        );
        let e = parse_response(&json!({"IdentityId": "x"})).unwrap_err();
        assert!(e.message.contains("holds no Token"), "{e}");
    }
}
