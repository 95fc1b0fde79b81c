//! The host identity on AWS: `sts:GetWebIdentityToken` (IAM outbound
//! identity federation), which returns a JWT signed by AWS STS for the role
//! Veil runs as (`sub` = the role ARN, `iss` =
//! `https://<id>.tokens.sts.global.api.aws`), for Entra ID to exchange.
//!
//! The call goes to the **regional** STS endpoint
//! (`https://sts.<region>.amazonaws.com`): the API does not exist on the
//! global endpoint. Wire format (from the STS API model, query protocol,
//! version 2011-06-15): `Action=GetWebIdentityToken`, `Audience.member.1`,
//! `SigningAlgorithm` (`RS256` | `ES384`), `DurationSeconds` (60–3600);
//! answer `GetWebIdentityTokenResponse/GetWebIdentityTokenResult/WebIdentityToken`.

use std::sync::Arc;

use crate::aws::{self, AwsClient, AwsConfig, AwsErrorKind, Call, Lookup, Service};
use crate::env::{ConfigError, ConfigErrors, Problems};
use crate::token::{BoxFuture, HostIdentity, ProviderConfigError, TokenError};
use veil_engine::Secret;

/// The `aud` of the token (default `api://AzureADTokenExchange`, what Entra
/// ID federated credentials expect).
pub const ENV_AUDIENCE: &str = "VEIL_AWS_STS_AUDIENCE";
/// `RS256` (default) or `ES384`.
pub const ENV_SIGNING_ALGORITHM: &str = "VEIL_AWS_STS_SIGNING_ALGORITHM";
/// The token lifetime in seconds (default 300; 60 to 3600).
pub const ENV_DURATION_SECS: &str = "VEIL_AWS_STS_DURATION_SECS";

/// The audience Entra ID expects from federated credentials.
pub const DEFAULT_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The default token lifetime (the API's default too).
pub const DEFAULT_DURATION_SECS: u32 = 300;
/// The API model's range of `DurationSeconds`.
pub const MIN_DURATION_SECS: u32 = 60;
pub const MAX_DURATION_SECS: u32 = 3600;
/// The API model's bounds of one audience string.
const MAX_AUDIENCE_LEN: usize = 1000;

/// The STS API version of the query protocol.
pub const STS_VERSION: &str = "2011-06-15";
const ACTION: &str = "GetWebIdentityToken";

/// The JWT signing algorithm STS uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SigningAlgorithm {
    #[default]
    Rs256,
    Es384,
}

impl SigningAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::Rs256 => "RS256",
            SigningAlgorithm::Es384 => "ES384",
        }
    }
}

impl std::str::FromStr for SigningAlgorithm {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s.trim() {
            "RS256" => Ok(SigningAlgorithm::Rs256),
            "ES384" => Ok(SigningAlgorithm::Es384),
            other => Err(ConfigError::invalid(
                ENV_SIGNING_ALGORITHM,
                format!("`{other}` is not supported: use RS256 or ES384"),
            )),
        }
    }
}

/// Settings of the STS provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StsSettings {
    pub audience: String,
    pub algorithm: SigningAlgorithm,
    pub duration_secs: u32,
}

