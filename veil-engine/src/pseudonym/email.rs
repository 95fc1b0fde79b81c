//! Email addresses: detection, canonicalization and RFC 5322 address lists.
//!
//! This module owns the answer to "is this value an email address, and which
//! string is hashed for it?". It is pure string handling: no keys, no hashing.
//!
//! # What counts as an address (pragmatic rule)
//!
//! A value is an address when, after trimming surrounding ASCII whitespace,
//! it is either
//! - a bare `addr-spec` (`local@domain`), or
//! - a `name-addr`: an optional display name followed by `<addr-spec>`
//!   (`Alice <alice@example.com>`, `"Smith, Alice" <alice@example.com>`);
//!   the display name is anything without `<`, `>` and `"`, or a quoted
//!   string; whitespace just inside the brackets is ignored.
//!
//! `local` is a dot-atom (RFC 5322 `atext` characters, plus any non-ASCII
//! character as in RFC 6531, in runs separated by single dots) or a quoted
//! string (`"john doe"`, with `\` escapes). `domain` is one or more dot-separated
//! labels of letters, digits and `-` (non-ASCII letters allowed, no label
//! starting or ending with `-`; a single label such as `localhost` is
//! accepted), or a domain literal such as `[192.0.2.1]`. No length limits are
//! enforced. Comments (`(…)`), obsolete syntax and source routes are not.
//!
//! # Canonical form
//!
//! [`canonical`]: the local part is unquoted, lowercased and cut at its first
//! `+` (unless that would leave it empty, i.e. a leading `+` is kept); with
//! `ignore_dots` its dots are removed; the domain is lowercased. The result
//! is `local@domain`.

/// A parsed address; both parts borrow from the input and keep its case.
///
/// `local` is the local part as written (including the quotes of a quoted
/// local part); `domain` is the domain as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Address<'a> {
    pub local: &'a str,
    pub domain: &'a str,
}

impl Address<'_> {
    /// `local@domain` as written in the input.
    pub(crate) fn addr_spec(&self) -> String {
        let mut s = String::with_capacity(self.local.len() + 1 + self.domain.len());
        s.push_str(self.local);
        s.push('@');
        s.push_str(self.domain);
        s
    }
}

/// RFC 5322 `atext`, extended with every non-ASCII character (RFC 6531).
fn is_atext(c: char) -> bool {
    // A `match`, not a search of the list: this runs for every character
    // of every local part Veil pseudonymizes.
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '!' | '#'
                | '$'
                | '%'
                | '&'
                | '\''
                | '*'
                | '+'
                | '-'
                | '/'
                | '='
                | '?'
                | '^'
                | '_'
                | '`'
                | '{'
                | '|'
                | '}'
                | '~'
        )
        || !c.is_ascii()
}

/// A dot-atom: runs of `atext` separated by single dots.
fn is_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|run| !run.is_empty() && run.chars().all(is_atext))
}

/// Length in bytes of the quoted string at the start of `s` (which must
/// start with `"`), including both quotes; `None` if it is not closed or holds
/// a control character.
fn quoted_len(s: &str) -> Option<usize> {
    let mut chars = s.char_indices();
    if chars.next()?.1 != '"' {
        return None;
    }
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some(i + 1),
            '\\' => {
                let (_, escaped) = chars.next()?;
                if escaped.is_ascii_control() && escaped != '\t' {
                    return None;
                }
            }
            c if c.is_ascii_control() && c != '\t' => return None,
            _ => {}
        }
    }
    None
}

fn is_quoted_string(s: &str) -> bool {
    s.starts_with('"') && quoted_len(s) == Some(s.len())
}

fn is_domain_label(l: &str) -> bool {
    !l.is_empty()
        && !l.starts_with('-')
        && !l.ends_with('-')
        && l.chars().all(|c| c == '-' || c.is_alphanumeric())
}

fn is_domain(d: &str) -> bool {
    if let Some(inner) = d.strip_prefix('[') {
        return match inner.strip_suffix(']') {
            Some(lit) => {
                !lit.is_empty()
                    && lit
                        .chars()
                        .all(|c| c.is_ascii_graphic() && !"[]\\".contains(c))
            }
            None => false,
        };
    }
    !d.is_empty() && d.split('.').all(is_domain_label)
}

