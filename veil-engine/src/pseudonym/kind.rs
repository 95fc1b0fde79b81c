//! Token kinds: what a reversible `p~` token stands for (a user, a chat, …).
//!
//! A rule's `tokenize` transform may say `kind: user`; the kind is then bound
//! into the token (see [`super::hmac_scheme`] and [`super::psoxy_scheme`] for
//! how), and a path or query parameter with `format: reversible-pseudonym`
//! and `kind: chat` refuses any token that is not a chat token. So a user
//! token can never be sent where a chat id is expected, even though both
//! decrypt.
//!
//! The list is closed (a typo in a rule file is an error, not a kind of its
//! own) and each kind has a code that never changes, because it is inside
//! tokens that clients keep.

/// What a token stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// A user: a GUID, or an e-mail address / UPN.
    User,
    /// A group: a GUID.
    Group,
    /// A team: a GUID.
    Team,
    /// A Teams chat: `19:…@thread.v2`, `19:…@unq.gbl.spaces`, …
    Chat,
    /// A Teams channel: `19:…@thread.tacv2` or `19:…@thread.skype`.
    Channel,
    /// A message: digits or base64url-like text.
    Message,
    /// A calendar event: base64url-like text.
    Event,
    /// An opaque paging token (`$skiptoken`, `$deltatoken`): URL text.
    Page,
}

impl TokenKind {
    /// Every kind, in code order.
    pub const ALL: [TokenKind; 8] = [
        TokenKind::User,
        TokenKind::Group,
        TokenKind::Team,
        TokenKind::Chat,
        TokenKind::Channel,
        TokenKind::Message,
        TokenKind::Event,
        TokenKind::Page,
    ];

    /// The name in rule files.
    pub fn name(self) -> &'static str {
        match self {
            TokenKind::User => "user",
            TokenKind::Group => "group",
            TokenKind::Team => "team",
            TokenKind::Chat => "chat",
            TokenKind::Channel => "channel",
            TokenKind::Message => "message",
            TokenKind::Event => "event",
            TokenKind::Page => "page",
        }
    }

    /// The byte inside tokens (1–8; never renumbered).
    pub fn code(self) -> u8 {
        match self {
            TokenKind::User => 1,
            TokenKind::Group => 2,
            TokenKind::Team => 3,
            TokenKind::Chat => 4,
            TokenKind::Channel => 5,
            TokenKind::Message => 6,
            TokenKind::Event => 7,
            TokenKind::Page => 8,
        }
    }

    /// The kind of a code byte.
    pub fn from_code(code: u8) -> Option<TokenKind> {
        TokenKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// All names, for error messages and documentation.
    pub fn names() -> String {
        TokenKind::ALL
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Display for TokenKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no [`TokenKind`]; the text lists the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown token kind `{0}` (known: {names})", names = TokenKind::names())]
pub struct UnknownTokenKind(pub String);

impl std::str::FromStr for TokenKind {
    type Err = UnknownTokenKind;
    fn from_str(s: &str) -> Result<Self, UnknownTokenKind> {
        TokenKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownTokenKind(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for k in TokenKind::ALL {
            assert_eq!(k.name().parse::<TokenKind>(), Ok(k));
            assert_eq!(TokenKind::from_code(k.code()), Some(k));
        }
        assert_eq!(TokenKind::from_code(0), None);
        assert_eq!(TokenKind::from_code(9), None);
        let e = "usr".parse::<TokenKind>().unwrap_err().to_string();
        assert!(
            e.contains("unknown token kind `usr`") && e.contains("user, group"),
            "{e}"
        );
        // Codes are part of the token format: they must never change.
        assert_eq!(TokenKind::ALL.map(|k| k.code()), [1, 2, 3, 4, 5, 6, 7, 8]);
    }
}