impl StsSettings {
    /// Reads and validates `VEIL_AWS_STS_*`, reporting every problem.
    pub fn from_lookup(env: Lookup<'_>) -> Result<StsSettings, ConfigErrors> {
        let mut problems = Problems::new();
        let audience = env
            .get(ENV_AUDIENCE)
            .map(|a| a.trim().to_string())
            .unwrap_or_else(|| DEFAULT_AUDIENCE.to_string());
        if audience.is_empty() || audience.len() > MAX_AUDIENCE_LEN {
            problems.add(ConfigError::invalid(
                ENV_AUDIENCE,
                format!("the audience must be 1 to {MAX_AUDIENCE_LEN} characters"),
            ));
        }
        let algorithm = match env.get(ENV_SIGNING_ALGORITHM) {
            None => Some(SigningAlgorithm::default()),
            Some(a) => problems.check(a.parse()),
        };
        let duration_secs = problems.check(match env.get(ENV_DURATION_SECS) {
            None => Ok(DEFAULT_DURATION_SECS),
            Some(d) => {
                let range = format!("{MIN_DURATION_SECS} to {MAX_DURATION_SECS} seconds");
                match d.trim().parse::<u32>() {
                    Err(_) => Err(ConfigError::invalid(
                        ENV_DURATION_SECS,
                        format!("`{d}` is not a number of seconds ({range})"),
                    )),
                    Ok(n) if !(MIN_DURATION_SECS..=MAX_DURATION_SECS).contains(&n) => {
                        Err(ConfigError::invalid(
                            ENV_DURATION_SECS,
                            format!("{n} is out of range ({range})"),
                        ))
                    }
                    Ok(n) => Ok(n),
                }
            }
        });
        problems.finish(|| StsSettings {
            audience,
            algorithm: algorithm.unwrap_or_default(),
            duration_secs: duration_secs.unwrap_or(DEFAULT_DURATION_SECS),
        })
    }

    /// The query parameters of `GetWebIdentityToken` (besides `Action` and `Version`).
    pub fn params(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Audience.member.1", self.audience.clone()),
            ("SigningAlgorithm", self.algorithm.as_str().to_string()),
            ("DurationSeconds", self.duration_secs.to_string()),
        ]
    }
}

/// Host tokens from `sts:GetWebIdentityToken`.
#[derive(Debug)]
pub struct AwsSts {
    client: AwsClient,
    region: String,
    settings: StsSettings,
}

/// From the process environment.
pub fn from_env(http: reqwest::Client) -> Result<Arc<dyn HostIdentity>, ProviderConfigError> {
    Ok(Arc::new(AwsSts::from_lookup(
        http,
        &crate::env::ProcessEnv,
    )?))
}

impl AwsSts {
    /// Reads credentials, region, endpoint and `VEIL_AWS_STS_*`.
    pub fn from_lookup(
        http: reqwest::Client,
        env: Lookup<'_>,
    ) -> Result<AwsSts, ProviderConfigError> {
        // Every problem at once: the settings' and the AWS client's.
        let settings = StsSettings::from_lookup(env).map_err(ProviderConfigError::Settings);
        let config = AwsConfig::from_lookup(env)
            .map_err(|cause| ProviderConfigError::Aws {
                provider: "aws-sts",
                cause,
            })
            .and_then(|config| {
                let region = config
                    .region()
                    .map_err(ProviderConfigError::StsRegion)?
                    .to_string();
                Ok((config, region))
            });
        let (settings, (config, region)) =
            crate::env::both(settings, config).map_err(ProviderConfigError::Several)?;
        Ok(AwsSts {
            client: AwsClient::new(http, config),
            region,
            settings,
        })
    }

    pub fn settings(&self) -> &StsSettings {
        &self.settings
    }

    /// The endpoint the call goes to.
    pub fn endpoint(&self) -> String {
        self.client.config().endpoint(Service::Sts, &self.region)
    }

    async fn get(&self) -> Result<Secret, TokenError> {
        let call = Call {
            service: Service::Sts,
            region: &self.region,
            action: ACTION,
            resource: "*",
            what: "a web identity token",
        };
        let xml = self
            .client
            .query_call(&call, STS_VERSION, &self.settings.params())
            .await
            .map_err(|e| self.explain(e))?;
        parse_response(&xml)
    }

