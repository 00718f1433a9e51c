//! Godot 3.2's `MultiplayerAPI` (RPCs, remote sets, raw packets) over the multiplayer peer:
//! [`RpcPeer`] (polled) and, with the `tokio` feature, `TokioRpcPeer`.
//!
//! The protocol itself is the sans-IO [`godot_proto::MultiplayerApi`]; these drivers only
//! connect it to a [`MultiplayerPeer`]: every packet and event of the peer goes into the API,
//! and every packet the API produces goes out through the peer with its target and transfer
//! mode. Godot does the same when a `SceneTree` has a `network_peer`. It works the same over
//! plaintext ENet and ENet over DTLS (the peer's `use_dtls`).
//!
//! | Godot (`SceneTree` / `Node` / `MultiplayerAPI`) | here |
//! |---|---|
//! | `network_peer = peer` | [`RpcPeer::new`]`(peer, api)` |
//! | `remote func`, `master func`, ... / `rpc_config` | [`MultiplayerApi::register`] (or `register_event`) with an [`RpcMode`](godot_proto::RpcMode) |
//! | `remote var` / `rset_config` | [`MultiplayerApi::register_property`] |
//! | `set_network_master` | [`MultiplayerApi::set_network_master`] |
//! | `rpc`, `rpc_id`, `rpc_unreliable(_id)`, `rset(_id)`, `rset_unreliable(_id)` | the same names on [`RpcPeer`] (or on the handler's [`RpcContext`](godot_proto::RpcContext)) |
//! | `get_rpc_sender_id()` | [`RpcContext::sender`](godot_proto::RpcContext::sender), `from` in events |
//! | `send_bytes` / `network_peer_packet` | [`RpcPeer::send_bytes`] / [`ApiEvent::PeerPacket`] |
//! | signals `network_peer_connected`, `connected_to_server`, ... | [`ApiEvent`]s from [`RpcPeer::next_event`] |
//!
//! # Example: a chat server and a client
//!
//! ```
//! use std::time::{Duration, Instant};
//! use enet_dtls::multiplayer::MultiplayerPeer;
//! use enet_dtls::rpc::RpcPeer;
//! use enet_dtls::godot_proto::{ApiEvent, MultiplayerApi, RpcMode};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The server: Chat.say(text) is callable by any client and answers with Chat.show.
//! let mut api = MultiplayerApi::new();
//! api.register("Chat", "say", RpcMode::Remote, |ctx, (text,): (String,)| {
//!     let line = format!("{} says {text}", ctx.sender());
//!     ctx.rpc("Chat", "show", (line,)).unwrap();
//! });
//! let peer = MultiplayerPeer::server(0).bind_address("127.0.0.1".parse()?).create()?;
//! let port = peer.local_addr()?.port();
//! let mut server = RpcPeer::new(peer, api);
//!
//! // The client: Chat.show arrives as an event (puppet: only the server may call it).
//! let mut api = MultiplayerApi::new();
//! api.register_event("Chat", "show", RpcMode::Puppet);
//! let mut client = RpcPeer::new(MultiplayerPeer::client("127.0.0.1", port).create()?, api);
//!
//! let give_up = Instant::now() + Duration::from_secs(10);
//! let shown = 'outer: loop {
//!     assert!(Instant::now() < give_up, "no answer");
//!     server.service(Duration::from_millis(1))?;
//!     while let Some(event) = client.service(Duration::from_millis(1))? {
//!         match event {
//!             ApiEvent::ConnectedToServer => client.rpc_id(1, "Chat", "say", ("hi",))?,
//!             ApiEvent::Call { args, .. } => break 'outer args,
//!             _ => {}
//!         }
//!     }
//! };
//! assert_eq!(shown[0].as_str(), Some(format!("{} says hi", client.unique_id()).as_str()));
//! # Ok(())
//! # }
//! ```

use std::time::{Duration, Instant};

use godot_proto::{ApiEvent, MultiplayerApi, Outgoing, RpcError};

use crate::enet::EnetSocket;
use crate::multiplayer::{
    ConnectionFailure, MultiplayerError, MultiplayerEvent, MultiplayerPeer, MultiplayerSocket,
    Target, TransferMode,
};

/// An error of an [`RpcPeer`] call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcPeerError {
    /// The call was not made (not connected, unknown peer, a mode that refuses a local
    /// call, ...), as Godot's `rpc` would refuse it.
    #[error("rpc: {0}")]
    Rpc(RpcError),
    /// The multiplayer peer failed (a broken socket).
    #[error("multiplayer peer: {0}")]
    Peer(MultiplayerError),
}

impl From<RpcError> for RpcPeerError {
    fn from(e: RpcError) -> Self {
        RpcPeerError::Rpc(e)
    }
}

impl From<MultiplayerError> for RpcPeerError {
    fn from(e: MultiplayerError) -> Self {
        RpcPeerError::Peer(e)
    }
}

