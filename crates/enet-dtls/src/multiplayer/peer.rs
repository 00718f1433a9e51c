//! The polled driver ([`MultiplayerPeer`]), its builders and its socket.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use enet_proto::{HostConfig, PeerStats};

use super::core::{generate_unique_id, FramingConfig, FramingStats, MultiplayerCore};
use super::{
    CompressionMode, ConnectionStatus, MultiplayerError, MultiplayerEvent, Target, TransferMode,
};
use crate::enet::{DtlsEnetSocket, EnetHost, EnetSocket, UdpEnetSocket};
use crate::keys::{Certificate, PrivateKey};
use dtls_proto::{ClientConfig, EndpointConfig, ServerConfig};

/// Most ENet events one [`MultiplayerPeer::poll`] handles, so that a flood cannot keep it
/// from returning (the rest wait for the next poll).
pub(crate) const MAX_EVENTS_PER_POLL: usize = 4096;

/// The socket a [`MultiplayerPeer`] made by a builder runs on: plain UDP, or (with
/// `use_dtls`) ENet inside DTLS ([`DtlsEnetSocket`]).
#[derive(Debug)]
#[non_exhaustive]
#[allow(clippy::large_enum_variant)] // one socket per peer; no point boxing
pub enum MultiplayerSocket {
    /// Plain UDP.
    Udp(UdpEnetSocket),
    /// ENet over DTLS 1.2 (one ENet datagram per DTLS record, as Godot's `use_dtls`).
    Dtls(DtlsEnetSocket),
}

macro_rules! each_socket {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            MultiplayerSocket::Udp($s) => $e,
            MultiplayerSocket::Dtls($s) => $e,
        }
    };
}

impl MultiplayerSocket {
    /// The socket in use, for forwarding.
    fn socket(&self) -> &dyn EnetSocket {
        each_socket!(self, s => s)
    }

    fn socket_mut(&mut self) -> &mut dyn EnetSocket {
        each_socket!(self, s => s)
    }

    /// The DTLS socket, when `use_dtls` is on (its statistics and sessions).
    pub fn dtls(&self) -> Option<&DtlsEnetSocket> {
        match self {
            MultiplayerSocket::Dtls(s) => Some(s),
            MultiplayerSocket::Udp(_) => None,
        }
    }
}

impl EnetSocket for MultiplayerSocket {
    crate::forward_enet_socket!(via: socket, socket_mut);
}

/// DTLS settings (Godot's `use_dtls`, `dtls_verify`, `dtls_hostname`, `set_dtls_key`,
/// `set_dtls_certificate`).
#[derive(Clone, Default)]
pub(crate) struct DtlsSettings {
    pub(crate) enabled: bool,
    /// Client: verify the server (default on). `None` = default.
    pub(crate) verify: Option<bool>,
    pub(crate) hostname: Option<String>,
    pub(crate) certificate: Option<Certificate>,
    pub(crate) key: Option<PrivateKey>,
    pub(crate) server_config: Option<ServerConfig>,
    pub(crate) client_config: Option<ClientConfig>,
    pub(crate) limits: Option<EndpointConfig>,
}

impl std::fmt::Debug for DtlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsSettings")
            .field("enabled", &self.enabled)
            .field("verify", &self.verify)
            .field("hostname", &self.hostname)
            .field("certificate", &self.certificate.is_some())
            .field("key", &self.key.is_some())
            .finish_non_exhaustive()
    }
}

impl DtlsSettings {
    /// The server's DTLS configuration (Godot: key and certificate are required).
    fn server_config(&self) -> Result<ServerConfig, MultiplayerError> {
        if let Some(c) = &self.server_config {
            return Ok(c.clone());
        }
        let (Some(key), Some(cert)) = (&self.key, &self.certificate) else {
            return Err(MultiplayerError::InvalidArgument(
                "use_dtls on a server needs dtls_key and dtls_certificate".into(),
            ));
        };
        ServerConfig::builder(key.clone(), cert.clone())
            .build()
            .map_err(|e| MultiplayerError::InvalidArgument(format!("DTLS server setup: {e}")))
    }

