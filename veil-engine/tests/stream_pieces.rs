//! The streaming sanitizer reading its body in pieces
//! (`sanitize_body_read_to`): every token split at every place across
//! the scanner's refills gives the output and the error the body gives
//! from memory. (The samples and the random documents of `stream_samples`
//! and `stream_props` are read in pieces of 1, 7 and 4096 bytes as well.)

mod common;

use std::io::Read;

use veil_engine::{
    sanitize_body_read_to, sanitize_body_streaming, sanitize_body_streaming_read, sanitize_body_to,
    sanitize_body_with, BodyError, BodyOptions, BodyWriteError as WriteError, RuleSet, Scheme,
};

/// A reader that hands out the body's first `split` bytes, then the rest
/// `piece` bytes at a time.
struct Split<'a> {
    body: &'a [u8],
    split: usize,
    piece: usize,
}

impl Read for Split<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = if self.split > 0 {
            self.split
        } else {
            self.piece
        };
        let n = want.min(buf.len()).min(self.body.len());
        buf[..n].copy_from_slice(&self.body[..n]);
        self.body = &self.body[n..];
        self.split = self.split.saturating_sub(n);
        Ok(n)
    }
}

fn rules() -> RuleSet {
    common::rules(
        "      - !<pseudonymize>\n        jsonPaths: ['$..address']\n      - !<redact>\n        jsonPaths: ['$..secret']\n      - !<tokenize>\n        jsonPaths: ['$.value[*].id']\n",
    )
}

/// Sanitizes `body` split at every byte; each must equal the body from
/// memory, and the streaming path alone must answer exactly when it
/// answers from memory (`streams` says whether that is expected).
fn every_split(rules: &RuleSet, body: &[u8], streams: bool) {
    let e = &rules.endpoints[0];
    let p = common::pseudonymizer(Scheme::Hmac);
    let memory = sanitize_body_streaming(&e.sanitizer, body, p, &e.label);
    assert_eq!(
        matches!(memory, Ok(Some(_))),
        streams,
        "{}: {memory:?}",
        String::from_utf8_lossy(body)
    );
    let opts = BodyOptions::default();
    let mut expected = Vec::new();
    let want = sanitize_body_to(&e.sanitizer, body, p, &e.label, &opts, &mut expected);
    for split in 0..=body.len() {
        for piece in [1, 3, 1 << 20] {
            let mut out = Vec::new();
            let got = sanitize_body_read_to(
                &e.sanitizer,
                || Ok(Split { body, split, piece }),
                p,
                &e.label,
                &opts,
                &mut out,
            );
            let what = format!("split at {split}, then pieces of {piece}");
            match (&want, &got) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a, b, "{what}");
                    assert_eq!(
                        String::from_utf8_lossy(&expected),
                        String::from_utf8_lossy(&out),
                        "{what}"
                    );
                }
                (Err(WriteError::Body(a)), Err(WriteError::Body(b))) => {
                    assert_eq!(a, b, "{what}");
                    assert!(out.is_empty(), "{what}: wrote on error");
                }
                _ => panic!("{what}: memory {want:?} vs pieces {got:?}"),
            }
            let alone =
                sanitize_body_streaming_read(&e.sanitizer, &mut Split { body, split, piece }, p)
                    .unwrap();
            assert_eq!(alone.is_some(), streams, "{what}: streamed alone?");
            if let (Some((out, report)), Ok(r)) = (&alone, &want) {
                assert_eq!(out, &expected, "{what}");
                assert_eq!(report, r, "{what}");
            }
        }
    }
}

#[test]
fn tokens_split_anywhere() {
    let rules = rules();
    let body =
        br#" {"value": [ {"id": "a\"b\\c\u00e9\ud83d\ude00", "address": "x@y.z", "n": -12.5e-3,
        "big": 123456789012345678901234, "t": true, "f": false, "z": null, "neg": -0,
        "secret": {"deep": [1, 2.0, "\n"]}, "s\u0061fe": "caf\u00e9 \u00fc"},
        {"id": 7, "address": "q@r.s", "e": [], "o": {}} ], "@odata.nextLink": "https://x/y" } "#;
    assert!(serde_json::from_slice::<serde_json::Value>(body).is_ok());
    every_split(&rules, body, true);
}

#[test]
fn invalid_bodies_fail_alike_split_anywhere() {
    let rules = rules();
    for body in [
        &br#"{"value": [{"id": "a\x"}]}"#[..],
        br#"{"value": [{"id": "\ud83d"}]}"#,
        br#"{"value": [1.]}"#,
        br#"{"value": [1e999]}"#,
        br#"{"value": [tru]}"#,
        br#"{"value": [nulll]}"#,
        br#"{"value": ["abc"#,
        br#"{"value": [] } x"#,
        b"{\"value\": [\"\xff\"]}",
        b"{\"value\": [\"\xc3\"]}",
        b"{\"value\": [\"a\x01\"]}",
        b"{\"value\": [\"\xe2\x82\xac\"]} \xe2\x82",
    ] {
        let e = &rules.endpoints[0];
        let p = common::pseudonymizer(Scheme::Hmac);
        assert!(
            matches!(
                sanitize_body_with(&e.sanitizer, body, p, &e.label, &BodyOptions::default()),
                Err(BodyError::InvalidJson { .. })
            ),
            "{}",
            String::from_utf8_lossy(body)
        );
        every_split(&rules, body, false);
    }
}

