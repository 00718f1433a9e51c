//! The Godot compatibility layer: types shaped like Godot's networking classes, for code
//! ported from GDScript or talking to Godot peers in Godot's terms.
//!
//! They keep Godot's verbs (`listen`, `poll`, `take_connection`, `connect_to_peer`,
//! `put_packet`, `get_packet`) and its per-peer objects, with Rust manners (constructors return
//! `Result`, no `get_` prefix on getters, timeouts are `Duration`s). They are re-exports: the
//! same types as in [`crate::udp`] and [`crate::dtls`].
//!
//! | Godot class | here | Rust-shaped type for new code |
//! |---|---|---|
//! | `PacketPeerUDP` | [`PacketPeerUdp`] | [`std::net::UdpSocket`] (plus the ENet socket layer, [`crate::enet::UdpEnetSocket`]) |
//! | `UDPServer` | [`UdpServer`] | one socket and your own routing by source address |
//! | `DTLSServer` | [`DtlsServer`] | [`DtlsListener`](crate::dtls::DtlsListener): stateless cookies, bounded sessions, events |
//! | `PacketPeerDTLS` | [`PacketPeerDtls`] | [`DtlsListener::connect`](crate::dtls::DtlsListener::connect) (many sessions, one socket) |
//! | `ENetMultiplayerPeer` / `enet_host_*` | – | [`EnetHost`](crate::enet::EnetHost), `TokioEnetHost` (feature `tokio`) |
//!
//! Prefer the Rust-shaped types for servers that face the Internet: Godot's `DTLSServer`
//! shape keeps per-source state before any DTLS check (see [`crate::dtls`], "Which server?").
//!
//! # Conventions shared with the Rust-shaped types
//!
//! * Waiting: `wait(Option<Duration>)` (`None`: no limit) returns whether something is ready.
//! * Reading: `get_packet()` returns `Ok(Some(packet))`, or `Ok(None)` when nothing is
//!   waiting; `Err` only for a failure.
//! * Binding: anything that implements [`std::net::ToSocketAddrs`] (`"host:port"`,
//!   `SocketAddr`, `(ip, port)`).

pub use crate::dtls::{DtlsServer, PacketPeerDtls, Status};
pub use crate::udp::{PacketPeerUdp, UdpServer};
