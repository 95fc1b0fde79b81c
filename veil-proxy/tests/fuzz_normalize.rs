//! Fuzzing the request-target normalizer and the header checks on stable
//! Rust (proptest), through their public API only
//! (`veil_proxy::normalize_target`, `normalize_raw_target`,
//! `check_request_headers`).
//!
//! Targets are built from pieces an attacker would use: dot segments in
//! every encoding, encoded and Unicode look-alike slashes and backslashes,
//! double encoding, malformed escapes, controls, raw non-ASCII, fragments,
//! `;params`, plus raw random bytes. The properties: nothing panics; what is
//! accepted comes back byte for byte, starts with `/`, has no fragment, no
//! raw byte outside printable ASCII, no dot segment or encoded `/` in the
//! path after decoding, and normalizes again to itself; what is refused is a
//! 400, 414 or 431 whose message never echoes the target.
//!
//! Cases per property: `VEIL_FUZZ_CASES` (default 2048: a few seconds). For
//! a longer local run:
//!
//! ```text
//! VEIL_FUZZ_CASES=200000 cargo test --release -p veil-proxy --test fuzz_normalize
//! ```

use http::header::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::percent_decode;
use proptest::prelude::*;
use veil_proxy::{
    check_request_headers, normalize_raw_target, normalize_target, ErrorKind, RequestLimits,
};

fn cases() -> u32 {
    std::env::var("VEIL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    }
}

/// One piece of a path or query.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => "[A-Za-z0-9_~-]{1,8}".prop_map(String::into_bytes),
        1 => prop::sample::select(vec![
            ".", "..", "%2e", "%2E", ".%2e", "%2e%2E", "..;x", "..:", "..%20", "%EF%BC%8E",
            "%2F", "%2f", "%5C", "%5c", "\\", "%EF%BC%8F", "%EF%BC%BC", "%EF%B9%A8", "%252e",
            "%25%32%65", "%", "%4", "%zz", "%u002e", "%C0%AE", "%00", "%0d%0a", "%7F", "%C2%85",
            "%E2%80%A8", ";", ";a=b", "#", "#frag", "?", "&", "=", "+", "%20", " ", "\"", "<",
            ">", "[", "]", "^", "`", "{", "|", "}", "'", "(", ")", "$filter", "p~", "p%7E",
            "%25", "%253a", "@", ":", "\u{e9}", "\u{202e}",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 1..4),
    ]
}