/// Parses a bare `local@domain` (no surrounding whitespace).
pub(crate) fn parse_addr_spec(s: &str) -> Option<Address<'_>> {
    // The domain never contains '@' (nor does a dot-atom local part); a quoted
    // local part may, so split at the last '@'.
    let at = s.rfind('@')?;
    let (local, domain) = (&s[..at], &s[at + 1..]);
    let local_ok = if local.starts_with('"') {
        is_quoted_string(local)
    } else {
        is_dot_atom(local)
    };
    (local_ok && is_domain(domain)).then_some(Address { local, domain })
}

/// Detects an address: a bare `addr-spec` or `Display Name <addr-spec>` (see
/// the module docs). Surrounding ASCII whitespace is ignored.
pub(crate) fn parse_address(s: &str) -> Option<Address<'_>> {
    // Fast path for the common case of values that are no address at all.
    if !s.as_bytes().contains(&b'@') {
        return None;
    }
    let s = s.trim_matches(|c: char| c.is_ascii_whitespace());
    if let Some(before_close) = s.strip_suffix('>') {
        let open = before_close.rfind('<')?;
        let name = before_close[..open].trim_matches(|c: char| c.is_ascii_whitespace());
        if !is_display_name(name) {
            return None;
        }
        let inner = before_close[open + 1..].trim_matches(|c: char| c.is_ascii_whitespace());
        return parse_addr_spec(inner);
    }
    parse_addr_spec(s)
}

fn is_display_name(name: &str) -> bool {
    if name.starts_with('"') {
        is_quoted_string(name)
    } else {
        !name.contains(['<', '>', '"'])
    }
}

/// The canonical identifier hashed for an address: see the module docs.
pub(crate) fn canonical(addr: &Address<'_>, ignore_dots: bool) -> String {
    let mut out = String::with_capacity(addr.local.len() + 1 + addr.domain.len());
    push_local_unquoted(addr.local, &mut out);
    // Cut at the first '+', unless the local part starts with it.
    if let Some(plus) = out.find('+') {
        if plus > 0 {
            out.truncate(plus);
        }
    }
    if ignore_dots {
        out.retain(|c| c != '.');
    }
    if out.is_ascii() {
        out.make_ascii_lowercase();
    } else {
        out = out.to_lowercase();
    }
    out.push('@');
    if addr.domain.is_ascii() {
        let start = out.len();
        out.push_str(addr.domain);
        if let Some(domain) = out.get_mut(start..) {
            domain.make_ascii_lowercase();
        }
    } else {
        out.push_str(&addr.domain.to_lowercase());
    }
    out
}

/// Appends the local part with the quotes and `\` escapes of a quoted local
/// part removed (so `"john.doe"` and `john.doe` are the same identifier).
fn push_local_unquoted(local: &str, out: &mut String) {
    match local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        Some(inner) => {
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(escaped) = chars.next() {
                        out.push(escaped);
                    }
                } else {
                    out.push(c);
                }
            }
        }
        None => out.push_str(local),
    }
}

/// A list of e-mail domains, each matching itself and its subdomains
/// (`contoso.example` matches `contoso.example` and `eu.contoso.example`,
/// not `notcontoso.example`); `*` matches every domain. Comparison ignores
/// letter case.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainList {
    any: bool,
    domains: Vec<String>,
}

/// An entry of a [`DomainList`] that is neither `*` nor a domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a domain name (write `contoso.example`; it covers its subdomains)")]
pub struct NotADomain(pub String);

impl DomainList {
    /// Builds the list; an entry that is neither `*` nor a domain name
    /// (letters, digits, `-`, dot-separated labels; a leading `*.` or `@` is
    /// not accepted) is returned (trimmed) in the error.
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Result<DomainList, NotADomain> {
        let mut list = DomainList::default();
        for e in entries {
            let e = e.as_ref().trim();
            if e == "*" {
                list.any = true;
                continue;
            }
            if e.starts_with('[') || !is_domain(e) {
                return Err(NotADomain(e.to_string()));
            }
            list.domains.push(e.to_lowercase());
        }
        Ok(list)
    }

    /// Whether `domain` (as written in an address) is listed or below a listed domain.
    pub fn contains(&self, domain: &str) -> bool {
        if self.any {
            return true;
        }
        let d = domain.to_lowercase();
        self.domains.iter().any(|listed| {
            d == *listed
                || (d.len() > listed.len()
                    && d.ends_with(listed.as_str())
                    && d.as_bytes()[d.len() - listed.len() - 1] == b'.')
        })
    }