    /// The client's DTLS configuration: verification on by default, against the
    /// certificate if one is set (pinned or CA) or else the system trust store, for
    /// `dtls_hostname` or else the address given to the client.
    fn client_config(&self, address: &str) -> Result<ClientConfig, MultiplayerError> {
        if let Some(c) = &self.client_config {
            return Ok(c.clone());
        }
        let verify = self.verify.unwrap_or(true);
        let mut b = ClientConfig::builder().verify(verify);
        if verify {
            let name = self
                .hostname
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| address.to_owned());
            b = b.hostname(name);
        }
        if let Some(cert) = &self.certificate {
            b = b.trusted_certificate(cert.clone());
        }
        b.build()
            .map_err(|e| MultiplayerError::InvalidArgument(format!("DTLS client setup: {e}")))
    }
}

/// Settings both builders share.
#[derive(Debug, Clone, Default)]
pub(crate) struct Common {
    pub(crate) framing: FramingConfig,
    pub(crate) compression: CompressionMode,
    pub(crate) refuse_new_connections: bool,
    pub(crate) in_bandwidth: u32,
    pub(crate) out_bandwidth: u32,
    /// Client: ENet timeouts of the server connection, from the CONNECT on.
    pub(crate) timeouts: Option<(u32, Duration, Duration)>,
    pub(crate) dtls: DtlsSettings,
}

macro_rules! common_setters {
    () => {
        /// Datagram compression (default none); both ends must use the same mode.
        pub fn compression(mut self, mode: CompressionMode) -> Self {
            self.common.compression = mode;
            self
        }

        /// Incoming and outgoing bandwidth limits in bytes/s (0: unlimited, the default).
        pub fn bandwidth(mut self, incoming: u32, outgoing: u32) -> Self {
            self.common.in_bandwidth = incoming;
            self.common.out_bandwidth = outgoing;
            self
        }

        /// ENet channels (at least 3, the default; channels 0-2 are Godot's, 3 and up are
        /// for [`transfer_channel`](Self::transfer_channel)).
        pub fn channel_count(mut self, count: u8) -> Self {
            self.common.framing.channel_count = count;
            self
        }

        /// The transfer mode of [`MultiplayerPeer::put_packet`] (default reliable).
        pub fn transfer_mode(mut self, mode: TransferMode) -> Self {
            self.common.framing.transfer_mode = mode;
            self
        }

        /// The channel of [`MultiplayerPeer::put_packet`] instead of the mode's
        /// (`None`: the mode's, Godot's -1).
        pub fn transfer_channel(mut self, channel: Option<u8>) -> Self {
            self.common.framing.transfer_channel = channel;
            self
        }

        /// Sends [`TransferMode::Unreliable`] sequenced (Godot's `always_ordered`).
        pub fn always_ordered(mut self, on: bool) -> Self {
            self.common.framing.always_ordered = on;
            self
        }

        /// Refuses new connections from the start (see
        /// [`MultiplayerPeer::set_refuse_new_connections`]).
        pub fn refuse_new_connections(mut self, on: bool) -> Self {
            self.common.refuse_new_connections = on;
            self
        }

        /// The target of [`MultiplayerPeer::put_packet`] (default broadcast).
        pub fn target_peer(mut self, target: Target) -> Self {
            self.common.framing.target = target;
            self
        }

        /// Runs ENet inside DTLS 1.2 (Godot's `use_dtls`, default off): every ENet datagram
        /// is one DTLS record. Both ends must agree; a plaintext peer gets no answer.
        pub fn use_dtls(mut self, on: bool) -> Self {
            self.common.dtls.enabled = on;
            self
        }

        /// Godot's `set_dtls_certificate`. On a server: the certificate it presents (with
        /// [`dtls_key`](ServerBuilder::dtls_key)). On a client: the certificate to trust
        /// when verifying the server, either the server's own (pinning) or the CA that
        /// signed it; without one the system trust store is used.
        pub fn dtls_certificate(mut self, cert: Certificate) -> Self {
            self.common.dtls.certificate = Some(cert);
            self
        }
    };
}

/// Builds a server ([`MultiplayerPeer::server`]), like Godot's `create_server`.
#[derive(Debug, Clone)]
#[must_use = "call create() to start the server"]
pub struct ServerBuilder {
    port: u16,
    bind: IpAddr,
    max_clients: usize,
    per_address: usize,
    pub(crate) common: Common,
}

