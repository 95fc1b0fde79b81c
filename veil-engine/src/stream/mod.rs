//! The streaming sanitizer: response bytes in, sanitized compact JSON out,
//! in one pass and without a document tree. Byte for byte the same output
//! and the same [`Report`] as the DOM sanitizer ([`crate::sanitize`], the
//! reference), which parses the page into a `serde_json::Value`, filters and
//! rewrites it and serializes it.
//!
//! # How
//!
//! A scanner ([`scan`]) reads the body token by token. At each value the
//! compiled rules decide, before the value is read:
//!
//! - the `responseSchema` ([`SchemaFilter::verdict`]) from the value's
//!   shape alone: an undeclared member or a cleared array is skipped (checked
//!   but not kept, no allocation), a value of the wrong type becomes `null`;
//!   where the schema looks into the value (a `const`, `anyOf`/`oneOf`
//!   alternatives told apart by a member's `const`), that value is buffered
//!   and filtered whole by the DOM filter;
//! - the JSONPath automaton ([`PathSet::advance`]) which transforms end at
//!   the value and which states continue below it.
//!
//! Scalars are copied (or transformed, with the DOM code's per-document
//! memo) straight to the output. A container no path ends at is streamed
//! into; one a `redact` ends at is skipped. Where a rule needs to see more
//! than the value at hand — a transform other than `redact` on a container
//! (it may turn it into `null` or fail on it), a filter, index or slice
//! selector on its children — the **smallest enclosing subtree** is
//! buffered: parsed by serde_json into a `Value`, filtered, transformed and
//! walked by the DOM code, written, and streaming goes on. Memory is then
//! one such subtree (typically one element of `value[]`), not the page.
//!
//! Rules that need the whole document (`applyOnlyWhen`, a path `$`, a
//! recursive filter or index such as `$..[?…]`) make the endpoint use the
//! DOM path; [`EndpointSanitizer::streams`] decides that from the rules.
//!
//! # Exactly the DOM output
//!
//! - Input: the scanner accepts exactly what `serde_json::from_slice::<Value>`
//!   accepts (UTF-8, RFC 8259 grammar, at most 127 nested containers — the
//!   128th is serde_json's recursion limit —, numbers in `f64` range,
//!   well-formed escapes and paired surrogates).
//! - Scalars: strings without escapes and integers of at most 18 digits
//!   (not `-0`) are written as they came, which is what serde_json writes
//!   for them; every other string or number is read and written by
//!   serde_json itself (`1.0e5` → `100000.0`, `-0` → `-0.0`, `\u00e9` → `é`).
//! - Duplicate member names: `serde_json::Value` (with `preserve_order`)
//!   keeps the last value at the first position. Rather than reproduce that,
//!   a body with a duplicate name in any object that is read (not skipped)
//!   is sanitized by the DOM path.
//! - Anything the scanner refuses is checked once more by serde_json: if
//!   serde_json refuses it too, that is the error (with its line and
//!   column); if not, the DOM path answers. Whatever the scanner is unsure
//!   of goes to the reference path; the tests (`tests/stream_*.rs`) compare
//!   acceptance, output and report with serde_json and the DOM path.
//!
//! # Fail closed
//!
//! The result is the complete sanitized body or an error, never part of
//! one: output is collected in memory (it is much smaller than the input
//! when the schema drops most of a page) and returned only when the whole
//! body was read. Invalid JSON, nesting deeper than 127 and transform
//! failures are errors. When a transform fails, the body is sanitized once
//! more by the DOM path, whose error (endpoint, transform, JSON path) is the
//! one returned: failures are rare, and so the error is the reference's.
//! There is no size limit here: the caller's limit on the body bounds the
//! input, and a buffered subtree is part of it.
//!
//! [`sanitize_to`] writes the output to a sink in pieces instead (for
//! `veil sanitize`): a first pass that writes nothing proves the whole body
//! sanitizes, the second writes as it goes; a piece is handed over only
//! between the members or elements of a streamed container, where nothing
//! written can be taken back.
//!
//! # Host options
//!
//! [`BodyOptions`] selects the path ([`SanitizerPath::Dom`] forces the
//! reference, for comparisons) and a [`PublicBase`] for paging links: a
//! sanitized top-level `@odata.nextLink`/`@odata.deltaLink` starting with
//! `https://graph.microsoft.com/` then starts with Veil's public base. Both
//! paths rewrite the same value the same way, after the rules ran.
//!
//! # Why a hand-written scanner
//!
//! Two readers were measured on the pages of `benches/sanitize.rs` (its
//! `reader:` lines; one run, medians, 2.1 MB / 10.3 MB page):
//!
//! | reader | 2.1 MB | 10.3 MB |
//! | --- | --- | --- |
//! | serde_json `Value` parse + serialize (the DOM floor) | 40.8 ms | 293.6 ms |
//! | serde_json `Deserializer`, `IgnoredAny` (a visitor's floor) | 0.72 ms | 7.8 ms |
//! | this scanner, skipping the whole page | 1.21 ms | 10.3 ms |
//! | this scanner, copying the whole page | 7.65 ms | 43.3 ms |
//!
//! serde_json's event path skips faster, but skipping is a small part of
//! the work either way; what decided is what a transcoder built on a serde
//! visitor cannot do. It sees decoded values, not their bytes, so it cannot
//! copy a kept string or number as it came (every one would be re-encoded),
//! nor hand the bytes of a subtree to the DOM code; and `IgnoredAny` checks
//! less than `Value` (it accepts lone surrogates and out-of-range numbers),
//! so a skipped subtree would accept bodies the DOM path refuses. The scanner
//! gives byte positions, copies plain tokens and checks exactly what `Value`
//! checks. `simd-json`/`sonic-rs` were not taken: they build a tape of the
//! whole document (memory in proportion to the page again), need `unsafe`
//! SIMD code this crate forbids for itself, and format floats their own way.
//! The scanner only classifies bytes: every decoding and encoding that is
//! not a plain copy is serde_json's, so the subtle parts are not
//! reimplemented.
//!
//! Where the time goes (perf, 10 MB page, shipped mail rules): finding the
//! ends of strings (~10 %), the member loop with its duplicate check (~7 %),
//! UTF-8 checks (~6 %), the path automaton's per-member step (~6 %), the
//! transforms on selected values with their memo (~8 %), and the kernel
//! faulting in the input and output buffers (~20 %).
//!
//! Under `veil serve` (perf, `cargo bench --bench proxy`, 109 KB page,
//! streaming): the upstream body's depth check (~12 % before it skipped
//! string content), this scanner's strings (~8 %) and member loop (~6 %),
//! UTF-8 checks (~6 %), socket writes and reads (~8 %), malloc/free (~7 %),
//! gzip for callers that ask (~5 %), HMAC for pseudonyms the memo has not
//! seen (~3 %). A per-request cost outside the sanitizer (HTTP both ways,
//! the upstream read, logging) is of the order of the streaming sanitizer's
//! own, so the proxy gains less than the sanitizer alone.