    pub fn is_empty(&self) -> bool {
        !self.any && self.domains.is_empty()
    }
}

/// Splits an RFC 5322 address list (a `To`/`Cc`/`From` header value) into its
/// addresses, returned as bare `local@domain` strings in their original case;
/// display names are dropped.
///
/// Handles commas inside quoted display names (`"Smith, A" <a@x.com>`),
/// groups (`Team: a@x.com, b@y.com;`, the group name is dropped) and
/// `(comments)` between addresses. Entries that are not addresses are skipped.
pub(crate) fn parse_address_list(header: &str) -> Vec<String> {
    let mut out = Vec::new();
    for item in split_list(header) {
        if let Some(addr) = parse_address(&item) {
            out.push(addr.addr_spec());
        }
    }
    out
}

/// Splits at top-level `,`, `;` and group `:` (not inside quotes, angle
/// brackets, domain literals or comments). Comments are removed by blanking
/// them out of the returned slices, which is why this returns owned strings.
fn split_list(header: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut escaped = false;
    let mut angle = false;
    let mut literal = false;
    let mut comment_depth = 0usize;
    for c in header.chars() {
        if escaped {
            escaped = false;
            if comment_depth == 0 {
                cur.push(c);
            }
            continue;
        }
        if c == '\\' && (in_quotes || comment_depth > 0) {
            escaped = true;
            if comment_depth == 0 {
                cur.push(c);
            }
            continue;
        }
        if in_quotes {
            if c == '"' {
                in_quotes = false;
            }
            cur.push(c);
            continue;
        }
        if comment_depth > 0 {
            match c {
                '(' => comment_depth += 1,
                ')' => comment_depth -= 1,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_quotes = true;
                cur.push(c);
            }
            '(' if !literal => comment_depth = 1,
            '<' => {
                angle = true;
                cur.push(c);
            }
            '>' => {
                angle = false;
                cur.push(c);
            }
            '[' => {
                literal = true;
                cur.push(c);
            }
            ']' => {
                literal = false;
                cur.push(c);
            }
            // A group name ends at ':'; what came before it is dropped.
            ':' if !angle && !literal => cur.clear(),
            ',' | ';' if !angle && !literal => items.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    items.push(cur);
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Option<(String, String)> {
        parse_address(s).map(|a| (a.local.to_owned(), a.domain.to_owned()))
    }

    fn canon(s: &str, ignore_dots: bool) -> Option<String> {
        parse_address(s).map(|a| canonical(&a, ignore_dots))
    }

    #[test]
    fn detects_plain_and_named_addresses() {
        let a = |l: &str, d: &str| Some((l.to_owned(), d.to_owned()));
        assert_eq!(addr("alice@example.com"), a("alice", "example.com"));
        assert_eq!(addr("Alice.B+x@Example.COM"), a("Alice.B+x", "Example.COM"));
        assert_eq!(addr("Alice <alice@example.com>"), a("alice", "example.com"));
        assert_eq!(addr("\"Smith, Alice\" <a@x.org>"), a("a", "x.org"));
        assert_eq!(addr("<a@x.org>"), a("a", "x.org"));
        assert_eq!(addr("A < a@x.org >"), a("a", "x.org"));
        assert_eq!(addr("a@x.org <b@y.org>"), a("b", "y.org"));
        assert_eq!(addr("  a@x.org\t"), a("a", "x.org"));
        assert_eq!(addr("admin@localhost"), a("admin", "localhost"));
        assert_eq!(addr("\"john doe\"@x.org"), a("\"john doe\"", "x.org"));
        assert_eq!(addr("\"a@b\"@x.org"), a("\"a@b\"", "x.org"));
        assert_eq!(addr("a@[192.0.2.1]"), a("a", "[192.0.2.1]"));
        assert_eq!(addr("josé@exämple.de"), a("josé", "exämple.de"));
        assert_eq!(addr("o'brien@x-y.co.uk"), a("o'brien", "x-y.co.uk"));
    }

    #[test]
    fn rejects_non_addresses() {
        for s in [
            "",
            "@",
            "alice",
            "alice@",
            "@example.com",
            "a@@b.com",
            "a b@c.com",
            ".a@b.com",
            "a.@b.com",
            "a..b@c.com",
            "a@b..com",
            "a@.b.com",
            "a@b.com.",
            "a@-b.com",
            "a@b-.com",
            "a@b_c.com",
            "a@b c.com",
            "87d349ed-44d7-43e1-9a83-5f2406dee5bd",
            "Alice <alice@example.com",
            "Alice <alice>",
            "a\"b <a@b.com>",
            "x <y> <a@b.com>",
            "\"unclosed@x.com",
            "a@[]",
            "mailto:a@b.com",
            "https://x.com/@user",
        ] {
            assert_eq!(parse_address(s), None, "{s:?}");
        }
    }

    #[test]
    fn canonicalization() {
        let c = |s| canon(s, false).unwrap_or_default();
        assert_eq!(
            c("Alice@Worklytics.onmicrosoft.com"),
            "alice@worklytics.onmicrosoft.com"
        );
        assert_eq!(c("Alice+Tag+more@X.com"), "alice@x.com");
        assert_eq!(c("Alice Doe <Alice.Doe+news@X.com>"), "alice.doe@x.com");
        assert_eq!(c("+tag@x.com"), "+tag@x.com");
        assert_eq!(c("\"John.Doe\"@x.com"), "john.doe@x.com");
        assert_eq!(c("\"a\\\"b\"@x.com"), "a\"b@x.com");
        assert_eq!(c("JOSÉ@EXÄMPLE.DE"), "josé@exämple.de");
        assert_eq!(
            canon("A.l.i.c.e+x@x.com", true).as_deref(),
            Some("alice@x.com")
        );
        assert_eq!(
            canon("A.l.i.c.e+x.y@x.com", false).as_deref(),
            Some("a.l.i.c.e@x.com")
        );
        // The domain keeps its dots either way.
        assert_eq!(
            canon("a.b@mail.x.com", true).as_deref(),
            Some("ab@mail.x.com")
        );
    }

    #[test]
    fn domain_lists_match_domains_and_their_subdomains() {
        let l = DomainList::new(&["Contoso.example", "fabrikam.example"]).unwrap();
        for d in [
            "contoso.example",
            "CONTOSO.EXAMPLE",
            "eu.contoso.example",
            "fabrikam.example",
        ] {
            assert!(l.contains(d), "{d}");
        }
        for d in [
            "notcontoso.example",
            "contoso.example.evil",
            "example",
            "[192.0.2.1]",
            "",
        ] {
            assert!(!l.contains(d), "{d}");
        }
        let any = DomainList::new(&["*"]).unwrap();
        assert!(any.contains("anything.example") && !any.is_empty());
        assert!(DomainList::new::<&str>(&[]).unwrap().is_empty());
        for bad in [
            "",
            "@contoso.example",
            "*.contoso.example",
            "contoso..example",
            "[192.0.2.1]",
            "a b",
        ] {
            assert_eq!(
                DomainList::new(&[bad]),
                Err(NotADomain(bad.trim().to_string())),
                "{bad}"
            );
        }
    }

    #[test]
    fn address_lists() {
        assert_eq!(parse_address_list(""), Vec::<String>::new());
        assert_eq!(parse_address_list("a@x.com"), ["a@x.com"]);
        assert_eq!(
            parse_address_list("Alice <Alice@X.com>, b@y.org,  \"Smith, Carol\" <c@z.net>"),
            ["Alice@X.com", "b@y.org", "c@z.net"]
        );
        assert_eq!(
            parse_address_list("Team: a@x.com, Bob <b@y.com>;, d@w.com"),
            ["a@x.com", "b@y.com", "d@w.com"]
        );
        assert_eq!(
            parse_address_list("Undisclosed recipients:;"),
            Vec::<String>::new()
        );
        assert_eq!(
            parse_address_list("a@x.com (Alice, the boss), \"q:;,\" <q@x.com>"),
            ["a@x.com", "q@x.com"]
        );
        assert_eq!(parse_address_list("not an address, b@y.org"), ["b@y.org"]);
        assert_eq!(parse_address_list("\"x@y\"@z.com"), ["\"x@y\"@z.com"]);
        // Unbalanced input never panics.
        for s in [
            "\"",
            "(",
            "<",
            "\\",
            "a@b.com (",
            "\"a\\",
            "[,",
            ")))",
            "<<>>@",
        ] {
            let _ = parse_address_list(s);
        }
    }
}
