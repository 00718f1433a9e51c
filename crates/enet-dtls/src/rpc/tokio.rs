//! The async driver: [`TokioRpcPeer`] (crate feature `tokio`).

use std::time::Duration;

use godot_proto::{ApiEvent, MultiplayerApi, RpcError};

use super::{Glue, RpcPeerError, RpcPeerStats};
use crate::enet::EnetSocket;
use crate::multiplayer::{
    ConnectionFailure, MultiplayerError, MultiplayerEvent, MultiplayerSocket, TokioMultiplayerPeer,
    MAX_EVENTS_PER_POLL,
};

/// [`RpcPeer`](super::RpcPeer) on tokio: Godot 3.2's `MultiplayerAPI` over a
/// [`TokioMultiplayerPeer`], with an async [`next_event`](Self::next_event).
///
/// Handlers run inside [`next_event`](Self::next_event) / [`service`](Self::service); the
/// `rpc*`, `rset*` and `send_bytes` methods send at once. The answers to the packets that
/// arrive together (one service round of the peer) leave together, packed into one datagram
/// per client where they fit, as with [`RpcPeer::poll`](super::RpcPeer::poll).
///
/// # Cancel safety
///
/// [`next_event`](Self::next_event) and [`service`](Self::service) are cancel safe: a peer
/// event is handed to the API as soon as it is taken, and an API event is taken from its queue
/// only when it is returned.
///
/// # Example
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use enet_dtls::godot_proto::{ApiEvent, MultiplayerApi, RpcMode};
/// use enet_dtls::multiplayer::MultiplayerPeer;
/// use enet_dtls::rpc::TokioRpcPeer;
///
/// let mut api = MultiplayerApi::new();
/// api.register_event("Chat", "say", RpcMode::Remote);
/// let peer = MultiplayerPeer::server(7777).create_tokio().await?;
/// let mut server = TokioRpcPeer::new(peer, api);
/// loop {
///     if let ApiEvent::Call { from, args, .. } = server.next_event().await? {
///         let text = args.into_iter().next().and_then(|a| a.try_to::<String>().ok());
///         server.rpc("Chat", "show", (format!("{from}: {}", text.unwrap_or_default()),))?;
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct TokioRpcPeer<St = (), S: EnetSocket = MultiplayerSocket> {
    peer: TokioMultiplayerPeer<S>,
    glue: Glue<St>,
}

impl<St, S: EnetSocket> TokioRpcPeer<St, S> {
    /// Drives `api` over `peer` (see [`RpcPeer::new`](super::RpcPeer::new)).
    pub fn new(peer: TokioMultiplayerPeer<S>, api: MultiplayerApi<St>) -> Self {
        let glue = Glue::new(api, peer.is_server(), peer.unique_id());
        TokioRpcPeer { peer, glue }
    }

    /// The multiplayer peer.
    pub fn peer(&self) -> &TokioMultiplayerPeer<S> {
        &self.peer
    }

    /// The multiplayer peer, mutably.
    pub fn peer_mut(&mut self) -> &mut TokioMultiplayerPeer<S> {
        &mut self.peer
    }

    /// Sends what the API has queued (see [`RpcPeer::flush`](super::RpcPeer::flush)).
    pub fn flush(&mut self) -> Result<(), MultiplayerError> {
        let peer = &mut self.peer;
        self.glue
            .flush(|target, mode, data| peer.send(target, mode, None, data))
    }

    /// The next API event, servicing the peer meanwhile (handlers run here).
    pub async fn next_event(&mut self) -> Result<ApiEvent, MultiplayerError> {
        loop {
            self.flush()?;
            if let Some(e) = self.glue.api.poll_event() {
                return Ok(e);
            }
            let event = self.peer.next_event().await?;
            self.feed_batch(event)?;
        }
    }

    /// The next API event within `timeout` (`Ok(None)`: none came).
    pub async fn service(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<ApiEvent>, MultiplayerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.flush()?;
            if let Some(e) = self.glue.api.poll_event() {
                return Ok(Some(e));
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.peer.service(left).await? {
                Some(event) => self.feed_batch(event)?,
                None => {
                    self.flush()?;
                    return Ok(self.glue.api.poll_event());
                }
            }
        }
    }

    /// Hands `first` and every peer event that is ready without waiting (the rest of what the
    /// peer's last service round received) to the API, with the peer's flush-per-packet
    /// deferred, then flushes once: the answers to the batch leave packed, one datagram per
    /// client where they fit (as [`RpcPeer::poll`](super::RpcPeer::poll) does). Synchronous, so
    /// a cancelled `next_event` never leaves the flushes deferred.
    fn feed_batch(&mut self, first: MultiplayerEvent) -> Result<(), MultiplayerError> {
        self.peer.enet_mut().defer_flushes(true);
        let fed = self.feed_ready(first);
        self.peer.enet_mut().defer_flushes(false);
        fed?;
        self.peer.enet_mut().flush()?;
        Ok(())
    }

    fn feed_ready(&mut self, first: MultiplayerEvent) -> Result<(), MultiplayerError> {
        self.glue.feed(first);
        self.flush()?;
        for _ in 1..MAX_EVENTS_PER_POLL {
            let Some(event) = self.peer.next_ready_event() else {
                break;
            };
            self.glue.feed(event);
            self.flush()?;
        }
        Ok(())
    }

    /// A queued API event, without waiting or servicing.
    pub fn try_next_event(&mut self) -> Option<ApiEvent> {
        self.glue.api.poll_event()
    }

    rpc_methods!();

    /// Closes the connection (Godot's `close_connection`).
    pub fn close(&mut self) -> Result<(), MultiplayerError> {
        self.peer.close()
    }

    /// The peer and the API, apart.
    pub fn into_parts(self) -> (TokioMultiplayerPeer<S>, MultiplayerApi<St>) {
        (self.peer, self.glue.api)
    }
}
