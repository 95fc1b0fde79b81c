//! The streaming sanitizer: response bytes in, sanitized compact JSON out,
//! in one pass and without a document tree. Byte for byte the same output
//! and the same [`Report`] as the DOM sanitizer ([`crate::sanitize`], the
//! reference), which parses the page into a `serde_json::Value`, filters and
//! rewrites it and serializes it.
//!
//! # How
//!
//! A scanner ([`scan`]) reads the body token by token, from memory or in
//! pieces from an `io::Read` (see *Reading in pieces*). At each value the
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
//! body was read. Invalid JSON, nesting deeper than 127 (or than the host's
//! tighter limit, [`BodyOptions::max_depth`], checked as the body is
//! scanned; Veil's proxy sets 64) and transform failures are errors. When
//! a transform fails, the body is sanitized once more by the DOM path,
//! whose error (endpoint, transform, JSON path) is the one returned:
//! failures are rare, and so the error is the reference's.
//! There is no size limit here: the caller's limit on the body bounds the
//! input, and a buffered subtree is part of it.
//!
//! [`sanitize_to`] writes the output to a sink in pieces instead (for
//! `veil sanitize`): a first pass that writes nothing proves the whole body
//! sanitizes, the second writes as it goes; a piece is handed over only
//! between the members or elements of a streamed container, where nothing
//! written can be taken back.
//!
//! # Reading in pieces
//!
//! [`sanitize_read_to`] does the same for a body that is not held in
//! memory (`veil sanitize --compact FILE`): memory is then a window of the
//! input and a piece of the output, not the page. Peak RSS of the whole
//! `veil sanitize --compact FILE` process on the 10.3 MB Sent Items page of
//! `benches/sanitize.rs` (shipped mail rules): 22.7–23.1 MB when the file
//! was held in memory, 12.9–13.4 MB read in pieces, where a 3-byte input
//! takes 12.7–12.8 MB (0.05 s for both passes over the 10.3 MB file). The
//! bench's streaming path reads the page in 64 KiB pieces nearly as fast as
//! from memory (its `pieces` column).
//!
//! - The window. The scanner works on one contiguous slice, as it does on a
//!   body in memory, so its loops are the same; positions are indices into
//!   it. When a token or a run of blanks reaches the slice's end, the
//!   scanner drops what lies before the current token, moves the rest to
//!   the front and reads on behind it (64 KiB at a time), then goes on
//!   with its indices shifted. Tokens are handed out as places in the
//!   window ([`scan::Str`], [`scan::Num`]), valid until the next scanning
//!   call, never as borrowed slices across one; the transcoder uses them at
//!   once, and copies member names for the duplicate check. A subtree that
//!   is buffered for the DOM code is *held*: nothing from its start is
//!   dropped until it has been parsed. So the window is one piece, or the
//!   largest token or buffered subtree (typically one element of
//!   `value[]`). A body in memory is the window itself and never moves, so
//!   [`sanitize_with`] and [`sanitize_bytes`] (`veil serve`, Lambda) run
//!   the same scanner on the same slice as before.
//! - UTF-8 is checked as pieces arrive (a sequence cut by a piece's end is
//!   checked with the next), where a body in memory is checked whole first.
//! - Fail closed: [`sanitize_read_to`] opens the body once per pass. The
//!   first pass writes nothing and proves the whole body sanitizes; the
//!   second writes as it goes. A body the streaming path hands back — a
//!   duplicate member name, a failing transform (for the DOM path's
//!   error), anything the scanner refuses (for serde_json's line and
//!   column) — is read a third time, whole, and given to [`sanitize_to`]:
//!   the output or the error is exactly the one the body gives from memory.
//!   Those cases are rare (or errors), and only they hold the whole body.
//!   The body must read the same both times (a file that changes between
//!   the passes gives [`WriteError::Incomplete`] after part of a sanitized
//!   output). A stream that cannot be read twice (stdin) is read whole by
//!   the caller and sanitized with [`sanitize_to`].
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
//! streaming, c=16): the kernel's socket work about 20 % of Veil's CPU,
//! this scanner's strings ~13 %, the member loop ~12 % (after the member
//! prediction of `crate::members`, which also takes a repeated name by its
//! bytes), pseudonyms ~7 % (the page repeats, so they are written straight
//! from the pseudonym cache; computed, they were ~17 %). Against the code
//! the streaming sanitizer replaced (commit `fc63e7d`, measured in the same
//! run): 4.30× the requests per second and 5.56× less CPU per request in
//! the last run (`benches/proxy.rs` has the table and the runs before).

mod options;
mod scan;
mod tx;

use crate::members::{Layout, Members, Sch};
pub use options::{
    BodyOptions, PublicBase, PublicBaseError, SanitizerPath, GRAPH_BASE, PAGING_LINKS,
};
use tx::*;

