//! Re-identification of reversible tokens in a request: `p~` tokens in path
//! segments and query values are decrypted before the request goes
//! upstream. A token that does not decrypt refuses the whole request —
//! nothing is forwarded.
//!
//! A decrypted value is checked before it is put in: tokens are made from
//! upstream data, and whoever controls a value Veil tokenized (a display
//! name, a paging token) must not be able to steer the upstream request
//! with it. Each place a token can stand is a [`Slot`]:
//!
//! - a path segment, or a token inside a larger query value (`$filter=id eq
//!   'p~…'`): an **id** — never empty, `.` or `..`, no `/`, `\`, `?`, `#`,
//!   `'`, `%`, `"`, `<`, `>`, `` ` ``, `{`, `}`, `|`, `^`, `&`, `+`, no
//!   control character or whitespace, non-ASCII only as letters or digits;
//! - a whole query value (a tokenized `$skiptoken`): **URL text**, which
//!   goes in verbatim — printable ASCII, no `"`, `#`, `&`, `'`, `<`, `>`,
//!   `` ` ``, `{`, `|`, `}`, `\`, `^`, and `%` only as `%XX`;
//! - a parameter with `format: reversible-pseudonym` ([`reidentify_for`]):
//!   its `kind` decides the shape (a GUID for `group` and `team`, a GUID or
//!   an address for `user`, `19:…@thread.v2` / `@unq.gbl.spaces` for `chat`,
//!   `19:…@thread.tacv2` / `@thread.skype` for `channel`, base64url-like for
//!   `message` and `event`, URL text for `page`; the id shape when it has
//!   none), the token must be of that kind ([`crate::pseudonym::TokenKind`]),
//!   and its `pattern`, if any, must match the decrypted value.
//!
//! Tokens without a kind (made before kinds existed, or by a `tokenize`
//! without `kind`) still decrypt, but only where no kind is required.

use std::sync::LazyLock;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use regex::Regex;

use crate::policy::{ParamSchema, PathPattern, TemplateSegment};
use crate::pseudonym::{CryptoError, Pseudonymizer, TokenKind};
use crate::rules::CompiledEndpoint;

/// Characters encoded in a rebuilt path segment (RFC 3986 `pchar` keeps
/// `:` and `@`, which Graph ids such as chat ids contain).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Characters encoded when a decrypted value goes into a query value:
/// only what would end the value or break the URL. Everything else is
/// inserted verbatim, because the plaintext of a query token is usually
/// raw URL text itself (a tokenized `$skiptoken`, whose `+`, `/` and `%2B`
/// Graph must get back byte for byte).
const QUERY: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'&')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Anything that looks like a token in raw (percent-encoded) request text:
/// `p~` — or `p%7E`, the same thing encoded — and whatever token
/// characters follow, however few. A match that does not decrypt refuses
/// the request, so a malformed or truncated token is never forwarded.
static RAW_TOKEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"p(?:~|%7[Ee])[A-Za-z0-9_-]*").expect("static regex"));

#[cfg(test)]
use crate::pseudonym::encoding::is_token;

/// Why a request could not be re-identified.
#[derive(Debug, PartialEq, Eq)]
pub struct ReidentifyError {
    /// Where the bad token was: `path segment 3`, `query parameter $filter`.
    pub place: String,
    pub error: CryptoError,
}

impl std::fmt::Display for ReidentifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the reversible token in the {} cannot be used: {}",
            self.place, self.error
        )
    }
}

impl std::error::Error for ReidentifyError {}

/// The request target after re-identification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reidentified {
    pub path: String,
    pub query: Option<String>,
    /// How many tokens were decrypted.
    pub tokens: usize,
}

/// What a decrypted value must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// An identifier (see the module documentation).
    Id,
    /// Opaque URL text, inserted verbatim.
    UrlText,
}

/// Where a token stands: what its decrypted value must be.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot<'a> {
    pub shape: Shape,
    /// The kind of token required; any token when `None`.
    pub kind: Option<TokenKind>,
    /// A pattern the decrypted value must match.
    pub pattern: Option<&'a Regex>,
}

