//! Reading Graph's answer with bounded memory: gzip inflated as it arrives,
//! the inflated size and the JSON nesting checked on the way ([`BodyReader`],
//! [`DepthScanner`]).

use super::*;

/// Why the inflated body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Limit {
    Size,
    Depth,
    Budget,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for Limit {}

/// Where inflated bytes go: size, nesting and budget are checked before
/// they are kept.
pub(super) struct Sink {
    buf: Vec<u8>,
    max: usize,
    /// Nesting is checked here only for bodies that are not sanitized (the
    /// sanitizer checks a 2xx body's nesting as it reads it).
    depth: Option<DepthScanner>,
    reservation: Reservation,
}

impl std::io::Write for Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let fail = |l: Limit| std::io::Error::other(l);
        if self.buf.len() + data.len() > self.max {
            return Err(fail(Limit::Size));
        }
        if self.depth.as_mut().is_some_and(|d| !d.feed(data)) {
            return Err(fail(Limit::Depth));
        }
        if !self.reservation.cover(self.buf.len() + data.len()) {
            return Err(fail(Limit::Budget));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads a body chunk by chunk, inflating gzip on the way.
pub(crate) struct BodyReader {
    inner: Decode,
    max_body: usize,
    max_depth: usize,
}

pub(super) enum Decode {
    Plain(Sink),
    Gzip(Box<flate2::write::GzDecoder<Sink>>),
}

impl BodyReader {
    /// `announced`: the body's `Content-Length`, if any; a plain body's
    /// buffer is sized for it at once (never over the size limit), so it is
    /// not copied as it grows. `check_depth`: check the nesting here (for a
    /// body the sanitizer will not read, whose nesting it cannot check).
    pub(super) fn new(
        config: &UpstreamConfig,
        gzip: bool,
        announced: Option<u64>,
        check_depth: bool,
    ) -> Self {
        let capacity = match announced {
            Some(n) if !gzip => (n as usize).min(config.max_body_bytes),
            _ => 0,
        };
        let sink = Sink {
            buf: Vec::with_capacity(capacity),
            max: config.max_body_bytes,
            depth: check_depth.then(|| DepthScanner::new(config.max_depth)),
            reservation: config.budget.reserve(),
        };
        BodyReader {
            inner: if gzip {
                Decode::Gzip(Box::new(flate2::write::GzDecoder::new(sink)))
            } else {
                Decode::Plain(sink)
            },
            max_body: config.max_body_bytes,
            max_depth: config.max_depth,
        }
    }

    pub(super) fn feed(&mut self, chunk: &[u8]) -> Result<(), ProxyError> {
        let r = match &mut self.inner {
            Decode::Plain(sink) => sink.write_all(chunk),
            Decode::Gzip(dec) => dec.write_all(chunk),
        };
        r.map_err(|e| self.error(&e))
    }

    pub(super) fn finish(self) -> Result<(Vec<u8>, Reservation), ProxyError> {
        let (max_body, max_depth) = (self.max_body, self.max_depth);
        let sink = match self.inner {
            Decode::Plain(sink) => sink,
            Decode::Gzip(mut dec) => {
                if let Err(e) = dec.try_finish() {
                    return Err(read_error(&e, max_body, max_depth));
                }
                dec.finish()
                    .map_err(|e| read_error(&e, max_body, max_depth))?
            }
        };
        Ok((sink.buf, sink.reservation))
    }

    pub(super) fn error(&self, e: &std::io::Error) -> ProxyError {
        read_error(e, self.max_body, self.max_depth)
    }
}

pub(super) fn read_error(e: &std::io::Error, max_body: usize, max_depth: usize) -> ProxyError {
    match e.get_ref().and_then(|i| i.downcast_ref::<Limit>()) {
        Some(Limit::Size) => too_large(max_body),
        Some(Limit::Depth) => too_deep(max_depth),
        Some(Limit::Budget) => ProxyError::new(
            Phase::Upstream,
            ErrorKind::Overloaded,
            "Veil is holding as many response bodies as its memory budget allows; retry shortly",
        ),
        None => ProxyError::new(
            Phase::Upstream,
            ErrorKind::UpstreamInvalid,
            "Graph's gzip-compressed response is truncated or corrupt; nothing of it is returned",
        )
        .upstream_cause(UpstreamCause::Body)
        .caused_by(e),
    }
}

/// Graph's body nests deeper than `max` (found while reading it, or by the
/// sanitizer for a 2xx body).
pub(in crate::proxy) fn too_deep(max: usize) -> ProxyError {
    ProxyError::new(
        Phase::Upstream,
        ErrorKind::UpstreamTooLarge,
        format!("Graph's response nests deeper than Veil accepts ({max} levels); nothing of it is returned"),
    )
    .upstream_cause(UpstreamCause::Body)
    .with_detail(format!("JSON nesting over {max}"))
}

pub(super) fn too_large(max: usize) -> ProxyError {
    ProxyError::new(
        Phase::Upstream,
        ErrorKind::UpstreamTooLarge,
        format!(
            "Graph's response is larger than Veil accepts ({} MiB once inflated); nothing of it is returned: ask for smaller pages ($top)",
            max / (1024 * 1024)
        ),
    )
    .upstream_cause(UpstreamCause::Body)
    .with_detail(format!("inflated body over {max} bytes"))
}

/// Tracks JSON nesting over a byte stream, ignoring brackets in strings.
#[derive(Debug, Clone)]
pub(crate) struct DepthScanner {
    depth: usize,
    max: usize,
    in_string: bool,
    escaped: bool,
}

impl DepthScanner {
    pub(crate) fn new(max: usize) -> Self {
        DepthScanner {
            depth: 0,
            max,
            in_string: false,
            escaped: false,
        }
    }

    /// Feeds bytes; `false` once the nesting passed the maximum. Most of
    /// a page is string content: inside a string the scanner jumps to the
    /// next quote or backslash (`memchr2`, many bytes at a time); outside,
    /// bytes that cannot change the state are skipped in a tight loop.
    pub(crate) fn feed(&mut self, data: &[u8]) -> bool {
        let mut i = 0;
        while i < data.len() {
            if self.escaped {
                // The byte after a backslash in a string, whatever it is.
                self.escaped = false;
                i += 1;
                continue;
            }
            if self.in_string {
                // Member names and most values end within a few bytes:
                // those are looked at one by one, the rest by `memchr2`.
                let near = (i + SHORT_STRING).min(data.len());
                let end = match data[i..near].iter().position(|b| matches!(b, b'"' | b'\\')) {
                    Some(k) => i + k,
                    None => match memchr::memchr2(b'"', b'\\', &data[near..]) {
                        Some(k) => near + k,
                        None => break,
                    },
                };
                if data[end] == b'\\' {
                    self.escaped = true;
                } else {
                    self.in_string = false;
                }
                i = end + 1;
                continue;
            }
            while i < data.len() && !DEPTH_SPECIAL[data[i] as usize] {
                i += 1;
            }
            let Some(&b) = data.get(i) else { break };
            i += 1;
            match b {
                b'"' => self.in_string = true,
                b'[' | b'{' => {
                    self.depth += 1;
                    if self.depth > self.max {
                        return false;
                    }
                }
                b']' | b'}' => self.depth = self.depth.saturating_sub(1),
                _ => {}
            }
        }
        true
    }
}

/// How many bytes of a string [`DepthScanner`] looks at one by one before
/// it searches the rest with `memchr2`.
const SHORT_STRING: usize = 16;

/// The bytes [`DepthScanner`] looks at.
pub(super) static DEPTH_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'[' as usize] = true;
    t[b']' as usize] = true;
    t[b'{' as usize] = true;
    t[b'}' as usize] = true;
    t
};
