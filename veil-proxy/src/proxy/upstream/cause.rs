//! Why a call to Graph failed: timeout, DNS, connect, TLS, reset, body
//! ([`classify`]), for the log.

use super::*;

/// A call that failed before Graph's answer arrived: the cause (DNS,
/// connect, TLS, timeout, reset) and the error chain are for the log.
pub(super) fn transport_error(e: &hyper_util::client::legacy::Error) -> ProxyError {
    let cause = classify(e, e.is_connect());
    let err = match cause {
        UpstreamCause::Timeout => ProxyError::new(
            Phase::Upstream,
            ErrorKind::UpstreamTimeout,
            "Graph did not answer in time",
        ),
        _ if e.is_connect() => ProxyError::new(
            Phase::Upstream,
            ErrorKind::UpstreamConnect,
            "cannot connect to Graph",
        ),
        _ => ProxyError::new(
            Phase::Upstream,
            ErrorKind::UpstreamConnect,
            "the request to Graph failed",
        ),
    };
    err.upstream_cause(cause).caused_by(e)
}

/// The answer's body stopped arriving.
pub(super) fn body_error(e: &hyper::Error) -> ProxyError {
    ProxyError::new(
        Phase::Upstream,
        ErrorKind::UpstreamInvalid,
        "Graph's response ended early or could not be decoded",
    )
    .upstream_cause(classify(e, false))
    .caused_by(e)
}

/// How a request to Graph failed, from the error's chain: hyper-util's
/// `dns error`, a rustls error, the I/O error's kind, hyper's "closed
/// before the message completed".
pub(crate) fn classify(e: &(dyn std::error::Error + 'static), connecting: bool) -> UpstreamCause {
    use std::io::ErrorKind as Io;
    let mut io_kind = None;
    let (mut dns, mut tls, mut closed, mut timed_out) = (false, false, false, false);
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if err.is::<tokio_rustls::rustls::Error>() {
            tls = true;
        }
        // An I/O error may wrap another (hyper-rustls wraps tokio-rustls'),
        // and its `source()` skips the one it wraps: look inside.
        let mut io = err.downcast_ref::<std::io::Error>();
        while let Some(i) = io {
            if io_kind.is_none() || i.kind() != Io::Other {
                io_kind = Some(i.kind());
            }
            let inner = i.get_ref();
            tls |= inner.is_some_and(|inner| inner.is::<tokio_rustls::rustls::Error>());
            io = inner.and_then(|inner| inner.downcast_ref::<std::io::Error>());
        }
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            closed |= h.is_incomplete_message() || h.is_closed() || h.is_canceled();
            timed_out |= h.is_timeout();
        }
        // hyper-util's connector names a failed name lookup so.
        dns |= err.to_string() == "dns error";
        current = err.source();
    }
    if timed_out || io_kind == Some(Io::TimedOut) {
        return UpstreamCause::Timeout;
    }
    if dns {
        return UpstreamCause::Dns;
    }
    if tls || (connecting && io_kind == Some(Io::InvalidData)) {
        return UpstreamCause::Tls;
    }
    match io_kind {
        Some(
            Io::ConnectionRefused
            | Io::HostUnreachable
            | Io::NetworkUnreachable
            | Io::AddrNotAvailable
            | Io::AddrInUse,
        ) => return UpstreamCause::Connect,
        Some(Io::ConnectionReset | Io::ConnectionAborted | Io::BrokenPipe | Io::UnexpectedEof) => {
            return UpstreamCause::Reset
        }
        _ => {}
    }
    if closed || !connecting {
        UpstreamCause::Reset
    } else {
        UpstreamCause::Connect
    }
}
