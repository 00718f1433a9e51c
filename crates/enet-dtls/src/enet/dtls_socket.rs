//! ENet over DTLS: [`DtlsEnetSocket`], the DTLS implementation of [`EnetSocket`].
//!
//! Every ENet datagram travels as exactly one DTLS 1.2 application-data record (content type
//! 23), with no framing of its own: the bytes on the wire are what Godot's DTLS-enabled ENet
//! (`ENetGodotSocket` over `PacketPeerDTLS`) sends. The DTLS work is done by the sans-IO
//! [`dtls_proto::Endpoint`] (stateless cookies, the session table and its limits, timers in the
//! caller's time); this module moves datagrams between it, the ENet driver and a transport
//! socket (UDP by default).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use dtls_proto::{
    ClientConfig, CloseReason, DtlsError, Endpoint, EndpointConfig, EndpointStats, ServerConfig,
    Status,
};
use enet_proto::Transmit;
use tracing::{debug, trace};

use super::socket::{ConnectionFailure, EnetSocket, FailureCause, UdpEnetSocket};
use crate::net;

/// DTLS record header: content type, version, epoch, sequence number, length (RFC 6347).
pub const DTLS_RECORD_HEADER: usize = 13;

/// The smallest ENet MTU (C ENet's `ENET_PROTOCOL_MINIMUM_MTU`).
const ENET_MINIMUM_MTU: usize = 576;

/// Connection failures queued for the driver at most (the oldest is dropped beyond this).
const MAX_FAILURES: usize = 1024;

/// Decrypted datagrams held between calls at most (only records that arrive outside
/// [`EnetSocket::recv_batch`], which should not happen).
const MAX_STASH: usize = 1024;

/// Transport batches read per [`EnetSocket::recv_batch`] call while they only carry handshake
/// records (nothing for ENet), before the call returns `Ok(0)` anyway.
const MAX_SWALLOWED_BATCHES: usize = 16;

/// Records handed to the transport per `send_batch` call.
const SEND_BATCH: usize = 64;

/// ENet datagrams a client socket keeps per address while its handshake runs (the most recent
/// ones; older ones are dropped). They are sent as soon as the session is established, so the
/// first CONNECT is not lost to the handshake.
pub const HANDSHAKE_QUEUE: usize = 4;

/// The largest ENet datagram that fits one DTLS record whatever cipher suite is negotiated,
/// for a DTLS MTU of `dtls_mtu` bytes (the largest UDP payload, record header included).
///
/// The worst DTLS 1.2 suite OpenSSL offers by default is AES-CBC with HMAC-SHA384: 13 bytes of
/// record header, a 16-byte explicit IV, a 48-byte MAC, the payload rounded down to the 16-byte
/// block and one padding-length byte. So `((mtu - 77) / 16) * 16 - 1`, which is 1359 for the
/// default [`dtls_proto::DEFAULT_MTU`] of 1440. AES-GCM (overhead 37: data MTU 1403) and
/// ChaCha20-Poly1305 (overhead 29: 1411) leave more room; ENet uses this bound for every
/// session because its MTU is fixed before the handshake chooses the suite.
///
/// ```
/// use enet_dtls::enet::enet_mtu_for_dtls_mtu;
/// assert_eq!(enet_mtu_for_dtls_mtu(1440), 1359);
/// assert_eq!(enet_mtu_for_dtls_mtu(1200), 1119);
/// ```
pub const fn enet_mtu_for_dtls_mtu(dtls_mtu: usize) -> usize {
    const OVERHEAD: usize = DTLS_RECORD_HEADER + 16 + 48;
    if dtls_mtu <= OVERHEAD + 16 {
        return 0;
    }
    ((dtls_mtu - OVERHEAD) / 16) * 16 - 1
}

