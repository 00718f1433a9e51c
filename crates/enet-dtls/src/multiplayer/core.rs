//! The sans-IO framing state machine of Godot 3.2's `NetworkedMultiplayerENet`:
//! [`MultiplayerCore`]. It takes ENet events and API calls, works on an
//! [`enet_proto::Host`] given by the caller, and queues [`MultiplayerEvent`]s. No socket,
//! no clock: `now` comes from the caller.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use enet_proto::{
    DisconnectReason, Event, Host, Packet, PacketFlags, PeerId, PeerState, PeerStats,
};

use super::{
    ConnectionFailure, ConnectionStatus, MultiplayerError, MultiplayerEvent, ReceivedPacket,
    Target, TransferMode,
};

/// The server's peer id (always 1).
pub const SERVER_ID: u32 = 1;
/// Channel of the server's ADD_PEER/REMOVE_PEER messages (`SYSCH_CONFIG`), reliable.
pub const SYSCH_CONFIG: u8 = 0;
/// Default channel of [`TransferMode::Reliable`] (`SYSCH_RELIABLE`).
pub const SYSCH_RELIABLE: u8 = 1;
/// Default channel of both unreliable modes (`SYSCH_UNRELIABLE`).
pub const SYSCH_UNRELIABLE: u8 = 2;
/// Channels reserved by Godot; the smallest channel count (`SYSCH_MAX`).
pub const SYSCH_MAX: u8 = 3;
/// Size of the source/target header in front of every application packet.
pub const HEADER_SIZE: usize = 8;
/// System message type: a peer joined (`SYSMSG_ADD_PEER`).
pub const SYSMSG_ADD_PEER: u32 = 0;
/// System message type: a peer left (`SYSMSG_REMOVE_PEER`).
pub const SYSMSG_REMOVE_PEER: u32 = 1;
/// Most peers a client keeps in its table from the server's ADD_PEER messages (ENet's
/// largest peer count); more are ignored, so a hostile server cannot grow it without bound.
pub const MAX_REMOTE_PEERS: usize = 4095;

/// Settings of the framing layer (Godot's properties of the same names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramingConfig {
    /// ENet channels (at least [`SYSCH_MAX`]; default 3).
    pub channel_count: u8,
    /// Mode of [`MultiplayerCore::put_packet`] (default [`TransferMode::Reliable`]).
    pub transfer_mode: TransferMode,
    /// Channel of `put_packet` instead of the mode's (Godot's `transfer_channel` > 0);
    /// `None` (Godot's -1 or 0): the mode's channel.
    pub transfer_channel: Option<u8>,
    /// Send [`TransferMode::Unreliable`] sequenced instead of unsequenced.
    pub always_ordered: bool,
    /// The server forwards packets between clients and announces peers (default on).
    pub server_relay: bool,
    /// Target of `put_packet` (default [`Target::Broadcast`]).
    pub target: Target,
}

impl Default for FramingConfig {
    fn default() -> Self {
        FramingConfig {
            channel_count: SYSCH_MAX,
            transfer_mode: TransferMode::Reliable,
            transfer_channel: None,
            always_ordered: false,
            server_relay: true,
            target: Target::Broadcast,
        }
    }
}

/// Counters of what the framing layer dropped or did (for tests and monitoring).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FramingStats {
    /// Packets shorter than the 8-byte header (or a system message shorter than 8 bytes).
    pub dropped_malformed: u64,
    /// Packets from a client whose header names another source (anti-spoof check).
    pub dropped_spoofed: u64,
    /// Packets to an unknown peer, or to a peer other than the server with relay off.
    pub dropped_bad_target: u64,
    /// Packets on a channel they may not use (channel 0 to a server, or beyond the count).
    pub dropped_bad_channel: u64,
    /// Connections reset because their id was below 2, negative, or taken, or because new
    /// connections were refused.
    pub refused_connections: u64,
    /// Copies forwarded to other clients by the server relay.
    pub relayed: u64,
}

