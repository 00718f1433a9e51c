//! DTLS 1.2 over UDP sockets: Godot's `PacketPeerDTLS` and `DTLSServer`, plus a stateless
//! listener for servers that face the Internet.
//!
//! The protocol work is done by the sans-IO [`dtls_proto`] core; the types here own the
//! sockets and read the clock, then follow the core's drain contract (feed input, drain
//! `poll_transmit`/`recv`, sleep until `poll_timeout` or the next datagram).
//!
//! | type | Godot | use it for |
//! |---|---|---|
//! | [`PacketPeerDtls`] | `PacketPeerDTLS` | a client, or one server-side peer taken from a [`DtlsServer`] |
//! | [`DtlsServer`] | `DTLSServer` | Godot-shaped servers: `UdpServer` + `take_connection` per source |
//! | [`DtlsListener`] | – | servers: one socket, stateless cookies, bounded sessions, events |
//! | [`Endpoint`] | – | the sans-IO core under [`DtlsListener`], for custom drivers and simulators |
//!
//! # Which server?
//!
//! [`DtlsServer`] mirrors Godot: a [`UdpServer`](crate::udp::UdpServer) keeps a pending
//! peer for every new source address *before* any DTLS check, so spoofed datagrams fill its
//! pending slots (Godot allows 16) and crowd out real clients. [`DtlsListener`] keeps nothing
//! per source until the client has echoed a valid stateless cookie (it proves it can receive
//! at its address), and caps the number of sessions. Prefer the listener.
//!
//! # Client example
//!
//! ```no_run
//! use std::time::Duration;
//! use enet_dtls::dtls::{ClientConfig, PacketPeerDtls, Status};
//! use enet_dtls::udp::PacketPeerUdp;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut udp = PacketPeerUdp::bind("127.0.0.1:0")?;
//! udp.connect_to_host("127.0.0.1:4433")?;
//! let config = ClientConfig::builder().verify(false).build()?;
//! let mut dtls = PacketPeerDtls::connect_to_peer(udp, &config)?;
//! while dtls.status() == Status::Handshaking {
//!     dtls.wait(Some(Duration::from_millis(100)))?;
//!     dtls.poll()?;
//! }
//! dtls.put_packet(b"hello")?;
//! # Ok(()) }
//! ```

mod listener;
mod peer;
mod server;

pub use dtls_proto::{
    ClientConfig, CloseReason, DtlsError, Endpoint, EndpointConfig, EndpointStats, Event,
    PendingState, ServerConfig, SessionHandle, Status, Transmit, DEFAULT_IDLE_TIMEOUT,
};
pub use listener::{DtlsListener, ListenerEvent, ListenerStats, DEFAULT_MAX_SESSIONS};
pub use peer::PacketPeerDtls;
pub use server::DtlsServer;

use std::io;

/// Errors of the DTLS drivers: a socket failed, or the DTLS session did.
///
/// Messages include the wrapped error's, so [`source`](std::error::Error::source) returns
/// `None` (a report that walks the chain prints the cause once).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The UDP socket failed (bind, send or receive).
    #[error("socket error: {0}")]
    Io(io::Error),
    /// The DTLS session failed or refused the call; the variant says why (untrusted
    /// certificate, hostname mismatch, expired, peer alert, handshake timeout, ...).
    #[error(transparent)]
    Dtls(#[from] DtlsError),
    /// [`DtlsListener::send_to`] or [`DtlsListener::close`] named an address that has no
    /// session.
    #[error("no DTLS session with {0}")]
    NoSession(std::net::SocketAddr),
    /// [`DtlsListener::connect`] named an address that already has a session.
    #[error("a DTLS session with {0} already exists")]
    SessionExists(std::net::SocketAddr),
    /// [`DtlsListener::connect`] would exceed [`DtlsListener::max_sessions`].
    #[error("DTLS session limit ({0}) reached")]
    TooManySessions(usize),
    /// The peer is not in [`Status::Connected`], so application data cannot be sent yet (or
    /// any more).
    #[error("the DTLS peer is not connected (status {0:?})")]
    NotConnected(Status),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

/// Compile-time check: the drivers can move to another thread (an ENet socket layer and the
/// tokio driver need `Send`).
const _: () = {
    const fn is_send<T: Send>() {}
    is_send::<DtlsListener>();
    is_send::<PacketPeerDtls>();
    is_send::<DtlsServer>();
};
