//! Address checks shared by Veil's outbound clients (Graph, Entra, the
//! caller's key set): plain `http://` is allowed only to a loopback host,
//! so no token or key ever travels in clear off the machine.

use std::net::IpAddr;

/// Whether `host` (as in a URL: a name, an IPv4 address or a bracketed
/// IPv6 address, without a port) is this machine: `localhost`, `127.0.0.0/8`
/// or `::1`.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.1.2.3",
            "[::1]",
            "::1",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "",
            "example.com",
            "localhost.example.com",
            "10.0.0.1",
            "[::2]",
            "128.0.0.1",
            "0.0.0.0",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
