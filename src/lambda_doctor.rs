//! The Lambda doctor event: the deployed function runs `veil doctor` on
//! itself, with exactly its own environment, secrets and execution role.
//!
//! ```text
//! printf '{"veil":"doctor","mailbox":"analyst.one@contoso.example"}' > doctor-event.json
//! aws lambda invoke --function-name STACK --payload fileb://doctor-event.json doctor.json
//! ```
//!
//! Who can send it: only a direct `lambda:Invoke` by an IAM principal whose
//! own policy allows it (the deployer). The vendor's grant in the resource
//! policy is limited to invocations through the Function URL
//! (`InvokedViaFunctionUrl`), and a Function URL always delivers an HTTP
//! event (`version`, `rawPath`, `requestContext`, …), never this object.
//! The answer is the doctor's `--json` checklist: statuses, the host token's
//! iss / sub / aud and Graph's error codes — never a secret, a token or a
//! value read from the tenant.
//!
//! The Lambda host (`src/lambda.rs`) calls [`respond`] with each raw event
//! before treating it as HTTP: `Some(answer)` is returned as the
//! invocation's result, `None` means the event is not a doctor event
//! (buffered invoke mode only: a streamed response is always HTTP).

use serde_json::{json, Value};

use crate::cli::doctor;

/// The top-level key that marks a Veil control event, and its doctor value.
pub const EVENT_KEY: &str = "veil";
pub const DOCTOR: &str = "doctor";
/// The optional mailbox (UPN or object id) the per-user probes read.
pub const MAILBOX_KEY: &str = "mailbox";

/// What a raw Lambda event is, for the doctor.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    /// Not a doctor event (an HTTP event of the Function URL): not ours.
    NotDoctor,
    /// A doctor event, with its mailbox.
    Doctor { mailbox: Option<String> },
    /// Marked as a Veil event but not a valid doctor event.
    Invalid(String),
}

fn classify(event: &Value) -> Event {
    let Some(obj) = event.as_object() else {
        return Event::NotDoctor;
    };
    // HTTP events (Function URL, API Gateway) are never doctor events.
    if obj.contains_key("requestContext") || !obj.contains_key(EVENT_KEY) {
        return Event::NotDoctor;
    }
    match obj.get(EVENT_KEY).and_then(Value::as_str) {
        Some(DOCTOR) => {}
        _ => {
            return Event::Invalid(format!(
                "unknown Veil event: `{EVENT_KEY}` must be \"{DOCTOR}\""
            ))
        }
    }
    if let Some(k) = obj
        .keys()
        .find(|k| k.as_str() != EVENT_KEY && k.as_str() != MAILBOX_KEY)
    {
        return Event::Invalid(format!(
            "unknown key `{}` in the doctor event; it takes `{EVENT_KEY}` and `{MAILBOX_KEY}` only",
            k.chars().take(40).collect::<String>()
        ));
    }
    match obj.get(MAILBOX_KEY) {
        None | Some(Value::Null) => Event::Doctor { mailbox: None },
        Some(Value::String(m)) => Event::Doctor {
            mailbox: Some(m.clone()),
        },
        Some(_) => Event::Invalid(format!(
            "`{MAILBOX_KEY}` must be a string: a user principal name or object id"
        )),
    }
}

/// Answers a doctor event with the doctor's checklist (`{"ok", "checks"}`),
/// or an invalid Veil event with `{"ok": false, "error"}`; `None` for any
/// other event, which the Lambda host then serves as HTTP.
pub async fn respond(event: &Value) -> Option<Value> {
    match classify(event) {
        Event::NotDoctor => None,
        Event::Invalid(error) => Some(json!({ "ok": false, "error": error })),
        Event::Doctor { mailbox } => {
            tracing::info!(target: "veil::lambda", "doctor event: running the checks");
            let args = doctor::Args {
                connector: None,
                rules: None,
                upstream: None,
                mailbox,
                json: true,
            };
            Some(doctor::checklist_json(&args).await)
        }
    }
}

/// The doctor event `aws lambda invoke` sends, as documented in deploy/README.md.
#[cfg(test)]
fn doctor_event(mailbox: Option<&str>) -> Value {
    let mut m = serde_json::Map::new();
    m.insert(EVENT_KEY.into(), DOCTOR.into());
    if let Some(mb) = mailbox {
        m.insert(MAILBOX_KEY.into(), mb.into());
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_events_are_not_doctor_events() {
        let url_event = json!({
            "version": "2.0", "rawPath": "/healthz", "rawQueryString": "",
            "requestContext": {"http": {"method": "GET", "path": "/healthz"}},
        });
        assert_eq!(classify(&url_event), Event::NotDoctor);
        // Even with a `veil` key smuggled in, an HTTP event stays HTTP.
        let mut smuggled = url_event.clone();
        smuggled["veil"] = "doctor".into();
        assert_eq!(classify(&smuggled), Event::NotDoctor);
        assert_eq!(classify(&json!("doctor")), Event::NotDoctor);
        assert_eq!(classify(&json!({})), Event::NotDoctor);
    }

    #[test]
    fn doctor_events_are_recognized_and_checked() {
        assert_eq!(
            classify(&doctor_event(None)),
            Event::Doctor { mailbox: None }
        );
        assert_eq!(
            classify(&doctor_event(Some("analyst.one@contoso.example"))),
            Event::Doctor {
                mailbox: Some("analyst.one@contoso.example".into())
            }
        );
        for bad in [
            json!({"veil": "serve"}),
            json!({"veil": 1}),
            json!({"veil": "doctor", "connector": "outlook-mail"}),
            json!({"veil": "doctor", "mailbox": 7}),
        ] {
            assert!(
                matches!(classify(&bad), Event::Invalid(_)),
                "{bad} should be refused"
            );
        }
    }

    #[tokio::test]
    async fn invalid_veil_events_get_an_error_and_http_events_none() {
        let answer = respond(&json!({"veil": "doctor", "upstream": "http://x"}))
            .await
            .expect("a Veil event is answered");
        assert_eq!(answer["ok"], false);
        assert!(answer["error"]
            .as_str()
            .unwrap()
            .contains("unknown key `upstream`"));
        assert!(respond(&json!({"version": "2.0", "requestContext": {}}))
            .await
            .is_none());
    }
}