/// Counters of the driver (what the API counts is in [`MultiplayerApi::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RpcPeerStats {
    /// API packets handed to the multiplayer peer.
    pub packets_sent: u64,
    /// API packets the peer would not send (the target left meanwhile, a packet too large
    /// for ENet, ...): dropped, as Godot drops a failed `put_packet`.
    pub send_failures: u64,
    /// Packets the peer received and gave to the API.
    pub packets_received: u64,
}

/// A Godot peer id as the API's `i32` (Godot's ids are 31-bit).
fn api_id(id: u32) -> i32 {
    i32::try_from(id).unwrap_or(i32::MAX)
}

fn peer_mode(mode: godot_proto::TransferMode) -> TransferMode {
    match mode {
        godot_proto::TransferMode::Unreliable => TransferMode::Unreliable,
        godot_proto::TransferMode::UnreliableOrdered => TransferMode::UnreliableOrdered,
        godot_proto::TransferMode::Reliable => TransferMode::Reliable,
    }
}

/// What both drivers share: the API, the last connection failure and the counters.
#[derive(Debug)]
pub(crate) struct Glue<St> {
    pub(crate) api: MultiplayerApi<St>,
    pub(crate) failure: Option<ConnectionFailure>,
    pub(crate) stats: RpcPeerStats,
}

impl<St> Glue<St> {
    pub(crate) fn new(mut api: MultiplayerApi<St>, is_server: bool, unique_id: u32) -> Self {
        if is_server {
            api.start_server();
        } else {
            api.start_client(api_id(unique_id));
        }
        Glue {
            api,
            failure: None,
            stats: RpcPeerStats::default(),
        }
    }

    /// Hands one event of the multiplayer peer to the API.
    pub(crate) fn feed(&mut self, event: MultiplayerEvent) {
        match event {
            MultiplayerEvent::PeerConnected(id) => self.api.on_peer_connected(api_id(id)),
            MultiplayerEvent::PeerDisconnected(id) => self.api.on_peer_disconnected(api_id(id)),
            MultiplayerEvent::ConnectionSucceeded => self.api.on_connected_to_server(),
            MultiplayerEvent::ConnectionFailed(cause) => {
                self.failure = Some(cause);
                self.api.on_connection_failed();
            }
            MultiplayerEvent::ServerDisconnected => self.api.on_server_disconnected(),
            MultiplayerEvent::Packet(p) => {
                self.stats.packets_received += 1;
                self.api.handle_packet(api_id(p.from), &p.data);
            }
            #[allow(unreachable_patterns)]
            other => tracing::debug!(?other, "multiplayer event without an API meaning"),
        }
    }

    /// Sends every packet the API produced with `send`; a broken socket stops and is returned,
    /// other send failures are counted and dropped.
    pub(crate) fn flush(
        &mut self,
        mut send: impl FnMut(Target, TransferMode, &[u8]) -> Result<(), MultiplayerError>,
    ) -> Result<(), MultiplayerError> {
        while let Some(Outgoing { target, mode, data }) = self.api.poll_outgoing() {
            match send(Target::from_wire(target), peer_mode(mode), &data) {
                Ok(()) => self.stats.packets_sent += 1,
                Err(MultiplayerError::Io(e)) => return Err(MultiplayerError::Io(e)),
                Err(e) => {
                    self.stats.send_failures += 1;
                    tracing::debug!(target, error = %e, "API packet not sent");
                }
            }
        }
        Ok(())
    }
}

/// What both drivers offer alike: the API's accessors and Godot's call methods, which send
/// at once (each driver has `glue` and a sync `flush`).
macro_rules! rpc_methods {
    () => {
        /// The API (registrations, properties, masters, state).
        pub fn api(&self) -> &MultiplayerApi<St> {
            &self.glue.api
        }

        /// The API, mutably. Packets of calls made through it leave at the next `flush`, or
        /// when the driver next services the peer.
        pub fn api_mut(&mut self) -> &mut MultiplayerApi<St> {
            &mut self.glue.api
        }

        /// This peer's id (1 on the server).
        pub fn unique_id(&self) -> i32 {
            self.glue.api.unique_id()
        }

        /// Why the client could not connect, after [`ApiEvent::ConnectionFailed`].
        pub fn connection_failure(&self) -> Option<&ConnectionFailure> {
            self.glue.failure.as_ref()
        }

        /// The driver's counters.
        pub fn stats(&self) -> RpcPeerStats {
            self.glue.stats
        }

        /// Makes one call on the API and sends its packets.
        fn call(
            &mut self,
            call: impl FnOnce(&mut MultiplayerApi<St>) -> Result<(), RpcError>,
        ) -> Result<(), RpcPeerError> {
            call(&mut self.glue.api)?;
            self.flush()?;
            Ok(())
        }

        godot_proto::call_methods!(forward call, RpcPeerError, see);
    };
}

// Declared after the macro, which it uses.
#[cfg(feature = "tokio")]
mod tokio;
#[cfg(feature = "tokio")]
pub use self::tokio::TokioRpcPeer;