/// A request target: `/`-separated pieces, maybe a query, maybe a fragment.
fn target() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(prop::collection::vec(piece(), 0..4), 0..8),
        prop::option::of(prop::collection::vec(piece(), 0..10)),
        any::<bool>(),
        prop::option::of(prop::collection::vec(piece(), 0..3)),
    )
        .prop_map(|(segs, query, leading_slash, fragment)| {
            let mut t = Vec::new();
            for (i, seg) in segs.iter().enumerate() {
                if i > 0 || leading_slash {
                    t.push(b'/');
                }
                t.extend(seg.concat());
            }
            if t.is_empty() && leading_slash {
                t.push(b'/');
            }
            if let Some(q) = query {
                t.push(b'?');
                t.extend(q.concat());
            }
            if let Some(f) = fragment {
                t.push(b'#');
                t.extend(f.concat());
            }
            t
        })
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// The invariants of an accepted target.
fn check_accepted(raw: &[u8], path: &str, query: Option<&str>) -> Result<(), TestCaseError> {
    let rebuilt = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    // Byte for byte (an empty query is dropped).
    let raw_text = String::from_utf8(raw.to_vec()).expect("accepted targets are ASCII");
    prop_assert!(
        raw_text == rebuilt || raw_text == format!("{rebuilt}?"),
        "{raw_text:?} came back as {rebuilt:?}"
    );
    prop_assert!(path.starts_with('/'));
    prop_assert!(!rebuilt.contains('#'));
    prop_assert!(
        rebuilt.bytes().all(|b| (0x21..0x7f).contains(&b)),
        "{rebuilt:?}"
    );
    prop_assert!(!rebuilt.contains('\\'));
    for seg in path.split('/').skip(1) {
        let lower = seg.to_ascii_lowercase();
        prop_assert!(!lower.contains("%2f") && !lower.contains("%5c"), "{path:?}");
        let decoded = percent_decode(seg.as_bytes()).decode_utf8();
        prop_assert!(decoded.is_ok(), "{path:?}");
        let decoded = decoded.unwrap();
        let bare = decoded.split(';').next().unwrap_or_default().trim();
        prop_assert!(bare != "." && bare != "..", "dot segment in {path:?}");
        prop_assert!(!decoded.chars().any(char::is_control), "{path:?}");
        // No double encoding left in the path.
        let d = decoded.as_bytes();
        prop_assert!(
            !d.windows(3)
                .any(|w| w[0] == b'%' && is_hex(w[1]) && is_hex(w[2])),
            "double encoding in {path:?}"
        );
    }
    if path != "/" {
        prop_assert!(!path.ends_with('/') && !path.contains("//"), "{path:?}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn raw_targets(raw in target()) {
        let limits = RequestLimits::default();
        match normalize_raw_target(&raw, &limits) {
            Ok(t) => {
                check_accepted(&raw, &t.path, t.query.as_deref())?;
                // Idempotent.
                let again = normalize_raw_target(t.path_and_query().as_bytes(), &limits);
                prop_assert_eq!(again.ok(), Some(t));
            }
            Err(e) => {
                prop_assert!(matches!(e.kind, ErrorKind::BadRequest | ErrorKind::UriTooLong));
                let text = String::from_utf8_lossy(&raw);
                if text.len() > 12 {
                    prop_assert!(!e.message.contains(text.as_ref()), "echoed: {}", e.message);
                }
            }
        }
    }

    #[test]
    fn random_bytes(raw in prop::collection::vec(any::<u8>(), 0..200), tiny in 0usize..64) {
        let _ = normalize_raw_target(&raw, &RequestLimits::default());
        let limits = RequestLimits { max_target: tiny, ..RequestLimits::default() };
        if let Err(e) = normalize_raw_target(&raw, &limits) {
            if raw.len() > tiny {
                prop_assert_eq!(e.kind, ErrorKind::UriTooLong);
            }
        } else {
            prop_assert!(raw.len() <= tiny);
        }
    }

    /// Through `http::Uri`, as hyper hands targets over: the same answers
    /// (the `Uri` has already dropped any fragment).
    #[test]
    fn parsed_uris(raw in target()) {
        let Ok(uri) = http::Uri::try_from(raw.as_slice()) else {
            return Ok(());
        };
        let limits = RequestLimits::default();
        match normalize_target(&uri, &limits) {
            Ok(t) => {
                let pq = uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
                check_accepted(pq.as_bytes(), &t.path, t.query.as_deref())?;
                prop_assert_eq!(normalize_raw_target(pq.as_bytes(), &limits).ok(), Some(t));
            }
            Err(e) => prop_assert!(matches!(e.kind, ErrorKind::BadRequest | ErrorKind::UriTooLong)),
        }
    }

    #[test]
    fn headers(
        fields in prop::collection::vec(
            (
                prop_oneof![
                    "[a-z][a-z0-9-]{0,20}".prop_map(String::from),
                    prop::sample::select(vec![
                        "x-http-method-override", "X-HTTP-Method", "x-method-override",
                        "authorization", "accept-encoding", "consistencylevel",
                    ]).prop_map(String::from),
                ],
                prop::collection::vec(
                    prop_oneof![8 => 0x20u8..0x7f, 1 => Just(b'\t'), 1 => 0x80u8..=0xff],
                    0..64,
                ),
            ),
            0..40,
        ),
        max_headers in 1usize..60,
        max_value in 1usize..80,
        max_total in 1usize..2000,
    ) {
        let mut map = HeaderMap::new();
        for (name, value) in &fields {
            let (Ok(n), Ok(v)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_bytes(value)) else {
                continue;
            };
            map.append(n, v);
        }
        let limits = RequestLimits {
            max_target: 8192,
            max_header_value: max_value,
            max_headers_total: max_total,
            max_headers,
        };
        match check_request_headers(&map, &limits) {
            Ok(()) => {
                prop_assert!(map.len() <= max_headers);
                let mut total = 0;
                for (n, v) in &map {
                    prop_assert!(v.len() <= max_value);
                    prop_assert!(v.as_bytes().iter().all(|&b| b >= 0x20 && b != 0x7f));
                    prop_assert!(
                        !["x-http-method-override", "x-http-method", "x-method-override"]
                            .contains(&n.as_str()),
                        "{}",
                        n
                    );
                    total += n.as_str().len() + v.len() + 4;
                }
                prop_assert!(total <= max_total);
            }
            Err(e) => prop_assert!(matches!(e.kind, ErrorKind::BadRequest | ErrorKind::HeadersTooLarge)),
        }
    }
}