/// Counters of a [`DtlsEnetSocket`] (the DTLS endpoint's own are in
/// [`DtlsEnetSocket::endpoint_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DtlsSocketStats {
    /// ENet datagrams sent, each as one DTLS record.
    pub records_sent: u64,
    /// ENet datagrams received (decrypted records handed to ENet).
    pub records_received: u64,
    /// ENet datagrams dropped because their session was still handshaking and the handshake
    /// queue ([`HANDSHAKE_QUEUE`] per address) was full, or the handshake failed (ENet retries).
    pub dropped_handshaking: u64,
    /// ENet datagrams held while their client session was handshaking and sent once it was
    /// established.
    pub sent_after_handshake: u64,
    /// ENet datagrams dropped because their address had no session this socket could open:
    /// a server socket never opens one, and a client socket does not reconnect to an address
    /// whose failure the driver has not taken yet.
    pub dropped_no_session: u64,
    /// ENet datagrams dropped because DTLS refused them (larger than the session's data MTU,
    /// a session that failed on write). Zero in normal operation.
    pub dropped_refused: u64,
    /// Client handshakes started by a first send to an address.
    pub handshakes_started: u64,
    /// Connection failures reported through [`EnetSocket::poll_failure`].
    pub failures: u64,
    /// Sessions closed because the driver said their ENet peer was gone
    /// ([`EnetSocket::peer_gone`]).
    pub released: u64,
}

