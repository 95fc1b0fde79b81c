//! A byte-level JSON scanner that accepts exactly what
//! `serde_json::from_slice::<Value>` accepts (RFC 8259, nesting up to 127
//! containers, numbers in `f64` range, paired surrogates in `\u` escapes)
//! and writes scalars exactly as `serde_json::to_vec` writes them.
//!
//! The common cases are handled here without allocation: strings without
//! escapes are copied as they are (serde_json writes them back unchanged),
//! integers of up to 18 digits likewise. Everything else — strings with
//! escapes, fractions, exponents, long integers — is read and written by
//! serde_json itself, one scalar at a time, so the rare cases cannot differ.
//!
//! The body is either held in memory (the window below is all of it and
//! never moves) or read in pieces from an `io::Read` into a window that is
//! refilled inside the scanning calls ([`Scanner::fill`], see
//! [`Scanner`]); the scanning loops work on a contiguous slice either way.
//!
//! Errors carry no detail: the caller asks serde_json for the diagnostic.
//!
//! UTF-8 is checked by `simdutf8` (the same verdicts as `std::str::from_utf8`,
//! vectorized): on the proxy bench's 109 KB page 0.8 µs instead of 2.9 µs,
//! which was 1.3 % of Veil's CPU per request.

use std::borrow::Cow;
use std::io::Read;

use serde_json::Number;

mod token;

use token::{escapes_valid, number_at};
pub(crate) use token::{Num, NumRef, Str, StrRef};

/// The body is not JSON serde_json would accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bad;

/// serde_json's limit: the 128th nested container is an error.
pub(crate) const MAX_DEPTH: usize = 127;

/// Byte classes inside a string: 0 = plain, 1 = quote, 2 = backslash,
/// 3 = control character (an error).
static STR_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = 3;
        i += 1;
    }
    t[b'"' as usize] = 1;
    t[b'\\' as usize] = 2;
    t
};

/// How many bytes of a string [`Scanner::string`] looks at one by one
/// before it searches the rest.
const SHORT_STRING: usize = 16;

/// A word of eight string bytes (little-endian) → the high bit set in each
/// byte that is a quote, a backslash or below 0x20, exact up to the first
/// such byte (the bits above it may be set by a borrow). Bytes from 0x80 on
/// are never flagged.
#[inline]
fn special_bytes(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let quote = zero_in(w ^ (ONES * u64::from(b'"')));
    let backslash = zero_in(w ^ (ONES * u64::from(b'\\')));
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    quote | backslash | control
}

/// [`special_bytes`] of the eight bytes `w` starts with (it has eight).
#[inline]
fn special_word(w: &[u8]) -> u64 {
    w.first_chunk::<8>()
        .map_or(0, |w| special_bytes(u64::from_le_bytes(*w)))
}

/// The string byte at `i` (plain, or one the fast loops stopped at): the
/// index after it (after both bytes of an escape, noting the escape), or
/// `None` for the closing quote; a control character is an error.
#[inline(always)]
fn string_byte(
    b: &[u8],
    i: usize,
    escaped: &mut bool,
    check: &mut bool,
) -> Result<Option<usize>, Bad> {
    match STR_CLASS[b[i] as usize] {
        0 => Ok(Some(i + 1)),
        1 => Ok(None),
        2 => {
            *escaped = true;
            *check |= !simple_escape(b.get(i + 1));
            Ok(Some(i + 2))
        }
        _ => Err(Bad),
    }
}

/// Whether the byte after a backslash makes a one-character escape.
#[inline]
fn simple_escape(c: Option<&u8>) -> bool {
    matches!(
        c,
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't')
    )
}

/// `a == b`, inline for the lengths of member names: two overlapping
/// word (or half-word) comparisons instead of a call to `memcmp`, which
/// cost more than the comparison itself.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    match a.len() {
        8..=16 => {
            a.first_chunk::<8>() == b.first_chunk::<8>()
                && a.last_chunk::<8>() == b.last_chunk::<8>()
        }
        4..=7 => {
            a.first_chunk::<4>() == b.first_chunk::<4>()
                && a.last_chunk::<4>() == b.last_chunk::<4>()
        }
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        _ => a == b,
    }
}