/// The framing state machine of Godot 3.2's `NetworkedMultiplayerENet`, sans-IO.
///
/// It owns no host: every call that needs one takes the [`Host`] it works on, and the
/// caller feeds it every event the host produces ([`handle_event`](Self::handle_event)).
/// Godot's rules (`modules/enet/networked_multiplayer_enet.cpp` in Godot 3.2):
///
/// * the server is id 1; a client sends its random 31-bit id as the CONNECT data, and the
///   server resets a connection whose id is below 2, negative as an `i32`, or taken;
/// * every application packet starts with `u32 source, i32 target` (little-endian);
/// * with relay on, the server sends ADD_PEER/REMOVE_PEER (8 bytes, reliable, channel 0) to
///   the clients, checks each client packet's source against the sender (anti-spoof) and
///   forwards it: target 1 to itself only, 0 to everyone, `-id` to everyone but `id`,
///   `id` to that peer; with relay off, only target 1 is accepted;
/// * [`TransferMode`]s map to ENet flags and channels (see [`TransferMode`]).
///
/// The drivers ([`MultiplayerPeer`](super::MultiplayerPeer) and, with the `tokio` feature,
/// `TokioMultiplayerPeer`) wrap it with a socket and the clock; use it directly to run the
/// protocol in a simulator or in a loop of your own.
///
/// # Example: a server and a client in memory, in virtual time
///
/// ```
/// use std::net::SocketAddr;
/// use std::time::{Duration, Instant};
/// use enet_dtls::enet_proto::{Host, HostConfig};
/// use enet_dtls::multiplayer::{
///     FramingConfig, MultiplayerCore, MultiplayerEvent, Target, TransferMode,
/// };
///
/// let mut now = Instant::now();
/// let (sa, ca): (SocketAddr, SocketAddr) = ("10.0.0.1:7777".parse().unwrap(), "10.0.0.2:5000".parse().unwrap());
/// let mut server_host = Host::new(HostConfig::server(), now).unwrap();
/// let mut client_host = Host::new(HostConfig::default(), now).unwrap();
/// let mut server = MultiplayerCore::server(FramingConfig::default()).unwrap();
/// let mut client = MultiplayerCore::client(FramingConfig::default(), 4242).unwrap();
/// client.connect(&mut client_host, now, sa).unwrap();
///
/// let mut got = None;
/// for _ in 0..50 {
///     // Move the datagrams (a real driver uses a socket), then hand the events over.
///     while let Some(t) = client_host.poll_transmit(now) { server_host.handle_datagram(now, ca, &t.data); }
///     while let Some(t) = server_host.poll_transmit(now) { client_host.handle_datagram(now, sa, &t.data); }
///     while let Some(e) = server_host.poll_event() { server.handle_event(&mut server_host, e); }
///     while let Some(e) = client_host.poll_event() { client.handle_event(&mut client_host, e); }
///     while let Some(e) = client.poll_event() {
///         if e == MultiplayerEvent::ConnectionSucceeded {
///             client.send(&mut client_host, Target::Peer(1), TransferMode::Reliable, None, b"hi").unwrap();
///         }
///     }
///     if let Some(MultiplayerEvent::Packet(p)) = server.poll_event() { got = Some(p); }
///     now += Duration::from_millis(10);
///     server_host.handle_timeout(now);
///     client_host.handle_timeout(now);
/// }
/// let p = got.expect("the packet arrived");
/// assert_eq!((p.from, &p.data[..]), (4242, &b"hi"[..]));
/// assert_eq!(server.peer_ids().collect::<Vec<_>>(), vec![4242]);
/// ```
#[derive(Debug)]
pub struct MultiplayerCore {
    server: bool,
    unique_id: u32,
    config: FramingConfig,
    refuse_new_connections: bool,
    status: ConnectionStatus,
    /// Godot's `peer_map`: id → ENet peer (`None` for clients known from ADD_PEER).
    peers: BTreeMap<u32, Option<PeerId>>,
    /// Reverse map of the ENet peers in `peers`.
    ids: HashMap<PeerId, u32>,
    /// Client: the ENet peer of the server connection.
    server_peer: Option<PeerId>,
    events: VecDeque<MultiplayerEvent>,
    stats: FramingStats,
    /// ENet peers this core reset or disconnected at once, with their address, for the
    /// driver's socket ([`poll_released`](MultiplayerCore::poll_released)).
    released: VecDeque<(PeerId, SocketAddr)>,
    /// The transport's cause of the next `Disconnect { reason: Failed }` of this peer.
    failure: Option<(PeerId, ConnectionFailure)>,
}

impl MultiplayerCore {
    /// A server (id 1). Validates the configuration.
    pub fn server(config: FramingConfig) -> Result<MultiplayerCore, MultiplayerError> {
        MultiplayerCore::new(true, SERVER_ID, config)
    }

    /// A client with `unique_id` (2..=2^31-1; see [`generate_unique_id`]). Call
    /// [`connect`](Self::connect) next.
    pub fn client(
        config: FramingConfig,
        unique_id: u32,
    ) -> Result<MultiplayerCore, MultiplayerError> {
        if !valid_client_id(unique_id) {
            return Err(MultiplayerError::InvalidArgument(format!(
                "a client id must be in 2..=2147483647 (got {unique_id})"
            )));
        }
        MultiplayerCore::new(false, unique_id, config)
    }