/// Godot 3.2's `MultiplayerAPI` over a [`MultiplayerPeer`], polled (see the
/// [module docs](self)).
///
/// `St` is the application state the API hands to its handlers. Calls made on the API
/// (through [`api_mut`](Self::api_mut) or inside handlers) are sent at the next
/// [`poll`](Self::poll) / [`flush`](Self::flush); the `rpc*`, `rset*` and `send_bytes`
/// methods here send at once, as Godot's do.
#[derive(Debug)]
pub struct RpcPeer<St = (), S: EnetSocket = MultiplayerSocket> {
    peer: MultiplayerPeer<S>,
    glue: Glue<St>,
}

impl<St, S: EnetSocket> RpcPeer<St, S> {
    /// Drives `api` over `peer` (a server or a client, connecting or connected). The API is
    /// started as a server (id 1) or as a client with the peer's unique id.
    pub fn new(peer: MultiplayerPeer<S>, api: MultiplayerApi<St>) -> Self {
        let glue = Glue::new(api, peer.is_server(), peer.unique_id());
        RpcPeer { peer, glue }
    }

    /// The multiplayer peer.
    pub fn peer(&self) -> &MultiplayerPeer<S> {
        &self.peer
    }

    /// The multiplayer peer, mutably (transfer channel, timeouts, `disconnect_peer`, ...).
    pub fn peer_mut(&mut self) -> &mut MultiplayerPeer<S> {
        &mut self.peer
    }

    /// Sends what the API has queued.
    ///
    /// # Errors
    /// A broken socket. Packets the peer refuses are counted in
    /// [`RpcPeerStats::send_failures`] and dropped.
    pub fn flush(&mut self) -> Result<(), MultiplayerError> {
        let peer = &mut self.peer;
        self.glue
            .flush(|target, mode, data| peer.send(target, mode, None, data))
    }

    /// Services the peer without blocking (Godot's `poll`): sends what is queued, then hands
    /// every received packet and peer event to the API (handlers run here) and sends their
    /// answers. Take the API's events with [`next_event`](Self::next_event).
    ///
    /// The answers to the packets of one poll leave together: the peer's flush after each
    /// packet is deferred while the batch is handled, then one flush sends them, packed into
    /// one datagram per client where they fit (ENet's commands; each API packet is unchanged).
    pub fn poll(&mut self) -> Result<(), MultiplayerError> {
        self.flush()?;
        self.peer.poll()?;
        if self.peer.core().pending_events() == 0 {
            return Ok(());
        }
        self.peer.enet_mut().defer_flushes(true);
        let fed = self.feed_queued();
        self.peer.enet_mut().defer_flushes(false);
        fed?;
        // Sends the deferred packets; what arrived meanwhile waits for the next poll (`wait`
        // returns at once while the peer holds events).
        self.peer.poll()
    }

    /// Defers the peer's flushes while `on`, for an application that answers the events of
    /// one [`poll`](Self::poll) itself (with [`register_event`](MultiplayerApi::register_event)
    /// methods): the calls it makes meanwhile stay queued, and turning it off sends them
    /// together, packed into one datagram per client where they fit, as `poll` does for the
    /// answers of handlers. Each API packet is unchanged and ENet keeps their order.
    ///
    /// # Errors
    /// A broken socket (when turning it off sends the queued packets).
    pub fn defer_flushes(&mut self, on: bool) -> Result<(), MultiplayerError> {
        let host = self.peer.enet_mut();
        host.defer_flushes(on);
        if !on {
            host.flush()?;
        }
        Ok(())
    }

    /// Hands every queued peer event to the API and queues the API's packets.
    fn feed_queued(&mut self) -> Result<(), MultiplayerError> {
        while let Some(event) = self.peer.next_event() {
            self.glue.feed(event);
            self.flush()?;
        }
        Ok(())
    }

    /// The next API event, if any (after [`poll`](Self::poll)).
    pub fn next_event(&mut self) -> Option<ApiEvent> {
        self.glue.api.poll_event()
    }

    /// Waits until [`poll`](Self::poll) has something to do (a datagram or a due timer) or an
    /// API event is queued, for at most `timeout` (`None`: no limit). Returns whether something
    /// is ready.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<bool, MultiplayerError> {
        if self.glue.api.has_events() {
            return Ok(true);
        }
        self.peer.wait(timeout)
    }

    /// Waits up to `timeout` for an API event, servicing the peer meanwhile (`Ok(None)`: none
    /// came).
    pub fn service(&mut self, timeout: Duration) -> Result<Option<ApiEvent>, MultiplayerError> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(e) = self.glue.api.poll_event() {
                return Ok(Some(e));
            }
            self.poll()?;
            if let Some(e) = self.glue.api.poll_event() {
                return Ok(Some(e));
            }
            let now = Instant::now();
            let left = match deadline {
                Some(d) if now >= d => return Ok(None),
                Some(d) => Some(d - now),
                None => None,
            };
            self.peer.wait(left)?;
        }
    }

    rpc_methods!();

    /// Closes the connection (Godot's `close_connection`).
    pub fn close(&mut self) -> Result<(), MultiplayerError> {
        self.peer.close()
    }

    /// The peer and the API, apart.
    pub fn into_parts(self) -> (MultiplayerPeer<S>, MultiplayerApi<St>) {
        (self.peer, self.glue.api)
    }
}

#[cfg(test)]
mod tests;
