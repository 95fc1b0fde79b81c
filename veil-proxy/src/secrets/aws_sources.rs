//! Reading the salt and keys from AWS: SSM Parameter Store and Secrets
//! Manager, through Veil's SigV4 client (region from the ARN or the
//! configuration).

use super::*;

/// The region and the IAM resource of an SSM parameter name or ARN.
pub(super) fn ssm_target(
    name: &str,
    config: &AwsConfig,
) -> Result<(String, String), aws::AwsError> {
    if let Some(region) = arn_region(name, "ssm") {
        return Ok((region, name.to_string()));
    }
    let region = config.region()?.to_string();
    let path = if name.starts_with('/') {
        name.to_string()
    } else {
        format!("/{name}")
    };
    let arn = format!("arn:aws:ssm:{region}:*:parameter{path}");
    Ok((region, arn))
}

/// The region and the IAM resource of a Secrets Manager name or ARN.
pub(super) fn secret_target(
    id: &str,
    config: &AwsConfig,
) -> Result<(String, String), aws::AwsError> {
    if let Some(region) = arn_region(id, "secretsmanager") {
        return Ok((region, id.to_string()));
    }
    let region = config.region()?.to_string();
    let arn = format!("arn:aws:secretsmanager:{region}:*:secret:{id}-*");
    Ok((region, arn))
}

/// The region of `arn:<partition>:<service>:<region>:…`.
pub(super) fn arn_region(s: &str, service: &str) -> Option<String> {
    let mut parts = s.splitn(6, ':');
    if parts.next()? != "arn" {
        return None;
    }
    let _partition = parts.next()?;
    if parts.next()? != service {
        return None;
    }
    let region = parts.next()?;
    aws::is_valid_region(region).then(|| region.to_string())
}

/// Fetches a secret from SSM or Secrets Manager.
pub(super) async fn read_aws(
    which: Which,
    source: &Source,
    client: &AwsClient,
) -> Result<String, String> {
    let fail = |e: aws::AwsError| {
        let mut m = format!("{} ({source}): {e}", which.name());
        if e.kind == AwsErrorKind::AccessDenied && matches!(source, Source::Ssm(_)) {
            m.push_str(
                "; a SecureString with a customer-managed KMS key also needs `kms:Decrypt` on that key",
            );
        }
        m
    };
    match source {
        Source::Ssm(name) => {
            let (region, arn) = ssm_target(name, client.config()).map_err(fail)?;
            let what = format!("SSM parameter `{name}`");
            let call = Call {
                service: Service::Ssm,
                region: &region,
                action: "GetParameter",
                resource: &arn,
                what: &what,
            };
            let answer = client
                .json_call(
                    &call,
                    "AmazonSSM.GetParameter",
                    &json!({"Name": name, "WithDecryption": true}),
                )
                .await
                .map_err(fail)?;
            let parameter = &answer["Parameter"];
            match parameter["Type"].as_str() {
                Some("SecureString") => {}
                Some(other) => {
                    return Err(format!(
                        "{} ({source}): the parameter is a {other}, not a SecureString: store \
                         secrets encrypted (`aws ssm put-parameter --type SecureString --overwrite`)",
                        which.name()
                    ))
                }
                None => {
                    return Err(format!(
                        "{} ({source}): the GetParameter answer has no parameter type",
                        which.name()
                    ))
                }
            }
            parameter["Value"]
                .as_str()
                .map(|v| trim_line_break(v.to_string()))
                .ok_or_else(|| {
                    format!(
                        "{} ({source}): the GetParameter answer has no value",
                        which.name()
                    )
                })
        }
        Source::SecretsManager(id) => {
            let (region, arn) = secret_target(id, client.config()).map_err(fail)?;
            let what = format!("Secrets Manager secret `{id}`");
            let call = Call {
                service: Service::SecretsManager,
                region: &region,
                action: "GetSecretValue",
                resource: &arn,
                what: &what,
            };
            let answer = client
                .json_call(
                    &call,
                    "secretsmanager.GetSecretValue",
                    &json!({"SecretId": id}),
                )
                .await
                .map_err(fail)?;
            let Some(value) = answer["SecretString"].as_str() else {
                return Err(if answer.get("SecretBinary").is_some() {
                    format!(
                        "{} ({source}): the secret is binary: store it as a SecretString \
                         (`aws secretsmanager put-secret-value --secret-string …`)",
                        which.name()
                    )
                } else {
                    format!(
                        "{} ({source}): the secret has no SecretString",
                        which.name()
                    )
                });
            };
            if matches!(serde_json::from_str::<Value>(value), Ok(Value::Object(_))) {
                return Err(format!(
                    "{} ({source}): the secret holds JSON key/value pairs; store the plain value \
                     (the console's Plaintext tab, or `--secret-string` with the bare value)",
                    which.name()
                ));
            }
            Ok(trim_line_break(value.to_string()))
        }
        Source::Env(_) | Source::File(_) => {
            Err(format!("{} ({source}): not an AWS source", which.name()))
        }
    }
}
