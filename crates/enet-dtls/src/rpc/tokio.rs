//! The async driver: [`TokioRpcPeer`] (crate feature `tokio`).

use std::time::Duration;

use godot_proto::{ApiEvent, MultiplayerApi, RpcError};

use super::{Glue, RpcPeerError, RpcPeerStats};
use crate::enet::EnetSocket;
use crate::multiplayer::{
    ConnectionFailure, MultiplayerError, MultiplayerSocket, TokioMultiplayerPeer,
};

/// [`RpcPeer`](super::RpcPeer) on tokio: Godot 3.2's `MultiplayerAPI` over a
/// [`TokioMultiplayerPeer`], with an async [`next_event`](Self::next_event).
///
/// Handlers run inside [`next_event`](Self::next_event) / [`service`](Self::service); the
/// `rpc*`, `rset*` and `send_bytes` methods send at once.
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
            self.glue.feed(event);
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
                Some(event) => self.glue.feed(event),
                None => {
                    self.flush()?;
                    return Ok(self.glue.api.poll_event());
                }
            }
        }
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
