//! # enet-dtls
//!
//! Godot's networking stack in Rust, wire-compatible with Godot 3 and C ENet 1.3:
//!
//! * [`enet`]: ENet 1.3 hosts ([`EnetHost`](enet::EnetHost), blocking; and with the `tokio`
//!   feature `TokioEnetHost`, async). They talk to C ENet, `python3-enet` and Godot's
//!   `NetworkedMultiplayerENet`.
//! * [`dtls`]: DTLS 1.2 over OpenSSL, shaped like Godot's `PacketPeerDTLS` and `DTLSServer`,
//!   plus a [`DtlsListener`](dtls::DtlsListener) for servers that face the Internet.
//! * [`udp`]: UDP peers shaped like Godot's `PacketPeerUDP` and `UDPServer`.
//! * [`keys`]: RSA and EC keys and self-signed certificates (PEM files that Godot loads).
//!
//! The protocol cores are the sans-IO crates [`enet_proto`] and [`dtls_proto`] (they take bytes
//! and an explicit `now` and never touch a socket or the clock); this crate owns the sockets and
//! the clock and drives them. The types an application needs from the cores are re-exported
//! here, so this crate's documentation is enough to use it:
//!
//! | what | types |
//! |---|---|
//! | ENet events and packets | [`Event`], [`Packet`], [`PacketFlags`], [`PeerId`], [`DisconnectReason`] |
//! | ENet host settings | [`HostConfig`], [`Compressor`], [`RangeCoder`] (Godot's compression mode 1) |
//! | ENet state and counters | [`Peer`], [`PeerState`], [`HostStats`] |
//! | DTLS configuration | [`ClientConfig`] / [`ClientConfigBuilder`], [`ServerConfig`] / [`ServerConfigBuilder`] |
//! | DTLS session state and errors | [`Status`], [`DtlsError`] |
//! | keys and certificates | [`keys::PrivateKey`], [`keys::Certificate`], [`keys::CertificateParams`] |
//!
//! # Features
//!
//! * `tokio` (off by default): `enet::TokioEnetHost`, the ENet host on a tokio UDP socket.
//!
//! # Example: an ENet echo round trip
//!
//! A server and a client host on loopback, in one thread: the client connects, sends one
//! reliable packet on channel 0, and the server sends it back.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use enet_dtls::enet::EnetHost;
//! use enet_dtls::{Event, HostConfig, Packet};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut server = EnetHost::bind("127.0.0.1:0", HostConfig::default())?;
//! let mut client = EnetHost::bind("127.0.0.1:0", HostConfig::default())?;
//! let to_server = client.connect(server.local_addr()?, 1, 0)?;
//!
//! let give_up = Instant::now() + Duration::from_secs(10);
//! let echo = loop {
//!     assert!(Instant::now() < give_up, "no echo");
//!     // The server echoes every packet on the channel it came in on.
//!     if let Some(Event::Receive { peer, channel, packet }) =
//!         server.service(Duration::from_millis(5))?
//!     {
//!         server.send(peer, channel, packet)?;
//!     }
//!     match client.service(Duration::from_millis(5))? {
//!         Some(Event::Connect { .. }) => {
//!             client.send(to_server, 0, Packet::reliable(b"hello".to_vec()))?;
//!         }
//!         Some(Event::Receive { packet, .. }) => break packet,
//!         _ => {}
//!     }
//! };
//! assert_eq!(echo.data, b"hello");
//! # Ok(())
//! # }
//! ```
//!
//! Runnable programs are in `crates/enet-dtls/examples/` (`cargo run -p enet-dtls --example
//! enet_echo`, `--example enet_echo_tokio --features tokio`, `--example dtls_server`,
//! `--example dtls_client`).
//!
//! Two layers of types:
//!
//! * Rust-shaped endpoint types, used by the CLI and the ENet layer:
//!   [`dtls::DtlsListener`] (DTLS sessions on one socket), [`enet::EnetHost`] and
//!   `enet::TokioEnetHost` over the [`enet::EnetSocket`] layer.
//! * The Godot compatibility layer, [`godot`]: `PacketPeerUdp`, `UdpServer`, `DtlsServer`,
//!   `PacketPeerDtls`, shaped like Godot's classes of the same names.

#![forbid(unsafe_code)]

pub mod capture;
pub mod dtls;
pub mod enet;
pub mod godot;
pub mod multiplayer;
mod net;
pub mod rpc;
pub mod udp;

/// The sans-IO DTLS 1.2 core this crate drives (everything it exports, for advanced use).
#[doc(inline)]
pub use dtls_proto;
/// The sans-IO ENet 1.3 core this crate drives (everything it exports, for advanced use).
#[doc(inline)]
pub use enet_proto;
/// The sans-IO Godot 3.2 MultiplayerAPI and Variant codec that [`rpc`] drives.
#[doc(inline)]
pub use godot_proto;

#[doc(inline)]
pub use enet_proto::range_coder::RangeCoder;
#[doc(inline)]
pub use enet_proto::{
    Compressor, DisconnectReason, Event, HostConfig, HostStats, Packet, PacketFlags, Peer, PeerId,
    PeerState,
};

#[doc(inline)]
pub use dtls_proto::keys;
#[doc(inline)]
pub use dtls_proto::{
    ClientConfig, ClientConfigBuilder, DtlsError, ServerConfig, ServerConfigBuilder, Status,
};