mod scan;

use std::borrow::Cow;
use std::fmt;
use std::io::Write;

use foldhash::HashSet;
use serde_json::Value;

use crate::error::SanitizeError;
use crate::jsonpath::{Key, PathSet, State};
use crate::pseudonym::Pseudonymizer;
use crate::sanitize::{EndpointSanitizer, Report, Walk};
use crate::schema_filter::{SchemaFilter, Shape, Verdict};
use scan::{Bad, Num, Scanner, Str, MAX_DEPTH};

/// Why a response body could not be sanitized. Nothing of the body may be
/// sent then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The body is not JSON (serde_json's diagnostic, 1-based line/column).
    InvalidJson {
        line: usize,
        column: usize,
        message: String,
    },
    /// A transform could not handle a value.
    Transform(SanitizeError),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::InvalidJson {
                line,
                column,
                message,
            } => write!(
                f,
                "the response is not valid JSON (line {line}, column {column}): {message}"
            ),
            BodyError::Transform(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BodyError {}

fn json_error(e: serde_json::Error) -> BodyError {
    BodyError::InvalidJson {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    }
}

/// Sanitizes a response body: the compact JSON `serde_json::to_vec` would
/// write for the document [`EndpointSanitizer::sanitize`] leaves, and its
/// report. Streams when the rules allow it, else uses the DOM path.
pub fn sanitize_bytes(
    san: &EndpointSanitizer,
    body: &[u8],
    p: &Pseudonymizer,
    endpoint: &str,
) -> Result<(Vec<u8>, Report), BodyError> {
    sanitize_with(san, body, p, endpoint, &BodyOptions::default())
}

/// [`sanitize_bytes`] with the host's [`BodyOptions`]: which path answers,
/// and where paging links point.
pub fn sanitize_with(
    san: &EndpointSanitizer,
    body: &[u8],
    p: &Pseudonymizer,
    endpoint: &str,
    opts: &BodyOptions,
) -> Result<(Vec<u8>, Report), BodyError> {
    let links = opts.public_base.as_ref();
    if opts.path == SanitizerPath::Dom {
        return dom_with(san, body, p, endpoint, links);
    }
    let active = vec![true; san.transforms().len()];
    let mut tx = Tx::new(san, body, p, &active, links, None);
    match stream_inner(san, body, p, endpoint, &mut tx)? {
        Some(report) => Ok((tx.out, report)),
        None => dom_with(san, body, p, endpoint, links),
    }
}

/// Sanitizes a response body into `w`, holding only a bounded part of the
/// output in memory (the body itself is held by the caller).
///
/// Fail closed in two passes where the body streams: the first writes
/// nothing and proves that the whole body sanitizes (valid JSON, no
/// transform failure, no duplicate member name that would need the DOM
/// path); only then the second writes the output as it is produced. The
/// transforms are deterministic, so the second pass repeats the first; should
/// it fail anyway, [`WriteError::Incomplete`] says the output is cut short.
/// Bodies that need the DOM path are sanitized whole before anything is
/// written.
pub fn sanitize_to(
    san: &EndpointSanitizer,
    body: &[u8],
    p: &Pseudonymizer,
    endpoint: &str,
    opts: &BodyOptions,
    w: &mut dyn Write,
) -> Result<Report, WriteError> {
    let links = opts.public_base.as_ref();
    let whole = |w: &mut dyn Write| -> Result<Report, WriteError> {
        let (out, report) = dom_with(san, body, p, endpoint, links).map_err(WriteError::Body)?;
        w.write_all(&out).map_err(WriteError::Io)?;
        Ok(report)
    };
    if opts.path == SanitizerPath::Dom {
        return whole(w);
    }
    let active = vec![true; san.transforms().len()];
    let mut discard = std::io::sink();
    let mut proof = Tx::new(san, body, p, &active, links, Some(&mut discard));
    if stream_inner(san, body, p, endpoint, &mut proof)
        .map_err(WriteError::Body)?
        .is_none()
    {
        return whole(w);
    }
    drop(proof);
    let mut tx = Tx::new(san, body, p, &active, links, Some(w));
    let result = stream_inner(san, body, p, endpoint, &mut tx);
    let io = tx.io_error.take();
    match (result, io) {
        (_, Some(e)) => Err(WriteError::Io(e)),
        (Ok(Some(report)), None) => {
            let rest = std::mem::take(&mut tx.out);
            match tx.sink.as_mut() {
                Some(w) => w.write_all(&rest).map_err(WriteError::Io)?,
                None => return Err(WriteError::Incomplete),
            }
            Ok(report)
        }
        (Ok(None) | Err(_), None) => Err(WriteError::Incomplete),
    }
}

/// Why [`sanitize_to`] stopped.
#[derive(Debug)]
pub enum WriteError {
    /// The body cannot be sanitized; nothing was written.
    Body(BodyError),
    /// Writing failed (the output is cut short).
    Io(std::io::Error),
    /// The second pass did not repeat the first (cannot happen with
    /// deterministic transforms); the output is cut short.
    Incomplete,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Body(e) => e.fmt(f),
            WriteError::Io(e) => write!(f, "cannot write the output: {e}"),
            WriteError::Incomplete => f.write_str(
                "the response sanitized differently on the writing pass; the output is incomplete",
            ),
        }
    }
}