impl Slot<'_> {
    /// A path segment, or a token inside a larger value.
    pub(crate) const ID: Slot<'static> = Slot {
        shape: Shape::Id,
        kind: None,
        pattern: None,
    };
    /// A whole query value without a parameter schema.
    pub(crate) const URL_TEXT: Slot<'static> = Slot {
        shape: Shape::UrlText,
        kind: None,
        pattern: None,
    };

    /// The slot of a `format: reversible-pseudonym` parameter.
    pub(crate) fn of(schema: &ParamSchema) -> Slot<'_> {
        Slot {
            shape: if schema.token_kind == Some(TokenKind::Page) {
                Shape::UrlText
            } else {
                Shape::Id
            },
            kind: schema.token_kind,
            pattern: schema.pattern.as_ref(),
        }
    }

    /// Decrypts `token` for this slot and checks the value.
    pub(crate) fn decrypt(&self, token: &str, p: &Pseudonymizer) -> Result<String, CryptoError> {
        let value = p.decrypt_expecting(token, self.kind)?;
        self.check(&value)
            .map_err(|why| CryptoError::UnacceptableValue(why.into()))?;
        Ok(value)
    }

    /// Whether a decrypted value fits; the reason never quotes the value.
    pub(crate) fn check(&self, value: &str) -> Result<(), &'static str> {
        if value.is_empty() {
            return Err("it is empty");
        }
        if value == "." || value == ".." {
            return Err("it is a dot segment");
        }
        match self.shape {
            Shape::Id => check_id(value)?,
            Shape::UrlText => check_url_text(value)?,
        }
        if let Some(kind) = self.kind {
            check_kind(kind, value)?;
        }
        if let Some(re) = self.pattern {
            if !re.is_match(value) {
                return Err("it does not match the parameter's pattern");
            }
        }
        Ok(())
    }
}

/// Characters an id never contains (besides controls and whitespace).
const NOT_IN_ID: &[char] = &[
    '/', '\\', '?', '#', '\'', '%', '"', '<', '>', '`', '{', '}', '|', '^', '&', '+',
];

fn check_id(value: &str) -> Result<(), &'static str> {
    for c in value.chars() {
        if c.is_control() || c.is_whitespace() {
            return Err("it contains a control character or whitespace");
        }
        if NOT_IN_ID.contains(&c) {
            return Err("it contains a character an id never has");
        }
        if !c.is_ascii() && !c.is_alphanumeric() {
            return Err("it contains a character an id never has");
        }
    }
    Ok(())
}

fn check_url_text(value: &str) -> Result<(), &'static str> {
    let b = value.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) {
                    return Err("it contains a `%` that is no percent-encoding");
                }
                i += 3;
                continue;
            }
            b'"' | b'#' | b'&' | b'\'' | b'<' | b'>' | b'`' | b'{' | b'|' | b'}' | b'\\' | b'^' => {
                return Err("it contains a character that would end or change the query value")
            }
            0x21..=0x7e => {}
            _ => return Err("it contains a control character, whitespace or non-ASCII"),
        }
        i += 1;
    }
    Ok(())
}

static GUID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
        .expect("static regex")
});
static ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z0-9!$*=_~-]+(\.[A-Za-z0-9!$*=_~-]+)*@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
        .expect("static regex")
});
static CHAT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^19:[A-Za-z0-9_.=-]+@(thread\.v2|unq\.gbl\.spaces|thread\.skype)$")
        .expect("static regex")
});
static CHANNEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^19:[A-Za-z0-9_.=-]+@thread\.(tacv2|skype)$").expect("static regex")
});
static OPAQUE_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_=-]{1,1024}$").expect("static regex"));

