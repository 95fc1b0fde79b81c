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

/// Advice for a 403 from a Teams protected API (channel and chat messages).
pub fn teams_protected_api() -> String {
    format!(
        "This is a Microsoft Teams protected API: with application permissions Graph refuses it \
until Microsoft approves the tenant's request, whatever the consent. Submit {} with the app's \
client id (see {}); `veil setup --connector msft-teams` has the step. The permission itself is granted.",
        crate::cli::setup::TEAMS_PROTECTED_APIS_FORM,
        crate::cli::setup::TEAMS_PROTECTED_APIS_DOC
    )
}

/// Advice when the mailbox probed does not exist or has no mailbox.
pub const NO_MAILBOX: &str =
    "The user has no mailbox (a guest, an unlicensed or a disabled account) \
or does not exist. Run the doctor with `--mailbox <UPN or id>` of a licensed user inside the \
mailbox scope (RBAC for Applications or Application Access Policy).";

/// One probe: a Graph GET and how to read a refusal.
#[derive(Debug, Clone)]
pub struct Probe {
    pub name: &'static str,
    /// The path and query; `{user}`, `{team}`, `{channel}`, `{chat}` stand
    /// for ids an earlier probe listed (or `--mailbox` for `{user}`).
    pub target: String,
    /// The placeholder this probe's first listed id fills, if any.
    pub provides: Option<&'static str>,
    /// Advice when Graph answers 403 (besides the consent errors).
    pub forbidden_advice: &'static str,
}

impl Probe {
    fn new(name: &'static str, target: impl Into<String>, advice: &'static str) -> Probe {
        Probe {
            name,
            target: target.into(),
            provides: None,
            forbidden_advice: advice,
        }
    }
    fn provides(mut self, placeholder: &'static str) -> Probe {
        self.provides = Some(placeholder);
        self
    }

    /// The placeholders (`user`, `team`, …) the target needs.
    pub fn needs(&self) -> Vec<&'static str> {
        ["user", "team", "channel", "chat"]
            .into_iter()
            .filter(|p| self.target.contains(&format!("{{{p}}}")))
            .collect()
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The probes of a connector, in order. `{user}` comes from `--mailbox`
/// when given, else from the first user listed.
pub fn for_connector(connector: &str, now: SystemTime) -> Vec<Probe> {
    let users =
        Probe::new("list one user", "/v1.0/users?$top=1&$select=id", CONSENT).provides("user");
    let mut probes = vec![users];
    match connector {
        "entra-id" => probes.push(Probe::new(
            "list one group",
            "/v1.0/groups?$top=1&$select=id",
            CONSENT,
        )),
        "outlook-mail" => probes.push(Probe::new(
            "the mailbox's sent items",
            "/v1.0/users/{user}/mailFolders/SentItems/messages?$top=1&$select=id",
            MAILBOX_SCOPING,
        )),
        "outlook-mail-received" => {
            probes.push(Probe::new(
                "the mailbox's sent items",
                "/v1.0/users/{user}/mailFolders/SentItems/messages?$top=1&$select=id",
                MAILBOX_SCOPING,
            ));
            probes.push(Probe::new(
                "the mailbox's inbox",
                "/v1.0/users/{user}/mailFolders/Inbox/messages?$top=1&$select=id",
                MAILBOX_SCOPING,
            ));
        }
        "outlook-contacts" => probes.push(Probe::new(
            "the mailbox's contacts",
            "/v1.0/users/{user}/contacts?$top=1&$select=id",
            MAILBOX_SCOPING,
        )),
        "outlook-cal" => {
            let end = now;
            let start = now - Duration::from_secs(7 * 86_400);
            probes.push(Probe::new(
                "the mailbox's calendar view",
                format!(
                    "/v1.0/users/{{user}}/calendar/calendarView?startDateTime={}&endDateTime={}&$top=1&$select=id",
                    rfc3339(start),
                    rfc3339(end)
                ),
                MAILBOX_SCOPING,
            ));
        }
        "msft-teams" => {
            probes.push(
                Probe::new("list one team", "/v1.0/teams?$top=1&$select=id", CONSENT)
                    .provides("team"),
            );
            probes.push(
                Probe::new(
                    "one team's channels",
                    "/v1.0/teams/{team}/allChannels?$select=id",
                    CONSENT,
                )
                .provides("channel"),
            );
            probes.push(Probe::new(
                "one channel's messages (protected API)",
                "/v1.0/teams/{team}/channels/{channel}/messages?$top=1",
                CONSENT,
            ));
            probes.push(
                Probe::new(
                    "the user's chats",
                    "/v1.0/users/{user}/chats?$top=1",
                    CONSENT,
                )
                .provides("chat"),
            );
            probes.push(Probe::new(
                "one chat's messages (protected API)",
                "/v1.0/chats/{chat}/messages?$top=1",
                CONSENT,
            ));
        }
        _ => {}
    }
    probes
}

/// Whether a mailbox given with `--mailbox` can go into a Graph path as it is.
pub fn valid_mailbox(m: &str) -> bool {
    !m.is_empty()
        && m.len() <= 256
        && m.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@._-+'".contains(c))
}

/// Whether an id Graph listed can go into a Graph path as it is (team,
/// channel `19:…@thread.tacv2`, chat and user ids).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 256
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":@._-=".contains(c))
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