/// Whether a quote, a backslash or a byte below 0x20 is among `w`. No
/// early exit: the fold compiles to vector compares.
#[inline]
fn any_special(w: &[u8; 32]) -> bool {
    w.iter().fold(0u8, |acc, &x| {
        acc | u8::from((x == b'"') | (x == b'\\') | (x < 0x20))
    }) != 0
}

/// How much is asked of the reader at a time (and the window's first size).
pub(crate) const PIECE: usize = 64 * 1024;

/// No window index is held.
const NO_HOLD: usize = usize::MAX;

/// Where the window's bytes come from when the body is read in pieces.
struct Pieces<'a> {
    r: &'a mut dyn Read,
    /// The reader said it has no more.
    eof: bool,
    /// The window's bytes before this index are checked to be UTF-8.
    checked: usize,
    /// Nothing from this window index on may be dropped (a subtree being
    /// read whole), or [`NO_HOLD`].
    hold: usize,
    /// The reader failed (then the scanner said [`Bad`]).
    error: Option<std::io::Error>,
}

/// The scanner. It works on one contiguous window of the body: the whole
/// body when it is in memory, else the bytes read and not yet dropped.
/// Positions are window indices. The window moves only inside the scanner,
/// when a token or a blank run reaches its end ([`Scanner::fill`]): then
/// the bytes before the current token (or before a held subtree) are
/// dropped, the rest moves to the front and more is read behind it. A token
/// handed out ([`Str`], [`Num`], [`Scanner::skip_raw`]) is therefore valid
/// until the next scanning call.
pub(crate) struct Scanner<'a> {
    b: Cow<'a, [u8]>,
    /// A body in memory, as text when it is UTF-8 (checked once, whole):
    /// a string token's text is then a slice of it, not checked again.
    text: Option<&'a str>,
    /// The window is `b[..end]` (the rest of `b` is room to read into).
    end: usize,
    pub pos: usize,
    src: Option<Pieces<'a>>,
    /// The most containers that may nest ([`MAX_DEPTH`] unless the host
    /// set a tighter limit).
    max_depth: usize,
    /// The nesting went past `max_depth` (then the scanner said [`Bad`]).
    too_deep: bool,
}

impl<'a> Scanner<'a> {
    /// Scans a body held in memory. It is checked to be UTF-8 here, whole
    /// (one fast pass); if it is not, [`Scanner::utf8_ok`] says so.
    pub fn new(b: &'a [u8]) -> Self {
        Scanner {
            end: b.len(),
            text: simdutf8::compat::from_utf8(b).ok(),
            b: Cow::Borrowed(b),
            pos: 0,
            src: None,
            max_depth: MAX_DEPTH,
            too_deep: false,
        }
    }

    /// Scans a body read from `r` in pieces. The bytes are checked to be
    /// UTF-8 as they are read.
    pub fn reader(r: &'a mut dyn Read) -> Self {
        Scanner {
            b: Cow::Owned(vec![0; PIECE]),
            text: None,
            end: 0,
            pos: 0,
            src: Some(Pieces {
                r,
                eof: false,
                checked: 0,
                hold: NO_HOLD,
                error: None,
            }),
            max_depth: MAX_DEPTH,
            too_deep: false,
        }
    }

    /// Refuses nesting past `max` containers (at most [`MAX_DEPTH`]).
    pub fn with_max_depth(mut self, max: usize) -> Self {
        self.max_depth = max.min(MAX_DEPTH);
        self
    }

    /// Whether the scanner stopped because the nesting went too deep.
    pub fn too_deep(&self) -> bool {
        self.too_deep
    }

    /// A container may open with `depth` containers around it.
    #[inline]
    pub fn deeper(&mut self, depth: usize) -> Result<(), Bad> {
        if depth + 1 > self.max_depth {
            self.too_deep = true;
            return Err(Bad);
        }
        Ok(())
    }

    /// False for a body in memory that is not UTF-8 (then it is not JSON);
    /// a body read in pieces is checked as it is read.
    pub fn utf8_ok(&self) -> bool {
        self.src.is_some() || self.text.is_some()
    }

