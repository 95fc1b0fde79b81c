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
    /// The window is `b[..end]` (the rest of `b` is room to read into).
    end: usize,
    pub pos: usize,
    src: Option<Pieces<'a>>,
}

impl<'a> Scanner<'a> {
    /// Scans a body held in memory.
    pub fn new(b: &'a [u8]) -> Self {
        Scanner {
            end: b.len(),
            b: Cow::Borrowed(b),
            pos: 0,
            src: None,
        }
    }

    /// Scans a body read from `r` in pieces. The bytes are checked to be
    /// UTF-8 as they are read.
    pub fn reader(r: &'a mut dyn Read) -> Self {
        Scanner {
            b: Cow::Owned(vec![0; PIECE]),
            end: 0,
            pos: 0,
            src: Some(Pieces {
                r,
                eof: false,
                checked: 0,
                hold: NO_HOLD,
                error: None,
            }),
        }
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
            match std::str::from_utf8(&buf[src.checked..self.end]) {
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

    /// A string at the current position (after blanks), checked; its
    /// escapes are decoded only when its text is needed.
    #[inline]
    pub fn string(&mut self) -> Result<Str, Bad> {
        if self.peek()? != b'"' {
            return Err(Bad);
        }
        let mut start = self.pos;
        let mut i = start + 1;
        let mut escaped = false;
        loop {
            let b = self.win();
            while let Some(&c) = b.get(i) {
                match STR_CLASS[c as usize] {
                    0 => i += 1,
                    1 => {
                        if escaped && !escapes_valid(&b[start + 1..i]) {
                            return Err(Bad);
                        }
                        self.pos = i + 1;
                        return Ok(Str {
                            start,
                            end: i + 1,
                            escaped,
                        });
                    }
                    2 => {
                        escaped = true;
                        i += 2;
                    }
                    _ => return Err(Bad),
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
                if depth + 1 > MAX_DEPTH {
                    return Err(Bad);
                }
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
                if depth + 1 > MAX_DEPTH {
                    return Err(Bad);
                }
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
