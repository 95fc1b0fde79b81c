//! Shared helpers of the veil-engine integration tests.
#![allow(dead_code)]

use std::sync::LazyLock;

use serde_json::Value;
use veil_engine::{
    EmailPolicy, PseudonymConfig, Pseudonymizer, RuleSet, SanitizeReport, Scheme, Secret,
};

pub const SALT: &str = "test-salt-0123456789-0123456789-0123456789";
pub const KEY: &str = "test-key-0123456789-0123456789-0123456789";

/// A pseudonymizer of its own (nothing cached yet), with the shared secrets.
pub fn build(scheme: Scheme) -> Pseudonymizer {
    Pseudonymizer::new(PseudonymConfig {
        scheme,
        salt: Secret::from(SALT),
        encryption_keys: vec![("k1".into(), Secret::from(KEY))],
        email: EmailPolicy::default(),
    })
    .expect("test pseudonymizer")
}

static HMAC: LazyLock<Pseudonymizer> = LazyLock::new(|| build(Scheme::Hmac));
// The psoxy scheme derives its key with PBKDF2 (65 536 rounds): build once.
static PSOXY: LazyLock<Pseudonymizer> = LazyLock::new(|| build(Scheme::Psoxy));

pub fn pseudonymizer(scheme: Scheme) -> &'static Pseudonymizer {
    match scheme {
        Scheme::Hmac => &HMAC,
        Scheme::Psoxy => &PSOXY,
    }
}

/// Rules with one endpoint `/x` and the given transforms (YAML list items).
pub fn rules(transforms: &str) -> RuleSet {
    let src = format!("endpoints:\n  - pathTemplate: /x\n    transforms:\n{transforms}");
    RuleSet::from_str("test.yaml", &src).unwrap_or_else(|e| panic!("{e}"))
}

pub fn run(rules: &RuleSet, mut doc: Value) -> Result<(Value, SanitizeReport), String> {
    let p = pseudonymizer(Scheme::Hmac);
    let report = rules.endpoints[0]
        .sanitize(&mut doc, p)
        .map_err(|e| e.to_string())?;
    Ok((doc, report))
}

/// A reader that hands out `body` at most `piece` bytes at a time.
pub struct Pieces<'a> {
    pub body: &'a [u8],
    pub piece: usize,
}

impl std::io::Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.piece.min(buf.len()).min(self.body.len());
        buf[..n].copy_from_slice(&self.body[..n]);
        self.body = &self.body[n..];
        Ok(n)
    }
}

/// The piece sizes the piecewise reader is checked with (`usize::MAX`:
/// whole).
pub const PIECE_SIZES: [usize; 4] = [1, 7, 4096, usize::MAX];

/// Sanitizes `body` read `piece` bytes at a time, by
/// `sanitize_body_read_to` and by the streaming path alone
/// (`sanitize_body_streaming_read`), and from memory by `sanitize_body_to`
/// and `stream::stream_only`; panics unless the piecewise ones give the
/// same output and report, or the same body error, and stream exactly
/// when the body streams from memory. Returns whether it streamed.
pub fn same_in_pieces(
    e: &veil_engine::CompiledEndpoint,
    body: &[u8],
    piece: usize,
    p: &Pseudonymizer,
    what: &str,
) -> bool {
    use veil_engine::{
        sanitize_body_read_to, sanitize_body_streaming_read, sanitize_body_to, BodyOptions,
        BodyWriteError as WriteError,
    };
    let opts = BodyOptions::default();
    let mut whole = Vec::new();
    let expected = sanitize_body_to(&e.sanitizer, body, p, &e.label, &opts, &mut whole);
    let mut out = Vec::new();
    let got = sanitize_body_read_to(
        &e.sanitizer,
        || Ok(Pieces { body, piece }),
        p,
        &e.label,
        &opts,
        &mut out,
    );
    match (&expected, &got) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "{what}, pieces of {piece}: report differs");
            assert!(
                whole == out,
                "{what}, pieces of {piece}: output differs\n memory: {}\n pieces: {}",
                String::from_utf8_lossy(&whole),
                String::from_utf8_lossy(&out)
            );
        }
        (Err(WriteError::Body(a)), Err(WriteError::Body(b))) => {
            assert_eq!(a, b, "{what}, pieces of {piece}: error differs");
            assert!(out.is_empty(), "{what}, pieces of {piece}: wrote on error");
        }
        _ => panic!("{what}, pieces of {piece}: memory {expected:?} vs pieces {got:?}"),
    }
    let memory = veil_engine::sanitize_body_streaming(&e.sanitizer, body, p, &e.label);
    let pieces = sanitize_body_streaming_read(&e.sanitizer, &mut Pieces { body, piece }, p)
        .unwrap_or_else(|err| panic!("{what}: {err}"));
    match (&memory, &pieces) {
        (Ok(Some(a)), Some(b)) => assert_eq!(a, b, "{what}, pieces of {piece}"),
        (Ok(None) | Err(_), None) => {}
        _ => panic!("{what}, pieces of {piece}: memory {memory:?} vs pieces {pieces:?}"),
    }
    pieces.is_some()
}
