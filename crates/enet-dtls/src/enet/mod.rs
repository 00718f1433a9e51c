//! ENet 1.3 over real sockets: the socket layer ([`EnetSocket`], [`UdpEnetSocket`], and the
//! in-memory [`testing::MemorySocket`]) and the drivers that run an [`enet_proto::Host`] on any
//! of them: the blocking [`EnetHost`] (shaped like C ENet's `enet_host_service`) and, with the
//! `tokio` feature, `TokioEnetHost`. Both drivers run the same service round over the same
//! trait (batches in and out, the socket's own timers), so a socket written once (DTLS next)
//! works with either.
//!
//! The protocol itself lives in the sans-IO crate [`enet_proto`]; everything here only moves
//! datagrams and reads the clock:
//!
//! ```text
//!   your code ──connect/send/disconnect──▶ EnetHost ──▶ enet_proto::Host (state machine)
//!   your code ◀──── service() → Event ─────  │   ▲ handle_datagram / handle_timeout
//!                                            ▼   │ poll_transmit / poll_event / poll_timeout
//!                                     EnetSocket (UDP, in-memory; DTLS next)
//! ```
//!
//! # Example: an echo server
//!
//! ```no_run
//! use std::time::Duration;
//! use enet_dtls::enet::EnetHost;
//! use enet_dtls::enet_proto::{Event, HostConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut host = EnetHost::bind("127.0.0.1:7777", HostConfig::default())?;
//! loop {
//!     match host.service(Duration::from_millis(100))? {
//!         Some(Event::Receive { peer, channel, packet }) => host.send(peer, channel, packet)?,
//!         Some(other) => println!("{other:?}"),
//!         None => {}
//!     }
//! }
//! # }
//! ```

mod driver;
mod dtls_socket;
mod forward;
mod host;
mod socket;
pub mod testing;
#[cfg(feature = "tokio")]
mod tokio;

#[cfg(feature = "tokio")]
pub use self::tokio::TokioEnetHost;
pub use dtls_socket::{
    enet_mtu_for_dtls_mtu, DtlsEnetSocket, DtlsSocketStats, DTLS_RECORD_HEADER, HANDSHAKE_QUEUE,
};
pub use host::{BindError, BusyPoll, EnetHost};
pub use socket::{
    ConnectionFailure, EnetSocket, FailureCause, SocketStats, UdpEnetSocket, MAX_UDP_PAYLOAD,
    SOCKET_BUFFER_SIZE,
};
