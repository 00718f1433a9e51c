//! Godot 3.2's `NetworkedMultiplayerENet` in Rust: [`MultiplayerPeer`].
//!
//! A server (id 1) and its clients (random 31-bit ids) exchange packets over ENet with
//! Godot's framing, so Godot games join a Rust server, and a Rust client joins a Godot
//! server:
//!
//! * every application packet carries an 8-byte header (`u32 source`, `i32 target`,
//!   little-endian) and goes to one peer, to everyone ([`Target::Broadcast`]) or to everyone
//!   but one ([`Target::AllExcept`]); clients send to the server, which relays (with an
//!   anti-spoof check of the source);
//! * the server announces peers with ADD_PEER/REMOVE_PEER on channel 0, so every client
//!   sees [`MultiplayerEvent::PeerConnected`] / [`MultiplayerEvent::PeerDisconnected`] for
//!   the others;
//! * [`TransferMode`]s map to ENet flags and channels as in Godot; the datagrams can be
//!   compressed with Godot's five [`CompressionMode`]s.
//!
//! Layers, from the bottom:
//!
//! * [`MultiplayerCore`]: the sans-IO framing state machine. It works on an
//!   [`enet_proto::Host`] given by the caller, with an explicit `now` (the simulator tests
//!   drive it in virtual time).
//! * [`MultiplayerPeer`]: the polled driver over the blocking [`EnetHost`](crate::enet::EnetHost),
//!   shaped like Godot's: [`poll`](MultiplayerPeer::poll), then drain
//!   [`next_event`](MultiplayerPeer::next_event). With the `tokio` feature,
//!   `TokioMultiplayerPeer` is the same over `TokioEnetHost`, with an async `next_event`.
//!   Both are generic over the [`EnetSocket`](crate::enet::EnetSocket).
//!
//! | Godot (`NetworkedMultiplayerENet`) | here |
//! |---|---|
//! | `create_server(port, max_clients, in_bw, out_bw)`, `set_bind_ip` | [`MultiplayerPeer::server`] → [`ServerBuilder`] |
//! | `create_client(address, port, in_bw, out_bw, local_port)` | [`MultiplayerPeer::client`] → [`ClientBuilder`] |
//! | `compression_mode`, `channel_count`, `server_relay` | builder methods |
//! | `use_dtls`, `set_dtls_key`, `set_dtls_certificate` (server) | [`ServerBuilder::use_dtls`], [`ServerBuilder::dtls_key`], [`ServerBuilder::dtls_certificate`] |
//! | `use_dtls`, `dtls_verify`, `dtls_hostname`, `set_dtls_certificate` (client) | [`ClientBuilder::use_dtls`], [`ClientBuilder::dtls_verify`], [`ClientBuilder::dtls_hostname`], [`ClientBuilder::dtls_certificate`] |
//! | `get_peer_address`/`port`, statistics | [`MultiplayerPeer::peer_address`], [`MultiplayerPeer::peer_stats`] (RTT, loss, bytes) |
//! | `transfer_mode`, `transfer_channel`, `always_ordered`, `refuse_new_connections` | builder methods and setters |
//! | `set_target_peer(id)` + `put_packet(bytes)` | [`MultiplayerPeer::set_target_peer`] + [`put_packet`](MultiplayerPeer::put_packet), or [`send`](MultiplayerPeer::send) |
//! | `poll()`, signals, `get_packet()` / `get_packet_peer()` | [`poll`](MultiplayerPeer::poll), [`next_event`](MultiplayerPeer::next_event) → [`MultiplayerEvent`] |
//! | `get_unique_id()`, `get_peer_address/port(id)`, `set_peer_timeout(id, ...)` | [`unique_id`](MultiplayerPeer::unique_id), [`peer_address`](MultiplayerPeer::peer_address), [`set_peer_timeout`](MultiplayerPeer::set_peer_timeout) |
//! | `disconnect_peer(id, now)`, `close_connection()` | [`disconnect_peer`](MultiplayerPeer::disconnect_peer), [`close`](MultiplayerPeer::close) (and `Drop`) |
//!
//! # DTLS
//!
//! With `use_dtls`, ENet runs inside DTLS 1.2 ([`DtlsEnetSocket`](crate::enet::DtlsEnetSocket):
//! one ENet datagram per DTLS record, as in Godot's bundled ENet). A server needs a key and a
//! certificate; a client verifies the server by default, against the certificate given
//! (pinned or CA) or the system trust store, for `dtls_hostname` or else the host it was
//! given. A failed verification ends the attempt with
//! [`MultiplayerEvent::ConnectionFailed`] carrying the [`DtlsError`](crate::DtlsError).
//!
//! ```
//! use enet_dtls::keys::{Certificate, CertificateParams, KeyType, PrivateKey};
//! use enet_dtls::multiplayer::MultiplayerPeer;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = PrivateKey::generate(KeyType::EcP256)?;
//! let cert = Certificate::self_signed(&key, &CertificateParams::new("game.example"))?;
//! let server = MultiplayerPeer::server(0)
//!     .use_dtls(true)
//!     .dtls_key(key)
//!     .dtls_certificate(cert.clone())
//!     .create()?;
//! let port = server.local_addr()?.port();
//! let client = MultiplayerPeer::client("127.0.0.1", port)
//!     .use_dtls(true)
//!     .dtls_certificate(cert) // pinned
//!     .dtls_hostname("game.example")
//!     .create()?;
//! # drop(client);
//! # Ok(())
//! # }
//! ```
//!
//! # Example: a server and a client
//!
//! ```
//! use std::time::{Duration, Instant};
//! use enet_dtls::multiplayer::{MultiplayerEvent, MultiplayerPeer, Target, TransferMode};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut server = MultiplayerPeer::server(0).bind_address("127.0.0.1".parse()?).create()?;
//! let port = server.local_addr()?.port();
//! let mut client = MultiplayerPeer::client("127.0.0.1", port).create()?;
//!
//! let give_up = Instant::now() + Duration::from_secs(10);
//! let got = 'outer: loop {
//!     assert!(Instant::now() < give_up, "nothing arrived");
//!     client.poll()?;
//!     while let Some(event) = client.next_event() {
//!         if event == MultiplayerEvent::ConnectionSucceeded {
//!             client.send(Target::Peer(1), TransferMode::Reliable, None, b"hello")?;
//!         }
//!     }
//!     server.wait(Some(Duration::from_millis(5)))?;
//!     server.poll()?;
//!     while let Some(event) = server.next_event() {
//!         if let MultiplayerEvent::Packet(p) = event {
//!             break 'outer p;
//!         }
//!     }
//! };
//! assert_eq!(got.from, client.unique_id());
//! assert_eq!(got.data, b"hello");
//! assert_eq!(got.mode, TransferMode::Reliable);
//! # Ok(())
//! # }
//! ```