    /// The reader's error, when reading failed.
    pub fn take_read_error(&mut self) -> Option<std::io::Error> {
        self.src.as_mut().and_then(|s| s.error.take())
    }

    /// The largest the window grew (its allocation), for tests.
    #[cfg(test)]
    pub fn window_capacity(&self) -> usize {
        self.b.len()
    }

    #[inline]
    fn win(&self) -> &[u8] {
        &self.b[..self.end]
    }

    /// No more bytes can come.
    #[inline]
    fn at_eof(&self) -> bool {
        self.src.as_ref().is_none_or(|s| s.eof)
    }

    /// The window's bytes `start..end` (a place [`Scanner::skip_raw`] gave).
    #[inline]
    pub fn raw(&self, start: usize, end: usize) -> &[u8] {
        &self.b[start..end]
    }

    /// The bytes of a string token.
    #[inline]
    pub fn str_ref(&self, s: Str) -> StrRef<'_> {
        StrRef {
            raw: &self.b[s.start..s.end],
            escaped: s.escaped,
            // Quotes are ASCII: slicing between them cannot split a
            // character.
            text: self.text.map(|t| &t[s.start + 1..s.end - 1]),
        }
    }

    /// The bytes of a number token.
    #[inline]
    pub fn num_ref(&self, n: Num) -> NumRef<'_> {
        NumRef {
            raw: &self.b[n.start..n.end],
            simple: n.simple,
        }
    }

    /// Reads on until the window holds index `need` or the input ends,
    /// keeping the window from index `keep` (and from a held index) on.
    /// Returns by how much the window moved: every index the caller holds
    /// is that much smaller now. A body in memory has nothing more.
    #[cold]
    #[inline(never)]
    fn fill(&mut self, mut need: usize, keep: usize) -> Result<usize, Bad> {
        let (Some(src), Cow::Owned(buf)) = (self.src.as_mut(), &mut self.b) else {
            return Ok(0);
        };
        let drop = keep.min(src.hold).min(self.pos);
        if drop > 0 {
            buf.copy_within(drop..self.end, 0);
            self.end -= drop;
            self.pos -= drop;
            src.checked -= drop;
            need -= drop;
            if src.hold != NO_HOLD {
                src.hold -= drop;
            }
        }
        while self.end <= need && !src.eof {
            if self.end == buf.len() {
                let grown = (buf.len() * 2).max(PIECE);
                buf.resize(grown, 0);
            }
            let room = buf.len().min(self.end + PIECE);
            match src.r.read(&mut buf[self.end..room]) {
                Ok(0) => src.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    src.error = Some(e);
                    return Err(Bad);
                }
            }
            // serde_json checks UTF-8 only inside strings, but outside
            // them a byte above 0x7F is an error anyway.
            match simdutf8::compat::from_utf8(&buf[src.checked..self.end]) {
                Ok(_) => src.checked = self.end,
                Err(e) => {
                    src.checked += e.valid_up_to();
                    if e.error_len().is_some() || src.eof {
                        return Err(Bad);
                    }
                }
            }
        }
        Ok(drop)
    }

    #[inline]
    pub fn ws(&mut self) -> Result<(), Bad> {
        loop {
            let b = self.win();
            let mut i = self.pos;
            while let Some(&c) = b.get(i) {
                if matches!(c, b' ' | b'\n' | b'\t' | b'\r') {
                    i += 1;
                } else {
                    self.pos = i;
                    return Ok(());
                }
            }
            self.pos = i;
            if self.at_eof() {
                return Ok(());
            }
            self.fill(i, i)?;
        }
    }

    /// The next non-blank byte (not consumed).
    #[inline]
    pub fn peek(&mut self) -> Result<u8, Bad> {
        self.ws()?;
        self.win().get(self.pos).copied().ok_or(Bad)
    }

    /// A member name `k` just read, written without escapes and followed
    /// right away by its `:` (compact JSON): the bytes `"name":`, read. Any
    /// other case (escapes, blanks, the window ending) is `None`, and
    /// nothing is read.
    #[inline]
    pub fn name_and_colon(&mut self, k: Str) -> Option<&[u8]> {
        if k.escaped || self.pos != k.end {
            return None;
        }
        let at = k.end;
        match self.win().get(at) {
            Some(b':') => {
                self.pos = at + 1;
                Some(&self.win()[k.start..=at])
            }
            _ => None,
        }
    }

    /// Consumes `c` after blanks.
    #[inline]
    pub fn expect(&mut self, c: u8) -> Result<(), Bad> {
        if self.peek()? == c {
            self.pos += 1;
            Ok(())
        } else {
            Err(Bad)
        }
    }

    /// After blanks: `,` (true, and then another item must follow) or
    /// `close` (false).
    #[inline]
    pub fn next_or_close(&mut self, close: u8) -> Result<bool, Bad> {
        let c = self.peek()?;
        self.pos += 1;
        if c == b',' {
            Ok(true)
        } else if c == close {
            Ok(false)
        } else {
            Err(Bad)
        }
    }

    /// After `[`/`{` and blanks: consumes `close` if the container is empty.
    #[inline]
    pub fn empty(&mut self, close: u8) -> Result<bool, Bad> {
        if self.peek()? == close {
            self.pos += 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Only blanks remain.
    pub fn end(&mut self) -> Result<(), Bad> {
        self.ws()?;
        if self.pos == self.end && self.at_eof() {
            Ok(())
        } else {
            Err(Bad)
        }
    }

    /// The string at the current position (after blanks) when its bytes
    /// are exactly `"`, `name`, `"`; else `None`, and nothing is consumed.
    /// `name` must hold no quote, backslash or control character: then
    /// those bytes are one whole, valid string token (the body's UTF-8 is
    /// checked apart). A member name the object before had in the same
    /// place is read this way: one comparison instead of a scan.
    #[inline]
    pub fn exact_string(&mut self, name: &[u8]) -> Result<Option<Str>, Bad> {
        self.ws()?;
        let start = self.pos;
        let end = start + name.len() + 2;
        match self.win().get(start..end) {
            Some([b'"', inner @ .., b'"']) if same(inner, name) => {
                self.pos = end;
                Ok(Some(Str {
                    start,
                    end,
                    escaped: false,
                }))
            }
            _ => Ok(None),
        }
    }

    /// A string at the current position (after blanks), checked; its
    /// escapes are decoded only when its text is needed.
    ///
    /// Most of a page's bytes are string content. A string's first bytes
    /// are looked at eight at a time (a word's special bytes found by
    /// arithmetic); past them, 32 at a time in a test the compiler
    /// vectorizes, and a chunk that has a special byte (a quote, a
    /// backslash, a control character) is searched a word at a time. An
    /// escape therefore costs one step; the `memchr2` search this replaced
    /// started over after each one, and HTML message bodies have one
    /// every few dozen bytes.
    #[inline]
    pub fn string(&mut self) -> Result<Str, Bad> {
        if self.peek()? != b'"' {
            return Err(Bad);
        }
        let mut start = self.pos;
        let mut i = start + 1;
        let mut escaped = false;
        // Set by an escape other than `\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`,
        // `\t` (a `\u` escape, an invalid one, or one the window ends in):
        // the escapes are then checked whole at the end.
        let mut check = false;
        loop {
            let b = self.win();
            let near = (i + SHORT_STRING).min(b.len());
            while i < near {
                // Eight bytes at a time while none of them is special.
                if let Some(w) = b.get(i..i + 8) {
                    let special = special_word(w);
                    if special == 0 {
                        i += 8;
                        continue;
                    }
                    i += special.trailing_zeros() as usize / 8;
                }
                match string_byte(b, i, &mut escaped, &mut check)? {
                    Some(next) => i = next,
                    None => return self.string_end(start, i, escaped, check),
                }
            }
            // Then 32 bytes at a time while none of them is special (one
            // vector test). A chunk with special bytes is taken eight bytes
            // at a time, and each flagged byte in turn, from the word's
            // bits: an escape costs a step, not a new search. (HTML bodies
            // have an escape every dozen bytes; searching the chunk again
            // after each cost 2 % more instructions on a Sent Items page.)
            // A flagged byte may be plain (a borrow, see `special_bytes`):
            // it is then passed as such, as every byte before it is plain.
            // One taken already, as the second byte of an escape, is
            // passed over.
            while let Some(w) = b.get(i..).and_then(<[u8]>::first_chunk::<32>) {
                let base = i;
                if any_special(w) {
                    for (k, word) in w.chunks_exact(8).enumerate() {
                        let mut special = special_word(word);
                        while special != 0 {
                            let j = base + k * 8 + special.trailing_zeros() as usize / 8;
                            special &= special - 1;
                            if j < i {
                                continue;
                            }
                            match string_byte(b, j, &mut escaped, &mut check)? {
                                Some(next) => i = next,
                                None => return self.string_end(start, j, escaped, check),
                            }
                        }
                    }
                }
                i = i.max(base + 32);
            }
            // The window's last bytes, one by one.
            while i < b.len() {
                match string_byte(b, i, &mut escaped, &mut check)? {
                    Some(next) => i = next,
                    None => return self.string_end(start, i, escaped, check),
                }
            }
            if self.at_eof() {
                return Err(Bad);
            }
            let moved = self.fill(i, start)?;
            start -= moved;
            i -= moved;
        }
    }

    /// The string from `start` ends with the quote at `quote`; `check`: its
    /// escapes must be checked.
    #[inline]
    fn string_end(
        &mut self,
        start: usize,
        quote: usize,
        escaped: bool,
        check: bool,
    ) -> Result<Str, Bad> {
        if check && !escapes_valid(&self.b[start + 1..quote]) {
            return Err(Bad);
        }
        self.pos = quote + 1;
        Ok(Str {
            start,
            end: quote + 1,
            escaped,
        })
    }

    /// A number at the current position (after blanks): RFC 8259 grammar,
    /// and in `f64` range.
    #[inline]
    pub fn number(&mut self) -> Result<Num, Bad> {
        self.ws()?;
        let mut start = self.pos;
        let (stop, found) = loop {
            let (stop, found) = number_at(self.win(), start);
            // A number that reaches the window's end may go on.
            if stop < self.end || self.at_eof() {
                break (stop, found);
            }
            start -= self.fill(stop, start)?;
        };
        let (plain_int, int_digits, exponent) = found.ok_or(Bad)?;
        self.pos = stop;
        let raw = &self.b[start..stop];
        // `-0` is read as the float -0.0; 19+ digits may leave i64/u64.
        let simple = plain_int && int_digits <= 18 && raw != b"-0";
        if exponent || raw.len() > 300 {
            // Could be out of f64 range: serde_json refuses those.
            serde_json::from_slice::<Number>(raw).map_err(|_| Bad)?;
        }
        Ok(Num {
            start,
            end: stop,
            simple,
        })
    }

    /// `true`, `false` or `null` at the current position (after blanks).
    #[inline]
    pub fn literal(&mut self) -> Result<&'static [u8], Bad> {
        let lit: &'static [u8] = match self.peek()? {
            b't' => b"true",
            b'f' => b"false",
            b'n' => b"null",
            _ => return Err(Bad),
        };
        while self.end < self.pos + lit.len() && !self.at_eof() {
            self.fill(self.pos + lit.len() - 1, self.pos)?;
        }
        if self.win()[self.pos..].starts_with(lit) {
            self.pos += lit.len();
            Ok(lit)
        } else {
            Err(Bad)
        }
    }

    /// Skips one value (after blanks), checking it, and returns its place
    /// in the window (valid until the scanner reads on): the window keeps
    /// all of it, however long.
    pub fn skip_raw(&mut self, depth: usize) -> Result<(usize, usize), Bad> {
        self.ws()?;
        if let Some(src) = self.src.as_mut() {
            src.hold = self.pos;
        }
        let start = self.pos;
        let r = self.skip(depth);
        let start = match self.src.as_mut() {
            Some(src) => std::mem::replace(&mut src.hold, NO_HOLD),
            None => start,
        };
        r?;
        Ok((start, self.pos))
    }

    /// Skips one value (after blanks), checking it; `depth` is the number
    /// of containers around it.
    pub fn skip(&mut self, depth: usize) -> Result<(), Bad> {
        match self.peek()? {
            b'{' => {
                self.deeper(depth)?;
                self.pos += 1;
                if !self.empty(b'}')? {
                    loop {
                        self.string()?;
                        self.expect(b':')?;
                        self.skip(depth + 1)?;
                        if !self.next_or_close(b'}')? {
                            break;
                        }
                    }
                }
            }
            b'[' => {
                self.deeper(depth)?;
                self.pos += 1;
                if !self.empty(b']')? {
                    loop {
                        self.skip(depth + 1)?;
                        if !self.next_or_close(b']')? {
                            break;
                        }
                    }
                }
            }
            b'"' => {
                self.string()?;
            }
            b'-' | b'0'..=b'9' => {
                self.number()?;
            }
            _ => {
                self.literal()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pieces<'a>(&'a [u8], usize);
    impl Read for Pieces<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn same_compares_every_byte_at_every_length() {
        for n in 0..40usize {
            let a: Vec<u8> = (0..n as u8).map(|i| b'a' + i % 26).collect();
            assert!(same(&a, &a.clone()), "{n}");
            assert!(!same(&a, &a[..n.saturating_sub(1)]) || n == 0, "{n}");
            for i in 0..n {
                let mut b = a.clone();
                b[i] ^= 0x20;
                assert!(!same(&a, &b), "{n} bytes, differing at {i}");
            }
        }
    }

    #[test]
    fn exact_string_takes_only_the_same_bytes() {
        let mut sc = Scanner::new(br#"  "name":"nam" "names" "na\u006de" "n"#);
        assert!(sc.exact_string(b"nam").unwrap().is_none());
        assert!(sc.exact_string(b"names").unwrap().is_none());
        let s = sc.exact_string(b"name").unwrap().unwrap();
        assert_eq!((s.start, s.end, s.escaped), (2, 8, false));
        assert_eq!(sc.pos, 8);
        sc.expect(b':').unwrap();
        assert!(sc.exact_string(b"name").unwrap().is_none());
        assert_eq!(sc.pos, 9, "a miss consumes nothing");
        assert_eq!(sc.string().unwrap().end, 14);
        assert!(sc.exact_string(b"name").unwrap().is_none());
        assert_eq!(sc.exact_string(b"names").unwrap().unwrap().end, 22);
        // The escaped form is the same name, but not the same bytes.
        assert!(sc.exact_string(b"name").unwrap().is_none());
        assert!(sc.string().unwrap().escaped);
        // The window ends before the closing quote.
        assert!(sc.exact_string(b"n").unwrap().is_none());
        assert!(sc.exact_string(b"").unwrap().is_none());
    }

    /// Strings of every length up to past two vector chunks, with a
    /// control character, an escape, an invalid escape or a multi-byte
    /// character at every position: accepted exactly when serde_json
    /// accepts them, in memory and in pieces.
    #[test]
    fn strings_are_checked_at_every_position_like_serde_json() {
        let specials: [&[u8]; 10] = [
            b"\\ud800",
            b"\\u12",
            b"\\ud83d\\ude00",
            b"\x01",
            b"\x1f",
            b"\\n",
            b"\\q",
            b"\\u00e9",
            b"\xc3\xa9",
            b"\xc3(",
        ];
        for len in 0..80 {
            for at in 0..=len {
                for sp in specials {
                    let mut doc = b"\"".to_vec();
                    doc.extend(std::iter::repeat_n(b'a', at));
                    doc.extend_from_slice(sp);
                    doc.extend(std::iter::repeat_n(b'b', len - at));
                    doc.push(b'"');
                    let serde = serde_json::from_slice::<serde_json::Value>(&doc).is_ok();
                    let mut sc = Scanner::new(&doc);
                    let memory = sc.utf8_ok() && sc.string().and_then(|_| sc.end()).is_ok();
                    assert_eq!(memory, serde, "{:?}", String::from_utf8_lossy(&doc));
                    let mut r = Pieces(&doc, 7);
                    let mut sc = Scanner::reader(&mut r);
                    let pieces = sc.string().and_then(|_| sc.end()).is_ok();
                    assert_eq!(
                        pieces,
                        serde,
                        "in pieces: {:?}",
                        String::from_utf8_lossy(&doc)
                    );
                }
            }
        }
    }

    #[test]
    fn name_and_colon_takes_a_plain_name_right_before_its_colon() {
        let doc = br#"{"ab":1,"c" :2,"\u0064":3,"e""#;
        let mut sc = Scanner::new(doc);
        sc.expect(b'{').unwrap();
        let k = sc.string().unwrap();
        assert_eq!(sc.name_and_colon(k), Some(&br#""ab":"#[..]));
        assert_eq!(sc.pos, 6);
        assert_eq!(sc.name_and_colon(k), None, "only right after the name");
        // A blank before the colon, an escaped name: nothing read.
        for at in [8, 15] {
            sc.pos = at;
            let k = sc.string().unwrap();
            let end = sc.pos;
            assert_eq!(sc.name_and_colon(k), None);
            assert_eq!(sc.pos, end);
            sc.expect(b':').unwrap();
        }
        // The document (or the window read so far) ends after the name.
        sc.pos = 26;
        let k = sc.string().unwrap();
        assert_eq!(sc.name_and_colon(k), None);
        assert_eq!(sc.pos, doc.len());
    }

    /// Two special bytes or escapes in one string, at every pair of
    /// positions across the 32-byte chunks: an escaped quote or backslash
    /// right before or after another, and the bytes a borrow flags (`#`
    /// after a quote, `]` after a backslash). The string ends where
    /// serde_json ends it, and reads as serde_json reads it.
    #[test]
    fn strings_with_many_escapes_end_and_read_like_serde_json() {
        let specials: [&[u8]; 9] = [
            b"\\\\",
            b"\\\\\\\"",
            b"\\\"#",
            b"\\\\]",
            b"#",
            b"\\n",
            b"\x1f",
            b"\\u0022",
            b"\xc3\xa9",
        ];
        for at in 0..66 {
            for gap in 0..34 {
                for a in specials {
                    for b in specials {
                        let mut doc = b"\"".to_vec();
                        doc.extend(std::iter::repeat_n(b'x', at));
                        doc.extend_from_slice(a);
                        doc.extend(std::iter::repeat_n(b'y', gap));
                        doc.extend_from_slice(b);
                        doc.extend_from_slice(b"z\"");
                        let serde = serde_json::from_slice::<String>(&doc).ok();
                        let mut sc = Scanner::new(&doc);
                        let read = sc.utf8_ok().then(|| sc.string().ok()).flatten();
                        let text = read
                            .filter(|_| sc.end().is_ok())
                            .and_then(|s| sc.str_ref(s).text().ok())
                            .map(|t| t.into_owned());
                        assert_eq!(text, serde, "{:?}", String::from_utf8_lossy(&doc));
                    }
                }
            }
        }
    }

    /// A page of many small elements, read in pieces: the window stays at
    /// one piece; a subtree held whole grows it to that subtree only.
    #[test]
    fn the_window_is_bounded_by_a_piece_or_a_held_subtree() {
        let item = br#"{"id": "0123456789", "n": [1, 2.5, true, null], "s": "a\u00e9b"}"#;
        let mut page = b"{\"value\": [".to_vec();
        for i in 0..20_000 {
            if i > 0 {
                page.extend_from_slice(b", ");
            }
            page.extend_from_slice(item);
        }
        page.extend_from_slice(b"]}");
        assert!(page.len() > 20 * PIECE);
        for piece in [1, 7, 4096, usize::MAX] {
            let mut r = Pieces(&page, piece);
            let mut sc = Scanner::reader(&mut r);
            sc.skip(0).and_then(|()| sc.end()).unwrap();
            assert_eq!(sc.window_capacity(), PIECE, "pieces of {piece}");
        }
        // The same page held whole: the window grows to the page.
        let mut r = Pieces(&page, 4096);
        let mut sc = Scanner::reader(&mut r);
        let (start, end) = sc.skip_raw(0).unwrap();
        assert_eq!(sc.raw(start, end), &page[..]);
        sc.end().unwrap();
        assert!(sc.window_capacity() >= page.len());
    }
}
