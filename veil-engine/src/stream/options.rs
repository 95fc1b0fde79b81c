//! What a host may choose for the sanitized body: the path (streaming or
//! the DOM reference) and a public base URL for paging links.

use super::*;

/// Which sanitizer answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SanitizerPath {
    /// The streaming transcoder, falling back to the DOM path where the
    /// rules or the body need it.
    #[default]
    Streaming,
    /// Always the DOM path (the reference; same output, more time and
    /// memory). For comparisons and benchmarks.
    Dom,
}

/// What a host sets for every response besides the rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyOptions {
    /// Where the paging links point: `None` keeps Graph's links (what
    /// Psoxy clients expect).
    pub public_base: Option<PublicBase>,
    pub path: SanitizerPath,
    /// A nesting limit tighter than serde_json's 127 containers: a body
    /// that nests deeper is refused with [`BodyError::TooDeep`], on either
    /// path, before anything of it is sanitized. The check is part of the
    /// streaming pass (no pass of its own); the DOM path scans for it first.
    pub max_depth: Option<usize>,
}

/// Graph's base URL, as paging links carry it.
pub const GRAPH_BASE: &str = "https://graph.microsoft.com";

/// The top-level members that hold paging links (the rules' `pagingLinks`).
pub const PAGING_LINKS: [&str; 2] = ["@odata.nextLink", "@odata.deltaLink"];

/// A public base URL for paging links: `https://host[:port]` (plain
/// `http://` only for a loopback host), no path, query or user info. A
/// sanitized top-level `@odata.nextLink`/`@odata.deltaLink` that starts with
/// `https://graph.microsoft.com/` gets this base instead, so a client
/// follows it through Veil. The rest of the link is what the rules left
/// (tokens stay tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicBase(String);

/// `127.x.y.z` in dotted decimal, each part 0–255 without a leading zero
/// (the engine names no network types, so this is written out).
fn is_loopback_ipv4(host: &str) -> bool {
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 4
        && parts[0] == "127"
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
                && p.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

/// A public base URL that cannot be used; each variant names the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicBaseError {
    #[error("public base URL `{url}` must start with https:// (e.g. https://veil.example.com)")]
    Scheme { url: String },
    #[error("public base URL `{url}` must be scheme://host[:port] with no path, query or fragment: Veil serves Graph's paths at its root")]
    NotJustTheOrigin { url: String },
    #[error("public base URL `{url}` must not carry user information")]
    UserInfo { url: String },
    #[error("public base URL `{url}`: `{port}` is not a port")]
    Port { url: String, port: String },
    #[error("public base URL `{url}`: `{host}` is not a host name or address")]
    Host { url: String, host: String },
    #[error(
        "public base URL `{url}` must use https:// (plain http:// only for a loopback address)"
    )]
    PlainHttp { url: String },
}

impl PublicBase {
    /// Checks `url`; the error says what is wrong with it.
    pub fn parse(url: &str) -> Result<PublicBase, PublicBaseError> {
        let u = || url.to_string();
        let (scheme, authority) = if let Some(a) = url.strip_prefix("https://") {
            ("https", a)
        } else if let Some(a) = url.strip_prefix("http://") {
            ("http", a)
        } else {
            return Err(PublicBaseError::Scheme { url: u() });
        };
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if authority.contains(['/', '?', '#']) {
            return Err(PublicBaseError::NotJustTheOrigin { url: u() });
        }
        if authority.contains('@') {
            return Err(PublicBaseError::UserInfo { url: u() });
        }
        let (host, port) = match authority.rfind(':') {
            Some(i) if authority.starts_with('[') && !authority[..i].ends_with(']') => {
                (authority, None)
            }
            Some(i) => (&authority[..i], Some(&authority[i + 1..])),
            None => (authority, None),
        };
        if let Some(p) = port {
            if !(1..=5).contains(&p.len())
                || !p.bytes().all(|b| b.is_ascii_digit())
                || !p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n))
            {
                return Err(PublicBaseError::Port {
                    url: u(),
                    port: p.to_string(),
                });
            }
        }
        let ipv6 = host.starts_with('[') && host.ends_with(']');
        let host_ok = if ipv6 {
            host.len() > 2
                && host[1..host.len() - 1]
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        } else {
            !host.is_empty()
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
        };
        if !host_ok {
            return Err(PublicBaseError::Host {
                url: u(),
                host: host.to_string(),
            });
        }
        let loopback =
            host.eq_ignore_ascii_case("localhost") || host == "[::1]" || is_loopback_ipv4(host);
        if scheme == "http" && !loopback {
            return Err(PublicBaseError::PlainHttp { url: u() });
        }
        Ok(PublicBase(format!(
            "{scheme}://{}",
            authority.to_ascii_lowercase()
        )))
    }

    /// The base, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The link with this base instead of Graph's, if it is a Graph link.
    pub fn rewrite(&self, link: &str) -> Option<String> {
        let rest = link.strip_prefix(GRAPH_BASE)?;
        rest.starts_with('/').then(|| format!("{}{rest}", self.0))
    }

    /// Rewrites the paging links of a sanitized document.
    pub fn rewrite_doc(&self, doc: &mut Value) {
        if let Value::Object(map) = doc {
            for key in PAGING_LINKS {
                if let Some(Value::String(link)) = map.get_mut(key) {
                    if let Some(new) = self.rewrite(link) {
                        *link = new;
                    }
                }
            }
        }
    }
}
