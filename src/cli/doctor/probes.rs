//! Step 6 of `veil doctor`: one read per endpoint family, straight to Graph
//! with the token Veil obtained, and what each answer means for the
//! administrator. Only statuses and Graph's error codes are shown — never a
//! value read from the tenant.

use std::time::{Duration, SystemTime};

use serde_json::Value;

/// Advice for a 403 on a mailbox: how Exchange scoping is checked.
pub const MAILBOX_SCOPING: &str = "Exchange Online may be limiting which mailboxes this app can read. \
With RBAC for Applications: `Test-ServicePrincipalAuthorization -Identity <app id> -Resource <mailbox>` \
shows whether the mailbox is in the app's management scope (fix with `New-ManagementRoleAssignment`). \
With the legacy Application Access Policy: `Test-ApplicationAccessPolicy -Identity <mailbox> -AppId <app id>` \
(fix the mail-enabled security group of `New-ApplicationAccessPolicy`). \
Changes take up to 30 minutes to apply. `veil setup` prints the full runbook.";

/// Advice for Graph's authorization errors that mean no consent.
pub const CONSENT: &str = "The app has no (or not this) application permission. \
The Microsoft 365 administrator grants admin consent with the URL `veil setup` prints; \
a token issued before consent carries no roles — Veil evicts it, the next request gets a fresh one.";

/// Advice for Teams online meetings refused by policy.
pub const TEAMS_MEETINGS: &str =
    "Reading online meetings needs a Teams application access policy: \
`New-CsApplicationAccessPolicy -Identity Veil -AppIds <app id>` then \
`Grant-CsApplicationAccessPolicy -PolicyName Veil -Global` (up to 30 minutes to apply).";

/// What a probe needs from an earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Nothing,
    /// The id of the first user the directory probe listed.
    UserId,
}

/// One probe: a Graph GET and how to read a refusal.
#[derive(Debug, Clone)]
pub struct Probe {
    pub name: &'static str,
    /// The path and query, `{user}` standing for the first user's id.
    pub target: String,
    pub needs: Needs,
    /// Advice when Graph answers 403 (besides the consent errors).
    pub forbidden_advice: &'static str,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The probes of a connector, in order.
pub fn for_connector(connector: &str, now: SystemTime) -> Vec<Probe> {
    let users = Probe {
        name: "list one user",
        target: "/v1.0/users?$top=1&$select=id".into(),
        needs: Needs::Nothing,
        forbidden_advice: CONSENT,
    };
    let mut probes = vec![users];
    match connector {
        "entra-id" => probes.push(Probe {
            name: "list one group",
            target: "/v1.0/groups?$top=1&$select=id".into(),
            needs: Needs::Nothing,
            forbidden_advice: CONSENT,
        }),
        "outlook-mail" => probes.push(Probe {
            name: "one user's sent items",
            target: "/v1.0/users/{user}/mailFolders/SentItems/messages?$top=1&$select=id".into(),
            needs: Needs::UserId,
            forbidden_advice: MAILBOX_SCOPING,
        }),
        "outlook-cal" => {
            let end = now;
            let start = now - Duration::from_secs(7 * 86_400);
            probes.push(Probe {
                name: "one user's calendar view",
                target: format!(
                    "/v1.0/users/{{user}}/calendar/calendarView?startDateTime={}&endDateTime={}&$top=1&$select=id",
                    rfc3339(start),
                    rfc3339(end)
                ),
                needs: Needs::UserId,
                forbidden_advice: MAILBOX_SCOPING,
            });
        }
        "msft-teams" => {
            probes.push(Probe {
                name: "list one team",
                target: "/v1.0/teams?$top=1&$select=id".into(),
                needs: Needs::Nothing,
                forbidden_advice: CONSENT,
            });
            probes.push(Probe {
                name: "one user's chats",
                target: "/v1.0/users/{user}/chats?$top=1".into(),
                needs: Needs::UserId,
                forbidden_advice: TEAMS_MEETINGS,
            });
        }
        _ => {}
    }
    probes
}

/// The id of the first object of a Graph list answer.
pub fn first_id(body: &Value) -> Option<String> {
    body.get("value")?
        .get(0)?
        .get("id")?
        .as_str()
        .map(str::to_string)
}

/// Graph's error code in an error answer, when it looks like one.
pub fn graph_error_code(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let code = v.get("error")?.get("code")?.as_str()?;
    code.chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        .then(|| code.to_string())
}

/// What an answer means, as `(ok, summary, advice)`.
pub fn judge(probe: &Probe, status: u16, code: Option<&str>) -> (bool, String, Option<String>) {
    let code_text = code.map(|c| format!(" {c}")).unwrap_or_default();
    match status {
        200..=299 => (true, format!("Graph answered {status}"), None),
        401 => (
            false,
            format!("Graph refused the token: {status}{code_text}"),
            Some("The token was not accepted for Graph: check that VEIL_GRAPH_SCOPE is https://graph.microsoft.com/.default and the tenant is right.".into()),
        ),
        403 if matches!(code, Some("Authorization_RequestDenied" | "Authorization_IdentityNotFound")) => (
            false,
            format!("Graph refused: {status}{code_text}"),
            Some(CONSENT.into()),
        ),
        403 => (
            false,
            format!("Graph refused: {status}{code_text}"),
            Some(probe.forbidden_advice.into()),
        ),
        404 => (
            false,
            format!("Graph answered {status}{code_text}"),
            Some("The user has no mailbox (or no licence for it): the first user listed may be a guest or an unlicensed account; this alone is harmless.".into()),
        ),
        429 | 503 => (
            false,
            format!("Graph is throttling: {status}{code_text}"),
            Some("Try again in a minute; if it persists, lower the vendor's request rate.".into()),
        ),
        _ => (false, format!("Graph answered {status}{code_text}"), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn every_connector_has_a_user_probe_and_its_own() {
        for c in ["entra-id", "outlook-mail", "outlook-cal", "msft-teams"] {
            let p = for_connector(c, SystemTime::now());
            assert_eq!(p[0].name, "list one user");
            assert!(p.len() >= 2, "{c}");
        }
    }

    #[test]
    fn a_mailbox_403_points_to_scoping_and_a_consent_403_to_consent() {
        let p = &for_connector("outlook-mail", SystemTime::now())[1];
        let (ok, _, advice) = judge(p, 403, Some("ErrorAccessDenied"));
        assert!(!ok);
        assert!(advice
            .unwrap()
            .contains("Test-ServicePrincipalAuthorization"));
        let (_, _, advice) = judge(p, 403, Some("Authorization_RequestDenied"));
        assert!(advice.unwrap().contains("admin consent"));
    }

    #[test]
    fn error_codes_are_read_only_when_safe() {
        assert_eq!(
            graph_error_code(br#"{"error":{"code":"ErrorAccessDenied","message":"x"}}"#).as_deref(),
            Some("ErrorAccessDenied")
        );
        assert_eq!(
            graph_error_code(br#"{"error":{"code":"a b <script>"}}"#),
            None
        );
        assert_eq!(graph_error_code(b"not json"), None);
    }
}
