//! # enet-dtls
//!
//! Godot's networking stack in Rust, wire-compatible with the real thing:
//! UDP peers ([`udp`]), DTLS 1.2 over OpenSSL ([`dtls`]) and ENet 1.3 ([`enet`]).
//!
//! The protocol cores are sans-IO crates (`dtls-proto`, `enet-proto`); this crate owns the
//! sockets and the clock and drives them.

#![forbid(unsafe_code)]

pub mod dtls;
pub mod enet;
mod net;
pub mod udp;

pub use dtls_proto;
pub use enet_proto;