impl ServerBuilder {
    common_setters!();

    /// The most clients at once (1..=4095; default 32, Godot's). A CONNECT beyond it is
    /// dropped by ENet (the client times out); with `use_dtls`, while this many clients are
    /// connected new DTLS handshakes are not even answered.
    pub fn max_clients(mut self, n: usize) -> Self {
        self.max_clients = n;
        self
    }

    /// The most clients from one IPv4 address or IPv6 /64 (default
    /// [`enet_proto::SERVER_DUPLICATE_PEERS`], 16; Godot has no such limit, i.e. 4095).
    pub fn max_clients_per_address(mut self, n: usize) -> Self {
        self.per_address = n;
        self
    }

    /// The address to listen on (Godot's `set_bind_ip`): default `0.0.0.0` (every IPv4
    /// interface); `::` listens on IPv6 and IPv4, `127.0.0.1` on loopback only.
    pub fn bind_address(mut self, ip: IpAddr) -> Self {
        self.bind = ip;
        self
    }

    /// Relays packets between clients and announces peers (default on, Godot's
    /// `server_relay`). Off: clients only reach the server and learn of no other client.
    pub fn server_relay(mut self, on: bool) -> Self {
        self.common.framing.server_relay = on;
        self
    }

    /// Godot's `set_dtls_key`: the server's private key (for `use_dtls`).
    pub fn dtls_key(mut self, key: PrivateKey) -> Self {
        self.common.dtls.key = Some(key);
        self
    }

    /// A complete DTLS server configuration (certificate chain, MTU, handshake timeout,
    /// ciphers) instead of [`dtls_key`](Self::dtls_key) and
    /// [`dtls_certificate`](Self::dtls_certificate).
    pub fn dtls_server_config(mut self, config: ServerConfig) -> Self {
        self.common.dtls.server_config = Some(config);
        self
    }

    /// The DTLS session limits (default [`EndpointConfig::default`]: 1024 sessions, half-open
    /// ones included, and a share per source address).
    pub fn dtls_limits(mut self, limits: EndpointConfig) -> Self {
        self.common.dtls.limits = Some(limits);
        self
    }

    /// The socket for `addr`: plain UDP, or a DTLS server socket with `use_dtls`.
    pub(crate) fn socket(&self, addr: SocketAddr) -> Result<MultiplayerSocket, MultiplayerError> {
        if !self.common.dtls.enabled {
            return Ok(MultiplayerSocket::Udp(UdpEnetSocket::bind(addr)?));
        }
        let config = self.common.dtls.server_config()?;
        let limits = self.common.dtls.limits.clone().unwrap_or_default();
        Ok(MultiplayerSocket::Dtls(DtlsEnetSocket::server(
            addr, &config, limits,
        )?))
    }

    pub(crate) fn parts(
        &self,
    ) -> Result<(SocketAddr, HostConfig, MultiplayerCore), MultiplayerError> {
        if !(1..=4095).contains(&self.max_clients) {
            return Err(MultiplayerError::InvalidArgument(format!(
                "max clients must be in 1..=4095 (got {})",
                self.max_clients
            )));
        }
        if self.per_address == 0 {
            return Err(MultiplayerError::InvalidArgument(
                "max clients per address must be at least 1".into(),
            ));
        }
        let core = MultiplayerCore::server(self.common.framing.clone())?;
        let config = HostConfig {
            peer_limit: self.max_clients,
            duplicate_peers: self.per_address,
            ..host_config(&self.common)
        };
        Ok((SocketAddr::new(self.bind, self.port), config, core))
    }

    /// Binds the UDP socket and starts the server.
    ///
    /// # Errors
    /// An invalid setting, or the socket cannot be bound (port in use...).
    pub fn create(self) -> Result<MultiplayerPeer, MultiplayerError> {
        let (addr, config, core) = self.parts()?;
        let socket = self.socket(addr)?;
        MultiplayerPeer::start(socket, config, core, &self.common, None)
    }

    /// Starts the server on `socket` (any [`EnetSocket`]; the bind address and port of
    /// this builder are not used).
    pub fn create_with_socket<S: EnetSocket>(
        self,
        socket: S,
    ) -> Result<MultiplayerPeer<S>, MultiplayerError> {
        let (_, config, core) = self.parts()?;
        MultiplayerPeer::start(socket, config, core, &self.common, None)
    }
}