/// ENet over DTLS 1.2: one socket, one DTLS session per remote address, one ENet datagram per
/// DTLS application record. Run it under either driver, [`EnetHost`](super::EnetHost) or
/// (feature `tokio`) `TokioEnetHost`, like any [`EnetSocket`].
///
/// # Server side ([`DtlsEnetSocket::server`])
///
/// * A stateless cookie exchange (HelloVerifyRequest) in front: nothing is kept for a source
///   before it echoes a valid cookie; then one session per remote address.
/// * Limits ([`EndpointConfig`]): at most `max_sessions` sessions (default 1024), half-open and
///   established alike, and at most `max_sessions_per_address` per source address (an IPv4
///   address or an IPv6 /64; default 128 of 1024); ClientHellos beyond them are refused before
///   OpenSSL does any work. A handshake that stalls fails after the [`ServerConfig`]'s
///   handshake timeout (default 10 s); an established session silent for the idle timeout
///   (default 30 s; ENet pings every second) is closed.
/// * A session ends when the driver reports its ENet peer gone (disconnected, timed out,
///   reset: [`EnetSocket::peer_gone`]); the remote gets close_notify.
/// * While the ENet host takes nobody new (it refuses new connections, or every slot holds a
///   connected peer) the drivers tell the socket ([`EnetSocket::set_accepting_new_peers`]),
///   and new addresses get no answer at all: no cookie, no handshake (Godot's server refuses
///   before the handshake too). Established sessions are not affected.
/// * Plaintext (or any non-DTLS) datagrams from addresses without a session are dropped
///   without any reply or state (counted in [`EndpointStats::dropped`]); ENet never sees them.
///
/// # Client side ([`DtlsEnetSocket::client`])
///
/// The handshake with an address starts on ENet's first send to it (its CONNECT). While it
/// runs, the socket keeps the last [`HANDSHAKE_QUEUE`] (4) ENet datagrams to that address and
/// sends them, in order, as soon as the session is established; older ones are dropped (ENet
/// retransmits what matters). So the first CONNECT is not lost: the ENet connection completes
/// one round trip after the DTLS handshake (a few milliseconds on loopback), not on ENet's
/// first CONNECT retry about 0.5 s later. Godot drops these datagrams; peers cannot tell the
/// difference, since the records are ordinary application data sent after the handshake.
///
/// # MTU
///
/// The DTLS MTU of the config (default [`dtls_proto::DEFAULT_MTU`], 1440) is the largest UDP
/// payload this socket ever writes, handshake flights included. ENet's MTU is lowered by the
/// record overhead of the worst cipher suite ([`enet_mtu_for_dtls_mtu`]): with the default
/// 1440 the ENet MTU is 1359 (ENet's default 1392 would not fit every suite), so an ENet
/// datagram is at most 1359 bytes and its record at most 1440 bytes on the wire (1468 with the
/// IPv4 and UDP headers, 1488 over IPv6: below a 1500-byte Ethernet path). ENet negotiates the
/// smaller MTU with its peer at CONNECT, so a peer with a larger MTU (C ENet's 1400) follows.
/// A DTLS MTU below 669 would push ENet below its minimum of 576 and is refused.
///
/// # Failures
///
/// A handshake or verification failure (untrusted certificate, hostname mismatch, expired
/// certificate, fatal alert, handshake timeout) reaches the driver through
/// [`EnetSocket::poll_failure`]: the driver resets the ENet peer and reports
/// `Event::Disconnect` with [`DisconnectReason::Failed`](enet_proto::DisconnectReason::Failed),
/// and `take_failure(peer)` returns the [`ConnectionFailure`] with the cause. When ENet gives up
/// on CONNECT while the handshake still runs (an unreachable or silent server), the disconnect
/// also says `Failed`, with a [`DtlsError::HandshakeTimeout`] cause.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use enet_dtls::dtls_proto::{ClientConfig, EndpointConfig, ServerConfig};
/// use enet_dtls::enet::{DtlsEnetSocket, EnetHost};
/// use enet_dtls::enet_proto::{DisconnectReason, Event, HostConfig, Packet};
/// use enet_dtls::keys::{Certificate, PrivateKey};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Server: key and certificate from PEM files (`enet-dtls keygen` writes them).
/// let key = PrivateKey::from_pem(&std::fs::read("key.pem")?)?;
/// let cert = Certificate::from_pem(&std::fs::read("cert.pem")?)?;
/// let config = ServerConfig::builder(key, cert.clone()).build()?;
/// let socket = DtlsEnetSocket::server("127.0.0.1:7777", &config, EndpointConfig::default())?;
/// let mut server = EnetHost::with_socket(socket, HostConfig::server())?;
///
/// // Client: trust the server's certificate (pinned) and check its name.
/// let config = ClientConfig::builder().trusted_certificate(cert).hostname("localhost").build()?;
/// let mut client = EnetHost::with_socket(DtlsEnetSocket::client("127.0.0.1:0", &config)?,
///                                        HostConfig::default())?;
/// let peer = client.connect("127.0.0.1:7777".parse()?, 2, 0)?;
/// loop {
///     server.service(Duration::ZERO)?;
///     match client.service(Duration::from_millis(10))? {
///         Some(Event::Connect { .. }) => client.send(peer, 0, Packet::reliable(b"hi".to_vec()))?,
///         Some(Event::Disconnect { peer, reason: DisconnectReason::Failed, .. }) => {
///             println!("failed: {:?}", client.take_failure(peer));
///             break;
///         }
///         _ => {}
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct DtlsEnetSocket<T: EnetSocket = UdpEnetSocket> {
    transport: T,
    endpoint: Endpoint,
    /// Set on client sockets: a send to an address without a session starts a handshake.
    client: Option<ClientConfig>,
    /// The DTLS MTU (largest datagram written).
    mtu: usize,
    /// The largest ENet datagram ([`enet_mtu_for_dtls_mtu`] of `mtu`).
    max_datagram: usize,
    /// Client handshakes in progress and when they started (for [`EnetSocket::peer_gone`]'s
    /// timeout cause).
    connecting: HashMap<SocketAddr, Instant>,
    /// ENet datagrams sent while the client handshake with the address ran (at most
    /// [`HANDSHAKE_QUEUE`] each), sent once it is established.
    held: HashMap<SocketAddr, VecDeque<Vec<u8>>>,
    failures: VecDeque<ConnectionFailure>,
    /// Decrypted datagrams that arrived outside `recv_batch`.
    stash: VecDeque<(SocketAddr, Vec<u8>)>,
    outbox: Vec<Transmit>,
    /// The endpoint's next timer, cached after every input (`poll_timeout` takes `&self` and
    /// the drivers ask several times per round).
    timer: Option<Instant>,
    drained: bool,
    stats: DtlsSocketStats,
}

