//! A deterministic network simulator for testing sans-IO protocol cores.
//!
//! * [`Network`] carries datagrams between socket addresses over per-direction links with
//!   latency, jitter, loss, duplication, reordering, a bandwidth cap with a FIFO queue, and an
//!   MTU ([`LinkConfig`]). It owns a **virtual clock** (an [`Instant`](std::time::Instant) base
//!   plus a virtual offset that only moves when told to) and a **seeded RNG**
//!   (`ChaCha8Rng`, reproducible on every platform), and counts what happened ([`NetStats`]).
//! * [`Sim`] drives a set of [`Endpoint`]s over a `Network`: each [`Sim::step`] jumps virtual
//!   time to the earliest delivery or endpoint timer, delivers, fires timers and drains
//!   outgoing datagrams. [`Sim::run_until`] is bounded, so a livelock ends the run instead of
//!   hanging the test.
//!
//! The same seed and the same calls give the same run, datagram for datagram and instant for
//! instant. Nothing here reads the real clock, except [`Network::starting_now`] taking its base
//! once.
//!
//! # Example
//!
//! A sender that emits one numbered datagram every 10 ms, and a sink that records when each
//! arrives, over a lossy, jittery link:
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::{Duration, Instant};
//! use enet_sim::{Endpoint, LinkConfig, Network, Sim};
//!
//! enum Node {
//!     Sender { addr: SocketAddr, to: SocketAddr, next: Instant, sent: u32, pending: bool },
//!     Sink { addr: SocketAddr, got: Vec<(Duration, u32)>, start: Instant },
//! }
//!
//! impl Endpoint for Node {
//!     fn addr(&self) -> SocketAddr {
//!         match self { Node::Sender { addr, .. } | Node::Sink { addr, .. } => *addr }
//!     }
//!     fn handle_datagram(&mut self, now: Instant, _from: SocketAddr, data: &[u8]) {
//!         if let Node::Sink { got, start, .. } = self {
//!             got.push((now - *start, u32::from_be_bytes(data.try_into().unwrap())));
//!         }
//!     }
//!     fn handle_timeout(&mut self, now: Instant) {
//!         if let Node::Sender { next, pending, .. } = self {
//!             *pending = true;
//!             *next = now + Duration::from_millis(10);
//!         }
//!     }
//!     fn poll_transmit(&mut self, _now: Instant) -> Option<(SocketAddr, Vec<u8>)> {
//!         match self {
//!             Node::Sender { to, sent, pending, .. } if *pending => {
//!                 *pending = false;
//!                 *sent += 1;
//!                 Some((*to, sent.to_be_bytes().to_vec()))
//!             }
//!             _ => None,
//!         }
//!     }
//!     fn poll_timeout(&self) -> Option<Instant> {
//!         match self {
//!             Node::Sender { next, sent, .. } if *sent < 100 => Some(*next),
//!             _ => None,
//!         }
//!     }
//! }
//!
//! let start = Instant::now();
//! let (a, b): (SocketAddr, SocketAddr) = ("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
//! let mut net = Network::new(42, start);
//! net.set_link(a, b, LinkConfig {
//!     latency: Duration::from_millis(30),
//!     jitter: Duration::from_millis(5),
//!     loss: 0.1,
//!     ..LinkConfig::default()
//! });
//! let mut sim = Sim::new(net);
//! sim.nodes.push(Node::Sender { addr: a, to: b, next: start, sent: 0, pending: false });
//! sim.nodes.push(Node::Sink { addr: b, got: Vec::new(), start });
//! sim.run_for(Duration::from_secs(2));
//!
//! let stats = sim.net.stats();
//! assert_eq!(stats.sent, 100);
//! assert_eq!(stats.delivered + stats.lost, 100);
//! let Node::Sink { got, .. } = &sim.nodes[1] else { unreachable!() };
//! assert_eq!(got.len() as u64, stats.delivered);
//! // Every arrival is 30..=35 ms after its datagram was sent (at (n - 1) * 10 ms).
//! for &(at, n) in got {
//!     let sent = Duration::from_millis(10) * (n - 1);
//!     assert!(at >= sent + Duration::from_millis(30) && at <= sent + Duration::from_millis(35));
//! }
//! ```
#![forbid(unsafe_code)]

mod network;
mod sim;

pub use network::{Datagram, LinkConfig, NetStats, Network};
pub use sim::{Endpoint, RunOutcome, Sim};
