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
//! Errors carry no detail: the caller asks serde_json for the diagnostic.

use serde_json::Number;

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

/// A string token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Str<'a> {
    /// The token with its quotes.
    pub raw: &'a [u8],
    /// Whether it contains a backslash escape.
    pub escaped: bool,
}

impl<'a> Str<'a> {
    /// The text between the quotes, when it has no escapes (the body was
    /// checked to be UTF-8, so this cannot fail then).
    pub fn plain(&self) -> Option<&'a str> {
        if self.escaped {
            return None;
        }
        std::str::from_utf8(&self.raw[1..self.raw.len() - 1]).ok()
    }

    /// The decoded text.
    pub fn text(&self) -> Result<std::borrow::Cow<'a, str>, Bad> {
        match self.plain() {
            Some(s) => Ok(std::borrow::Cow::Borrowed(s)),
            None if self.escaped => serde_json::from_slice::<String>(self.raw)
                .map(std::borrow::Cow::Owned)
                .map_err(|_| Bad),
            None => Err(Bad),
        }
    }

    /// Appends the string as serde_json writes it.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), Bad> {
        if self.escaped {
            let s = self.text()?;
            serde_json::to_writer(&mut *out, s.as_ref()).map_err(|_| Bad)
        } else {
            out.extend_from_slice(self.raw);
            Ok(())
        }
    }
}

/// A number token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Num<'a> {
    pub raw: &'a [u8],
    /// An integer serde_json writes back byte for byte.
    pub simple: bool,
}

impl Num<'_> {
    /// The number as serde_json reads it.
    pub fn number(&self) -> Result<Number, Bad> {
        serde_json::from_slice::<Number>(self.raw).map_err(|_| Bad)
    }

    /// Whether serde_json reads it as an integer (`i64`/`u64`).
    pub fn is_integer(&self) -> Result<bool, Bad> {
        if self.simple {
            return Ok(true);
        }
        let n = self.number()?;
        Ok(n.is_i64() || n.is_u64())
    }

    /// Appends the number as serde_json writes it.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), Bad> {
        if self.simple {
            out.extend_from_slice(self.raw);
            Ok(())
        } else {
            let n = self.number()?;
            serde_json::to_writer(&mut *out, &n).map_err(|_| Bad)
        }
    }
}

pub(crate) struct Scanner<'a> {
    b: &'a [u8],
    pub pos: usize,
}

impl<'a> Scanner<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Scanner { b, pos: 0 }
    }

    #[inline]
    pub fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.pos) {
            if matches!(c, b' ' | b'\n' | b'\t' | b'\r') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// The next non-blank byte (not consumed).
    #[inline]
    pub fn peek(&mut self) -> Result<u8, Bad> {
        self.ws();
        self.b.get(self.pos).copied().ok_or(Bad)
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
        self.ws();
        if self.pos == self.b.len() {
            Ok(())
        } else {
            Err(Bad)
        }
    }

    /// A string at the current position (after blanks), checked; its
    /// escapes are decoded only when its text is needed.
    #[inline]
    pub fn string(&mut self) -> Result<Str<'a>, Bad> {
        if self.peek()? != b'"' {
            return Err(Bad);
        }
        let start = self.pos;
        let mut i = start + 1;
        let mut escaped = false;
        loop {
            let c = *self.b.get(i).ok_or(Bad)?;
            match STR_CLASS[c as usize] {
                0 => i += 1,
                1 => break,
                2 => {
                    escaped = true;
                    i += 2;
                }
                _ => return Err(Bad),
            }
        }
        self.pos = i + 1;
        let s = Str {
            raw: &self.b[start..=i],
            escaped,
        };
        if escaped && !escapes_valid(&s.raw[1..s.raw.len() - 1]) {
            return Err(Bad);
        }
        Ok(s)
    }

    /// A number at the current position (after blanks): RFC 8259 grammar,
    /// and in `f64` range.
    #[inline]
    pub fn number(&mut self) -> Result<Num<'a>, Bad> {
        self.ws();
        let b = self.b;
        let start = self.pos;
        let mut i = start;
        let neg = b.get(i) == Some(&b'-');
        if neg {
            i += 1;
        }
        let int_start = i;
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while matches!(b.get(i), Some(b'0'..=b'9')) {
                    i += 1;
                }
            }
            _ => return Err(Bad),
        }
        let int_digits = i - int_start;
        let mut plain_int = true;
        if b.get(i) == Some(&b'.') {
            plain_int = false;
            i += 1;
            let d = i;
            while matches!(b.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
            if i == d {
                return Err(Bad);
            }
        }
        let mut exponent = false;
        if matches!(b.get(i), Some(b'e' | b'E')) {
            plain_int = false;
            exponent = true;
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let d = i;
            while matches!(b.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
            if i == d {
                return Err(Bad);
            }
        }
        self.pos = i;
        let raw = &b[start..i];
        // `-0` is read as the float -0.0; 19+ digits may leave i64/u64.
        let simple = plain_int && int_digits <= 18 && !(neg && raw == b"-0");
        let n = Num { raw, simple };
        if exponent || raw.len() > 300 {
            // Could be out of f64 range: serde_json refuses those.
            n.number()?;
        }
        Ok(n)
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
        if self.b[self.pos..].starts_with(lit) {
            self.pos += lit.len();
            Ok(lit)
        } else {
            Err(Bad)
        }
    }

    /// Skips one value (after blanks), checking it; `depth` is the number
    /// of containers around it. Returns the raw value.
    pub fn skip(&mut self, depth: usize) -> Result<&'a [u8], Bad> {
        let start = {
            self.ws();
            self.pos
        };
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
        Ok(&self.b[start..self.pos])
    }
}

/// Whether the escapes inside a string (without its quotes; its end was
/// found by skipping two bytes at each backslash) are ones serde_json
/// decodes into a `String`: `\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`,
/// `\t`, and `\u` with four hex digits, where a leading surrogate must be
/// followed by `\u` and a trailing surrogate, and a trailing surrogate may
/// not stand alone. Checked against serde_json by the stream tests.
fn escapes_valid(b: &[u8]) -> bool {
    let hex4 = |i: usize| -> Option<u16> {
        let d = b.get(i..i + 4)?;
        let mut n: u16 = 0;
        for &c in d {
            let v = (c as char).to_digit(16)?;
            n = n * 16 + v as u16;
        }
        Some(n)
    };
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
            Some(b'u') => {
                let Some(n) = hex4(i + 2) else { return false };
                i += 6;
                if (0xDC00..=0xDFFF).contains(&n) {
                    return false;
                }
                if (0xD800..=0xDBFF).contains(&n) {
                    if b.get(i) != Some(&b'\\') || b.get(i + 1) != Some(&b'u') {
                        return false;
                    }
                    match hex4(i + 2) {
                        Some(n2) if (0xDC00..=0xDFFF).contains(&n2) => i += 6,
                        _ => return false,
                    }
                }
            }
            _ => return false,
        }
    }
    true
}
