//! Caller authentication: phases 2 and 4 of the pipeline.
//!
//! - The caller **IP allowlist** ([`check_ip`]) applies to every request,
//!   the health check included.
//! - The **mode** ([`CallerAuthMode`]) decides who may call: an OpenID
//!   Connect bearer token verified against one issuer ([`oidc`]), the AWS
//!   IAM caller of a Lambda Function URL ([`caller_arn_matches`]), or —
//!   for development only — anyone.
//!
//! Failures are [`ProxyError`]s of [`Phase::Authenticate`]: `401` for
//! missing or invalid credentials, `403` for a valid caller that is not
//! allowed, `503` when the issuer's keys cannot be had.

pub(crate) mod oidc;

use std::net::IpAddr;

use ipnet::IpNet;

pub use oidc::{CallerAuth, CallerAuthConfig, OidcConfigError};

use crate::error::{ErrorKind, Phase, ProxyError, Refusal};

/// Who the caller is, once authenticated (for the log: never a token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerIdentity {
    /// A verified OIDC token's issuer and subject.
    Oidc { issuer: String, subject: String },
    /// The IAM caller ARN AWS verified for a Lambda Function URL.
    AwsIam { arn: String },
}

/// How callers are authenticated.
pub enum CallerAuthMode {
    /// `Authorization: Bearer <JWT>` verified against an OIDC issuer.
    Oidc(CallerAuth),
    /// AWS Lambda Function URL with `AWS_IAM` auth: AWS verified the
    /// signature; Veil checks the caller ARN when a list is configured.
    AwsIam { allowed_arns: Vec<String> },
    /// No caller authentication (`--allow-unauthenticated`).
    Unauthenticated,
}

impl CallerAuthMode {
    pub fn describe(&self) -> String {
        match self {
            CallerAuthMode::Oidc(a) => a.describe(),
            CallerAuthMode::AwsIam { allowed_arns } if allowed_arns.is_empty() => {
                "aws-iam (Function URL; any principal the resource policy allows)".into()
            }
            CallerAuthMode::AwsIam { allowed_arns } => format!(
                "aws-iam (Function URL; {} allowed caller ARNs)",
                allowed_arns.len()
            ),
            CallerAuthMode::Unauthenticated => {
                "NONE (unauthenticated: anyone who can reach Veil can call it)".into()
            }
        }
    }

    /// Authenticates a caller from its `Authorization` header value and,
    /// on Lambda, the IAM caller ARN AWS verified, and says who it is
    /// (`None` when nothing identifies it). With `--allow-unauthenticated`
    /// every caller passes (development only: anyone who reaches Veil can
    /// read through it).
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        aws_caller_arn: Option<&str>,
    ) -> Result<Option<CallerIdentity>, ProxyError> {
        let aws_caller = || {
            aws_caller_arn.map(|arn| CallerIdentity::AwsIam {
                arn: arn.to_string(),
            })
        };
        match self {
            CallerAuthMode::Unauthenticated => Ok(None),
            CallerAuthMode::AwsIam { allowed_arns } => {
                if allowed_arns.is_empty() {
                    return Ok(aws_caller());
                }
                match aws_caller_arn {
                    Some(arn) if allowed_arns.iter().any(|a| caller_arn_matches(a, arn)) => {
                        Ok(aws_caller())
                    }
                    Some(_) => Err(ProxyError::new(
                        Phase::Authenticate,
                        ErrorKind::Forbidden,
                        "the calling AWS principal is not allowed",
                    )),
                    None => Err(ProxyError::new(
                        Phase::Authenticate,
                        ErrorKind::Unauthenticated,
                        "no AWS caller identity in the request (is the Function URL's auth type AWS_IAM?)",
                    )),
                }
            }
            CallerAuthMode::Oidc(auth) => {
                let caller = auth.verify(authorization).await?;
                Ok(Some(CallerIdentity::Oidc {
                    issuer: auth.issuer().to_string(),
                    subject: caller.subject,
                }))
            }
        }
    }
}

/// The caller IP allowlist: an empty list allows every address; otherwise
/// the peer address must be in one of the ranges.
pub(crate) fn check_ip(allowlist: &[IpNet], remote_ip: Option<IpAddr>) -> Result<(), ProxyError> {
    if !allowlist.is_empty() {
        let ok = remote_ip.is_some_and(|ip| allowlist.iter().any(|n| n.contains(&ip)));
        if !ok {
            return Err(ProxyError::new(
                Phase::Authenticate,
                ErrorKind::Forbidden,
                "the caller's address is not in the allowed ranges",
            )
            .refused_by(Refusal::IpAllowlist));
        }
    }
    Ok(())
}

/// Whether the caller ARN Lambda reports matches an allowed ARN. An IAM
/// role (`arn:aws:iam::A:role/[path/]R`) matches every session of it
/// (`arn:aws:sts::A:assumed-role/R/<session>`), since a role's callers
/// always arrive as sessions; anything else must match exactly.
pub(crate) fn caller_arn_matches(allowed: &str, caller: &str) -> bool {
    if allowed == caller {
        return true;
    }
    let Some((partition_account, role_path)) = allowed
        .strip_prefix("arn:")
        .and_then(|rest| rest.split_once(":iam::"))
    else {
        return false;
    };
    let Some((account, role)) = role_path.split_once(":role/") else {
        return false;
    };
    // The session ARN carries the role's name without its path.
    let name = role.rsplit('/').next().unwrap_or(role);
    let prefix = format!("arn:{partition_account}:sts::{account}:assumed-role/{name}/");
    caller
        .strip_prefix(&prefix)
        .is_some_and(|session| !session.is_empty() && !session.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_match_their_sessions_only() {
        let role = "arn:aws:iam::123456789012:role/vendor-reader";
        assert!(caller_arn_matches(role, role));
        assert!(caller_arn_matches(
            role,
            "arn:aws:sts::123456789012:assumed-role/vendor-reader/session-1"
        ));
        assert!(caller_arn_matches(
            "arn:aws:iam::123456789012:role/team/x/vendor-reader",
            "arn:aws:sts::123456789012:assumed-role/vendor-reader/s"
        ));
        for other in [
            "arn:aws:sts::123456789012:assumed-role/vendor-reader2/s",
            "arn:aws:sts::210987654321:assumed-role/vendor-reader/s",
            "arn:aws:sts::123456789012:assumed-role/vendor-reader/",
            "arn:aws:sts::123456789012:assumed-role/vendor-reader/s/x",
            "arn:aws-cn:sts::123456789012:assumed-role/vendor-reader/s",
            "arn:aws:iam::123456789012:user/vendor-reader",
        ] {
            assert!(!caller_arn_matches(role, other), "{other}");
        }
        let user = "arn:aws:iam::123456789012:user/alice";
        assert!(caller_arn_matches(user, user));
        assert!(!caller_arn_matches(
            user,
            "arn:aws:sts::123456789012:assumed-role/alice/s"
        ));
    }
}
