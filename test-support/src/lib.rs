//! What Veil's tests share: a route-builder HTTP server that records every
//! request ([`server`]), the fixture keys and JWT signing ([`keys`],
//! [`jwt`]) and [`free_port`].
#![forbid(unsafe_code)]

pub mod jwt;
pub mod keys;
pub mod server;

/// A port that was free a moment ago (the listener is dropped).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}