/// Where decrypted datagrams go: the driver's sink of [`EnetSocket::recv_batch`].
type Sink<'a> = dyn FnMut(SocketAddr, &[u8]) + 'a;

fn dtls_io(e: DtlsError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

impl DtlsEnetSocket<UdpEnetSocket> {
    /// A DTLS server socket on a UDP socket bound to `addr` (port 0: any free port), presenting
    /// `config`'s key and certificate, with the session limits `limits`.
    ///
    /// # Errors
    /// Binding errors; `InvalidInput` for limits the endpoint refuses or a DTLS MTU too small
    /// for ENet (see the type docs).
    ///
    /// ```no_run
    /// # use enet_dtls::dtls_proto::{EndpointConfig, ServerConfig};
    /// # use enet_dtls::enet::DtlsEnetSocket;
    /// # fn f(config: ServerConfig) -> std::io::Result<()> {
    /// let limits = EndpointConfig::default().max_sessions(256).max_sessions_per_address(8);
    /// let socket = DtlsEnetSocket::server("0.0.0.0:7777", &config, limits)?;
    /// # Ok(()) }
    /// ```
    pub fn server<A: ToSocketAddrs>(
        addr: A,
        config: &ServerConfig,
        limits: EndpointConfig,
    ) -> io::Result<Self> {
        DtlsEnetSocket::server_over(UdpEnetSocket::bind(addr)?, config, limits)
    }

    /// A DTLS client socket on a UDP socket bound to `addr` (usually port 0): ENet's first send
    /// to an address starts a handshake with `config` (verification on or off, the expected
    /// hostname, trusted CA or pinned certificate, as in Godot's `PacketPeerDTLS`).
    ///
    /// # Errors
    /// Binding errors; `InvalidInput` for a DTLS MTU too small for ENet.
    ///
    /// ```no_run
    /// # use enet_dtls::dtls_proto::ClientConfig;
    /// # use enet_dtls::enet::DtlsEnetSocket;
    /// # fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// let insecure = ClientConfig::builder().verify(false).build()?;
    /// let socket = DtlsEnetSocket::client("0.0.0.0:0", &insecure)?;
    /// # Ok(()) }
    /// ```
    pub fn client<A: ToSocketAddrs>(addr: A, config: &ClientConfig) -> io::Result<Self> {
        DtlsEnetSocket::client_over(UdpEnetSocket::bind(addr)?, config)
    }

    /// Send/receive counters of the UDP socket underneath (datagrams on the wire, handshake
    /// records included).
    pub fn udp_stats(&self) -> super::SocketStats {
        self.transport.stats()
    }
}

impl<T: EnetSocket> DtlsEnetSocket<T> {
    /// [`server`](DtlsEnetSocket::server) over any transport socket (an in-memory one in tests
    /// and simulations).
    ///
    /// # Errors
    /// `InvalidInput` for limits the endpoint refuses or a DTLS MTU too small for ENet.
    pub fn server_over(
        transport: T,
        config: &ServerConfig,
        limits: EndpointConfig,
    ) -> io::Result<Self> {
        let endpoint = Endpoint::server(limits, config).map_err(dtls_io)?;
        DtlsEnetSocket::new(transport, endpoint, None, config.mtu())
    }

    /// [`client`](DtlsEnetSocket::client) over any transport socket.
    ///
    /// # Errors
    /// `InvalidInput` for a DTLS MTU too small for ENet.
    pub fn client_over(transport: T, config: &ClientConfig) -> io::Result<Self> {
        let endpoint = Endpoint::client(EndpointConfig::default()).map_err(dtls_io)?;
        DtlsEnetSocket::new(transport, endpoint, Some(config.clone()), config.mtu())
    }

    fn new(
        transport: T,
        endpoint: Endpoint,
        client: Option<ClientConfig>,
        mtu: usize,
    ) -> io::Result<Self> {
        let max_datagram = enet_mtu_for_dtls_mtu(mtu).min(transport.max_datagram_size());
        if max_datagram < ENET_MINIMUM_MTU {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a DTLS MTU of {mtu} bytes leaves ENet datagrams of at most {max_datagram} bytes \
                     (worst-case record overhead), below ENet's minimum MTU of {ENET_MINIMUM_MTU}: \
                     use a DTLS MTU of at least 669"
                ),
            ));
        }
        Ok(DtlsEnetSocket {
            transport,
            endpoint,
            client,
            mtu,
            max_datagram,
            connecting: HashMap::new(),
            held: HashMap::new(),
            failures: VecDeque::new(),
            stash: VecDeque::new(),
            outbox: Vec::with_capacity(SEND_BATCH),
            timer: None,
            drained: false,
            stats: DtlsSocketStats::default(),
        })
    }

    /// Replaces the session limits (a lower cap only refuses new sessions).
    ///
    /// # Errors
    /// `InvalidInput` for limits the endpoint refuses (zero caps, zero idle timeout).
    pub fn set_limits(&mut self, limits: EndpointConfig) -> io::Result<()> {
        self.endpoint.set_config(limits).map_err(dtls_io)
    }

    /// This socket's counters.
    pub fn stats(&self) -> DtlsSocketStats {
        self.stats
    }

    /// The DTLS endpoint's counters: cookies sent, sessions created, handshakes completed and
    /// failed, refusals by cause, datagrams dropped.
    pub fn endpoint_stats(&self) -> EndpointStats {
        self.endpoint.stats()
    }

    /// The DTLS endpoint (read-only: sessions, their status, cipher, peer certificate).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The transport socket underneath.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport socket underneath, mutably (a simulation feeds its in-memory transport).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Sessions now, handshaking and established.
    pub fn session_count(&self) -> usize {
        self.endpoint.session_count()
    }

    /// The status of the session with `addr`, if there is one.
    pub fn status(&self, addr: SocketAddr) -> Option<Status> {
        let h = self.endpoint.handle_of(addr)?;
        self.endpoint.status(h).ok()
    }

    /// The negotiated cipher suite of the session with `addr`, once established.
    pub fn cipher(&self, addr: SocketAddr) -> Option<&'static str> {
        let h = self.endpoint.handle_of(addr)?;
        self.endpoint.session(h).ok()?.cipher_name()
    }

    /// The negotiated data MTU (largest record payload) of the session with `addr`, once
    /// established; never below [`max_datagram_size`](EnetSocket::max_datagram_size).
    pub fn data_mtu(&self, addr: SocketAddr) -> Option<usize> {
        let h = self.endpoint.handle_of(addr)?;
        self.endpoint.session(h).ok()?.data_mtu()
    }

    /// The DTLS MTU: the largest datagram this socket writes.
    pub fn dtls_mtu(&self) -> usize {
        self.mtu
    }

    /// Closes the session with `addr` (close_notify when established). ENet is not told; the
    /// driver's `reset_peer` / `disconnect_now` do this for you.
    pub fn close(&mut self, now: Instant, addr: SocketAddr) -> io::Result<()> {
        if let Some(h) = self.endpoint.handle_of(addr) {
            let _ = self.endpoint.close(h);
            self.connecting.remove(&net::normalize(addr));
            self.drop_held(net::normalize(addr));
        }
        self.after_input(now, None);
        self.flush(now)
    }

    /// Queues a failure for the driver (bounded: the oldest goes first).
    fn fail(&mut self, address: SocketAddr, cause: FailureCause) {
        if self.failures.len() >= MAX_FAILURES {
            self.failures.pop_front();
        }
        self.stats.failures += 1;
        self.failures
            .push_back(ConnectionFailure::new(address, cause));
    }

    /// Drains the endpoint's events: data to `sink` (or the stash), connection ends to the
    /// failure queue. Returns how many datagrams went to `sink`.
    fn after_input(&mut self, _now: Instant, mut sink: Option<&mut Sink<'_>>) -> usize {
        let mut delivered = 0;
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                dtls_proto::Event::Data { addr, data, .. } => {
                    self.stats.records_received += 1;
                    match sink.as_mut() {
                        Some(sink) => {
                            trace!(from = %addr, len = data.len(), "dtls-enet recv");
                            sink(addr, &data);
                            delivered += 1;
                            // The next decrypted datagram reuses this buffer.
                            self.endpoint.recycle(data);
                        }
                        None if self.stash.len() < MAX_STASH => self.stash.push_back((addr, data)),
                        None => debug!(from = %addr, "dtls-enet stash full; datagram dropped"),
                    }
                }
                dtls_proto::Event::Connected { handle, addr } => {
                    self.connecting.remove(&addr);
                    debug!(%addr, "dtls-enet session established");
                    self.send_held(handle, addr);
                }
                dtls_proto::Event::Failed { addr, error, .. } => {
                    self.connecting.remove(&addr);
                    self.drop_held(addr);
                    debug!(%addr, %error, "dtls-enet session failed");
                    self.fail(addr, FailureCause::Dtls(error));
                }
                dtls_proto::Event::Closed { addr, reason, .. } => {
                    self.connecting.remove(&addr);
                    self.drop_held(addr);
                    match reason {
                        CloseReason::Remote | CloseReason::IdleTimeout => {
                            debug!(%addr, ?reason, "dtls-enet session closed");
                            self.fail(addr, FailureCause::Closed(reason));
                        }
                        // Our own close (the ENet peer is gone), or a reconnection from the
                        // same address (the new session carries the new ENet connection).
                        _ => trace!(%addr, ?reason, "dtls-enet session ended"),
                    }
                }
                _ => {}
            }
        }
        self.timer = self.endpoint.poll_timeout();
        delivered
    }

    /// Hands every datagram the endpoint queued to the transport, in batches.
    fn flush(&mut self, now: Instant) -> io::Result<()> {
        loop {
            // The records of the last batch were sent: their buffers carry the next ones.
            for t in self.outbox.drain(..) {
                self.endpoint.recycle(t.data);
            }
            while self.outbox.len() < SEND_BATCH {
                match self.endpoint.poll_transmit() {
                    Some(t) => self.outbox.push(Transmit {
                        destination: t.destination,
                        data: t.contents,
                    }),
                    None => break,
                }
            }
            if self.outbox.is_empty() {
                return Ok(());
            }
            self.transport.send_batch(now, &self.outbox)?;
        }
    }

    /// Keeps an ENet datagram to `addr`, whose client handshake runs, for when it completes
    /// (the last [`HANDSHAKE_QUEUE`] only). Server sockets hold nothing.
    fn hold(&mut self, addr: SocketAddr, data: &[u8]) {
        if self.client.is_none() || !self.connecting.contains_key(&addr) {
            self.stats.dropped_handshaking += 1;
            trace!(to = %addr, "dtls-enet session still handshaking; datagram dropped");
            return;
        }
        let queue = self.held.entry(addr).or_default();
        if queue.len() >= HANDSHAKE_QUEUE {
            queue.pop_front();
            self.stats.dropped_handshaking += 1;
        }
        queue.push_back(data.to_vec());
        trace!(to = %addr, len = data.len(), "dtls-enet datagram held until the handshake completes");
    }

    /// The session with `addr` is established: sends what was held for it, oldest first.
    fn send_held(&mut self, handle: dtls_proto::SessionHandle, addr: SocketAddr) {
        let Some(queue) = self.held.remove(&addr) else {
            return;
        };
        for data in queue {
            match self.endpoint.send(handle, &data) {
                Ok(()) => {
                    self.stats.records_sent += 1;
                    self.stats.sent_after_handshake += 1;
                }
                Err(error) => {
                    self.stats.dropped_refused += 1;
                    debug!(to = %addr, %error, len = data.len(), "dtls-enet held datagram refused");
                }
            }
        }
    }

    /// Forgets what was held for `addr` (its handshake failed or was abandoned).
    fn drop_held(&mut self, addr: SocketAddr) {
        if let Some(queue) = self.held.remove(&addr) {
            self.stats.dropped_handshaking += queue.len() as u64;
        }
    }

    /// A send to `addr`, which has no session: a client socket starts the handshake.
    fn start_handshake(&mut self, now: Instant, addr: SocketAddr, data: &[u8]) {
        let Some(config) = &self.client else {
            self.stats.dropped_no_session += 1;
            trace!(to = %addr, "dtls-enet server socket: no session with this address; dropped");
            return;
        };
        if self.failures.iter().any(|f| f.address == addr) {
            // The driver has not taken this failure yet: do not start over meanwhile.
            self.stats.dropped_no_session += 1;
            return;
        }
        match self.endpoint.connect(now, addr, config) {
            Ok(_) => {
                debug!(%addr, "dtls-enet handshake started by the first ENet send");
                self.stats.handshakes_started += 1;
                self.connecting.insert(addr, now);
                self.hold(addr, data);
            }
            Err(error) => {
                debug!(%addr, %error, "dtls-enet cannot start a handshake");
                self.stats.dropped_no_session += 1;
                self.fail(addr, FailureCause::Dtls(error));
            }
        }
    }
}