fn check_kind(kind: TokenKind, value: &str) -> Result<(), &'static str> {
    let ok = match kind {
        TokenKind::User => GUID.is_match(value) || ADDRESS.is_match(value),
        TokenKind::Group | TokenKind::Team => GUID.is_match(value),
        TokenKind::Chat => CHAT.is_match(value),
        TokenKind::Channel => CHANNEL.is_match(value),
        TokenKind::Message | TokenKind::Event => OPAQUE_ID.is_match(value),
        TokenKind::Page => true,
    };
    if ok {
        Ok(())
    } else {
        Err(match kind {
            TokenKind::User => "it is not a user id (a GUID or an address)",
            TokenKind::Group => "it is not a group id (a GUID)",
            TokenKind::Team => "it is not a team id (a GUID)",
            TokenKind::Chat => "it is not a chat id (19:…@thread.v2 or 19:…@unq.gbl.spaces)",
            TokenKind::Channel => "it is not a channel id (19:…@thread.tacv2)",
            TokenKind::Message => "it is not a message id",
            TokenKind::Event => "it is not an event id",
            TokenKind::Page => "it is not a paging token",
        })
    }
}

/// Decrypts every token in the raw text `raw`, percent-encoding each
/// plaintext with `set`; the text around the tokens stays byte for byte.
/// A token that is the whole of `raw` goes in `whole`; one among other text
/// is an id ([`Slot::ID`]). Returns the new text and how many tokens it held.
fn decrypt_raw(
    raw: &str,
    set: &'static AsciiSet,
    whole: Slot<'_>,
    p: &Pseudonymizer,
) -> Result<(String, usize), CryptoError> {
    // Every token has a `~`, or a `%` where it is encoded: a segment or
    // value with neither (most of them) is not searched. The search costs
    // more than the check on the short texts of a target.
    if !raw.bytes().any(|b| b == b'~' || b == b'%') {
        return Ok((raw.to_string(), 0));
    }
    let mut out = String::with_capacity(raw.len());
    let mut last = 0;
    let mut n = 0;
    for m in RAW_TOKEN.find_iter(raw) {
        // The match is `p~…` or `p%7E…` (three bytes for the `~`).
        let rest = &m.as_str()[1..];
        let body = rest.strip_prefix('~').unwrap_or_else(|| &rest[3..]);
        let slot = if m.start() == 0 && m.end() == raw.len() {
            whole
        } else {
            Slot::ID
        };
        let plain = slot.decrypt(&format!("p~{body}"), p)?;
        out.push_str(&raw[last..m.start()]);
        out.extend(utf8_percent_encode(&plain, set));
        last = m.end();
        n += 1;
    }
    out.push_str(&raw[last..]);
    Ok((out, n))
}

/// Re-identifies a raw path and query: every token in a path segment or a
/// query value is decrypted, checked for its slot (an id; URL text for a
/// whole query value) and put back percent-encoded; all other bytes of the
/// target stay exactly as the client sent them. Where the endpoint that
/// allowed the request is known, use [`reidentify_for`], which also applies
/// its parameter schemas (token kinds, patterns).
pub fn reidentify(
    path: &str,
    query: Option<&str>,
    p: &Pseudonymizer,
) -> Result<Reidentified, ReidentifyError> {
    reidentify_slots(path, query, p, &|_| None, &|_| None)
}

/// [`reidentify`] for a request the endpoint `ep` allowed: a token in a
/// path parameter or a query parameter with `format:
/// reversible-pseudonym` must be of the parameter's `kind`, fit its shape
/// and match its `pattern` (see the module documentation).
pub fn reidentify_for(
    ep: &CompiledEndpoint,
    path: &str,
    query: Option<&str>,
    p: &Pseudonymizer,
) -> Result<Reidentified, ReidentifyError> {
    let reversible = |list: &'_ [(String, ParamSchema)], name: &str| -> Option<usize> {
        list.iter().position(|(n, s)| n == name && s.reversible)
    };
    let segment = |i: usize| -> Option<Slot<'_>> {
        // Segment 0 is the empty text before the leading `/`.
        let PathPattern::Template(segs) = &ep.path else {
            return None;
        };
        let TemplateSegment::Param { name, .. } = segs.get(i.checked_sub(1)?)? else {
            return None;
        };
        reversible(&ep.path_param_schemas, name).map(|k| Slot::of(&ep.path_param_schemas[k].1))
    };
    let param = |lower: &str| -> Option<Slot<'_>> {
        reversible(&ep.query_param_schemas, lower).map(|k| Slot::of(&ep.query_param_schemas[k].1))
    };
    reidentify_slots(path, query, p, &segment, &param)
}

