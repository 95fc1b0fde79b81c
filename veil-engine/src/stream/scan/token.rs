//! The scanner's tokens (strings and numbers, as places in its window and
//! as bytes) and the grammar checks its loops call: a number's extent and
//! a string's escapes.

use serde_json::Number;

use super::Bad;

/// A string token: its place in the scanner's window, valid until the
/// scanner reads on ([`Scanner::str_ref`] gives its bytes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Str {
    /// Window index of the opening quote.
    pub start: usize,
    /// Window index after the closing quote.
    pub end: usize,
    /// Whether it contains a backslash escape.
    pub escaped: bool,
}

/// A string token's bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StrRef<'b> {
    /// The token with its quotes.
    pub raw: &'b [u8],
    pub escaped: bool,
    /// The text between the quotes, when the whole body is known to be
    /// UTF-8 (a body in memory).
    pub text: Option<&'b str>,
}

impl<'b> StrRef<'b> {
    /// The text between the quotes, when it has no escapes (the body was
    /// checked to be UTF-8, so this cannot fail then).
    pub fn plain(&self) -> Option<&'b str> {
        if self.escaped {
            return None;
        }
        match self.text {
            Some(t) => Some(t),
            None => std::str::from_utf8(&self.raw[1..self.raw.len() - 1]).ok(),
        }
    }

    /// The decoded text.
    pub fn text(&self) -> Result<std::borrow::Cow<'b, str>, Bad> {
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

/// A number token: its place in the scanner's window, valid until the
/// scanner reads on ([`Scanner::num_ref`] gives its bytes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Num {
    pub start: usize,
    pub end: usize,
    /// An integer serde_json writes back byte for byte.
    pub simple: bool,
}

/// A number token's bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NumRef<'b> {
    pub raw: &'b [u8],
    pub simple: bool,
}

impl NumRef<'_> {
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

/// A number's grammar from `start`: where it stopped, and, when it is a
/// number, whether it is a plain integer, its count of integer digits and
/// whether it has an exponent.
#[inline]
pub(super) fn number_at(b: &[u8], start: usize) -> (usize, Option<(bool, usize, bool)>) {
    let mut i = start;
    if b.get(i) == Some(&b'-') {
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
        _ => return (i, None),
    }
    let int_digits = i - int_start;
    let mut plain_int = true;
    if b.get(i) == Some(&b'.') {
        plain_int = false;
        let d = i + 1;
        i = digits_end(b, d);
        if i == d {
            return (i, None);
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
        i = digits_end(b, d);
        if i == d {
            return (i, None);
        }
    }
    (i, Some((plain_int, int_digits, exponent)))
}

/// Where the run of ASCII digits from `i` ends.
#[inline]
fn digits_end(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b'0'..=b'9')) {
        i += 1;
    }
    i
}

/// Whether the escapes inside a string (without its quotes; its end was
/// found by skipping two bytes at each backslash) are ones serde_json
/// decodes into a `String`: `\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`,
/// `\t`, and `\u` with four hex digits, where a leading surrogate must be
/// followed by `\u` and a trailing surrogate, and a trailing surrogate may
/// not stand alone. Checked against serde_json by the stream tests.
pub(super) fn escapes_valid(b: &[u8]) -> bool {
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
    while let Some(k) = memchr::memchr(b'\\', &b[i..]) {
        i += k;
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
