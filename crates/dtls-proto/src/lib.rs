//! Sans-IO DTLS 1.2 over OpenSSL.
//!
//! This crate holds no sockets and reads no clock of its own: every input carries the caller's `now`.
//! It provides:
//!
//! * [`DtlsSession`]: one DTLS association (client or server) driven by datagrams in and out;
//! * [`Endpoint`]: many sessions on one socket (quinn-proto shape): the session table with generational
//!   [`SessionHandle`]s, the cookie listener in front, the reconnect rule, and the limits (session cap,
//!   per-address share, handshake and idle timeouts, refusals before any expensive work);
//! * [`CookieListener`]: a stateless server front door doing the RFC 6347 section 4.2.1 cookie exchange with
//!   `DTLSv1_listen`, so spoofed ClientHellos cost no memory;
//! * [`ServerConfig`] / [`ClientConfig`]: builders for the OpenSSL contexts (DTLS 1.2 only);
//! * [`keys`]: RSA / ECDSA P-256 key generation, Godot-shaped self-signed certificates and PEM I/O.
//!
//! # Drain contract
//!
//! After every input (`handle_datagram`, `handle_timeout`, `send`, `close`), drain
//! [`DtlsSession::poll_transmit`] and [`DtlsSession::recv`] until they return `None`, then wait until
//! [`DtlsSession::poll_timeout`] or the next datagram, whichever comes first.
//!
//! # Clocks
//!
//! Everything runs in the caller's time, OpenSSL's retransmission timers included: every call into
//! OpenSSL runs under a virtual clock derived from the `now` passed in (OpenSSL reads its DTLS timer clock
//! through `gettimeofday`, which this crate interposes; see [`virtual_time_supported`] and ARCHITECTURE.md).
//! [`DtlsSession::poll_timeout`] is therefore exact, and a handshake can run in a simulator. The first
//! retransmission happens after [`INITIAL_RETRANSMIT`] (100 ms), doubling each time up to
//! [`MAX_RETRANSMIT`]; the handshake timeout is measured from the `now` values passed in. Certificate
//! validity is checked against the real date (OpenSSL uses `time()` for it, which is not interposed).
//!
//! # Robustness
//!
//! Every input is bounded: datagrams queue at most 1024 deep in each direction, invalid records are
//! discarded as RFC 6347 requires, and epoch-1 records too short to hold an AEAD tag are filtered out
//! before OpenSSL sees them (OpenSSL 3.0 otherwise fails the whole association on one such spoofed
//! record). The [`CookieListener`] keeps no state for senders that have not echoed a valid cookie.
//!
//! # Example
//!
//! ```
//! use std::time::Instant;
//! use dtls_proto::keys::{Certificate, CertificateParams, KeyType, PrivateKey};
//! use dtls_proto::{ClientConfig, DtlsSession, ServerConfig, Status};
//!
//! let now = Instant::now();
//! let key = PrivateKey::generate(KeyType::EcP256).unwrap();
//! let cert = Certificate::self_signed(&key, &CertificateParams::new("localhost")).unwrap();
//! let server_cfg = ServerConfig::builder(key, cert.clone()).build().unwrap();
//! let client_cfg = ClientConfig::builder()
//!     .hostname("localhost")
//!     .trusted_certificate(cert)
//!     .build()
//!     .unwrap();
//! let mut client = DtlsSession::client(&client_cfg, now).unwrap();
//! let mut server = DtlsSession::server(&server_cfg, now).unwrap();
//! // A tiny in-memory pump: move datagrams until both sides are connected.
//! for _ in 0..20 {
//!     while let Some(d) = client.poll_transmit() { server.handle_datagram(now, &d); }
//!     while let Some(d) = server.poll_transmit() { client.handle_datagram(now, &d); }
//! }
//! assert_eq!(client.status(), Status::Connected);
//! client.send(b"hello").unwrap();
//! while let Some(d) = client.poll_transmit() { server.handle_datagram(now, &d); }
//! assert_eq!(server.recv().as_deref(), Some(&b"hello"[..]));
//! ```

// `unsafe` is allowed only in the `ffi` module.
#![deny(unsafe_code)]

mod bio;
mod config;
mod cookie;
mod endpoint;
mod error;
mod ffi;
pub mod keys;
mod listener;
mod record;
mod session;

pub use config::{
    ClientConfig, ClientConfigBuilder, ServerConfig, ServerConfigBuilder, DEFAULT_CIPHER_LIST,
    DEFAULT_COOKIE_ROTATION, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MTU, MAX_MTU, MIN_MTU,
};
pub use endpoint::{
    normalize_addr, CloseReason, Endpoint, EndpointConfig, EndpointStats, Event, SessionHandle,
    Transmit, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_SESSIONS, MIN_DEFAULT_SESSIONS_PER_ADDRESS,
};
pub use error::DtlsError;
pub use listener::{CookieListener, ListenOutcome, PendingState};
pub use session::{DtlsSession, Role, SessionEvent, Status};

/// Whether OpenSSL's DTLS timers follow the caller's `now` in this process.
///
/// This crate defines the C function `gettimeofday` in the program; OpenSSL (dynamically linked) reads its
/// DTLS timer clock through it, and gets a per-thread virtual time while one of our calls into OpenSSL
/// runs (the real time otherwise). The first call probes, once, that the interposition took effect: a
/// client handshake is started at a virtual time T and the timer's remaining time is asked at T + 0.5 s.
/// When it is `false` (for example with a statically linked OpenSSL), sessions fall back to OpenSSL's
/// real-clock timers: [`DtlsSession::poll_timeout`] is then the remaining real time added to the last
/// `now`, which is right for drivers that pass `Instant::now()` but not for a simulator.
pub fn virtual_time_supported() -> bool {
    ffi::virtual_time_supported()
}

/// First retransmission timeout of a handshake flight (OpenSSL's default is 1 s).
pub const INITIAL_RETRANSMIT: std::time::Duration = std::time::Duration::from_millis(100);
/// Upper bound of the doubling retransmission timeout.
pub const MAX_RETRANSMIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Largest datagram this crate accepts or produces; anything larger is dropped on input.
pub const MAX_DATAGRAM_SIZE: usize = 65_535;

#[cfg(test)]
mod tests {
    /// The drivers move sessions and listeners between threads/tasks and share configs.
    #[test]
    fn public_types_are_send_and_configs_sync() {
        fn send<T: Send>() {}
        fn sync<T: Sync>() {}
        send::<crate::DtlsSession>();
        send::<crate::CookieListener>();
        send::<crate::Endpoint>();
        send::<crate::ListenOutcome>();
        send::<crate::ServerConfig>();
        sync::<crate::ServerConfig>();
        send::<crate::ClientConfig>();
        sync::<crate::ClientConfig>();
        send::<crate::keys::PrivateKey>();
        sync::<crate::keys::Certificate>();
        send::<crate::DtlsError>();
        sync::<crate::DtlsError>();
    }
}