#[test]
fn nesting_too_deep_fails_alike_in_pieces() {
    let rules = rules();
    for n in [127, 128] {
        let body = format!("{}{}", "[".repeat(n), "]".repeat(n));
        for piece in common::PIECE_SIZES {
            let e = &rules.endpoints[0];
            let p = common::pseudonymizer(Scheme::Hmac);
            let streamed = common::same_in_pieces(e, body.as_bytes(), piece, p, "deep");
            assert_eq!(streamed, n == 127, "depth {n}");
        }
    }
}

#[test]
fn duplicate_names_and_failing_transforms_use_the_whole_body() {
    // A duplicate member name is resolved by the DOM path; the body is read
    // once more, whole.
    let rules = rules();
    let e = &rules.endpoints[0];
    let p = common::pseudonymizer(Scheme::Hmac);
    let body = br#"{"value": [{"id": "a", "id": "b"}]}"#;
    for piece in common::PIECE_SIZES {
        assert!(!common::same_in_pieces(e, body, piece, p, "duplicate"));
    }
    // A transform that fails: the DOM path's error, nothing written.
    let failing = common::rules("      - !<pseudonymize>\n        jsonPaths: ['$..from']\n");
    let e = &failing.endpoints[0];
    let body = br#"{"value": [{"from": "x@y.z"}, {"from": {"address": "a@b.c"}}]}"#;
    let mut out = Vec::new();
    let err = sanitize_body_read_to(
        &e.sanitizer,
        || Ok(&body[..]),
        p,
        &e.label,
        &BodyOptions::default(),
        &mut out,
    );
    assert!(
        matches!(&err, Err(WriteError::Body(BodyError::Transform(_)))),
        "{err:?}"
    );
    assert!(out.is_empty());
    for piece in common::PIECE_SIZES {
        common::same_in_pieces(e, body, piece, p, "failing transform");
    }
}

#[test]
fn read_errors_are_reported() {
    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    let rules = rules();
    let e = &rules.endpoints[0];
    let p = common::pseudonymizer(Scheme::Hmac);
    let mut out = Vec::new();
    let got = sanitize_body_read_to(
        &e.sanitizer,
        || Ok(Failing),
        p,
        &e.label,
        &BodyOptions::default(),
        &mut out,
    );
    assert!(
        matches!(&got, Err(WriteError::Read(e)) if e.to_string() == "disk on fire"),
        "{got:?}"
    );
    assert!(out.is_empty());
}

#[test]
fn a_buffered_subtree_larger_than_a_piece_is_held_whole() {
    // An index selector below `value` makes the whole array one buffered
    // subtree, here about 300 KB: more than the scanner reads at a time.
    let rules = common::rules(
        "      - !<redact>\n        jsonPaths: ['$.value[1].secret']\n      - !<pseudonymize>\n        jsonPaths: ['$.value[*].address']\n",
    );
    let items: Vec<String> = (0..4000)
        .map(|i| format!(r#"{{"id": {i}, "secret": "s{i}", "address": "u{i}@x.example"}}"#))
        .collect();
    let body = format!(r#"{{"a": "b", "value": [{}], "z": 1}}"#, items.join(", "));
    assert!(body.len() > 200_000);
    let e = &rules.endpoints[0];
    let p = common::pseudonymizer(Scheme::Hmac);
    for piece in common::PIECE_SIZES {
        assert!(common::same_in_pieces(
            e,
            body.as_bytes(),
            piece,
            p,
            "large subtree"
        ));
    }
}

#[test]
fn duplicate_names_in_large_objects_are_found() {
    let rules = rules();
    let e = &rules.endpoints[0];
    let p = common::pseudonymizer(Scheme::Hmac);
    let names: Vec<String> = (0..40).map(|i| format!("\"k{i}\": {i}")).collect();
    let distinct = format!("{{{}}}", names.join(", "));
    for (dup, at) in [(3, 10), (3, 35), (33, 39), (39, 40)] {
        let mut with_dup = names.clone();
        with_dup.insert(at, format!("\"k{dup}\": \"again\""));
        let body = format!("{{{}}}", with_dup.join(", "));
        for piece in common::PIECE_SIZES {
            assert!(!common::same_in_pieces(e, body.as_bytes(), piece, p, &body));
            assert!(common::same_in_pieces(
                e,
                distinct.as_bytes(),
                piece,
                p,
                &distinct
            ));
        }
    }
}
