//! The async driver: [`TokioMultiplayerPeer`] (crate feature `tokio`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use enet_proto::{HostConfig, PeerStats};

use super::core::{FramingConfig, FramingStats, MultiplayerCore};
use super::peer::{ClientBuilder, Common, MultiplayerSocket, ServerBuilder, MAX_EVENTS_PER_POLL};
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
    fn start(
        socket: S,
        config: HostConfig,
        mut core: MultiplayerCore,
        common: &Common,
        server: Option<SocketAddr>,
    ) -> Result<TokioMultiplayerPeer<S>, MultiplayerError> {
        let mut host = TokioEnetHost::with_socket(socket, config)?;
        core.set_refuse_new_connections(host.host_mut(), common.refuse_new_connections);
        if let Some(server) = server {
            host.host_mut().set_refuse_new_connections(true);
            let peer = core.connect(host.host_mut(), Instant::now(), server)?;
            if let Some((limit, minimum, maximum)) = common.timeouts {
                host.host_mut()
                    .set_peer_timeout(peer, limit, minimum, maximum)?;
            }
            host.flush()?;
        }
        Ok(TokioMultiplayerPeer {
            host,
            core,
            compression: common.compression,
        })
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

    /// Hands one ENet event to the framing core, with the socket's failure cause.
    fn feed(&mut self, event: enet_proto::Event) {
        if let enet_proto::Event::Disconnect { peer, .. } = &event {
            if let Some(failure) = self.host.take_failure(*peer) {
                self.core.set_failure_cause(*peer, failure.cause.into());
            }
        }
        self.core.handle_event(self.host.host_mut(), event);
        if self.core.has_released() {
            // A refused connection was reset: its reset goes out, then the session ends.
            let _ = self.host.flush();
            self.release();
        }
    }

    /// Releases the socket state (DTLS sessions) of the peers the core dropped.
    fn release(&mut self) {
        while let Some((peer, address)) = self.core.poll_released() {
            self.host.release_peer_address(peer, address);
        }
    }

    /// Godot's `put_packet` (see [`MultiplayerPeer::put_packet`](super::MultiplayerPeer::put_packet)).
    pub fn put_packet(&mut self, data: &[u8]) -> Result<(), MultiplayerError> {
        self.core.put_packet(self.host.host_mut(), data)?;
        self.host.flush()?;
        Ok(())
    }

    /// Sends `data` to `target` (see [`MultiplayerPeer::send`](super::MultiplayerPeer::send)).
    pub fn send(
        &mut self,
        target: Target,
        mode: TransferMode,
        channel: Option<u8>,
        data: &[u8],
    ) -> Result<(), MultiplayerError> {
        self.core
            .send(self.host.host_mut(), target, mode, channel, data)?;
        self.host.flush()?;
        Ok(())
    }

    /// Sets the target of [`put_packet`](Self::put_packet).
    pub fn set_target_peer(&mut self, target: Target) {
        let mut config = self.core.config().clone();
        config.target = target;
        let _ = self.core.set_config(config);
    }

    /// Sets the transfer mode of [`put_packet`](Self::put_packet).
    pub fn set_transfer_mode(&mut self, mode: TransferMode) {
        let mut config = self.core.config().clone();
        config.transfer_mode = mode;
        let _ = self.core.set_config(config);
    }

    /// Sets the channel of [`put_packet`](Self::put_packet) (`None`: the mode's).
    pub fn set_transfer_channel(&mut self, channel: Option<u8>) -> Result<(), MultiplayerError> {
        let mut config = self.core.config().clone();
        config.transfer_channel = channel;
        self.core.set_config(config)
    }

    /// Sends [`TransferMode::Unreliable`] sequenced.
    pub fn set_always_ordered(&mut self, on: bool) {
        let mut config = self.core.config().clone();
        config.always_ordered = on;
        let _ = self.core.set_config(config);
    }

    /// Refuses (or accepts again) new connections at the ENet level (with `use_dtls`, new
    /// DTLS sessions too, before any handshake work; see
    /// [`MultiplayerPeer::set_refuse_new_connections`](super::MultiplayerPeer::set_refuse_new_connections)).
    pub fn set_refuse_new_connections(&mut self, refuse: bool) {
        self.core
            .set_refuse_new_connections(self.host.host_mut(), refuse);
    }

    /// Whether new connections are refused.
    pub fn is_refusing_new_connections(&self) -> bool {
        self.core.is_refusing_new_connections()
    }

    /// Waits until [`poll`](Self::poll) has something to do (a datagram or a due timer), for
    /// at most `timeout` (`None`: no limit). Returns whether something is ready.
    pub async fn wait(&mut self, timeout: Option<Duration>) -> Result<bool, MultiplayerError> {
        if self.core.pending_events() > 0 {
            return Ok(true);
        }
        Ok(self.host.wait(timeout).await?)
    }

    /// The framing settings.
    pub fn config(&self) -> &FramingConfig {
        self.core.config()
    }

    /// The compression mode.
    pub fn compression(&self) -> CompressionMode {
        self.compression
    }

    /// This peer's id (1 on the server).
    pub fn unique_id(&self) -> u32 {
        self.core.unique_id()
    }

    /// Is this the server?
    pub fn is_server(&self) -> bool {
        self.core.is_server()
    }

    /// The connection status.
    pub fn connection_status(&self) -> ConnectionStatus {
        self.core.connection_status()
    }

    /// The ids of the known peers, in order.
    pub fn peer_ids(&self) -> Vec<u32> {
        self.core.peer_ids().collect()
    }

    /// The address of peer `id`.
    pub fn peer_address(&self, id: u32) -> Result<SocketAddr, MultiplayerError> {
        self.core.peer_address(self.host.host(), id)
    }

    /// ENet's statistics of peer `id`.
    pub fn peer_stats(&self, id: u32) -> Result<PeerStats, MultiplayerError> {
        self.core.peer_stats(self.host.host(), id)
    }

    /// Godot's `set_peer_timeout`.
    pub fn set_peer_timeout(
        &mut self,
        id: u32,
        limit: u32,
        minimum: Duration,
        maximum: Duration,
    ) -> Result<(), MultiplayerError> {
        self.core
            .set_peer_timeout(self.host.host_mut(), id, limit, minimum, maximum)
    }

    /// Server: disconnects client `id`, at once or after its queued packets.
    pub fn disconnect_peer(&mut self, id: u32, now: bool) -> Result<(), MultiplayerError> {
        self.core
            .disconnect_peer(self.host.host_mut(), Instant::now(), id, now)?;
        self.host.flush()?;
        self.release();
        Ok(())
    }

    /// Closes every connection; dropping the peer does the same.
    pub fn close(&mut self) -> Result<(), MultiplayerError> {
        self.core.close(self.host.host_mut(), Instant::now());
        self.host.flush()?;
        self.release();
        Ok(())
    }

    /// The local address of the socket.
    pub fn local_addr(&self) -> Result<SocketAddr, MultiplayerError> {
        Ok(self.host.local_addr()?)
    }

    /// What the framing layer dropped or relayed.
    pub fn framing_stats(&self) -> FramingStats {
        self.core.stats()
    }

    /// The framing state machine.
    pub fn core(&self) -> &MultiplayerCore {
        &self.core
    }

    /// The ENet host.
    pub fn enet(&self) -> &TokioEnetHost<S> {
        &self.host
    }
}

impl<S: EnetSocket> Drop for TokioMultiplayerPeer<S> {
    fn drop(&mut self) {
        if self.core.connection_status() != ConnectionStatus::Disconnected {
            let _ = self.close();
        }
    }
}