/// Builds a client ([`MultiplayerPeer::client`]), like Godot's `create_client`.
#[derive(Debug, Clone)]
#[must_use = "call create() to connect"]
pub struct ClientBuilder {
    host: String,
    port: u16,
    local_port: u16,
    bind: Option<IpAddr>,
    unique_id: Option<u32>,
    pub(crate) common: Common,
}

impl ClientBuilder {
    common_setters!();

    /// The local UDP port (default 0: any free port).
    pub fn local_port(mut self, port: u16) -> Self {
        self.local_port = port;
        self
    }

    /// The local address to bind (default: the wildcard address of the server's family).
    pub fn bind_address(mut self, ip: IpAddr) -> Self {
        self.bind = Some(ip);
        self
    }

    /// ENet's timeouts of the connection to the server, from the first CONNECT on (Godot's
    /// `set_peer_timeout(1, ...)`, which Godot only allows once connected): the attempt
    /// fails after `maximum` without an answer (ENet's default is 30 s). See
    /// [`MultiplayerCore::set_peer_timeout`].
    pub fn peer_timeout(mut self, limit: u32, minimum: Duration, maximum: Duration) -> Self {
        self.common.timeouts = Some((limit, minimum, maximum));
        self
    }

    /// Uses this id instead of a random one (2..=2^31-1; for tests: Godot always draws one).
    pub fn unique_id(mut self, id: u32) -> Self {
        self.unique_id = Some(id);
        self
    }

    /// Verify the server's certificate (Godot's `dtls_verify`, default on): it must chain to
    /// the [`dtls_certificate`](Self::dtls_certificate) (or the system trust store) and name
    /// the [`dtls_hostname`](Self::dtls_hostname). Off: any certificate is accepted.
    pub fn dtls_verify(mut self, on: bool) -> Self {
        self.common.dtls.verify = Some(on);
        self
    }

    /// The name the server's certificate must carry (Godot 3.4's `dtls_hostname`); default:
    /// the host given to [`MultiplayerPeer::client`], as in Godot 3.2.
    pub fn dtls_hostname(mut self, name: impl Into<String>) -> Self {
        self.common.dtls.hostname = Some(name.into());
        self
    }

    /// A complete DTLS client configuration (trust, hostname, MTU, handshake timeout)
    /// instead of [`dtls_verify`](Self::dtls_verify), [`dtls_hostname`](Self::dtls_hostname)
    /// and [`dtls_certificate`](Self::dtls_certificate).
    pub fn dtls_client_config(mut self, config: ClientConfig) -> Self {
        self.common.dtls.client_config = Some(config);
        self
    }

    /// The socket bound to `local`: plain UDP, or a DTLS client socket with `use_dtls`.
    pub(crate) fn socket(&self, local: SocketAddr) -> Result<MultiplayerSocket, MultiplayerError> {
        if !self.common.dtls.enabled {
            return Ok(MultiplayerSocket::Udp(UdpEnetSocket::bind(local)?));
        }
        let config = self.common.dtls.client_config(&self.host)?;
        Ok(MultiplayerSocket::Dtls(DtlsEnetSocket::client(
            local, &config,
        )?))
    }