use std::fmt;
use std::io::{Read, Write};

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
    /// The body nests deeper than the host's limit
    /// ([`BodyOptions::max_depth`]).
    TooDeep { max: usize },
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
            BodyError::TooDeep { max } => {
                write!(f, "the response nests deeper than {max} levels")
            }
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
        return dom_opts(san, body, p, endpoint, opts);
    }
    let active = vec![true; san.transforms().len()];
    let sc = Scanner::new(body).with_max_depth(depth_limit(opts));
    let mut tx = Tx::new(san, sc, body.len(), p, &active, links, None);
    match stream_inner(san, body, p, endpoint, opts.max_depth, &mut tx)? {
        Some(report) => Ok((std::mem::take(&mut tx.out), report)),
        None => dom_opts(san, body, p, endpoint, opts),
    }
}

/// The scanner's nesting limit for these options.
fn depth_limit(opts: &BodyOptions) -> usize {
    opts.max_depth.unwrap_or(MAX_DEPTH)
}

/// [`BodyError::TooDeep`] when `body` nests deeper than `max` before
/// anything else is wrong with it (what the streaming pass would find).
fn check_depth(body: &[u8], max: usize) -> Result<(), BodyError> {
    let mut sc = Scanner::new(body).with_max_depth(max);
    if sc.utf8_ok() && sc.skip(0).is_err() && sc.too_deep() {
        return Err(BodyError::TooDeep { max });
    }
    Ok(())
}

/// The DOM path under the host's options: its nesting limit checked first
/// (a scan of the body), then paging links pointed at the public base.
fn dom_opts(
    san: &EndpointSanitizer,
    body: &[u8],
    p: &Pseudonymizer,
    endpoint: &str,
    opts: &BodyOptions,
) -> Result<(Vec<u8>, Report), BodyError> {
    if let Some(max) = opts.max_depth {
        check_depth(body, max)?;
    }
    dom_with(san, body, p, endpoint, opts.public_base.as_ref())
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
        let (out, report) = dom_opts(san, body, p, endpoint, opts).map_err(WriteError::Body)?;
        w.write_all(&out).map_err(WriteError::Io)?;
        Ok(report)
    };
    if opts.path == SanitizerPath::Dom {
        return whole(w);
    }
    let active = vec![true; san.transforms().len()];
    let mut discard = std::io::sink();
    let mut proof = Tx::new(
        san,
        Scanner::new(body).with_max_depth(depth_limit(opts)),
        body.len(),
        p,
        &active,
        links,
        Some(&mut discard),
    );
    if stream_inner(san, body, p, endpoint, opts.max_depth, &mut proof)
        .map_err(WriteError::Body)?
        .is_none()
    {
        return whole(w);
    }
    drop(proof);
    let mut tx = Tx::new(
        san,
        Scanner::new(body).with_max_depth(depth_limit(opts)),
        body.len(),
        p,
        &active,
        links,
        Some(w),
    );
    let result = stream_inner(san, body, p, endpoint, opts.max_depth, &mut tx);
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

/// Sanitizes a body read in pieces into `w`: [`sanitize_to`] for a body
/// that is not held in memory, such as a file. Memory is a window of the
/// input (a piece, or the largest token or buffered subtree, typically one
/// element of `value[]`) and a bounded piece of the output.
///
/// `open` gives the body from its start, and is called once per pass: a
/// first pass writes nothing and proves the whole body sanitizes, the
/// second writes. Both must read the same bytes (a file must not change
/// meanwhile; should the second pass fail, the error is
/// [`WriteError::Incomplete`]). A body the streaming path does not answer
/// alone — rules that see the whole document, a duplicate member name, a
/// failing transform, or invalid JSON (whose error names serde_json's line
/// and column) — is read whole by one more `open` and given to
/// [`sanitize_to`], so the result and the error are the same as for the
/// body in memory.
pub fn sanitize_read_to<R: Read>(
    san: &EndpointSanitizer,
    mut open: impl FnMut() -> std::io::Result<R>,
    p: &Pseudonymizer,
    endpoint: &str,
    opts: &BodyOptions,
    w: &mut dyn Write,
) -> Result<Report, WriteError> {
    let whole = |open: &mut dyn FnMut() -> std::io::Result<R>,
                 w: &mut dyn Write|
     -> Result<Report, WriteError> {
        let mut body = Vec::new();
        open()
            .and_then(|mut r| r.read_to_end(&mut body))
            .map_err(WriteError::Read)?;
        sanitize_to(san, &body, p, endpoint, opts, w)
    };
    if opts.path == SanitizerPath::Dom || !san.streams() {
        return whole(&mut open, w);
    }
    let links = opts.public_base.as_ref();
    let active = vec![true; san.transforms().len()];
    let mut discard = std::io::sink();
    let mut input = open().map_err(WriteError::Read)?;
    let mut proof = Tx::new(
        san,
        Scanner::reader(&mut input).with_max_depth(depth_limit(opts)),
        0,
        p,
        &active,
        links,
        Some(&mut discard),
    );
    match proof.run() {
        Ok(()) => {}
        Err(Stop::Bad) => {
            if let Some(e) = proof.sc.take_read_error() {
                return Err(WriteError::Read(e));
            }
            drop(proof);
            drop(input);
            return whole(&mut open, w);
        }
        Err(Stop::Dup | Stop::Fail | Stop::Io) => {
            drop(proof);
            drop(input);
            return whole(&mut open, w);
        }
    }
    drop(proof);
    drop(input);
    let mut input = open().map_err(WriteError::Read)?;
    let mut tx = Tx::new(
        san,
        Scanner::reader(&mut input).with_max_depth(depth_limit(opts)),
        0,
        p,
        &active,
        links,
        Some(w),
    );
    let result = tx.run();
    if let Some(e) = tx.io_error.take() {
        return Err(WriteError::Io(e));
    }
    if let Some(e) = tx.sc.take_read_error() {
        return Err(WriteError::Read(e));
    }
    if result.is_err() {
        return Err(WriteError::Incomplete);
    }
    let rest = std::mem::take(&mut tx.out);
    let report = take_report(san, &mut tx);
    match tx.sink.as_mut() {
        Some(w) => w.write_all(&rest).map_err(WriteError::Io)?,
        None => return Err(WriteError::Incomplete),
    }
    Ok(report)
}