mod compression;
mod core;
mod peer;
#[cfg(feature = "tokio")]
mod tokio;

use std::io;

pub use self::compression::{CompressionMode, FastLzCompressor, ZlibCompressor, ZstdCompressor};
pub use self::core::{
    generate_unique_id, mode_of, parse_header, valid_client_id, FramingConfig, FramingStats,
    MultiplayerCore, HEADER_SIZE, MAX_REMOTE_PEERS, SERVER_ID, SYSCH_CONFIG, SYSCH_MAX,
    SYSCH_RELIABLE, SYSCH_UNRELIABLE, SYSMSG_ADD_PEER, SYSMSG_REMOVE_PEER,
};
#[cfg(feature = "tokio")]
pub(crate) use self::peer::MAX_EVENTS_PER_POLL;
pub use self::peer::{ClientBuilder, MultiplayerPeer, MultiplayerSocket, ServerBuilder};
#[cfg(feature = "tokio")]
pub use self::tokio::TokioMultiplayerPeer;

/// How a packet travels (Godot's `NetworkedMultiplayerPeer.TransferMode`; the discriminants
/// are Godot's values).
///
/// | mode | ENet flags | channel |
/// |---|---|---|
/// | `Unreliable` | unsequenced (sequenced with `always_ordered`) | 2 |
/// | `UnreliableOrdered` | none (sequenced: late packets are dropped) | 2 |
/// | `Reliable` | reliable | 1 |
///
/// A `transfer_channel` (3..channel_count, or 1/2) replaces the channel.
///
/// ```
/// use enet_dtls::multiplayer::TransferMode;
/// assert_eq!(TransferMode::from_godot(1), Some(TransferMode::UnreliableOrdered));
/// assert_eq!(TransferMode::default(), TransferMode::Reliable);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TransferMode {
    /// May be lost or arrive out of order (`TRANSFER_MODE_UNRELIABLE`).
    Unreliable = 0,
    /// May be lost; never arrives after a newer one (`TRANSFER_MODE_UNRELIABLE_ORDERED`).
    UnreliableOrdered = 1,
    /// Arrives, in order (`TRANSFER_MODE_RELIABLE`, Godot's default).
    #[default]
    Reliable = 2,
}

