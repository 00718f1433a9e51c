//! The async driver: [`TokioMultiplayerPeer`] (crate feature `tokio`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use enet_proto::{HostConfig, PeerStats};

use super::core::{FramingConfig, FramingStats, MultiplayerCore};
use super::peer::{
    shared_peer_methods, ClientBuilder, Common, MultiplayerSocket, ServerBuilder,
    MAX_EVENTS_PER_POLL,
};
use super::{
    CompressionMode, ConnectionStatus, MultiplayerError, MultiplayerEvent, Target, TransferMode,
};
use crate::enet::{EnetSocket, TokioEnetHost};

impl ServerBuilder {
    /// Like [`create`](Self::create), on tokio: the server runs on a
    /// [`TokioEnetHost`]. Must be called inside a tokio runtime.
    pub async fn create_tokio(self) -> Result<TokioMultiplayerPeer, MultiplayerError> {
        let (addr, config, core) = self.parts()?;
        let socket = self.socket(addr)?;
        TokioMultiplayerPeer::start(socket, config, core, &self.common, None)
    }

    /// Like [`create_with_socket`](Self::create_with_socket), on tokio.
    pub fn create_tokio_with_socket<S: EnetSocket>(
        self,
        socket: S,
    ) -> Result<TokioMultiplayerPeer<S>, MultiplayerError> {
        let (_, config, core) = self.parts()?;
        TokioMultiplayerPeer::start(socket, config, core, &self.common, None)
    }
}

impl ClientBuilder {
    /// Like [`create`](Self::create), on tokio. Must be called inside a tokio runtime.
    pub async fn create_tokio(self) -> Result<TokioMultiplayerPeer, MultiplayerError> {
        let (local, server, config, core) = self.parts()?;
        let socket = self.socket(local)?;
        TokioMultiplayerPeer::start(socket, config, core, &self.common, Some(server))
    }

    /// Like [`create_with_socket`](Self::create_with_socket), on tokio.
    pub fn create_tokio_with_socket<S: EnetSocket>(
        self,
        socket: S,
    ) -> Result<TokioMultiplayerPeer<S>, MultiplayerError> {
        let (_, server, config, core) = self.parts()?;
        TokioMultiplayerPeer::start(socket, config, core, &self.common, Some(server))
    }
}

/// [`MultiplayerPeer`](super::MultiplayerPeer) on tokio: the same protocol and methods, over
/// a [`TokioEnetHost`], with an async [`next_event`](Self::next_event).
///
/// # Cancel safety
///
/// [`next_event`](Self::next_event) and [`service`](Self::service) are cancel safe: an event
/// is taken from the queue only when it is returned.
///
/// # Example
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use enet_dtls::multiplayer::{MultiplayerEvent, MultiplayerPeer, Target, TransferMode};
///
/// let mut server = MultiplayerPeer::server(7777).create_tokio().await?;
/// loop {
///     match server.next_event().await? {
///         MultiplayerEvent::Packet(p) => {
///             // Echo to the sender, in the mode it came in.
///             server.send(Target::Peer(p.from), p.mode, None, &p.data)?;
///         }
///         other => println!("{other:?}"),
///     }
/// }
/// # }
/// ```
#[doc(alias = "NetworkedMultiplayerENet")]
#[derive(Debug)]
pub struct TokioMultiplayerPeer<S: EnetSocket = MultiplayerSocket> {
    host: TokioEnetHost<S>,
    core: MultiplayerCore,
    compression: CompressionMode,
}

impl<S: EnetSocket> TokioMultiplayerPeer<S> {
    /// The ENet host, mutably, for drivers in this crate (the RPC driver defers its flushes).
    pub(crate) fn enet_mut(&mut self) -> &mut TokioEnetHost<S> {
        &mut self.host
    }

    /// The next event that is ready without any I/O: queued here, or made from an ENet event
    /// the host already holds (from datagrams its last service round received). Replies queued
    /// while handling those events (ADD_PEER, relayed copies) are not flushed: the caller does.
    pub(crate) fn next_ready_event(&mut self) -> Option<MultiplayerEvent> {
        loop {
            if let Some(event) = self.core.poll_event() {
                return Some(event);
            }
            let event = self.host.check_events()?;
            self.feed(event);
        }
    }

    /// Services the connection without waiting for traffic (Godot's `poll()`); events are
    /// then taken with [`try_next_event`](Self::try_next_event).
    pub async fn poll(&mut self) -> Result<(), MultiplayerError> {
        for _ in 0..MAX_EVENTS_PER_POLL {
            match self.host.service(Duration::ZERO).await? {
                Some(event) => self.feed(event),
                None => break,
            }
        }
        self.host.flush()?;
        Ok(())
    }

    /// A queued event, without waiting or servicing.
    pub fn try_next_event(&mut self) -> Option<MultiplayerEvent> {
        self.core.poll_event()
    }

    /// The next event, servicing the connection meanwhile (no time limit).
    pub async fn next_event(&mut self) -> Result<MultiplayerEvent, MultiplayerError> {
        loop {
            if let Some(event) = self.service(Duration::from_secs(3600)).await? {
                return Ok(event);
            }
        }
    }

    /// The next event within `timeout` (`Ok(None)`: none came).
    pub async fn service(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<MultiplayerEvent>, MultiplayerError> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(event) = self.core.poll_event() {
                return Ok(Some(event));
            }
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            match self.host.service(left).await? {
                Some(event) => {
                    self.feed(event);
                    // Replies queued while handling it (ADD_PEER, relayed copies).
                    self.host.flush()?;
                }
                None => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Ok(self.core.poll_event());
                    }
                }
            }
        }
    }

    /// Waits until [`poll`](Self::poll) has something to do (a datagram or a due timer), for
    /// at most `timeout` (`None`: no limit). Returns whether something is ready.
    pub async fn wait(&mut self, timeout: Option<Duration>) -> Result<bool, MultiplayerError> {
        if self.core.pending_events() > 0 {
            return Ok(true);
        }
        Ok(self.host.wait(timeout).await?)
    }
}

shared_peer_methods!(TokioMultiplayerPeer, TokioEnetHost);