/// Whether Graph's error says a Teams protected API is not approved. Only
/// this yes/no leaves the function: the message itself is never shown.
pub fn is_protected_api_refusal(body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    v.get("error")
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .is_some_and(|m| m.to_ascii_lowercase().contains("protected api"))
}

/// What an answer means, as `(ok, summary, advice)`.
pub fn judge(
    probe: &Probe,
    status: u16,
    code: Option<&str>,
    protected_api: bool,
) -> (bool, String, Option<String>) {
    let code_text = code.map(|c| format!(" {c}")).unwrap_or_default();
    match status {
        200..=299 => (true, format!("Graph answered {status}"), None),
        401 => (
            false,
            format!("Graph refused the token: {status}{code_text}"),
            Some("The token was not accepted for Graph: check that VEIL_GRAPH_SCOPE is https://graph.microsoft.com/.default and the tenant is right.".into()),
        ),
        403 if protected_api => (
            false,
            format!("Graph refused: {status}{code_text}: Teams protected API not approved for this tenant"),
            Some(teams_protected_api()),
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
        404 if probe.needs().contains(&"user") => (
            false,
            format!("Graph answered {status}{code_text}"),
            Some(NO_MAILBOX.into()),
        ),
        404 => (false, format!("Graph answered {status}{code_text}"), None),
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
        for c in [
            "entra-id",
            "outlook-mail",
            "outlook-cal",
            "msft-teams",
            "outlook-contacts",
            "outlook-mail-received",
        ] {
            let p = for_connector(c, SystemTime::now());
            assert_eq!(p[0].name, "list one user");
            assert!(p.len() >= 2, "{c}");
            // Every placeholder is provided by an earlier probe.
            let mut have = Vec::new();
            for probe in &p {
                for n in probe.needs() {
                    assert!(have.contains(&n), "{c}: {} needs {n}", probe.name);
                }
                have.extend(probe.provides);
            }
        }
        let teams = for_connector("msft-teams", SystemTime::now());
        let targets: Vec<&str> = teams.iter().map(|p| p.target.as_str()).collect();
        assert!(targets.contains(&"/v1.0/teams/{team}/channels/{channel}/messages?$top=1"));
        assert!(targets.contains(&"/v1.0/chats/{chat}/messages?$top=1"));
    }

    #[test]
    fn a_protected_api_403_is_not_a_missing_permission() {
        let p = &for_connector("msft-teams", SystemTime::now())[3];
        let body = br#"{"error":{"code":"Forbidden","message":"Invoked API requires Protected API access in application-only context when not using Resource Specific Consent."}}"#;
        assert!(is_protected_api_refusal(body));
        let (ok, summary, advice) = judge(p, 403, graph_error_code(body).as_deref(), true);
        assert!(!ok);
        assert!(summary.contains("protected API not approved"), "{summary}");
        let advice = advice.unwrap();
        assert!(
            advice.contains("aka.ms/teamsgraph/requestaccess"),
            "{advice}"
        );
        assert!(!advice.contains("admin consent"), "{advice}");
        let denied = br#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation."}}"#;
        assert!(!is_protected_api_refusal(denied));
        let (_, _, advice) = judge(p, 403, Some("Authorization_RequestDenied"), false);
        assert!(advice.unwrap().contains("admin consent"));
        assert!(!is_protected_api_refusal(b"not json"));
    }

    #[test]
    fn mailboxes_and_ids_are_checked_before_use() {
        assert!(valid_mailbox("analyst.one@contoso.example"));
        assert!(valid_mailbox("5d1f8c3a-92b4-4e6f-a7c1-3b8e0d4f2a61"));
        for bad in ["", "a/b", "a?b", "x y", "a#b", "../users"] {
            assert!(!valid_mailbox(bad), "{bad}");
        }
        assert!(valid_id("19:abc_DEF-1@thread.tacv2"));
        assert!(!valid_id("19:abc/def"));
    }

    #[test]
    fn a_mailbox_403_points_to_scoping_and_a_consent_403_to_consent() {
        let p = &for_connector("outlook-mail", SystemTime::now())[1];
        let (ok, _, advice) = judge(p, 403, Some("ErrorAccessDenied"), false);
        assert!(!ok);
        assert!(advice
            .unwrap()
            .contains("Test-ServicePrincipalAuthorization"));
        let (_, _, advice) = judge(p, 403, Some("Authorization_RequestDenied"), false);
        assert!(advice.unwrap().contains("admin consent"));
        let (_, _, advice) = judge(p, 404, Some("MailboxNotEnabledForRESTAPI"), false);
        assert!(advice.unwrap().contains("--mailbox"));
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