fn reidentify_slots<'s>(
    path: &str,
    query: Option<&str>,
    p: &Pseudonymizer,
    // The slot of a path segment (by index) and of a query parameter (by
    // lower-cased, percent-decoded name) when a parameter schema sets one.
    segment: &dyn Fn(usize) -> Option<Slot<'s>>,
    param: &dyn Fn(&str) -> Option<Slot<'s>>,
) -> Result<Reidentified, ReidentifyError> {
    let mut tokens = 0;
    let mut segs = Vec::new();
    for (i, raw) in path.split('/').enumerate() {
        let whole = segment(i).unwrap_or(Slot::ID);
        let (seg, n) = decrypt_raw(raw, SEGMENT, whole, p).map_err(|error| ReidentifyError {
            place: format!("path segment {i}"),
            error,
        })?;
        tokens += n;
        segs.push(seg);
    }
    let query = match query {
        None => None,
        Some(q) => {
            let mut parts = Vec::new();
            for piece in q.split('&') {
                let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
                let decoded = percent_decode_str(&name.replace('+', " "))
                    .decode_utf8_lossy()
                    .to_lowercase();
                let whole = param(&decoded).unwrap_or(Slot::URL_TEXT);
                let (value, n) =
                    decrypt_raw(value, QUERY, whole, p).map_err(|error| ReidentifyError {
                        place: format!(
                            "query parameter {}",
                            percent_decode_str(name).decode_utf8_lossy()
                        ),
                        error,
                    })?;
                tokens += n;
                if n == 0 {
                    parts.push(piece.to_string());
                } else {
                    parts.push(format!("{name}={value}"));
                }
            }
            Some(parts.join("&"))
        }
    };
    Ok(Reidentified {
        path: segs.join("/"),
        query,
        tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pseudonym::{EmailPolicy, PseudonymConfig, Pseudonymizer, Scheme};
    use crate::secret::Secret;

    fn pseudonymizer() -> Pseudonymizer {
        Pseudonymizer::new(PseudonymConfig {
            scheme: Scheme::Hmac,
            salt: Secret::from("0123456789abcdef0123456789abcdef"),
            encryption_keys: vec![("k1".into(), Secret::from("k".repeat(32).as_str()))],
            email: EmailPolicy::default(),
        })
        .unwrap()
    }

    #[test]
    fn tokens_in_path_and_query_are_decrypted_and_the_rest_kept_verbatim() {
        let p = pseudonymizer();
        let user = p.encrypt("priya.raman@contoso.example").unwrap();
        let skip = p.encrypt("RFNwdAIAAQAAAB4xOm+c55/AZ8%2B=").unwrap();
        let r = reidentify(
            &format!("/v1.0/users/{user}/messages"),
            Some(&format!("$top=10&$skiptoken={skip}&$filter=a+eq+%27b%27")),
            &p,
        )
        .unwrap();
        assert_eq!(r.path, "/v1.0/users/priya.raman@contoso.example/messages");
        assert_eq!(
            r.query.as_deref(),
            Some("$top=10&$skiptoken=RFNwdAIAAQAAAB4xOm+c55/AZ8%2B=&$filter=a+eq+%27b%27")
        );
        assert_eq!(r.tokens, 2);
    }

    #[test]
    fn an_encoded_tilde_is_still_a_token() {
        let p = pseudonymizer();
        let chat = p.encrypt("19:a_b-c@thread.v2").unwrap();
        let encoded = chat.replacen('~', "%7e", 1);
        let r = reidentify(&format!("/v1.0/chats/{encoded}"), None, &p).unwrap();
        assert_eq!(r.path, "/v1.0/chats/19:a_b-c@thread.v2");
    }

    #[test]
    fn values_that_would_steer_the_request_are_refused() {
        let p = pseudonymizer();
        // In a path segment: dot segments, separators, quotes, escapes.
        for v in [
            ".",
            "..",
            "a/b",
            "a\\b",
            "a?b",
            "a#b",
            "o'brien",
            "50%",
            "a b",
            "a\tb",
            "x\u{7f}",
            "a\u{202e}b",
            "",
            "a&b",
            "a+b",
        ] {
            let t = p.encrypt(v).unwrap();
            let err = reidentify(&format!("/v1.0/users/{t}/messages"), None, &p).unwrap_err();
            assert_eq!(err.place, "path segment 3", "{v:?}");
            assert!(
                matches!(err.error, CryptoError::UnacceptableValue(_)),
                "{v:?}: {err}"
            );
            if v.len() > 1 {
                assert!(!err.to_string().contains(v), "{err}");
            }
            // Inside a larger query value (a quoted OData string).
            let err = reidentify(
                "/v1.0/users",
                Some(&format!("$filter=id%20eq%20%27{t}%27")),
                &p,
            )
            .unwrap_err();
            assert_eq!(err.place, "query parameter $filter", "{v:?}");
        }
        // Ids keep their `:`, `@`, `.`, `=`, non-ASCII letters.
        for v in [
            "19:meeting_Mz@thread.v2",
            "priya.raman@contoso.example",
            "AAMkAGI2=",
            "Zoë",
        ] {
            let t = p.encrypt(v).unwrap();
            assert!(
                reidentify(&format!("/v1.0/users/{t}"), None, &p).is_ok(),
                "{v}"
            );
        }
        // A whole query value is URL text: kept verbatim, `%XX` and all,
        // but nothing that ends the value or breaks out of it.
        let skip = p.encrypt("X%27abc%27+/=").unwrap();
        let r = reidentify("/v1.0/users", Some(&format!("$skiptoken={skip}")), &p).unwrap();
        assert_eq!(r.query.as_deref(), Some("$skiptoken=X%27abc%27+/="));
        for v in ["a'b", "a b", "a&b", "a#b", "a%zz", "a%2", "ü", "..", "a\"b"] {
            let t = p.encrypt(v).unwrap();
            let err = reidentify("/v1.0/users", Some(&format!("$skiptoken={t}")), &p).unwrap_err();
            assert_eq!(err.place, "query parameter $skiptoken", "{v:?}");
        }
    }

    const KIND_RULES: &str = r#"
endpoints:
  - pathTemplate: /v1.0/chats/{chatId}/messages
    pathParameterSchemas:
      chatId: { format: reversible-pseudonym, kind: chat }
    allowedQueryParams: [$skiptoken, $top]
    queryParamSchemas:
      $skiptoken: { format: reversible-pseudonym, kind: page }
  - pathTemplate: /v1.0/users/{userId}
    pathParameterSchemas:
      userId:
        format: reversible-pseudonym
        kind: user
        pattern: "^[0-9a-f-]{36}$"
  - pathTemplate: /v1.0/groups/{groupId}
    pathParameterSchemas:
      groupId: { format: reversible-pseudonym }
"#;

    #[test]
    fn slots_with_a_kind_take_only_tokens_of_that_kind() {
        use crate::pseudonym::TokenKind::{Chat, Page, User};
        use crate::rules::RuleSet;
        let p = pseudonymizer();
        let rules = RuleSet::from_str("kinds.yaml", KIND_RULES).unwrap();
        let ep = |path: &str, query: Option<&str>| {
            rules
                .match_request(
                    crate::policy::Request {
                        method: "GET",
                        path,
                        query,
                    },
                    crate::policy::Side::Client,
                )
                .unwrap()
                .endpoint
        };
        let chat_id = "19:8a2c4f_e91d@thread.v2";
        let user_id = "4f1c2a9e-7b3d-4c8e-9a61-2d5f8b0e3c17";
        let chat = p.encrypt_kind(chat_id, Some(Chat)).unwrap();
        let user_as_chat_shape = p.encrypt_kind(chat_id, Some(User)).unwrap();
        let page = p.encrypt_kind("RFNwdAIAAQ%2B=", Some(Page)).unwrap();
        let path = format!("/v1.0/chats/{chat}/messages");
        let query = format!("$skiptoken={page}&$top=5");
        let r = reidentify_for(ep(&path, Some(&query)), &path, Some(&query), &p).unwrap();
        assert_eq!(r.path, format!("/v1.0/chats/{chat_id}/messages"));
        assert_eq!(r.query.as_deref(), Some("$skiptoken=RFNwdAIAAQ%2B=&$top=5"));
        assert_eq!(r.tokens, 2);

        // A user token (even of a chat-shaped value) in the chat slot.
        let path = format!("/v1.0/chats/{user_as_chat_shape}/messages");
        let err = reidentify_for(ep(&path, None), &path, None, &p).unwrap_err();
        assert_eq!(err.place, "path segment 3");
        assert_eq!(
            err.error,
            CryptoError::WrongKind {
                expected: Chat,
                found: Some(User)
            }
        );
        // A token without a kind is refused where a kind is required…
        let old = p.encrypt(chat_id).unwrap();
        let path = format!("/v1.0/chats/{old}/messages");
        let err = reidentify_for(ep(&path, None), &path, None, &p).unwrap_err();
        assert!(matches!(
            err.error,
            CryptoError::WrongKind { found: None, .. }
        ));
        // …and accepted where none is.
        let group = "0b3e5d20-91c4-4b7f-8e2a-6c0d1f9b4e58";
        let path = format!("/v1.0/groups/{}", p.encrypt(group).unwrap());
        let r = reidentify_for(ep(&path, None), &path, None, &p).unwrap();
        assert_eq!(r.path, format!("/v1.0/groups/{group}"));
        // A chat token of a page value in the page slot.
        let path = format!("/v1.0/chats/{chat}/messages");
        let query = format!("$skiptoken={}", p.encrypt_kind("x", Some(Chat)).unwrap());
        let err = reidentify_for(ep(&path, Some(&query)), &path, Some(&query), &p).unwrap_err();
        assert_eq!(err.place, "query parameter $skiptoken");

        // The kind's shape and the parameter's pattern apply to the value.
        for bad in [
            "alice@contoso.example",
            "4F1C2A9E-7B3D-4C8E-9A61-2D5F8B0E3C17",
            "..",
        ] {
            let path = format!("/v1.0/users/{}", p.encrypt_kind(bad, Some(User)).unwrap());
            let err = reidentify_for(ep(&path, None), &path, None, &p).unwrap_err();
            assert!(
                matches!(err.error, CryptoError::UnacceptableValue(_)),
                "{bad}: {err}"
            );
        }
        let path = format!(
            "/v1.0/users/{}",
            p.encrypt_kind(user_id, Some(User)).unwrap()
        );
        let r = reidentify_for(ep(&path, None), &path, None, &p).unwrap();
        assert_eq!(r.path, format!("/v1.0/users/{user_id}"));
        let not_a_chat = p.encrypt_kind("19:x@evil.example", Some(Chat)).unwrap();
        let path = format!("/v1.0/chats/{not_a_chat}/messages");
        let err = reidentify_for(ep(&path, None), &path, None, &p).unwrap_err();
        assert!(err.to_string().contains("not a chat id"), "{err}");
        assert!(!err.to_string().contains("evil"), "{err}");
    }

    #[test]
    fn in_the_psoxy_scheme_slots_with_a_kind_are_held_by_the_values_shape() {
        use crate::pseudonym::TokenKind::{Chat, User};
        use crate::rules::RuleSet;
        let p = Pseudonymizer::new(PseudonymConfig {
            scheme: Scheme::Psoxy,
            salt: Secret::from("0123456789abcdef0123456789abcdef"),
            encryption_keys: vec![("k1".into(), Secret::from("k".repeat(32).as_str()))],
            email: EmailPolicy::default(),
        })
        .unwrap();
        let rules = RuleSet::from_str("kinds.yaml", KIND_RULES).unwrap();
        let ep = |path: &str| {
            rules
                .match_request(
                    crate::policy::Request {
                        method: "GET",
                        path,
                        query: None,
                    },
                    crate::policy::Side::Client,
                )
                .unwrap()
                .endpoint
        };
        let chat_id = "19:8a2c4f_e91d@thread.v2";
        let user_id = "4f1c2a9e-7b3d-4c8e-9a61-2d5f8b0e3c17";
        // Psoxy's tokens, whatever the kind: a client's stored tokens work.
        let chat = p.encrypt_kind(chat_id, Some(Chat)).unwrap();
        assert_eq!(chat, p.encrypt(chat_id).unwrap());
        let path = format!("/v1.0/chats/{chat}/messages");
        let r = reidentify_for(ep(&path), &path, None, &p).unwrap();
        assert_eq!(r.path, format!("/v1.0/chats/{chat_id}/messages"));
        // A user's token in the chat slot: its value is no chat id.
        let user = p.encrypt_kind(user_id, Some(User)).unwrap();
        let path = format!("/v1.0/chats/{user}/messages");
        let err = reidentify_for(ep(&path), &path, None, &p).unwrap_err();
        assert!(
            matches!(err.error, CryptoError::UnacceptableValue(_)),
            "{err}"
        );
        assert!(!err.to_string().contains(user_id), "{err}");
        // A chat's token in the user slot, likewise.
        let path = format!("/v1.0/users/{chat}");
        assert!(reidentify_for(ep(&path), &path, None, &p).is_err());
    }

    #[test]
    fn kind_shapes() {
        use crate::pseudonym::TokenKind;
        let ok = |k: TokenKind, v: &str| {
            Slot {
                shape: Shape::Id,
                kind: Some(k),
                pattern: None,
            }
            .check(v)
            .is_ok()
        };
        assert!(ok(TokenKind::Chat, "19:abc@unq.gbl.spaces"));
        assert!(ok(TokenKind::Chat, "19:meeting_NGQ-x=@thread.v2"));
        assert!(!ok(TokenKind::Chat, "19:abc@thread.tacv2"));
        assert!(ok(TokenKind::Channel, "19:abc@thread.tacv2"));
        assert!(!ok(TokenKind::Channel, "20:abc@thread.tacv2"));
        assert!(ok(TokenKind::Team, "48d31887-5fad-4d73-a9f5-3c356e68a038"));
        assert!(!ok(TokenKind::Group, "48d31887"));
        assert!(ok(TokenKind::User, "a.b_c-d@sub.contoso.example"));
        assert!(!ok(TokenKind::User, "a..b@contoso.example"));
        assert!(!ok(TokenKind::User, "bob"));
        assert!(ok(TokenKind::Message, "1616965872395"));
        assert!(ok(TokenKind::Event, "AAMkAGI2TG93AAA="));
        assert!(!ok(TokenKind::Message, "AA.MkA"));
    }

    #[test]
    fn short_or_forged_tokens_refuse_the_request() {
        let p = pseudonymizer();
        for bad in [
            "p~",
            "p~x",
            "p~AAAAAAAA",
            "p~priya.raman@contoso.example",
            "p%7EAAAA",
        ] {
            let err = reidentify(&format!("/v1.0/users/{bad}"), None, &p).unwrap_err();
            assert_eq!(err.place, "path segment 3", "{bad}");
            let err =
                reidentify("/v1.0/users", Some(&format!("$filter=id eq '{bad}'")), &p).unwrap_err();
            assert_eq!(err.place, "query parameter $filter", "{bad}");
        }
    }

    #[test]
    fn whole_token_check() {
        let p = pseudonymizer();
        assert!(is_token(&p.encrypt("x").unwrap()));
        for bad in [
            "p~",
            "p~x",
            "p~AAAAAAAA",
            "xp~AAAAAAAAAAAAAAAAAAAA",
            "p~AAAAAAAAAAAAAAAAAAAA/x",
        ] {
            assert!(!is_token(bad), "{bad}");
        }
    }
}
