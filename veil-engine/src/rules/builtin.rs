//! The shipped rule files, compiled into the binary so a deployment needs
//! only the connector's name.

use super::RuleSet;
use crate::error::RuleError;

/// The connectors Veil ships rules for.
pub const CONNECTORS: &[&str] = &[
    "entra-id",
    "outlook-mail",
    "outlook-cal",
    "msft-teams",
    "outlook-contacts",
    "outlook-mail-received",
];

/// The rule variants: Graph ids as `p~` tokens (`default`) or in clear
/// (`clear-ids`); `no-groups` and `clear-ids-no-groups` are the same
/// without any `/v1.0/groups` endpoint (outlook-mail, outlook-mail-received
/// and outlook-cal only).
pub(crate) const VARIANTS: &[&str] = &["default", "clear-ids", "no-groups", "clear-ids-no-groups"];

/// The text of a shipped rule file.
pub(crate) fn text(connector: &str, variant: &str) -> Option<&'static str> {
    Some(match (connector, variant) {
        ("entra-id", "default") => include_str!("../../../rules/entra-id.yaml"),
        ("entra-id", "clear-ids") => include_str!("../../../rules/entra-id.clear-ids.yaml"),
        ("outlook-mail", "default") => include_str!("../../../rules/outlook-mail.yaml"),
        ("outlook-mail", "clear-ids") => include_str!("../../../rules/outlook-mail.clear-ids.yaml"),
        ("outlook-mail", "no-groups") => include_str!("../../../rules/outlook-mail.no-groups.yaml"),
        ("outlook-mail", "clear-ids-no-groups") => {
            include_str!("../../../rules/outlook-mail.clear-ids-no-groups.yaml")
        }
        ("outlook-cal", "default") => include_str!("../../../rules/outlook-cal.yaml"),
        ("outlook-cal", "clear-ids") => include_str!("../../../rules/outlook-cal.clear-ids.yaml"),
        ("outlook-cal", "no-groups") => include_str!("../../../rules/outlook-cal.no-groups.yaml"),
        ("outlook-cal", "clear-ids-no-groups") => {
            include_str!("../../../rules/outlook-cal.clear-ids-no-groups.yaml")
        }
        ("msft-teams", "default") => include_str!("../../../rules/msft-teams.yaml"),
        ("msft-teams", "clear-ids") => include_str!("../../../rules/msft-teams.clear-ids.yaml"),
        ("outlook-contacts", "default") => include_str!("../../../rules/outlook-contacts.yaml"),
        ("outlook-contacts", "clear-ids") => {
            include_str!("../../../rules/outlook-contacts.clear-ids.yaml")
        }
        ("outlook-mail-received", "default") => {
            include_str!("../../../rules/outlook-mail-received.yaml")
        }
        ("outlook-mail-received", "clear-ids") => {
            include_str!("../../../rules/outlook-mail-received.clear-ids.yaml")
        }
        ("outlook-mail-received", "no-groups") => {
            include_str!("../../../rules/outlook-mail-received.no-groups.yaml")
        }
        ("outlook-mail-received", "clear-ids-no-groups") => {
            include_str!("../../../rules/outlook-mail-received.clear-ids-no-groups.yaml")
        }
        _ => return None,
    })
}

/// Loads a shipped rule file.
pub fn load(connector: &str, variant: &str) -> Result<RuleSet, RuleError> {
    let name = format!("builtin:{connector}/{variant}");
    let text = text(connector, variant).ok_or_else(|| {
        RuleError::new(
            &name,
            "",
            format!("no shipped rules for connector `{connector}` variant `{variant}` (connectors: {}; variants: {})", CONNECTORS.join(", "), VARIANTS.join(", ")),
        )
    })?;
    RuleSet::from_str(&name, text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_builtin_loads() {
        for c in super::CONNECTORS {
            for v in super::VARIANTS {
                if super::text(c, v).is_none() {
                    // Only the mail and calendar connectors ship without groups.
                    assert!(
                        v.ends_with("no-groups") && !["outlook-mail", "outlook-cal"].contains(c)
                    );
                    assert!(super::load(c, v).is_err());
                    continue;
                }
                let rs = super::load(c, v).unwrap();
                assert_eq!(rs.connector.as_ref().unwrap().name, *c);
                assert_eq!(rs.connector.as_ref().unwrap().variant.as_deref(), Some(*v));
                if v.ends_with("no-groups") {
                    assert!(rs
                        .endpoints
                        .iter()
                        .all(|e| !e.label.starts_with("/v1.0/groups")));
                }
            }
        }
        assert!(super::load("outlook-mail", "nope").is_err());
        assert!(super::load("entra-id", "no-groups").is_err());
    }
}
