//! Sans-IO ENet 1.3 protocol core, byte-compatible with C ENet 1.3.17.
//!
//! This crate contains no sockets, no threads and no clock. A [`Host`] is a pure
//! state machine: it is fed datagrams and timer ticks together with the current
//! time, and hands back datagrams to send, events and the next deadline.
//!
//! * [`wire`]: the datagram header and the 12 protocol commands (parse/emit),
//! * [`time`]: ENet's wrapping 32-bit millisecond clock,
//! * [`Host`] / [`Peer`]: connection handling, reliability, fragmentation,
//!   flow control, throttling, timeouts (C ENet's `protocol.c`/`peer.c`/`host.c`),
//! * [`crc32`] and [`range_coder`]: the optional checksum and compressor,
//!   interoperable with C ENet's `enet_crc32` and `enet_range_coder_*`.
//!
//! Defaults match C ENet (MTU 1392, window 64 KiB, throttle 5000/2/2, ping
//! every 500 ms, timeouts 32 / 5 s / 30 s), so a `Host` talks to C ENet,
//! python3-enet and Godot unchanged.
//!
//! # The drain contract
//!
//! After every input (`handle_datagram`, `handle_timeout`, `connect`, `send`, ...),
//! drain [`Host::poll_transmit`] and [`Host::poll_event`] until both return `None`,
//! then sleep until [`Host::poll_timeout`] or the next datagram, whichever is first.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use enet_proto::{Event, Host, HostConfig, Packet};
//!
//! let now = Instant::now();
//! let server_addr = "127.0.0.1:7777".parse().unwrap();
//! let client_addr = "127.0.0.1:40000".parse().unwrap();
//! let mut server = Host::new(HostConfig::default(), now).unwrap();
//! let mut client = Host::new(HostConfig { seed: 7, ..HostConfig::default() }, now).unwrap();
//! let peer = client.connect(now, server_addr, 2, 42).unwrap();
//!
//! // An in-memory "network": move every datagram to the other host.
//! let mut got = None;
//! let mut t = now;
//! for _ in 0..20 {
//!     while let Some(tx) = client.poll_transmit(t) {
//!         server.handle_datagram(t, client_addr, &tx.data);
//!     }
//!     while let Some(tx) = server.poll_transmit(t) {
//!         client.handle_datagram(t, server_addr, &tx.data);
//!     }
//!     while let Some(ev) = client.poll_event() {
//!         if let Event::Connect { .. } = ev {
//!             client.send(peer, 0, Packet::reliable(b"hello".to_vec())).unwrap();
//!         }
//!     }
//!     while let Some(ev) = server.poll_event() {
//!         if let Event::Receive { packet, .. } = ev {
//!             got = Some(packet.data);
//!         }
//!     }
//!     t += Duration::from_millis(10);
//!     client.handle_timeout(t);
//!     server.handle_timeout(t);
//! }
//! assert_eq!(got.as_deref(), Some(&b"hello"[..]));
//! ```
#![forbid(unsafe_code)]

mod compress;
pub mod crc32;
mod error;
mod host;
mod incoming;
mod outgoing;
mod packet;
mod peer;
pub mod range_coder;
pub mod time;
pub mod wire;

pub use compress::Compressor;
pub use error::Error;
pub use host::{
    DisconnectReason, Event, Host, HostConfig, HostStats, Transmit, SERVER_DUPLICATE_PEERS,
    SPARE_BUFFERS,
};
pub use packet::{Packet, PacketFlags};
pub use peer::{Peer, PeerId, PeerState, PeerStats};