    fn explain(&self, e: aws::AwsError) -> TokenError {
        let message = match e.code.as_deref() {
            Some("OutboundWebIdentityFederationDisabledException") => format!(
                "aws-sts: outbound identity federation is not enabled in this AWS account: enable \
                 it once per account (`aws iam enable-outbound-web-identity-federation`), then \
                 register the issuer it shows in the Entra app's federated credential ({e})"
            ),
            Some("SessionDurationEscalationException") => format!(
                "aws-sts: a token of {} seconds would outlive the role session: lower \
                 {ENV_DURATION_SECS} ({e})",
                self.settings.duration_secs
            ),
            _ if e.kind == AwsErrorKind::NotFound || e.code.as_deref() == Some("InvalidAction") => {
                format!(
                    "aws-sts: {} does not offer GetWebIdentityToken; it exists only on the \
                     regional STS endpoints (https://sts.<region>.amazonaws.com) ({e})",
                    self.endpoint()
                )
            }
            _ => format!("aws-sts: {e}"),
        };
        TokenError {
            message,
            retryable: e.retryable,
        }
    }
}

/// Reads the token out of a `GetWebIdentityTokenResponse`.
pub fn parse_response(xml: &str) -> Result<Secret, TokenError> {
    let invalid = |why: String| TokenError {
        message: format!("aws-sts: the GetWebIdentityToken answer is unusable: {why}"),
        retryable: false,
    };
    let token = aws::xml_text(
        xml,
        &[
            "GetWebIdentityTokenResponse",
            "GetWebIdentityTokenResult",
            "WebIdentityToken",
        ],
    )
    .map_err(|e| invalid(e.to_string()))?
    .filter(|t| !t.is_empty())
    .ok_or_else(|| invalid("it holds no WebIdentityToken".into()))?;
    Ok(Secret::from(token.as_str()))
}

