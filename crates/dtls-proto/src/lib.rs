//! Sans-IO DTLS 1.2 over OpenSSL.
//!
//! This crate holds no sockets and reads no clock of its own: every input carries the caller's `now`.
//! It provides:
//!
//! * [`DtlsSession`]: one DTLS association (client or server) driven by datagrams in and out;
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
//! OpenSSL's retransmission timers read the real (monotonic) clock internally; they cannot be driven by a
//! virtual `now`. [`DtlsSession::poll_timeout`] converts OpenSSL's remaining time into an `Instant` relative
//! to the last `now` passed in. The handshake timeout is measured purely from the `now` values passed in.
//! The first retransmission happens after [`INITIAL_RETRANSMIT`] (100 ms), doubling each time up to
//! [`MAX_RETRANSMIT`].
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
mod error;
mod ffi;
pub mod keys;
mod listener;
mod record;
mod session;

pub use config::{
    ClientConfig, ClientConfigBuilder, ServerConfig, ServerConfigBuilder, DEFAULT_COOKIE_ROTATION,
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MTU, MAX_MTU, MIN_MTU,
};
pub use error::DtlsError;
pub use listener::{CookieListener, ListenOutcome, PendingState};
pub use session::{DtlsSession, Role, Status};

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
