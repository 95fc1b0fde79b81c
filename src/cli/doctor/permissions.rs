//! Step 5 of `veil doctor`: the Graph token's `roles` claim against the
//! application permissions the connector's rules declare.

use std::collections::BTreeSet;

/// Granted permissions that include a narrower one the rules ask for: the
/// narrower one is then not missing, but the grant is more than needed.
/// (`Mail.Read` reads bodies and attachments, `Mail.ReadBasic.All` cannot.)
const COVERS: &[(&str, &[&str])] = &[
    ("Mail.Read", &["Mail.ReadBasic.All", "Mail.ReadBasic"]),
    ("Mail.ReadBasic", &["Mail.ReadBasic.All"]),
    ("Group.Read.All", &["GroupMember.Read.All"]),
    (
        "Directory.Read.All",
        &["User.Read.All", "GroupMember.Read.All", "Group.Read.All"],
    ),
    ("Team.ReadBasic.All", &[]),
    ("TeamSettings.Read.All", &["Team.ReadBasic.All"]),
    ("Channel.ReadBasic.All", &[]),
    ("ChannelSettings.Read.All", &["Channel.ReadBasic.All"]),
    ("Calendars.ReadBasic", &[]),
    ("Calendars.Read", &["Calendars.ReadBasic"]),
];

/// Whether a permission lets Veil change the tenant: Veil never needs one.
pub fn is_write(permission: &str) -> bool {
    let p = permission.to_ascii_lowercase();
    p.contains("write") || p.contains(".send") || p.contains(".manage") || p.contains(".create")
}

/// The comparison of granted with required permissions.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RolesCheck {
    /// Required and granted (directly or through a broader grant).
    pub present: Vec<String>,
    /// Required and not granted: requests needing them will fail.
    pub missing: Vec<String>,
    /// Granted, read-only, beyond what the connector needs.
    pub excess: Vec<String>,
    /// Granted permissions that can write: never needed by Veil.
    pub write: Vec<String>,
    /// `(broader grant, the narrower permission it stands in for)`.
    pub broader: Vec<(String, String)>,
}

impl RolesCheck {
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.excess.is_empty() && self.write.is_empty()
    }
}

/// Compares the `roles` of a Graph token with the connector's permissions.
pub fn compare(required: &[String], granted: &[String]) -> RolesCheck {
    let granted: BTreeSet<&str> = granted.iter().map(String::as_str).collect();
    let required_set: BTreeSet<&str> = required.iter().map(String::as_str).collect();
    let mut check = RolesCheck::default();
    let mut used_broader = BTreeSet::new();
    for r in required {
        if granted.contains(r.as_str()) {
            check.present.push(r.clone());
            continue;
        }
        let broader = COVERS
            .iter()
            .find(|(g, narrower)| granted.contains(g) && narrower.contains(&r.as_str()));
        match broader {
            Some((g, _)) => {
                check.present.push(r.clone());
                check.broader.push((g.to_string(), r.clone()));
                used_broader.insert(*g);
            }
            None => check.missing.push(r.clone()),
        }
    }
    for g in granted {
        if required_set.contains(g) {
            continue;
        }
        if is_write(g) {
            check.write.push(g.to_string());
        } else {
            check.excess.push(g.to_string());
        }
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn exact_grant_is_clean() {
        let req = s(&["User.Read.All", "Mail.ReadBasic.All"]);
        let c = compare(&req, &req);
        assert!(c.ok());
        assert_eq!(c.present, req);
    }

    #[test]
    fn missing_excess_and_write_are_told_apart() {
        let req = s(&[
            "User.Read.All",
            "Mail.ReadBasic.All",
            "MailboxSettings.Read",
        ]);
        let granted = s(&[
            "User.Read.All",
            "Mail.Read",
            "Mail.ReadWrite",
            "Sites.Read.All",
        ]);
        let c = compare(&req, &granted);
        assert_eq!(c.missing, ["MailboxSettings.Read"]);
        assert_eq!(
            c.broader,
            [("Mail.Read".to_string(), "Mail.ReadBasic.All".to_string())]
        );
        assert_eq!(c.write, ["Mail.ReadWrite"]);
        assert_eq!(c.excess, ["Mail.Read", "Sites.Read.All"]);
        assert!(!c.ok());
    }

    #[test]
    fn write_permissions_are_recognized() {
        for p in [
            "Mail.ReadWrite",
            "Mail.Send",
            "Calendars.ReadWrite",
            "Group.Create",
            "Chat.ReadWrite.All",
        ] {
            assert!(is_write(p), "{p}");
        }
        for p in [
            "Mail.ReadBasic.All",
            "User.Read.All",
            "CallRecords.Read.All",
        ] {
            assert!(!is_write(p), "{p}");
        }
    }
}