impl HostIdentity for AwsSts {
    fn kind(&self) -> &'static str {
        "aws-sts"
    }

    fn fetch(&self) -> BoxFuture<'_, Result<Secret, TokenError>> {
        Box::pin(self.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::lookup;

    #[test]
    fn defaults_and_wire_parameters() {
        let s = StsSettings::from_lookup(&lookup(&[])).unwrap();
        assert_eq!(
            s.params(),
            vec![
                (
                    "Audience.member.1",
                    "api://AzureADTokenExchange".to_string()
                ),
                ("SigningAlgorithm", "RS256".to_string()),
                ("DurationSeconds", "300".to_string()),
            ]
        );
        let s = StsSettings::from_lookup(&lookup(&[
            (ENV_SIGNING_ALGORITHM, "ES384"),
            (ENV_DURATION_SECS, "3600"),
            (ENV_AUDIENCE, "api://other"),
        ]))
        .unwrap();
        assert_eq!(s.algorithm, SigningAlgorithm::Es384);
        assert_eq!(s.duration_secs, 3600);
        assert_eq!(s.audience, "api://other");
    }

    #[test]
    fn invalid_settings_name_the_variable() {
        for (pairs, want) in [
            (
                vec![(ENV_SIGNING_ALGORITHM, "HS256")],
                "VEIL_AWS_STS_SIGNING_ALGORITHM: `HS256` is not supported: use RS256 or ES384",
            ),
            (
                vec![(ENV_SIGNING_ALGORITHM, "rs256")],
                "VEIL_AWS_STS_SIGNING_ALGORITHM",
            ),
            (
                vec![(ENV_DURATION_SECS, "59")],
                "VEIL_AWS_STS_DURATION_SECS: 59 is out of range (60 to 3600 seconds)",
            ),
            (
                vec![(ENV_DURATION_SECS, "3601")],
                "VEIL_AWS_STS_DURATION_SECS: 3601 is out of range",
            ),
            (
                vec![(ENV_DURATION_SECS, "5m")],
                "VEIL_AWS_STS_DURATION_SECS: `5m` is not a number",
            ),
        ] {
            let e = StsSettings::from_lookup(&lookup(&pairs))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(want), "{e}");
        }
        let long = "a".repeat(1001);
        let e = StsSettings::from_lookup(&lookup(&[(ENV_AUDIENCE, &long)]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("VEIL_AWS_STS_AUDIENCE"), "{e}");
        // Every problem at once, each naming its variable.
        let e = StsSettings::from_lookup(&lookup(&[
            (ENV_AUDIENCE, &long),
            (ENV_SIGNING_ALGORITHM, "HS256"),
            (ENV_DURATION_SECS, "5m"),
        ]))
        .unwrap_err();
        let settings: Vec<&str> = e.problems().iter().map(|p| p.setting.as_str()).collect();
        assert_eq!(
            settings,
            [ENV_AUDIENCE, ENV_SIGNING_ALGORITHM, ENV_DURATION_SECS]
        );
    }

    #[test]
    fn from_lookup_needs_credentials_and_region() {
        let http = reqwest::Client::new();
        let e = AwsSts::from_lookup(http.clone(), &lookup(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no AWS credentials in the environment"), "{e}");
        // A bad setting and missing credentials: both, one a line.
        let e = AwsSts::from_lookup(http.clone(), &lookup(&[(ENV_DURATION_SECS, "5m")]))
            .unwrap_err()
            .to_string();
        let lines: Vec<&str> = e.lines().collect();
        assert!(
            lines.len() == 2
                && lines[0].starts_with("VEIL_AWS_STS_DURATION_SECS: `5m`")
                && lines[1].starts_with("aws-sts: no AWS credentials"),
            "{e}"
        );
        let creds = [
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ];
        let e = AwsSts::from_lookup(http.clone(), &lookup(&creds))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no AWS region: set AWS_REGION"), "{e}");
        let mut pairs = creds.to_vec();
        pairs.push(("AWS_REGION", "eu-west-1"));
        let sts = AwsSts::from_lookup(http, &lookup(&pairs)).unwrap();
        assert_eq!(sts.endpoint(), "https://sts.eu-west-1.amazonaws.com");
        assert_eq!(sts.kind(), "aws-sts");
    }

    #[test]
    fn response_is_parsed() {
        let xml = r#"<GetWebIdentityTokenResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetWebIdentityTokenResult>
    <WebIdentityToken>eyJh.eyJi.c2ln</WebIdentityToken>
    <Expiration>2026-01-01T00:05:00Z</Expiration>
  </GetWebIdentityTokenResult>
  <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>
</GetWebIdentityTokenResponse>"#;
        assert_eq!(parse_response(xml).unwrap().expose(), b"eyJh.eyJi.c2ln");
        let empty = xml.replace("eyJh.eyJi.c2ln", "");
        let e = parse_response(&empty).unwrap_err();
        assert!(e.message.contains("holds no WebIdentityToken"), "{e}");
        assert!(parse_response("<html>")
            .unwrap_err()
            .message
            .contains("not XML"));
    }

    #[test]
    fn federation_disabled_is_explained() {
        let http = reqwest::Client::new();
        let pairs = [
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_REGION", "eu-west-1"),
        ];
        let sts = AwsSts::from_lookup(http, &lookup(&pairs)).unwrap();
        let call = Call {
            service: Service::Sts,
            region: "eu-west-1",
            action: ACTION,
            resource: "*",
            what: "a web identity token",
        };
        let body = aws::parse_error_body(
            None,
            br#"<ErrorResponse><Error><Type>Sender</Type><Code>OutboundWebIdentityFederationDisabledException</Code><Message>disabled</Message></Error></ErrorResponse>"#,
        );
        let e = sts.explain(aws::map_error(&call, 403, &body));
        assert!(
            e.message
                .contains("enable-outbound-web-identity-federation"),
            "{e}"
        );
        let body = aws::ErrorBody {
            code: Some("AccessDenied".into()),
            message: None,
        };
        let e = sts.explain(aws::map_error(&call, 403, &body));
        assert!(
            e.message
                .contains("allow the action `sts:GetWebIdentityToken`"),
            "{e}"
        );
    }
}