    fn new(
        server: bool,
        unique_id: u32,
        config: FramingConfig,
    ) -> Result<MultiplayerCore, MultiplayerError> {
        validate(&config)?;
        Ok(MultiplayerCore {
            server,
            unique_id,
            config,
            refuse_new_connections: false,
            status: if server {
                ConnectionStatus::Connected
            } else {
                ConnectionStatus::Disconnected
            },
            peers: BTreeMap::new(),
            ids: HashMap::new(),
            server_peer: None,
            events: VecDeque::new(),
            released: VecDeque::new(),
            failure: None,
            stats: FramingStats::default(),
        })
    }

    /// Client: starts connecting `host` to the server at `addr`, with the configured channel
    /// count and this peer's id as the CONNECT data.
    pub fn connect(
        &mut self,
        host: &mut Host,
        now: Instant,
        addr: SocketAddr,
    ) -> Result<PeerId, MultiplayerError> {
        if self.server {
            return Err(MultiplayerError::NotClient);
        }
        if self.server_peer.is_some() {
            return Err(MultiplayerError::InvalidArgument(
                "this client is already connecting or connected".into(),
            ));
        }
        let peer = host.connect(
            now,
            addr,
            usize::from(self.config.channel_count),
            self.unique_id,
        )?;
        self.server_peer = Some(peer);
        self.status = ConnectionStatus::Connecting;
        Ok(peer)
    }

    /// Feeds one event of `host` (every event it produces must come here, in order).
    pub fn handle_event(&mut self, host: &mut Host, event: Event) {
        if self.server && self.status == ConnectionStatus::Disconnected {
            // Closed: nobody gets in any more (the host refuses CONNECTs too).
            if let Event::Connect { peer, .. } = event {
                self.stats.refused_connections += 1;
                self.reset(host, peer);
            }
            return;
        }
        match event {
            Event::Connect { peer, data, .. } => self.on_connect(host, peer, data),
            Event::Disconnect { peer, reason, .. } => self.on_disconnect(host, peer, reason),
            Event::Receive {
                peer,
                channel,
                packet,
            } => self.on_receive(host, peer, channel, packet),
        }
    }

    fn on_connect(&mut self, host: &mut Host, peer: PeerId, data: u32) {
        if !self.server {
            if self.server_peer != Some(peer) {
                // Not our connection (a client host accepts none); forget it.
                self.reset(host, peer);
                return;
            }
            self.register(SERVER_ID, peer);
            self.status = ConnectionStatus::Connected;
            self.events
                .push_back(MultiplayerEvent::PeerConnected(SERVER_ID));
            self.events.push_back(MultiplayerEvent::ConnectionSucceeded);
            return;
        }
        if self.refuse_new_connections || !valid_client_id(data) || self.peers.contains_key(&data) {
            self.stats.refused_connections += 1;
            tracing::debug!(
                id = data,
                "refused a connection (id invalid or taken, or refusing)"
            );
            self.reset(host, peer);
            return;
        }
        let id = data;
        self.register(id, peer);
        self.events.push_back(MultiplayerEvent::PeerConnected(id));
        if !self.config.server_relay {
            return;
        }
        let others: Vec<(u32, PeerId)> = self
            .connected_peers()
            .filter(|(other, _)| *other != id)
            .collect();
        for (other, other_peer) in others {
            let _ = host.send(peer, SYSCH_CONFIG, system_message(SYSMSG_ADD_PEER, other));
            let _ = host.send(
                other_peer,
                SYSCH_CONFIG,
                system_message(SYSMSG_ADD_PEER, id),
            );
        }
    }

    fn on_disconnect(&mut self, host: &mut Host, peer: PeerId, reason: DisconnectReason) {
        let cause = match self.failure.take() {
            Some((p, cause)) if p == peer => Some(cause),
            _ => None,
        };
        let Some(id) = self.ids.get(&peer).copied() else {
            if !self.server && self.server_peer == Some(peer) {
                // Never fully connected.
                self.server_peer = None;
                self.status = ConnectionStatus::Disconnected;
                self.events
                    .push_back(MultiplayerEvent::ConnectionFailed(match (reason, cause) {
                        (_, Some(cause)) => cause,
                        (DisconnectReason::Timeout, None) => ConnectionFailure::Timeout,
                        (DisconnectReason::Local, None) => ConnectionFailure::Closed,
                        (DisconnectReason::Failed, None) => ConnectionFailure::Transport,
                        (_, None) => ConnectionFailure::Refused,
                    }));
            }
            return;
        };
        if !self.server {
            self.events.push_back(MultiplayerEvent::ServerDisconnected);
            self.clear();
            return;
        }
        self.forget(host, id);
    }