    /// The server's address (the host name is resolved; the first address is used).
    pub(crate) fn server_addr(&self) -> Result<SocketAddr, MultiplayerError> {
        if self.port == 0 {
            return Err(MultiplayerError::InvalidArgument(
                "the server port must be in 1..=65535 (got 0)".into(),
            ));
        }
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| {
                MultiplayerError::InvalidArgument(format!("cannot resolve {:?}: {e}", self.host))
            })?
            .next()
            .ok_or_else(|| {
                MultiplayerError::InvalidArgument(format!("{:?} has no address", self.host))
            })
    }

    pub(crate) fn parts(
        &self,
    ) -> Result<(SocketAddr, SocketAddr, HostConfig, MultiplayerCore), MultiplayerError> {
        let server = self.server_addr()?;
        let id = self.unique_id.unwrap_or_else(generate_unique_id);
        let core = MultiplayerCore::client(self.common.framing.clone(), id)?;
        let bind = self.bind.unwrap_or(match server {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        });
        let config = HostConfig {
            peer_limit: 1,
            ..host_config(&self.common)
        };
        Ok((SocketAddr::new(bind, self.local_port), server, config, core))
    }

    /// Binds the local socket and starts connecting; [`MultiplayerEvent::ConnectionSucceeded`]
    /// or [`MultiplayerEvent::ConnectionFailed`] follows from [`MultiplayerPeer::poll`].
    ///
    /// # Errors
    /// An invalid setting, a host name that does not resolve, or a socket that cannot be
    /// bound.
    pub fn create(self) -> Result<MultiplayerPeer, MultiplayerError> {
        let (local, server, config, core) = self.parts()?;
        let socket = self.socket(local)?;
        MultiplayerPeer::start(socket, config, core, &self.common, Some(server))
    }

    /// Connects over `socket` (any [`EnetSocket`]; the local port of this builder is not
    /// used).
    pub fn create_with_socket<S: EnetSocket>(
        self,
        socket: S,
    ) -> Result<MultiplayerPeer<S>, MultiplayerError> {
        let (_, server, config, core) = self.parts()?;
        MultiplayerPeer::start(socket, config, core, &self.common, Some(server))
    }
}

pub(crate) fn host_config(common: &Common) -> HostConfig {
    HostConfig {
        channel_limit: usize::from(common.framing.channel_count),
        incoming_bandwidth: common.in_bandwidth,
        outgoing_bandwidth: common.out_bandwidth,
        compressor: common.compression.compressor(),
        // `poll` takes every ENet event, then flushes: the acknowledgements of the packets it
        // took leave with the replies and relayed copies queued while handling them.
        acks_with_replies: true,
        ..HostConfig::server()
    }
}

/// Godot 3.2's `NetworkedMultiplayerENet`, polled: a server or a client of Godot's ENet
/// multiplayer protocol (see the [module docs](super) for the protocol, the Godot names and
/// an example).
///
/// Call [`poll`](Self::poll) often (every frame, or after [`wait`](Self::wait)), then take
/// the events with [`next_event`](Self::next_event). Sends go out at once (each
/// [`send`](Self::send) flushes, as Godot's `put_packet` does). Dropping it closes every
/// connection ([`close`](Self::close)).
#[doc(alias = "NetworkedMultiplayerENet")]
#[derive(Debug)]
pub struct MultiplayerPeer<S: EnetSocket = MultiplayerSocket> {
    host: EnetHost<S>,
    core: MultiplayerCore,
    compression: CompressionMode,
}

impl MultiplayerPeer {
    /// A server on `port` (0: any free port; see [`local_addr`](Self::local_addr)), like
    /// Godot's `create_server(port)`. Configure it, then [`ServerBuilder::create`].
    pub fn server(port: u16) -> ServerBuilder {
        ServerBuilder {
            port,
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            max_clients: 32,
            per_address: enet_proto::SERVER_DUPLICATE_PEERS,
            common: Common::default(),
        }
    }

    /// A client of the server at `host:port`, like Godot's `create_client(host, port)`.
    /// Configure it, then [`ClientBuilder::create`].
    pub fn client(host: impl Into<String>, port: u16) -> ClientBuilder {
        ClientBuilder {
            host: host.into(),
            port,
            local_port: 0,
            bind: None,
            unique_id: None,
            common: Common::default(),
        }
    }
}

impl<S: EnetSocket> MultiplayerPeer<S> {
    /// The ENet host, mutably, for drivers in this crate (the RPC driver defers its flushes).
    pub(crate) fn enet_mut(&mut self) -> &mut EnetHost<S> {
        &mut self.host
    }

    /// Services the connection like Godot's `poll()`: sends what is queued, receives every
    /// datagram that is ready, runs ENet's timers and turns ENet's events into
    /// [`MultiplayerEvent`]s (take them with [`next_event`](Self::next_event)). Never blocks.
    ///
    /// # Errors
    /// Only a broken socket.
    pub fn poll(&mut self) -> Result<(), MultiplayerError> {
        for _ in 0..MAX_EVENTS_PER_POLL {
            match self.host.service(Duration::ZERO)? {
                Some(event) => self.feed(event),
                None => break,
            }
        }
        // Replies queued while handling events (ADD_PEER, relayed copies) go out now.
        self.host.flush()?;
        Ok(())
    }