impl TransferMode {
    /// Every mode, in Godot's order.
    pub const ALL: [TransferMode; 3] = [
        TransferMode::Unreliable,
        TransferMode::UnreliableOrdered,
        TransferMode::Reliable,
    ];

    /// The mode with Godot's enum value (0 to 2).
    pub fn from_godot(value: i64) -> Option<TransferMode> {
        TransferMode::ALL.into_iter().find(|m| *m as i64 == value)
    }
}

/// Where a packet goes (Godot's `target_peer`: 0, `id` or `-id`).
///
/// ```
/// use enet_dtls::multiplayer::Target;
/// assert_eq!(Target::AllExcept(5).to_wire(), Some(-5));
/// assert_eq!(Target::from_wire(0), Target::Broadcast);
/// assert_eq!(Target::from_wire(7), Target::Peer(7));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Target {
    /// Every peer (Godot's 0). From a client, the server relays it to every other client.
    #[default]
    Broadcast,
    /// One peer, by id (1 is the server).
    Peer(u32),
    /// Every peer except this one (Godot's `-id`).
    AllExcept(u32),
}

impl Target {
    /// Godot's signed target value (`None` if the id does not fit an `i32`).
    pub fn to_wire(self) -> Option<i32> {
        match self {
            Target::Broadcast => Some(0),
            Target::Peer(id) => i32::try_from(id).ok().filter(|v| *v > 0),
            Target::AllExcept(id) => i32::try_from(id).ok().filter(|v| *v > 0).map(|v| -v),
        }
    }

    /// The target of Godot's signed value.
    pub fn from_wire(value: i32) -> Target {
        match value {
            0 => Target::Broadcast,
            v if v > 0 => Target::Peer(v.unsigned_abs()),
            v => Target::AllExcept(v.unsigned_abs()),
        }
    }
}

/// Godot's `NetworkedMultiplayerPeer.ConnectionStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionStatus {
    /// Not connected (closed, failed, or the server left).
    Disconnected,
    /// A client waiting for the server.
    Connecting,
    /// Connected (a server from creation until closed).
    Connected,
}

/// Why a client could not connect ([`MultiplayerEvent::ConnectionFailed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionFailure {
    /// The server never answered (ENet's CONNECT timed out): nothing listens there, it
    /// refuses new connections, or it is full.
    Timeout,
    /// The server refused the connection.
    Refused,
    /// The connection attempt was closed locally.
    Closed,
    /// The DTLS handshake failed (untrusted certificate, hostname mismatch, expired
    /// certificate, an alert from the server, or a handshake timeout).
    Dtls(crate::DtlsError),
    /// The DTLS session was closed before ENet connected (close_notify from the server, or
    /// idle).
    DtlsClosed(dtls_proto::CloseReason),
    /// The socket layer failed the connection without saying why.
    Transport,
}