    /// Server: removes `id`, tells the other clients (relay on) and queues the event.
    fn forget(&mut self, host: &mut Host, id: u32) {
        if let Some(Some(peer)) = self.peers.remove(&id) {
            self.ids.remove(&peer);
        }
        if self.config.server_relay {
            let others: Vec<PeerId> = self.connected_peers().map(|(_, p)| p).collect();
            for other in others {
                let _ = host.send(other, SYSCH_CONFIG, system_message(SYSMSG_REMOVE_PEER, id));
            }
        }
        self.events
            .push_back(MultiplayerEvent::PeerDisconnected(id));
    }

    fn on_receive(&mut self, host: &mut Host, peer: PeerId, channel: u8, packet: Packet) {
        let Some(sender) = self.ids.get(&peer).copied() else {
            // From an ENet peer that has no id (refused, or not yet registered).
            self.stats.dropped_bad_target += 1;
            return;
        };
        if channel == SYSCH_CONFIG {
            if self.server {
                // Only the server sends system messages.
                self.stats.dropped_bad_channel += 1;
                return;
            }
            self.on_system_message(&packet.data);
            return;
        }
        if channel >= self.config.channel_count {
            self.stats.dropped_bad_channel += 1;
            return;
        }
        let Some((source, target)) = parse_header(&packet.data) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        if !self.server {
            // A client trusts the server's relay: the header names the original sender.
            self.deliver(source, channel, packet);
            return;
        }
        if source != sender {
            self.stats.dropped_spoofed += 1;
            tracing::debug!(
                sender,
                claimed = source,
                "dropped a packet with a spoofed source id"
            );
            return;
        }
        match Target::from_wire(target) {
            Target::Peer(SERVER_ID) => self.deliver(sender, channel, packet),
            _ if !self.config.server_relay => self.stats.dropped_bad_target += 1,
            Target::Broadcast => {
                self.relay(host, channel, &packet, |id| id != sender);
                self.deliver(sender, channel, packet);
            }
            Target::AllExcept(excluded) => {
                self.relay(host, channel, &packet, |id| id != sender && id != excluded);
                if excluded != SERVER_ID {
                    self.deliver(sender, channel, packet);
                }
            }
            Target::Peer(id) => match self.peers.get(&id) {
                Some(Some(to)) => {
                    let to = *to;
                    if host.send(to, channel, packet).is_ok() {
                        self.stats.relayed += 1;
                    }
                }
                _ => self.stats.dropped_bad_target += 1,
            },
        }
    }

    fn on_system_message(&mut self, data: &[u8]) {
        if data.len() < HEADER_SIZE {
            self.stats.dropped_malformed += 1;
            return;
        }
        let msg = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        let id = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
        match msg {
            SYSMSG_ADD_PEER => {
                if !valid_client_id(id) {
                    // No client can have it (the server would have refused it).
                    self.stats.dropped_malformed += 1;
                    return;
                }
                if id == self.unique_id || self.peers.contains_key(&id) {
                    return;
                }
                if self.peers.len() >= MAX_REMOTE_PEERS {
                    self.stats.dropped_malformed += 1;
                    return;
                }
                self.peers.insert(id, None);
                self.events.push_back(MultiplayerEvent::PeerConnected(id));
            }
            SYSMSG_REMOVE_PEER => {
                if id != SERVER_ID && self.peers.remove(&id).is_some() {
                    self.events
                        .push_back(MultiplayerEvent::PeerDisconnected(id));
                }
            }
            _ => self.stats.dropped_malformed += 1,
        }
    }

    /// Server relay: a copy of `packet` (same bytes, flags and channel) to every client `keep`
    /// accepts.
    fn relay(&mut self, host: &mut Host, channel: u8, packet: &Packet, keep: impl Fn(u32) -> bool) {
        let targets: Vec<PeerId> = self
            .connected_peers()
            .filter(|(id, _)| keep(*id))
            .map(|(_, p)| p)
            .collect();
        for to in targets {
            let copy = Packet::new(packet.data.clone(), packet.flags);
            if host.send(to, channel, copy).is_ok() {
                self.stats.relayed += 1;
            }
        }
    }