impl std::error::Error for WriteError {}

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
}

/// Graph's base URL, as paging links carry it.
pub const GRAPH_BASE: &str = "https://graph.microsoft.com";

/// The top-level members that hold paging links (the rules' `pagingLinks`).
pub const PAGING_LINKS: [&str; 2] = ["@odata.nextLink", "@odata.deltaLink"];

impl EndpointSanitizer {
    /// Sanitizes a response body into compact JSON, streaming where the
    /// rules allow it: the bytes `serde_json::to_vec` would write after
    /// [`EndpointSanitizer::sanitize`], without building the document.
    /// `endpoint` names the endpoint in errors. (Defined here, beside the
    /// streaming pass, so that the DOM sanitizer needs nothing of it.)
    pub fn sanitize_bytes(
        &self,
        body: &[u8],
        p: &Pseudonymizer,
        endpoint: &str,
    ) -> Result<(Vec<u8>, Report), BodyError> {
        sanitize_bytes(self, body, p, endpoint)
    }
}

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

impl PublicBase {
    /// Checks `url`; the error says what is wrong with it.
    pub fn parse(url: &str) -> Result<PublicBase, String> {
        let (scheme, authority) = if let Some(a) = url.strip_prefix("https://") {
            ("https", a)
        } else if let Some(a) = url.strip_prefix("http://") {
            ("http", a)
        } else {
            return Err(format!(
                "public base URL `{url}` must start with https:// (e.g. https://veil.example.com)"
            ));
        };
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if authority.contains(['/', '?', '#']) {
            return Err(format!(
                "public base URL `{url}` must be scheme://host[:port] with no path, query or fragment: Veil serves Graph's paths at its root"
            ));
        }
        if authority.contains('@') {
            return Err(format!(
                "public base URL `{url}` must not carry user information"
            ));
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
                return Err(format!("public base URL `{url}`: `{p}` is not a port"));
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
            return Err(format!(
                "public base URL `{url}`: `{host}` is not a host name or address"
            ));
        }
        let loopback =
            host.eq_ignore_ascii_case("localhost") || host == "[::1]" || is_loopback_ipv4(host);
        if scheme == "http" && !loopback {
            return Err(format!(
                "public base URL `{url}` must use https:// (plain http:// only for a loopback address)"
            ));
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

/// The DOM path (the reference): parse, sanitize, serialize.
pub fn dom(
    san: &EndpointSanitizer,
    body: &[u8],
    p: &Pseudonymizer,
    endpoint: &str,
) -> Result<(Vec<u8>, Report), BodyError> {
    dom_with(san, body, p, endpoint, None)
}

/// The DOM path, paging links pointed at `links` when given.
pub fn dom_with(
    san: &EndpointSanitizer,
    body: &[u8],
    p: &Pseudonymizer,
    endpoint: &str,
    links: Option<&PublicBase>,
) -> Result<(Vec<u8>, Report), BodyError> {
    let mut doc: Value = serde_json::from_slice(body).map_err(json_error)?;
    let report = san
        .sanitize(&mut doc, p, endpoint)
        .map_err(BodyError::Transform)?;
    if let Some(base) = links {
        base.rewrite_doc(&mut doc);
    }
    let out = serde_json::to_vec(&doc).map_err(json_error)?;
    Ok((out, report))
}

/// The streaming path alone: `Ok(None)` when this body or these rules need
/// the DOM path (rules that see the whole document, a duplicate member
/// name, or a body the scanner refuses and serde_json accepts).
pub fn stream_only(
    san: &EndpointSanitizer,
    body: &[u8],
    p: &Pseudonymizer,
    endpoint: &str,
) -> Result<Option<(Vec<u8>, Report)>, BodyError> {
    let active = vec![true; san.transforms().len()];
    let mut tx = Tx::new(san, body, p, &active, None, None);
    Ok(stream_inner(san, body, p, endpoint, &mut tx)?.map(|r| (std::mem::take(&mut tx.out), r)))
}

fn stream_inner(
    san: &EndpointSanitizer,
    body: &[u8],
    p: &Pseudonymizer,
    endpoint: &str,
    tx: &mut Tx<'_, '_, '_>,
) -> Result<Option<Report>, BodyError> {
    if !san.streams() {
        return Ok(None);
    }
    let result = if std::str::from_utf8(body).is_err() {
        Err(Stop::Bad)
    } else {
        tx.run()
    };
    match result {
        Ok(()) => Ok(Some(Report {
            schema_changes: tx.schema_changes,
            matches: std::mem::take(&mut tx.w.matches),
            changes: std::mem::take(&mut tx.w.changes),
            active: vec![true; san.transforms().len()],
        })),
        // A transform failed. The DOM path gives the error: it names the
        // same value, and a duplicate member name later in the body (which
        // the DOM path resolves to the last value) cannot make the two differ.
        Err(Stop::Fail) => match dom(san, body, p, endpoint) {
            Err(e) => Err(e),
            Ok(_) => Ok(None),
        },
        Err(Stop::Dup | Stop::Io) => Ok(None),
        Err(Stop::Bad) => match serde_json::from_slice::<Value>(body) {
            Err(e) => Err(json_error(e)),
            Ok(_) => Ok(None),
        },
    }
}

enum Stop {
    /// Not JSON serde_json accepts (the diagnostic comes from serde_json).
    Bad,
    /// A duplicate member name: the DOM path decides.
    Dup,
    /// A transform failed.
    Fail,
    /// Writing to the sink failed (the error is in `Tx::io_error`).
    Io,
}

impl From<Bad> for Stop {
    fn from(_: Bad) -> Self {
        Stop::Bad
    }
}

/// The schema node a value is filtered by, and the filter's depth there.
#[derive(Debug, Clone, Copy)]
enum Sch {
    Off,
    Node(usize, usize),
}

enum Scalar<'a> {
    Str(Str<'a>),
    Num(Num<'a>),
    Lit(&'static [u8]),
}

/// Member names of one object, to find duplicates.
#[derive(Default)]
struct Seen<'a> {
    list: Vec<Cow<'a, str>>,
    set: HashSet<Cow<'a, str>>,
}

impl<'a> Seen<'a> {
    fn clear(&mut self) {
        self.list.clear();
        self.set.clear();
    }

    /// False when `key` was seen before.
    fn insert(&mut self, key: Cow<'a, str>) -> bool {
        if self.set.is_empty() {
            if self.list.contains(&key) {
                return false;
            }
            if self.list.len() < 32 {
                self.list.push(key);
                return true;
            }
            self.set.extend(self.list.drain(..));
        }
        self.set.insert(key)
    }
}

/// With a sink: the output is handed to it in pieces of about this size.
const FLUSH_AT: usize = 64 * 1024;

struct Tx<'a, 's, 'o> {
    sc: Scanner<'a>,
    /// The output not yet handed to the sink (all of it without a sink).
    out: Vec<u8>,
    /// Bytes handed to the sink so far.
    flushed: usize,
    sink: Option<&'o mut dyn Write>,
    io_error: Option<std::io::Error>,
    /// Where top-level paging links point, when not at Graph.
    links: Option<&'s PublicBase>,
    san: &'s EndpointSanitizer,
    schema: Option<&'s SchemaFilter>,
    paths: &'s PathSet,
    global: bool,
    w: Walk<'s>,
    schema_changes: usize,
    order: Vec<usize>,
    /// Per depth: the member names of the object being read.
    seen: Vec<Seen<'a>>,
    /// Per depth: automaton states and matched paths of the current child.
    bufs: Vec<(Vec<State>, Vec<u32>)>,
}

impl<'a, 's, 'o> Tx<'a, 's, 'o> {
    fn new(
        san: &'s EndpointSanitizer,
        body: &'a [u8],
        p: &'s Pseudonymizer,
        active: &'s [bool],
        links: Option<&'s PublicBase>,
        sink: Option<&'o mut dyn Write>,
    ) -> Self {
        // Without a sink the output is collected whole: start at an
        // eighth of the body (the schema drops most of a page).
        let capacity = match sink {
            Some(_) => FLUSH_AT + FLUSH_AT / 4,
            None => body.len() / 8,
        };
        Tx {
            sc: Scanner::new(body),
            out: Vec::with_capacity(capacity),
            flushed: 0,
            sink,
            io_error: None,
            links,
            san,
            schema: san.schema(),
            paths: san.paths(),
            global: san.paths().has_global(),
            w: san.new_walk(p, active),
            schema_changes: 0,
            order: Vec::new(),
            seen: Vec::new(),
            bufs: Vec::new(),
        }
    }

    /// The output position (bytes written, flushed or not).
    fn mark(&self) -> usize {
        self.flushed + self.out.len()
    }

    /// Takes back the output written since `mark`. Values that may be
    /// taken back are scalars and buffered subtrees, which are never
    /// flushed in part; a mark before the flushed output would be a bug,
    /// and then the DOM path answers.
    fn truncate(&mut self, mark: usize) -> Result<(), Stop> {
        if mark < self.flushed {
            return Err(Stop::Fail);
        }
        self.out.truncate(mark - self.flushed);
        Ok(())
    }

    /// Hands the output so far to the sink once it is large enough. Called
    /// only between the members or elements of a streamed container, where
    /// nothing written before can be taken back.
    fn maybe_flush(&mut self) -> Result<(), Stop> {
        if self.out.len() < FLUSH_AT {
            return Ok(());
        }
        if let Some(w) = self.sink.as_mut() {
            if let Err(e) = w.write_all(&self.out) {
                self.io_error = Some(e);
                return Err(Stop::Io);
            }
            self.flushed += self.out.len();
            self.out.clear();
        }
        Ok(())
    }

    /// Points a top-level paging link written at `start` at the public
    /// base. The output there is serde_json's encoding of a string, so the
    /// text `"https://graph.microsoft.com/` begins it exactly when the link
    /// begins with Graph's base.
    fn rewrite_link(&mut self, start: usize) {
        let Some(base) = self.links else { return };
        if start < self.flushed {
            return;
        }
        let at = start - self.flushed;
        let value = &self.out[at..];
        if value.len() > GRAPH_BASE.len() + 1
            && value[0] == b'"'
            && value[1..].starts_with(GRAPH_BASE.as_bytes())
            && value[1 + GRAPH_BASE.len()] == b'/'
        {
            self.out
                .splice(at + 1..at + 1 + GRAPH_BASE.len(), base.as_str().bytes());
        }
    }

    fn run(&mut self) -> Result<(), Stop> {
        let (mut states, mut matched) = (Vec::new(), Vec::new());
        self.paths.initial(&mut states, &mut matched);
        let sch = match self.schema {
            Some(s) => Sch::Node(s.root_id(), 0),
            None => Sch::Off,
        };
        // `streams()` excludes a path `$`, so nothing ends at the root and
        // the root is always kept.
        self.value(sch, &matched, &states, 0)?;
        self.sc.end()?;
        Ok(())
    }

    /// The value at the current position. `matched`: paths that end at it;
    /// `next`: automaton states for its children; `depth`: containers
    /// around it. Writes it unless it is removed; returns whether it was
    /// kept.
    fn value(
        &mut self,
        sch: Sch,
        matched: &[u32],
        next: &[State],
        depth: usize,
    ) -> Result<bool, Stop> {
        let c = self.sc.peek()?;
        let mut num = None;
        let shape = match c {
            b'{' => Shape::Object,
            b'[' => Shape::Array,
            b'"' => Shape::String,
            b't' | b'f' => Shape::Boolean,
            b'n' => Shape::Null,
            b'-' | b'0'..=b'9' => {
                let n = self.sc.number()?;
                num = Some(n);
                if n.is_integer()? {
                    Shape::Integer
                } else {
                    Shape::Float
                }
            }
            _ => return Err(Stop::Bad),
        };
        let verdict = match (sch, self.schema) {
            (Sch::Node(id, d), Some(s)) => s.verdict(id, shape, d),
            _ => Verdict::Keep,
        };
        if verdict == Verdict::NeedsValue {
            // The schema looks into the value: filter it whole. A number
            // was read already; put the scanner back to its start.
            if let Some(n) = num {
                self.sc.pos -= n.raw.len();
            }
            return self.buffered(sch, matched, next, depth);
        }
        if verdict == Verdict::Null || verdict == Verdict::TooDeep {
            if shape != Shape::Null || verdict == Verdict::TooDeep {
                self.schema_changes += 1;
            }
            if num.is_none() {
                self.sc.skip(depth)?;
            }
            return self.scalar(Scalar::Lit(b"null"), matched);
        }
        match shape {
            Shape::Object | Shape::Array => {
                if !matched.is_empty() {
                    if verdict == Verdict::Keep && self.san.removes_unseen(matched, &mut self.w) {
                        self.sc.skip(depth)?;
                        return Ok(false);
                    }
                    return self.buffered(sch, matched, next, depth);
                }
                if self.paths.needs_container(next) {
                    return self.buffered(sch, matched, next, depth);
                }
                if shape == Shape::Object {
                    self.object(verdict, next, depth)?;
                } else {
                    self.array(verdict, next, depth)?;
                }
                Ok(true)
            }
            Shape::String => {
                let s = self.sc.string()?;
                self.scalar(Scalar::Str(s), matched)
            }
            Shape::Integer | Shape::Float => match num {
                Some(n) => self.scalar(Scalar::Num(n), matched),
                None => Err(Stop::Bad),
            },
            Shape::Boolean | Shape::Null => {
                let l = self.sc.literal()?;
                self.scalar(Scalar::Lit(l), matched)
            }
        }
    }

    /// A scalar: written as is, or through the transforms that end at it.
    fn scalar(&mut self, s: Scalar<'a>, matched: &[u32]) -> Result<bool, Stop> {
        if matched.is_empty() {
            match s {
                Scalar::Str(s) => s.write(&mut self.out)?,
                Scalar::Num(n) => n.write(&mut self.out)?,
                Scalar::Lit(l) => self.out.extend_from_slice(l),
            }
            return Ok(true);
        }
        if let Scalar::Str(s) = s {
            if let Some(text) = s.plain() {
                if self
                    .san
                    .write_remembered(text, matched, &mut self.w, &mut self.out)
                {
                    return Ok(true);
                }
            }
        }
        let mut v = match s {
            Scalar::Str(s) => Value::String(s.text()?.into_owned()),
            Scalar::Num(n) => Value::Number(n.number()?),
            Scalar::Lit(b"true") => Value::Bool(true),
            Scalar::Lit(b"false") => Value::Bool(false),
            Scalar::Lit(_) => Value::Null,
        };
        if self
            .san
            .apply_matched(&mut v, matched, &mut self.order, &mut self.w)
            .map_err(|_| Stop::Fail)?
        {
            return Ok(false);
        }
        serde_json::to_writer(&mut self.out, &v).map_err(|_| Stop::Bad)?;
        Ok(true)
    }

    /// A subtree the rules need whole: parsed, filtered, transformed and
    /// walked by the DOM code, then written.
    fn buffered(
        &mut self,
        sch: Sch,
        matched: &[u32],
        next: &[State],
        depth: usize,
    ) -> Result<bool, Stop> {
        let raw = self.sc.skip(depth)?;
        let mut v: Value = serde_json::from_slice(raw).map_err(|_| Stop::Bad)?;
        if let (Sch::Node(id, d), Some(s)) = (sch, self.schema) {
            self.schema_changes += s.apply_at(id, &mut v, d);
        }
        if self
            .san
            .apply_matched(&mut v, matched, &mut self.order, &mut self.w)
            .map_err(|_| Stop::Fail)?
        {
            return Ok(false);
        }
        if (v.is_object() || v.is_array()) && (!next.is_empty() || self.global) {
            self.san
                .walk(&mut v, next, 0, &mut self.w)
                .map_err(|_| Stop::Fail)?;
        }
        serde_json::to_writer(&mut self.out, &v).map_err(|_| Stop::Bad)?;
        Ok(true)
    }

    fn object(&mut self, verdict: Verdict, states: &[State], depth: usize) -> Result<(), Stop> {
        if depth + 1 > MAX_DEPTH {
            return Err(Stop::Bad);
        }
        self.sc.expect(b'{')?;
        self.out.push(b'{');
        if self.sc.empty(b'}')? {
            self.out.push(b'}');
            return Ok(());
        }
        if self.seen.len() <= depth {
            self.seen.resize_with(depth + 1, Default::default);
        }
        if self.bufs.len() <= depth {
            self.bufs.resize_with(depth + 1, Default::default);
        }
        let mut seen = std::mem::take(&mut self.seen[depth]);
        seen.clear();
        let (mut next, mut matched) = std::mem::take(&mut self.bufs[depth]);
        let r = self.members(verdict, states, depth, &mut seen, &mut next, &mut matched);
        self.seen[depth] = seen;
        self.bufs[depth] = (next, matched);
        r?;
        self.out.push(b'}');
        Ok(())
    }

    fn members(
        &mut self,
        verdict: Verdict,
        states: &[State],
        depth: usize,
        seen: &mut Seen<'a>,
        next: &mut Vec<State>,
        matched: &mut Vec<u32>,
    ) -> Result<(), Stop> {
        let mut pos = 0;
        let mut first = true;
        loop {
            let k = self.sc.string()?;
            let key = k.text()?;
            if !seen.insert(key.clone()) {
                return Err(Stop::Dup);
            }
            self.sc.expect(b':')?;
            let child = match verdict {
                Verdict::Object { id, depth: d } => self
                    .schema
                    .and_then(|s| s.member_id(id, &key))
                    .map(|cid| Sch::Node(cid, d)),
                _ => Some(Sch::Off),
            };
            match child {
                None => {
                    self.schema_changes += 1;
                    self.sc.skip(depth + 1)?;
                }
                Some(child) => {
                    next.clear();
                    matched.clear();
                    self.paths
                        .advance(states, Key::Name(&key), pos, None, next, matched);
                    pos += 1;
                    self.maybe_flush()?;
                    let mark = self.mark();
                    if !first {
                        self.out.push(b',');
                    }
                    k.write(&mut self.out)?;
                    self.out.push(b':');
                    let start = self.mark();
                    let kept = self.value(child, matched, next, depth + 1)?;
                    if kept {
                        first = false;
                        if depth == 0 && self.links.is_some() && PAGING_LINKS.contains(&&*key) {
                            self.rewrite_link(start);
                        }
                    } else {
                        self.truncate(mark)?;
                    }
                }
            }
            if !self.sc.next_or_close(b'}')? {
                return Ok(());
            }
        }
    }

    fn array(&mut self, verdict: Verdict, states: &[State], depth: usize) -> Result<(), Stop> {
        if depth + 1 > MAX_DEPTH {
            return Err(Stop::Bad);
        }
        self.sc.expect(b'[')?;
        self.out.push(b'[');
        if self.sc.empty(b']')? {
            self.out.push(b']');
            return Ok(());
        }
        let child = match verdict {
            Verdict::Array {
                items: Some(cid),
                depth: d,
            } => Sch::Node(cid, d),
            Verdict::Array { items: None, .. } => {
                // No `items`: every element is removed.
                loop {
                    self.sc.skip(depth + 1)?;
                    self.schema_changes += 1;
                    if !self.sc.next_or_close(b']')? {
                        break;
                    }
                }
                self.out.push(b']');
                return Ok(());
            }
            _ => Sch::Off,
        };
        if self.bufs.len() <= depth {
            self.bufs.resize_with(depth + 1, Default::default);
        }
        let (mut next, mut matched) = std::mem::take(&mut self.bufs[depth]);
        let r = self.elements(child, states, depth, &mut next, &mut matched);
        self.bufs[depth] = (next, matched);
        r?;
        self.out.push(b']');
        Ok(())
    }

    fn elements(
        &mut self,
        child: Sch,
        states: &[State],
        depth: usize,
        next: &mut Vec<State>,
        matched: &mut Vec<u32>,
    ) -> Result<(), Stop> {
        let mut first = true;
        let mut pos = 0;
        loop {
            next.clear();
            matched.clear();
            // The length is only read by index and slice selectors, which
            // make `value` buffer the whole array instead.
            self.paths.advance(
                states,
                Key::Index(pos, usize::MAX),
                pos,
                None,
                next,
                matched,
            );
            self.maybe_flush()?;
            let mark = self.mark();
            if !first {
                self.out.push(b',');
            }
            let kept = self.value(child, matched, next, depth + 1)?;
            if kept {
                first = false;
            } else {
                self.truncate(mark)?;
            }
            pos += 1;
            if !self.sc.next_or_close(b']')? {
                return Ok(());
            }
        }
    }
}