    /// The next event, if any (after [`poll`](Self::poll)).
    pub fn next_event(&mut self) -> Option<MultiplayerEvent> {
        self.core.poll_event()
    }

    /// Waits up to `timeout` for an event: returns a queued one at once, otherwise services
    /// the connection until one comes or the time is up (`Ok(None)`).
    pub fn service(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<MultiplayerEvent>, MultiplayerError> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(event) = self.core.poll_event() {
                return Ok(Some(event));
            }
            self.poll()?;
            if let Some(event) = self.core.poll_event() {
                return Ok(Some(event));
            }
            let now = Instant::now();
            let left = match deadline {
                Some(d) if now >= d => return Ok(None),
                Some(d) => Some(d - now),
                None => None,
            };
            self.host.wait(left)?;
        }
    }

    /// Waits until [`poll`](Self::poll) has something to do (a datagram, or a due timer),
    /// for at most `timeout` (`None`: no limit). Returns whether something is ready.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<bool, MultiplayerError> {
        if self.core.pending_events() > 0 {
            return Ok(true);
        }
        Ok(self.host.wait(timeout)?)
    }
}

/// The methods [`MultiplayerPeer`] and `TokioMultiplayerPeer` share word for word, and their
/// `Drop`: everything but servicing (`poll`, `service`, `wait`, taking events), which blocks in
/// one and is async in the other. `$peer` is the peer type, `$host` its ENet driver
/// ([`EnetHost`] or `TokioEnetHost`); both drivers have the same synchronous methods used here
/// (`with_socket`, `host`, `host_mut`, `flush`, `local_addr`, `take_failure`,
/// `release_peer_address`). Names resolve where the macro is used, so both modules import them.
macro_rules! shared_peer_methods {
    ($peer:ident, $host:ident) => {
        impl<S: EnetSocket> $peer<S> {
            fn start(
                socket: S,
                config: HostConfig,
                mut core: MultiplayerCore,
                common: &Common,
                server: Option<SocketAddr>,
            ) -> Result<Self, MultiplayerError> {
                let mut host = $host::with_socket(socket, config)?;
                let now = Instant::now();
                core.set_refuse_new_connections(host.host_mut(), common.refuse_new_connections);
                if let Some(server) = server {
                    // A client accepts no connection of its own.
                    host.host_mut().set_refuse_new_connections(true);
                    let peer = core.connect(host.host_mut(), now, server)?;
                    if let Some((limit, minimum, maximum)) = common.timeouts {
                        host.host_mut()
                            .set_peer_timeout(peer, limit, minimum, maximum)?;
                    }
                    host.flush()?;
                }
                Ok(Self {
                    host,
                    core,
                    compression: common.compression,
                })
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

            /// Godot's `put_packet`: sends `data` to the [target peer](Self::set_target_peer) with
            /// the configured transfer mode and channel, and flushes.
            pub fn put_packet(&mut self, data: &[u8]) -> Result<(), MultiplayerError> {
                self.core.put_packet(self.host.host_mut(), data)?;
                self.host.flush()?;
                Ok(())
            }

            /// Sends `data` to `target` in `mode`, on `channel` (`None`: the mode's channel), and
            /// flushes. A client's packets go to the server, which relays them.
            ///
            /// # Errors
            /// Not connected, an unknown target, a reserved or out-of-range channel, a packet the
            /// ENet host refuses, or a broken socket.
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

            /// Sets the target of [`put_packet`](Self::put_packet) (Godot's `set_target_peer`).
            pub fn set_target_peer(&mut self, target: Target) {
                let mut config = self.core.config().clone();
                config.target = target;
                self.set_framing(config);
            }

            /// Sets the transfer mode of [`put_packet`](Self::put_packet).
            pub fn set_transfer_mode(&mut self, mode: TransferMode) {
                let mut config = self.core.config().clone();
                config.transfer_mode = mode;
                self.set_framing(config);
            }

            /// Sets the channel of [`put_packet`](Self::put_packet) (`None`: the mode's).
            ///
            /// # Errors
            /// Channel 0 (reserved) or a channel not below the channel count.
            pub fn set_transfer_channel(
                &mut self,
                channel: Option<u8>,
            ) -> Result<(), MultiplayerError> {
                let mut config = self.core.config().clone();
                config.transfer_channel = channel;
                self.core.set_config(config)
            }

            /// Sends [`TransferMode::Unreliable`] sequenced (Godot's `always_ordered`).
            pub fn set_always_ordered(&mut self, on: bool) {
                let mut config = self.core.config().clone();
                config.always_ordered = on;
                self.set_framing(config);
            }

            fn set_framing(&mut self, config: FramingConfig) {
                // Only fields that are always valid change here.
                let _ = self.core.set_config(config);
            }

            /// Refuses (or accepts again) new connections at the ENet level: CONNECTs are dropped
            /// before a peer slot is taken, so the clients time out (`connection_failed`). With
            /// `use_dtls` new clients are turned away one step earlier, like Godot's: their DTLS
            /// ClientHellos get no answer, so the server does no handshake work for them
            /// ([`EnetSocket::set_accepting_new_peers`]); connected clients are not affected.
            pub fn set_refuse_new_connections(&mut self, refuse: bool) {
                self.core
                    .set_refuse_new_connections(self.host.host_mut(), refuse);
            }

            /// Whether new connections are refused.
            pub fn is_refusing_new_connections(&self) -> bool {
                self.core.is_refusing_new_connections()
            }

            /// The framing settings (transfer mode, channels, target, relay).
            pub fn config(&self) -> &FramingConfig {
                self.core.config()
            }

            /// The compression mode.
            pub fn compression(&self) -> CompressionMode {
                self.compression
            }

            /// This peer's id (Godot's `get_unique_id`: 1 on the server).
            pub fn unique_id(&self) -> u32 {
                self.core.unique_id()
            }

            /// Is this the server?
            pub fn is_server(&self) -> bool {
                self.core.is_server()
            }

            /// Godot's `get_connection_status`.
            pub fn connection_status(&self) -> ConnectionStatus {
                self.core.connection_status()
            }

            /// The ids of the known peers, in order.
            pub fn peer_ids(&self) -> Vec<u32> {
                self.core.peer_ids().collect()
            }

            /// The address of peer `id` (Godot's `get_peer_address` and `get_peer_port`; a client
            /// only knows the server's, id 1).
            pub fn peer_address(&self, id: u32) -> Result<SocketAddr, MultiplayerError> {
                self.core.peer_address(self.host.host(), id)
            }

            /// ENet's statistics of peer `id`: round-trip time, packet loss, bytes and datagrams.
            pub fn peer_stats(&self, id: u32) -> Result<PeerStats, MultiplayerError> {
                self.core.peer_stats(self.host.host(), id)
            }

            /// Godot's `set_peer_timeout` (see [`MultiplayerCore::set_peer_timeout`]).
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

            /// Server: disconnects client `id`, at once (`now`: Godot's `disconnect_peer(id, true)`,
            /// the event is queued immediately) or after the packets already queued to it.
            pub fn disconnect_peer(&mut self, id: u32, now: bool) -> Result<(), MultiplayerError> {
                self.core
                    .disconnect_peer(self.host.host_mut(), Instant::now(), id, now)?;
                self.host.flush()?;
                self.release();
                Ok(())
            }

            /// Closes every connection (one DISCONNECT to each peer, sent now), like Godot's
            /// `close_connection`. Dropping the peer does the same.
            pub fn close(&mut self) -> Result<(), MultiplayerError> {
                self.core.close(self.host.host_mut(), Instant::now());
                self.host.flush()?;
                self.release();
                Ok(())
            }

            /// The local address of the socket (Godot's `get_local_port` is its port).
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

            /// The ENet host (statistics, throttling, the socket).
            pub fn enet(&self) -> &$host<S> {
                &self.host
            }
        }

        impl<S: EnetSocket> Drop for $peer<S> {
            fn drop(&mut self) {
                if self.core.connection_status() != ConnectionStatus::Disconnected {
                    let _ = self.close();
                }
            }
        }
    };
}
#[cfg(feature = "tokio")]
pub(crate) use shared_peer_methods;

shared_peer_methods!(MultiplayerPeer, EnetHost);