    fn deliver(&mut self, from: u32, channel: u8, packet: Packet) {
        let mode = mode_of(packet.flags);
        let mut data = packet.data;
        data.drain(..HEADER_SIZE);
        self.events
            .push_back(MultiplayerEvent::Packet(ReceivedPacket {
                from,
                channel,
                mode,
                data,
            }));
    }

    /// Sends `data` like Godot's `put_packet` with the configured target, transfer mode and
    /// transfer channel.
    pub fn put_packet(&mut self, host: &mut Host, data: &[u8]) -> Result<(), MultiplayerError> {
        let channel = self.config.transfer_channel;
        self.send(
            host,
            self.config.target,
            self.config.transfer_mode,
            channel,
            data,
        )
    }

    /// Sends `data` to `target` in `mode`, on `channel` (`None`: the mode's channel, 1 or
    /// 2; otherwise 1..channel_count). A client always sends to the server, which relays.
    ///
    /// # Errors
    /// Not connected, a server's single target that is not one of its clients, a reserved or
    /// out-of-range channel, or the host's refusal (packet too large, queue full).
    pub fn send(
        &mut self,
        host: &mut Host,
        target: Target,
        mode: TransferMode,
        channel: Option<u8>,
        data: &[u8],
    ) -> Result<(), MultiplayerError> {
        if self.status != ConnectionStatus::Connected {
            return Err(MultiplayerError::NotConnected);
        }
        let (flags, mut ch) = self.mode_flags(mode);
        if let Some(c) = channel {
            if c == SYSCH_CONFIG || c >= self.config.channel_count {
                return Err(MultiplayerError::InvalidChannel {
                    channel: c,
                    channel_count: self.config.channel_count,
                });
            }
            ch = c;
        }
        // Like Godot: the server refuses an unknown single target; an excluded id need not
        // exist; a client sends anything to the server, which decides (it may know a peer
        // whose ADD_PEER has not arrived yet).
        if let Target::Peer(id) = target {
            if self.server && !self.peers.contains_key(&id) {
                return Err(MultiplayerError::UnknownPeer(id));
            }
        }
        let wire_target = target.to_wire().ok_or_else(|| {
            MultiplayerError::InvalidArgument(format!("target {target:?} is out of the i32 range"))
        })?;
        let mut payload = Vec::with_capacity(HEADER_SIZE + data.len());
        payload.extend_from_slice(&self.unique_id.to_le_bytes());
        payload.extend_from_slice(&wire_target.to_le_bytes());
        payload.extend_from_slice(data);
        if !self.server {
            let server = self
                .peers
                .get(&SERVER_ID)
                .copied()
                .flatten()
                .ok_or(MultiplayerError::NotConnected)?;
            host.send(server, ch, Packet::new(payload, flags))?;
            return Ok(());
        }
        match target {
            Target::Peer(id) => {
                let to = self
                    .peers
                    .get(&id)
                    .copied()
                    .flatten()
                    .ok_or(MultiplayerError::UnknownPeer(id))?;
                host.send(to, ch, Packet::new(payload, flags))?;
            }
            Target::Broadcast | Target::AllExcept(_) => {
                let excluded = match target {
                    Target::AllExcept(id) => Some(id),
                    _ => None,
                };
                let mut targets = self
                    .connected_peers()
                    .filter(|(id, _)| Some(*id) != excluded)
                    .map(|(_, p)| p)
                    .peekable();
                let mut first_error = None;
                while let Some(to) = targets.next() {
                    // The last target takes the payload itself, the others a copy.
                    let data = if targets.peek().is_some() {
                        payload.clone()
                    } else {
                        std::mem::take(&mut payload)
                    };
                    if let Err(e) = host.send(to, ch, Packet::new(data, flags)) {
                        first_error.get_or_insert(e);
                    }
                }
                if let Some(e) = first_error {
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    /// ENet flags and default channel of `mode` (with `always_ordered`).
    pub fn mode_flags(&self, mode: TransferMode) -> (PacketFlags, u8) {
        match mode {
            TransferMode::Unreliable if self.config.always_ordered => {
                (PacketFlags::NONE, SYSCH_UNRELIABLE)
            }
            TransferMode::Unreliable => (PacketFlags::UNSEQUENCED, SYSCH_UNRELIABLE),
            TransferMode::UnreliableOrdered => (PacketFlags::NONE, SYSCH_UNRELIABLE),
            TransferMode::Reliable => (PacketFlags::RELIABLE, SYSCH_RELIABLE),
        }
    }

    /// Server: disconnects client `id`. `now == true` (Godot's `disconnect_peer(id, true)`):
    /// one DISCONNECT datagram is queued at once, the peer is forgotten, the other clients
    /// get REMOVE_PEER and [`MultiplayerEvent::PeerDisconnected`] is queued. Otherwise the
    /// DISCONNECT goes after the packets already queued to it, and the event follows when
    /// ENet reports the disconnection.
    pub fn disconnect_peer(
        &mut self,
        host: &mut Host,
        now: Instant,
        id: u32,
        immediately: bool,
    ) -> Result<(), MultiplayerError> {
        if !self.server {
            return Err(MultiplayerError::NotServer);
        }
        let peer = self.enet_peer(id)?;
        if immediately {
            self.disconnect_now(host, now, peer, 0);
            self.forget(host, id);
        } else {
            host.disconnect_later(peer, 0);
        }
        Ok(())
    }

    /// Closes every connection like Godot's `close_connection`: one DISCONNECT (data = our
    /// id) to each ENet peer now (connected or still connecting), then nothing is left and
    /// nothing new is accepted (a closed server refuses CONNECTs; sending fails with
    /// [`MultiplayerError::NotConnected`]). The caller flushes the host.
    pub fn close(&mut self, host: &mut Host, now: Instant) {
        // Every live ENet peer, also those whose connection is still being set up (a client
        // connecting, a CONNECT whose acknowledgement has not come yet), so that nobody
        // waits for a timeout.
        let peers: Vec<PeerId> = host
            .peers()
            .filter(|p| !matches!(p.state(), PeerState::Disconnected | PeerState::Zombie))
            .map(|p| p.id())
            .collect();
        for peer in peers {
            self.disconnect_now(host, now, peer, self.unique_id);
        }
        // Like Godot's closed peer: no new connection is accepted.
        host.set_refuse_new_connections(true);
        self.clear();
    }

    fn clear(&mut self) {
        self.peers.clear();
        self.ids.clear();
        self.server_peer = None;
        self.status = ConnectionStatus::Disconnected;
    }

    fn register(&mut self, id: u32, peer: PeerId) {
        self.peers.insert(id, Some(peer));
        self.ids.insert(peer, id);
    }

    /// (id, ENet peer) of every peer with a direct connection, in id order.
    fn connected_peers(&self) -> impl Iterator<Item = (u32, PeerId)> + '_ {
        self.peers.iter().filter_map(|(id, p)| p.map(|p| (*id, p)))
    }

    /// The ENet peer of `id` (a client only has the server's).
    pub fn enet_peer(&self, id: u32) -> Result<PeerId, MultiplayerError> {
        match self.peers.get(&id) {
            Some(Some(p)) => Ok(*p),
            Some(None) => Err(MultiplayerError::NotServer),
            None => Err(MultiplayerError::UnknownPeer(id)),
        }
    }

    /// The address of peer `id` (a client only knows the server's, id 1).
    pub fn peer_address(&self, host: &Host, id: u32) -> Result<SocketAddr, MultiplayerError> {
        let peer = self.enet_peer(id)?;
        host.peer(peer)
            .map(|p| p.address())
            .ok_or(MultiplayerError::UnknownPeer(id))
    }

    /// ENet statistics of peer `id` (round-trip time, loss, bytes).
    pub fn peer_stats(&self, host: &Host, id: u32) -> Result<PeerStats, MultiplayerError> {
        let peer = self.enet_peer(id)?;
        host.peer(peer)
            .map(|p| p.stats())
            .ok_or(MultiplayerError::UnknownPeer(id))
    }

    /// Sets ENet's timeouts of peer `id` (`enet_peer_timeout`): it is dropped when a reliable
    /// command stays unacknowledged longer than `maximum`, or after `limit` doubled
    /// retransmissions once `minimum` has passed. Zero values select ENet's defaults
    /// (32, 5 s, 30 s).
    pub fn set_peer_timeout(
        &mut self,
        host: &mut Host,
        id: u32,
        limit: u32,
        minimum: Duration,
        maximum: Duration,
    ) -> Result<(), MultiplayerError> {
        if !maximum.is_zero() && minimum > maximum {
            return Err(MultiplayerError::InvalidArgument(format!(
                "the minimum timeout ({minimum:?}) must not exceed the maximum ({maximum:?})"
            )));
        }
        let peer = self.enet_peer(id)?;
        host.set_peer_timeout(peer, limit, minimum, maximum)?;
        Ok(())
    }

    /// Refuses (or accepts again) new connections. The CONNECTs are dropped by the ENet host
    /// before a slot is given (like `enet_host_refuse_new_connections` in Godot's bundled
    /// ENet), and a connection that completes anyway is reset.
    pub fn set_refuse_new_connections(&mut self, host: &mut Host, refuse: bool) {
        self.refuse_new_connections = refuse;
        if self.server {
            host.set_refuse_new_connections(refuse);
        }
    }

    /// Whether new connections are refused.
    pub fn is_refusing_new_connections(&self) -> bool {
        self.refuse_new_connections
    }

    /// Resets `peer` in `host` and remembers its address for [`poll_released`](Self::poll_released).
    fn reset(&mut self, host: &mut Host, peer: PeerId) {
        if let Some(addr) = host.peer(peer).map(|p| p.address()) {
            self.push_released(peer, addr);
        }
        host.reset_peer(peer);
    }

    /// `disconnect_now` on `host`, remembering the address for [`poll_released`](Self::poll_released).
    fn disconnect_now(&mut self, host: &mut Host, now: Instant, peer: PeerId, data: u32) {
        if let Some(addr) = host.peer(peer).map(|p| p.address()) {
            self.push_released(peer, addr);
        }
        host.disconnect_now(now, peer, data);
    }

    fn push_released(&mut self, peer: PeerId, addr: SocketAddr) {
        // Bounded by the host's peer slots; drivers drain it after every call.
        if self.released.len() >= MAX_REMOTE_PEERS {
            self.released.pop_front();
        }
        self.released.push_back((peer, addr));
    }

    /// An ENet peer this core dropped by itself (a refused connection reset, a
    /// `disconnect_peer(id, true)`, `close`), with its address. ENet sends no event for
    /// these; a driver whose socket keeps state per address (a DTLS session) releases it.
    /// Drain after every call into the core.
    pub fn poll_released(&mut self) -> Option<(PeerId, SocketAddr)> {
        self.released.pop_front()
    }

    /// Whether [`poll_released`](Self::poll_released) has something.
    pub fn has_released(&self) -> bool {
        !self.released.is_empty()
    }

    /// Tells the core why the transport failed `peer` (for example a DTLS verification
    /// error), before the host's `Event::Disconnect { reason: Failed }` of that peer is
    /// handed to [`handle_event`](Self::handle_event): a connecting client then reports
    /// [`ConnectionFailure`] with this cause instead of a bare timeout.
    pub fn set_failure_cause(&mut self, peer: PeerId, cause: ConnectionFailure) {
        self.failure = Some((peer, cause));
    }

    /// The next queued event.
    pub fn poll_event(&mut self) -> Option<MultiplayerEvent> {
        self.events.pop_front()
    }

    /// Events queued and not yet taken.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// This peer's id (1 for the server).
    pub fn unique_id(&self) -> u32 {
        self.unique_id
    }

    /// Is this the server?
    pub fn is_server(&self) -> bool {
        self.server
    }

    /// Connection status (a server is always connected until closed).
    pub fn connection_status(&self) -> ConnectionStatus {
        self.status
    }

    /// Ids of the known peers, in order (the server: its clients; a client: the server and
    /// the clients announced by ADD_PEER).
    pub fn peer_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.peers.keys().copied()
    }

    /// Is `id` a known peer?
    pub fn has_peer(&self, id: u32) -> bool {
        self.peers.contains_key(&id)
    }

    /// The settings.
    pub fn config(&self) -> &FramingConfig {
        &self.config
    }

    /// Changes the settings that Godot lets change while active (transfer mode, transfer
    /// channel, always-ordered, target). The channel count and the relay setting are fixed
    /// once created; changing them here is refused.
    pub fn set_config(&mut self, config: FramingConfig) -> Result<(), MultiplayerError> {
        validate(&config)?;
        if config.channel_count != self.config.channel_count
            || config.server_relay != self.config.server_relay
        {
            return Err(MultiplayerError::InvalidArgument(
                "the channel count and server relay cannot change while active".into(),
            ));
        }
        self.config = config;
        Ok(())
    }

    /// What the framing layer dropped or forwarded.
    pub fn stats(&self) -> FramingStats {
        self.stats
    }
}

fn validate(config: &FramingConfig) -> Result<(), MultiplayerError> {
    if config.channel_count < SYSCH_MAX {
        return Err(MultiplayerError::InvalidArgument(format!(
            "the channel count must be at least {SYSCH_MAX} (channels 0-2 are Godot's), got {}",
            config.channel_count
        )));
    }
    if let Some(c) = config.transfer_channel {
        if c == SYSCH_CONFIG || c >= config.channel_count {
            return Err(MultiplayerError::InvalidChannel {
                channel: c,
                channel_count: config.channel_count,
            });
        }
    }
    Ok(())
}

/// Is `id` an id a client may use (2..=i32::MAX)?
pub fn valid_client_id(id: u32) -> bool {
    (2..=i32::MAX as u32).contains(&id)
}

/// Splits the 8-byte header: (source, target as Godot's signed int).
pub fn parse_header(data: &[u8]) -> Option<(u32, i32)> {
    let h = data.get(..HEADER_SIZE)?;
    Some((
        u32::from_le_bytes([h[0], h[1], h[2], h[3]]),
        i32::from_le_bytes([h[4], h[5], h[6], h[7]]),
    ))
}

/// An 8-byte system message (reliable, for channel 0).
fn system_message(msg: u32, id: u32) -> Packet {
    let mut data = Vec::with_capacity(HEADER_SIZE);
    data.extend_from_slice(&msg.to_le_bytes());
    data.extend_from_slice(&id.to_le_bytes());
    Packet::reliable(data)
}

/// The transfer mode a received packet was sent with, from its ENet flags. A large
/// unreliable packet that ENet had to fragment arrives reliable (ENet 1.3 sends it so).
pub fn mode_of(flags: PacketFlags) -> TransferMode {
    if flags.contains(PacketFlags::RELIABLE) {
        TransferMode::Reliable
    } else if flags.contains(PacketFlags::UNSEQUENCED) {
        TransferMode::Unreliable
    } else {
        TransferMode::UnreliableOrdered
    }
}

/// A random client id in 2..=2^31-1 (Godot hashes ticks, time and addresses; this uses the
/// OS-seeded keys of std's `RandomState`).
pub fn generate_unique_id() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x006d_702d_6964);
        let id = (h.finish() as u32) & 0x7fff_ffff;
        if valid_client_id(id) {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_ids() {
        let mut h = 0x661b_e770u32.to_le_bytes().to_vec();
        h.extend_from_slice(&(-5i32).to_le_bytes());
        h.push(9);
        assert_eq!(parse_header(&h), Some((0x661b_e770, -5)));
        assert_eq!(parse_header(&h[..7]), None);
        assert!(!valid_client_id(0) && !valid_client_id(1) && !valid_client_id(0x8000_0000));
        assert!(valid_client_id(2) && valid_client_id(0x7fff_ffff));
        for _ in 0..100 {
            assert!(valid_client_id(generate_unique_id()));
        }
    }

    #[test]
    fn system_messages_are_godots_bytes() {
        // ADD_PEER 0x661be770 as in a capture of Godot 3.2.3: 00000000 70e71b66.
        let p = system_message(SYSMSG_ADD_PEER, 0x661b_e770);
        assert_eq!(p.data, [0, 0, 0, 0, 0x70, 0xe7, 0x1b, 0x66]);
        assert!(p.flags.contains(PacketFlags::RELIABLE));
    }

    #[test]
    fn transfer_modes_map_to_godots_flags_and_channels() {
        let core = MultiplayerCore::server(FramingConfig::default()).unwrap();
        assert_eq!(
            core.mode_flags(TransferMode::Unreliable),
            (PacketFlags::UNSEQUENCED, SYSCH_UNRELIABLE)
        );
        assert_eq!(
            core.mode_flags(TransferMode::UnreliableOrdered),
            (PacketFlags::NONE, SYSCH_UNRELIABLE)
        );
        assert_eq!(
            core.mode_flags(TransferMode::Reliable),
            (PacketFlags::RELIABLE, SYSCH_RELIABLE)
        );
        let ordered = MultiplayerCore::server(FramingConfig {
            always_ordered: true,
            ..FramingConfig::default()
        })
        .unwrap();
        assert_eq!(
            ordered.mode_flags(TransferMode::Unreliable),
            (PacketFlags::NONE, SYSCH_UNRELIABLE)
        );
        for mode in TransferMode::ALL {
            assert_eq!(mode_of(core.mode_flags(mode).0), mode);
        }
    }

    #[test]
    fn settings_fixed_once_created_are_refused() {
        let mut core = MultiplayerCore::server(FramingConfig::default()).unwrap();
        let mut c = core.config().clone();
        c.server_relay = false;
        assert!(core.set_config(c).is_err());
        let mut c = core.config().clone();
        c.transfer_channel = Some(3);
        assert!(matches!(
            core.set_config(c),
            Err(MultiplayerError::InvalidChannel { channel: 3, .. })
        ));
        let mut c = core.config().clone();
        c.target = Target::AllExcept(7);
        c.transfer_mode = TransferMode::Unreliable;
        core.set_config(c.clone()).unwrap();
        assert_eq!(core.config(), &c);
    }
}