/// Dropping the socket ends every session with close_notify (best effort, one attempt), as
/// Godot's DTLS peers do when freed: a program that exits after closing its ENet host (an ENet
/// DISCONNECT to every peer) thus also ends the DTLS sessions of peers that never answered.
impl<T: EnetSocket> Drop for DtlsEnetSocket<T> {
    fn drop(&mut self) {
        if self.endpoint.session_count() == 0 {
            return;
        }
        self.endpoint.close_all();
        if let Err(e) = self.flush(Instant::now()) {
            debug!(error = %e, "dtls-enet: close_notify not sent on drop");
        }
    }
}

impl<T: EnetSocket> EnetSocket for DtlsEnetSocket<T> {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.transport.local_addr()
    }

    /// The largest ENet datagram that fits one record under any cipher suite:
    /// [`enet_mtu_for_dtls_mtu`] of the configured DTLS MTU (1359 for the default 1440).
    fn max_datagram_size(&self) -> usize {
        self.max_datagram
    }

    /// Encrypts each ENet datagram as one record to its address's session. Datagrams to an
    /// address without a session start a handshake (client sockets) and are dropped, like those
    /// to a session still handshaking. Returns how many were encrypted and handed on.
    fn send_batch(&mut self, now: Instant, batch: &[Transmit]) -> io::Result<usize> {
        let mut sent = 0;
        for t in batch {
            let to = net::normalize(t.destination);
            let Some(h) = self.endpoint.handle_of(to) else {
                self.start_handshake(now, to, &t.data);
                continue;
            };
            match self.endpoint.send(h, &t.data) {
                Ok(()) => {
                    sent += 1;
                    self.stats.records_sent += 1;
                }
                Err(DtlsError::NotConnected) => self.hold(to, &t.data),
                Err(error) => {
                    self.stats.dropped_refused += 1;
                    debug!(%to, %error, len = t.data.len(), "dtls-enet datagram refused");
                }
            }
        }
        self.after_input(now, None);
        self.flush(now)?;
        Ok(sent)
    }

    fn recv_batch(
        &mut self,
        now: Instant,
        sink: &mut dyn FnMut(SocketAddr, &[u8]),
    ) -> io::Result<usize> {
        let mut delivered = 0;
        while let Some((from, data)) = self.stash.pop_front() {
            sink(from, &data);
            delivered += 1;
        }
        for _ in 0..MAX_SWALLOWED_BATCHES {
            let endpoint = &mut self.endpoint;
            // Decrypted datagrams of established sessions go to ENet straight from the
            // decryption buffer; the rest (handshakes, closes) become endpoint events.
            let mut direct = 0;
            let n = self.transport.recv_batch(now, &mut |from, data| {
                direct += endpoint.handle_with(now, from, data, &mut |_, addr, plain| {
                    trace!(from = %addr, len = plain.len(), "dtls-enet recv");
                    sink(addr, plain);
                });
            })?;
            self.stats.records_received += direct as u64;
            delivered += direct;
            self.drained = n == 0 || self.transport.recv_drained();
            delivered += self.after_input(now, Some(&mut *sink));
            // Handshake replies, and the cookie exchange, go out at once.
            self.flush(now)?;
            if delivered > 0 || self.drained {
                return Ok(delivered);
            }
        }
        // Only handshake records so far and more are waiting: say "nothing now" but not
        // drained, so the driver comes back soon.
        self.drained = false;
        Ok(delivered)
    }

    fn recv_drained(&self) -> bool {
        self.drained && self.stash.is_empty()
    }

    fn wait_readable(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        if !self.stash.is_empty() {
            return Ok(true);
        }
        self.transport.wait_readable(timeout)
    }

    fn poll_recv_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.stash.is_empty() {
            return Poll::Ready(Ok(()));
        }
        self.transport.poll_recv_ready(cx)
    }

    /// The earliest DTLS timer: a handshake retransmission or timeout, an idle expiry.
    fn poll_timeout(&self) -> Option<Instant> {
        [self.timer, self.transport.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    fn handle_timeout(&mut self, now: Instant) -> io::Result<()> {
        if self.transport.poll_timeout().is_some_and(|t| t <= now) {
            self.transport.handle_timeout(now)?;
        }
        self.endpoint.handle_timeout(now);
        self.after_input(now, None);
        self.flush(now)
    }

    fn poll_failure(&mut self) -> Option<ConnectionFailure> {
        self.failures.pop_front()
    }

    /// Ends the session with `addr` (close_notify when established). If it was a client
    /// handshake still running, ENet gave up on CONNECT before DTLS did: that is reported as a
    /// [`DtlsError::HandshakeTimeout`] (with the time the handshake ran).
    fn peer_gone(&mut self, now: Instant, addr: SocketAddr) -> Option<ConnectionFailure> {
        let addr = net::normalize(addr);
        let h = self.endpoint.handle_of(addr)?;
        let handshaking = self.endpoint.status(h).ok() == Some(Status::Handshaking);
        let started = self.connecting.remove(&addr);
        self.drop_held(addr);
        let failure = match started {
            Some(start) if handshaking => Some(ConnectionFailure::new(
                addr,
                FailureCause::Dtls(DtlsError::HandshakeTimeout {
                    timeout: now.saturating_duration_since(start),
                }),
            )),
            _ => None,
        };
        debug!(%addr, "dtls-enet: ENet peer gone; session closed");
        let _ = self.endpoint.close(h);
        self.stats.released += 1;
        self.after_input(now, None);
        if let Err(e) = self.flush(now) {
            debug!(%addr, error = %e, "dtls-enet: close_notify not sent");
        }
        failure
    }

    /// While the host takes nobody new (refusing, or full), the endpoint refuses new DTLS
    /// sessions: datagrams from new addresses get no answer, not even a cookie
    /// ([`Endpoint::set_refuse_new_sessions`], counted in `EndpointStats::ignored_refusing`).
    fn set_accepting_new_peers(&mut self, accept: bool) {
        self.endpoint.set_refuse_new_sessions(!accept);
    }
}
