//! # enet-dtls
//!
//! Godot's networking stack in Rust, wire-compatible with the real thing:
//! UDP peers ([`udp`]), DTLS 1.2 over OpenSSL ([`dtls`]) and ENet 1.3 ([`enet`]).
//!
//! The protocol cores are sans-IO crates (`dtls-proto`, `enet-proto`); this crate owns the
//! sockets and the clock and drives them.
//!
//! Two layers of types:
//!
//! * Rust-shaped endpoint types, used by the CLI and the ENet layer:
//!   [`dtls::DtlsListener`] (DTLS sessions on one socket), [`enet::EnetHost`] and
//!   `enet::TokioEnetHost` over the [`enet::EnetSocket`] layer.
//! * The Godot compatibility layer, [`godot`]: `PacketPeerUdp`, `UdpServer`, `DtlsServer`,
//!   `PacketPeerDtls`, shaped like Godot's classes of the same names.

#![forbid(unsafe_code)]

pub mod dtls;
pub mod enet;
pub mod godot;
mod net;
pub mod udp;

pub use dtls_proto;
pub use enet_proto;