impl From<crate::enet::FailureCause> for ConnectionFailure {
    fn from(cause: crate::enet::FailureCause) -> Self {
        match cause {
            crate::enet::FailureCause::Dtls(e) => ConnectionFailure::Dtls(e),
            crate::enet::FailureCause::Closed(r) => ConnectionFailure::DtlsClosed(r),
            #[allow(unreachable_patterns)]
            _ => ConnectionFailure::Transport,
        }
    }
}

impl std::fmt::Display for ConnectionFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectionFailure::Timeout => f.write_str("the server did not answer (timeout)"),
            ConnectionFailure::Refused => f.write_str("the server refused the connection"),
            ConnectionFailure::Closed => f.write_str("the connection attempt was closed"),
            ConnectionFailure::Dtls(e) => write!(f, "DTLS handshake failed: {e}"),
            ConnectionFailure::DtlsClosed(r) => {
                write!(f, "the DTLS session closed before ENet connected ({r:?})")
            }
            ConnectionFailure::Transport => f.write_str("the socket layer failed the connection"),
        }
    }
}

/// A packet that arrived ([`MultiplayerEvent::Packet`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedPacket {
    /// Who sent it (Godot's `get_packet_peer()`): the original client for relayed packets.
    pub from: u32,
    /// ENet channel it came on (Godot's `get_packet_channel()`).
    pub channel: u8,
    /// How it was sent, from its ENet flags (see [`mode_of`]).
    pub mode: TransferMode,
    /// The payload, without the 8-byte header.
    pub data: Vec<u8>,
}

/// What happened (Godot's signals, plus the packets).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MultiplayerEvent {
    /// A peer joined (`peer_connected`): on the server a client; on a client the server
    /// (id 1) and every other client the server announces.
    PeerConnected(u32),
    /// A peer left (`peer_disconnected`).
    PeerDisconnected(u32),
    /// The client is connected (`connection_succeeded`), after `PeerConnected(1)`.
    ConnectionSucceeded,
    /// The client could not connect (`connection_failed`), with the cause.
    ConnectionFailed(ConnectionFailure),
    /// The server closed the connection or stopped answering (`server_disconnected`); the
    /// client is closed.
    ServerDisconnected,
    /// A packet arrived.
    Packet(ReceivedPacket),
}

/// An error of a [`MultiplayerPeer`] call (network input never produces one: bad packets are
/// dropped and counted in [`FramingStats`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MultiplayerError {
    /// Nothing can be sent: the client is not (or no longer) connected, or the peer is closed.
    #[error("not connected")]
    NotConnected,
    /// Only a server can do this (or: a client only has a connection to the server).
    #[error("only the server can do this (a client is connected to the server only)")]
    NotServer,
    /// Only a client can do this.
    #[error("only a client can do this")]
    NotClient,
    /// No peer has this id.
    #[error("no peer has id {0}")]
    UnknownPeer(u32),
    /// A channel that is reserved (0) or not below the channel count.
    #[error("channel {channel} cannot carry packets (0 is reserved; the channel count is {channel_count})")]
    InvalidChannel {
        /// The channel asked for.
        channel: u8,
        /// The configured channel count.
        channel_count: u8,
    },
    /// A bad argument or setting; the message says which and why.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The ENet host refused the call (packet too large, queue full...).
    #[error("ENet: {0}")]
    Enet(enet_proto::Error),
    /// The socket failed.
    #[error("socket: {0}")]
    Io(io::Error),
}

impl From<enet_proto::Error> for MultiplayerError {
    fn from(e: enet_proto::Error) -> Self {
        MultiplayerError::Enet(e)
    }
}

impl From<io::Error> for MultiplayerError {
    fn from(e: io::Error) -> Self {
        MultiplayerError::Io(e)
    }
}

impl From<crate::enet::BindError> for MultiplayerError {
    fn from(e: crate::enet::BindError) -> Self {
        match e {
            crate::enet::BindError::Io(e) => MultiplayerError::Io(e),
            crate::enet::BindError::Config(e) => MultiplayerError::Enet(e),
        }
    }
}