/// Why [`sanitize_to`] or [`sanitize_read_to`] stopped.
#[derive(Debug)]
pub enum WriteError {
    /// The body cannot be sanitized; nothing was written.
    Body(BodyError),
    /// Reading the body failed (by [`sanitize_read_to`]: before anything
    /// was written, unless on the writing pass).
    Read(std::io::Error),
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
            WriteError::Read(e) => write!(f, "cannot read the input: {e}"),
            WriteError::Incomplete => f.write_str(
                "the response sanitized differently on the writing pass; the output is incomplete",
            ),
        }
    }
}

impl std::error::Error for WriteError {}

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
    let mut tx = Tx::new(san, Scanner::new(body), body.len(), p, &active, None, None);
    Ok(stream_inner(san, body, p, endpoint, None, &mut tx)?
        .map(|r| (std::mem::take(&mut tx.out), r)))
}

/// The streaming path alone over a body read in pieces, in one pass with
/// the output collected: `Ok(None)` when this body or these rules need more
/// than the streaming path ([`stream_only`]'s cases), and also when the body
/// is refused (invalid JSON, a failing transform), whose error only the
/// whole body gives. `Err` when reading fails.
pub fn stream_read_only(
    san: &EndpointSanitizer,
    r: &mut dyn Read,
    p: &Pseudonymizer,
) -> Result<Option<(Vec<u8>, Report)>, std::io::Error> {
    if !san.streams() {
        return Ok(None);
    }
    let active = vec![true; san.transforms().len()];
    let mut tx = Tx::new(san, Scanner::reader(r), 0, p, &active, None, None);
    let result = tx.run();
    if let Some(e) = tx.sc.take_read_error() {
        return Err(e);
    }
    Ok(match result {
        Ok(()) => {
            let report = take_report(san, &mut tx);
            Some((std::mem::take(&mut tx.out), report))
        }
        Err(_) => None,
    })
}

/// Options with only a nesting limit.
fn limit_only(max_depth: Option<usize>) -> BodyOptions {
    BodyOptions {
        max_depth,
        ..BodyOptions::default()
    }
}

/// The report of a streaming pass that ran to the end.
fn take_report(san: &EndpointSanitizer, tx: &mut Tx<'_, '_, '_>) -> Report {
    Report {
        schema_changes: tx.schema_changes,
        matches: std::mem::take(&mut tx.w.matches),
        changes: std::mem::take(&mut tx.w.changes),
        active: vec![true; san.transforms().len()],
    }
}

/// The streaming pass over a body in memory. `max_depth`: the host's
/// nesting limit (the scanner in `tx` enforces it); when the pass cannot
/// answer alone (`Ok(None)`) the caller's DOM path checks it.
fn stream_inner(
    san: &EndpointSanitizer,
    body: &[u8],
    p: &Pseudonymizer,
    endpoint: &str,
    max_depth: Option<usize>,
    tx: &mut Tx<'_, '_, '_>,
) -> Result<Option<Report>, BodyError> {
    if !san.streams() {
        return Ok(None);
    }
    let result = tx.run();
    if let (Err(_), Some(max)) = (&result, max_depth) {
        if tx.sc.too_deep() {
            return Err(BodyError::TooDeep { max });
        }
    }
    match result {
        Ok(()) => Ok(Some(take_report(san, tx))),
        // A transform failed. The DOM path gives the error: it names the
        // same value, and a duplicate member name later in the body (which
        // the DOM path resolves to the last value) cannot make the two differ.
        Err(Stop::Fail) => match dom_opts(san, body, p, endpoint, &limit_only(max_depth)) {
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
