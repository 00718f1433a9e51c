//! [`Endpoint`]: many DTLS sessions on one socket, sans-IO, in the quinn-proto shape.
//!
//! The endpoint owns the session table (keyed by the peer's address, addressed by generational
//! [`SessionHandle`]s), the stateless cookie listener in front of it, the RFC 6347 section 4.2.8
//! reconnect rule, and every limit a server facing the Internet needs: a session cap, a per-source-address
//! share, a handshake (half-open) timeout and an idle timeout, with refusals decided before any expensive
//! work. It reads no clock and owns no socket: the caller feeds datagrams with [`Endpoint::handle`] and
//! time with [`Endpoint::handle_timeout`], then drains [`Endpoint::poll_transmit`] and
//! [`Endpoint::poll_event`] and sleeps until [`Endpoint::poll_timeout`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::record::client_hello;
use crate::session::SessionEvent;
use crate::{
    ClientConfig, CookieListener, DtlsError, DtlsSession, ListenOutcome, PendingState,
    ServerConfig, Status, MAX_DATAGRAM_SIZE,
};

/// Default [`EndpointConfig::max_sessions`].
pub const DEFAULT_MAX_SESSIONS: usize = 1024;
/// Default [`EndpointConfig::idle_timeout`]: an established session whose peer sent no application data
/// for this long is closed. ENet peers ping every second and time out after 5 to 30 s of silence, so an
/// ENet peer never hits it; a dead or abandoned peer frees its slot within half a minute.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Smallest default per-address share (unless `max_sessions` is smaller): a LAN party of 16 players
/// behind one NAT always fits.
pub const MIN_DEFAULT_SESSIONS_PER_ADDRESS: usize = 16;
/// At most one refusal warning per this much (caller) time; the next one reports how many were folded.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Bound of the transmit and event queues when the caller does not drain them (a broken drain loop):
/// beyond it, datagrams and data events are dropped (as a full socket buffer would) instead of growing.
const MAX_QUEUED: usize = 65_536;

/// Limits of an [`Endpoint`]. Build with [`EndpointConfig::default`] and the setters; checked by
/// [`Endpoint::server`] / [`Endpoint::client`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfig {
    max_sessions: usize,
    max_sessions_per_address: Option<usize>,
    idle_timeout: Option<Duration>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_sessions_per_address: None,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
        }
    }
}

impl EndpointConfig {
    /// Most sessions at once, handshaking (half-open) and established alike, accepted and connected
    /// alike (default [`DEFAULT_MAX_SESSIONS`]). Must be at least 1.
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.max_sessions = n;
        self
    }

    /// Most accepted sessions (handshaking or established) from one source: one IPv4 address, or one
    /// IPv6 /64 prefix (what one IPv6 subscriber usually holds). Must be at least 1.
    ///
    /// Default: `max(max_sessions / 8, min(max_sessions, 16))`, so one address can take at most an eighth
    /// of a large table (1024 sessions: 128) and a NAT with up to 16 players always fits. With a full
    /// share, valid-cookie ClientHellos from that source are refused while other sources still get in.
    pub fn max_sessions_per_address(mut self, n: usize) -> Self {
        self.max_sessions_per_address = Some(n);
        self
    }

    /// Closes established sessions whose peer sent no application data for `timeout`
    /// ([`CloseReason::IdleTimeout`]); `None` disables it. Default [`DEFAULT_IDLE_TIMEOUT`]. Half-open
    /// sessions expire after the handshake timeout of their [`ServerConfig`] / [`ClientConfig`].
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The session cap.
    pub fn get_max_sessions(&self) -> usize {
        self.max_sessions
    }

    /// The per-source share in effect (the configured one, or the default rule).
    pub fn get_max_sessions_per_address(&self) -> usize {
        self.max_sessions_per_address.unwrap_or_else(|| {
            (self.max_sessions / 8).max(self.max_sessions.min(MIN_DEFAULT_SESSIONS_PER_ADDRESS))
        })
    }

    /// The idle timeout.
    pub fn get_idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    fn validate(&self) -> Result<(), DtlsError> {
        if self.max_sessions == 0 {
            return Err(DtlsError::Config {
                message: "max_sessions must be at least 1 (0 would refuse every client)".into(),
            });
        }
        if self.max_sessions_per_address == Some(0) {
            return Err(DtlsError::Config {
                message:
                    "max_sessions_per_address must be at least 1 (0 would refuse every client)"
                        .into(),
            });
        }
        if self.idle_timeout.is_some_and(|t| t.is_zero()) {
            return Err(DtlsError::Config {
                message: "idle_timeout must be greater than zero (use None to disable it)".into(),
            });
        }
        Ok(())
    }
}

/// Names one session of an [`Endpoint`]. Generational: once the session ends, the handle stays stale
/// even if its slot is reused ([`DtlsError::UnknownSession`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionHandle {
    index: u32,
    generation: u32,
}

impl SessionHandle {
    /// The slot index (reused after the session ends).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The slot's generation when the session was created.
    pub fn generation(&self) -> u32 {
        self.generation
    }
}

/// One datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it (IPv4 peers are always IPv4 addresses, even on a dual-stack socket: the driver maps
    /// them back to `::ffff:a.b.c.d` if its socket needs it).
    pub destination: SocketAddr,
    /// The datagram.
    pub contents: Vec<u8>,
}

/// Why a session ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer sent close_notify.
    Remote,
    /// [`Endpoint::close`] or [`Endpoint::close_all`].
    Local,
    /// The established session was silent for the idle timeout (close_notify was sent).
    IdleTimeout,
    /// The peer reconnected from the same address with a new, cookie-verified handshake (RFC 6347
    /// section 4.2.8); a new session with a new handle replaces this one.
    Replaced,
}

/// What happened on an [`Endpoint`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The handshake with `addr` completed.
    Connected {
        /// The session.
        handle: SessionHandle,
        /// The peer.
        addr: SocketAddr,
    },
    /// An application datagram arrived.
    Data {
        /// The session.
        handle: SessionHandle,
        /// The peer.
        addr: SocketAddr,
        /// The decrypted datagram.
        data: Vec<u8>,
    },
    /// The session ended cleanly (the handle is stale from now on).
    Closed {
        /// The session.
        handle: SessionHandle,
        /// The peer.
        addr: SocketAddr,
        /// Why.
        reason: CloseReason,
    },
    /// The session failed (the handle is stale from now on). A half-open session that did not complete
    /// its handshake in time fails with [`DtlsError::HandshakeTimeout`] (counted in
    /// [`EndpointStats::expired_handshake`]).
    Failed {
        /// The session.
        handle: SessionHandle,
        /// The peer.
        addr: SocketAddr,
        /// The cause.
        error: DtlsError,
    },
}

/// Counters of an [`Endpoint`], for tests and monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointStats {
    /// Sessions now (handshaking or established).
    pub sessions: usize,
    /// Sessions created: accepted after a valid cookie, or started by [`Endpoint::connect`].
    pub sessions_created: u64,
    /// Server handshakes started: the server flight (with its signature) was built. Refusals never count.
    pub server_handshakes_started: u64,
    /// Handshakes that completed.
    pub handshakes_completed: u64,
    /// Handshakes that failed (timeout included).
    pub handshakes_failed: u64,
    /// Established sessions that failed later (fatal alert, decrypt failure).
    pub sessions_failed: u64,
    /// HelloVerifyRequests sent.
    pub cookies_sent: u64,
    /// Valid-cookie ClientHellos refused because the table was full.
    pub refused_table_full: u64,
    /// Valid-cookie ClientHellos refused because their source had its share.
    pub refused_address_share: u64,
    /// Datagrams that would have gone to the cookie listener (from an address without a session,
    /// or a reconnecting ClientHello) while new sessions were refused
    /// ([`Endpoint::set_refuse_new_sessions`]): dropped unanswered, before any parsing, cookie or
    /// OpenSSL work. Not part of [`refused`](Self::refused).
    pub ignored_refusing: u64,
    /// Half-open sessions expired by the handshake timeout.
    pub expired_handshake: u64,
    /// Established sessions expired by the idle timeout.
    pub expired_idle: u64,
    /// Datagrams from addresses without a session that were dropped (not a ClientHello, malformed,
    /// client-only endpoint).
    pub dropped: u64,
    /// Datagrams handed to [`Endpoint::handle`].
    pub datagrams_in: u64,
    /// Bytes handed to [`Endpoint::handle`].
    pub bytes_in: u64,
    /// Datagrams handed out by [`Endpoint::poll_transmit`].
    pub datagrams_out: u64,
    /// Bytes handed out by [`Endpoint::poll_transmit`].
    pub bytes_out: u64,
}

impl EndpointStats {
    /// All refusals.
    pub fn refused(&self) -> u64 {
        self.refused_table_full + self.refused_address_share
    }
}

/// The per-source key of the address share: an IPv4 address, or an IPv6 /64 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    V4(u32),
    V6(u64),
}

/// Queues one datagram for `poll_transmit`, or drops it (traced) when the queue is full.
fn queue_transmit(transmits: &mut VecDeque<Transmit>, destination: SocketAddr, contents: Vec<u8>) {
    if transmits.len() >= MAX_QUEUED {
        tracing::trace!("dtls endpoint transmit queue full (not drained?); datagram dropped");
        return;
    }
    transmits.push_back(Transmit {
        destination,
        contents,
    });
}

/// Moves every datagram `session` has written into the endpoint's queue, addressed to `addr`
/// (no per-call vectors).
fn drain_transmits(
    transmits: &mut VecDeque<Transmit>,
    session: &mut DtlsSession,
    addr: SocketAddr,
) {
    while let Some(contents) = session.poll_transmit() {
        queue_transmit(transmits, addr, contents);
    }
}

fn source_of(addr: SocketAddr) -> Source {
    match addr.ip() {
        IpAddr::V4(ip) => Source::V4(u32::from(ip)),
        IpAddr::V6(ip) => Source::V6((u128::from(ip) >> 64) as u64),
    }
}

/// `::ffff:a.b.c.d:port` becomes `a.b.c.d:port`; anything else is unchanged. IPv4 peers seen on a
/// dual-stack socket are then the same peers as on an IPv4 socket.
pub fn normalize_addr(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => addr,
        },
        v4 => v4,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    TableFull,
    AddressShare,
}

struct Entry {
    addr: SocketAddr,
    session: DtlsSession,
    connected: bool,
    /// Accepted from the network (counts toward its source's share).
    accepted: bool,
    /// The `random` of the ClientHello that created an accepted session: a later epoch-0 ClientHello
    /// with another random is a reconnection (RFC 6347 section 4.2.8), the same one a duplicate.
    hello_random: Option<[u8; 32]>,
    last_activity: Instant,
    /// The session's own next timer (retransmission, handshake timeout), cached after every input
    /// so `poll_timeout` needs no call into OpenSSL.
    timer: Option<Instant>,
    /// The `when` of this session's live entry in the endpoint's timer heap: never later than
    /// [`Entry::deadline`] (see `Endpoint::timers`).
    scheduled: Option<Instant>,
}

impl Entry {
    /// The session's next deadline: its own timer, or the idle expiry once connected.
    fn deadline(&self, idle: Option<Duration>) -> Option<Instant> {
        let idle_at = idle
            .filter(|_| self.connected)
            .map(|t| self.last_activity + t);
        match (self.timer, idle_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Where decrypted datagrams go when they skip the event queue ([`Endpoint::handle_with`]).
type Deliver<'a> = &'a mut dyn FnMut(SessionHandle, SocketAddr, &[u8]);

/// One entry of the timer heap: (when, slot index, slot generation), earliest first.
type TimerEntry = Reverse<(Instant, u32, u32)>;

/// The timer heap is rebuilt when it holds more than twice the sessions plus this many entries
/// (stale entries of ended sessions, superseded deadlines).
const TIMER_HEAP_SLACK: usize = 64;

struct Slot {
    generation: u32,
    entry: Option<Entry>,
}

/// Many DTLS sessions on one socket, sans-IO (see the module docs).
///
/// * Server side ([`Endpoint::server`]): datagrams from unknown addresses go to a stateless
///   [`CookieListener`]; nothing is kept per source before a valid cookie. A valid-cookie ClientHello
///   creates a session only if the table and the source's share have room; otherwise it is refused
///   before OpenSSL does any work (counted, one rate-limited `warn!` line per burst).
/// * Client side: [`Endpoint::connect`] starts a handshake from the same socket; both kinds share the
///   table, the cap and the events ([`Endpoint::client`] makes an endpoint that only connects).
/// * Timers: handshake timeouts (half-open expiry), OpenSSL's retransmissions (in the caller's time, see
///   [`crate::virtual_time_supported`]) and the idle timeout of established sessions.
/// * IPv4-mapped IPv6 addresses are normalised to IPv4 everywhere ([`normalize_addr`]).
///
/// Drain contract: after every input ([`handle`](Self::handle), [`handle_timeout`](Self::handle_timeout),
/// [`connect`](Self::connect), [`send`](Self::send), [`close`](Self::close)), drain
/// [`poll_transmit`](Self::poll_transmit) and [`poll_event`](Self::poll_event) until `None`, then wait
/// for the next datagram or [`poll_timeout`](Self::poll_timeout).
///
/// ```
/// use std::time::Instant;
/// use dtls_proto::keys::{Certificate, CertificateParams, KeyType, PrivateKey};
/// use dtls_proto::{ClientConfig, Endpoint, EndpointConfig, Event, ServerConfig};
///
/// let now = Instant::now();
/// let key = PrivateKey::generate(KeyType::EcP256).unwrap();
/// let cert = Certificate::self_signed(&key, &CertificateParams::new("localhost")).unwrap();
/// let mut server = Endpoint::server(EndpointConfig::default(), &ServerConfig::builder(key, cert).build().unwrap()).unwrap();
/// let mut client = Endpoint::client(EndpointConfig::default()).unwrap();
/// let (s_addr, c_addr) = ("127.0.0.1:4433".parse().unwrap(), "127.0.0.1:5000".parse().unwrap());
/// let h = client.connect(now, s_addr, &ClientConfig::builder().verify(false).build().unwrap()).unwrap();
/// for _ in 0..10 {
///     while let Some(t) = client.poll_transmit() { server.handle(now, c_addr, &t.contents); }
///     while let Some(t) = server.poll_transmit() { client.handle(now, s_addr, &t.contents); }
/// }
/// assert!(matches!(client.poll_event(), Some(Event::Connected { handle, .. }) if handle == h));
/// client.send(h, b"hi").unwrap();
/// while let Some(t) = client.poll_transmit() { server.handle(now, c_addr, &t.contents); }
/// assert!(matches!(server.poll_event(), Some(Event::Connected { .. })));
/// assert!(matches!(server.poll_event(), Some(Event::Data { data, .. }) if data == b"hi"));
/// ```
pub struct Endpoint {
    config: EndpointConfig,
    listener: Option<CookieListener>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_addr: HashMap<SocketAddr, u32>,
    /// The last address found in `by_addr` and its slot (most datagrams come from the peer of
    /// the one before): saves hashing it again. Cleared whenever `by_addr` changes.
    last_lookup: Option<(SocketAddr, u32)>,
    per_source: HashMap<Source, usize>,
    transmits: VecDeque<Transmit>,
    /// Deadlines of the sessions, earliest first, with lazy invalidation: every session with a
    /// deadline has an entry here no later than it (its `scheduled`), and after every public
    /// `&mut self` call the top entry is exact (`settle_timers`), so `poll_timeout` is a peek
    /// and `handle_timeout` visits only the sessions whose entries are due. A deadline that
    /// moves later (activity pushes the idle expiry back) leaves its entry in place until it
    /// reaches the top; then the real deadline is pushed.
    timers: BinaryHeap<TimerEntry>,
    /// Scratch list of the slots `handle_timeout` visits (kept for its capacity).
    due: Vec<u32>,
    events: VecDeque<Event>,
    stats: EndpointStats,
    last_refusal_log: Option<Instant>,
    refusals_since_log: u64,
    /// [`Endpoint::set_refuse_new_sessions`].
    refuse_new: bool,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("config", &self.config)
            .field("server", &self.listener.is_some())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// An endpoint that accepts DTLS clients with `server` (and can also [`connect`](Self::connect)).
    ///
    /// # Errors
    /// [`DtlsError::Config`] if a limit is invalid (`max_sessions == 0`, ...), [`DtlsError::Openssl`] if
    /// the cookie listener cannot be created.
    pub fn server(config: EndpointConfig, server: &ServerConfig) -> Result<Self, DtlsError> {
        config.validate()?;
        let listener = CookieListener::new(server)?;
        Ok(Self::new(config, Some(listener)))
    }

    /// An endpoint that only [`connect`](Self::connect)s: datagrams from addresses without a session are
    /// dropped.
    ///
    /// # Errors
    /// [`DtlsError::Config`] if a limit is invalid.
    pub fn client(config: EndpointConfig) -> Result<Self, DtlsError> {
        config.validate()?;
        Ok(Self::new(config, None))
    }

    fn new(config: EndpointConfig, listener: Option<CookieListener>) -> Self {
        Endpoint {
            config,
            listener,
            slots: Vec::new(),
            free: Vec::new(),
            by_addr: HashMap::new(),
            last_lookup: None,
            per_source: HashMap::new(),
            transmits: VecDeque::new(),
            timers: BinaryHeap::new(),
            due: Vec::new(),
            events: VecDeque::new(),
            stats: EndpointStats::default(),
            last_refusal_log: None,
            refusals_since_log: 0,
            refuse_new: false,
        }
    }

    /// Refuses (or accepts again) new sessions from the network, for a server whose application
    /// takes nobody in at the moment (Godot's `refuse_new_connections`, a full ENet host): every
    /// datagram that would go to the cookie listener (from an address without a session, or an
    /// epoch-0 ClientHello reconnecting over an existing session) is dropped unanswered before
    /// it is even parsed, so the client gets no HelloVerifyRequest and the server does no
    /// handshake work at all; counted in [`EndpointStats::ignored_refusing`]. Sessions that exist
    /// (established or still handshaking) and our own [`connect`](Self::connect)s are not
    /// affected. Off by default.
    pub fn set_refuse_new_sessions(&mut self, refuse: bool) {
        if refuse != self.refuse_new {
            tracing::debug!(
                refuse,
                "dtls endpoint: new sessions refused (or accepted again)"
            );
        }
        self.refuse_new = refuse;
    }

    /// Whether new sessions are refused ([`set_refuse_new_sessions`](Self::set_refuse_new_sessions)).
    pub fn refuses_new_sessions(&self) -> bool {
        self.refuse_new
    }

    /// The limits in effect.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Replaces the limits. Existing sessions are never evicted; a lower cap only refuses new ones. A
    /// changed idle timeout applies to the next deadline computed.
    ///
    /// # Errors
    /// [`DtlsError::Config`] if a limit is invalid (the old limits stay).
    pub fn set_config(&mut self, config: EndpointConfig) -> Result<(), DtlsError> {
        config.validate()?;
        self.config = config;
        // Idle deadlines may move earlier: schedule every session again.
        self.rebuild_timers();
        Ok(())
    }

    /// Whether this endpoint accepts clients.
    pub fn is_server(&self) -> bool {
        self.listener.is_some()
    }

    /// Counters.
    pub fn stats(&self) -> EndpointStats {
        EndpointStats {
            sessions: self.by_addr.len(),
            ..self.stats
        }
    }

    /// What the stateless cookie listener holds (default for a client-only endpoint).
    pub fn pending_state(&self) -> PendingState {
        self.listener
            .as_ref()
            .map(CookieListener::pending_state)
            .unwrap_or_default()
    }

    /// Number of sessions (handshaking or established).
    pub fn session_count(&self) -> usize {
        self.by_addr.len()
    }

    /// Every session's handle and peer address.
    pub fn sessions(&self) -> impl Iterator<Item = (SessionHandle, SocketAddr)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            let e = s.entry.as_ref()?;
            Some((handle(i, s.generation), e.addr))
        })
    }

    /// The session with the peer `addr` (normalised), if any.
    pub fn handle_of(&self, addr: SocketAddr) -> Option<SessionHandle> {
        let addr = normalize_addr(addr);
        let index = match self.last_lookup {
            Some((a, i)) if a == addr => i,
            _ => *self.by_addr.get(&addr)?,
        };
        let slot = self.slots.get(index as usize)?;
        Some(handle(index as usize, slot.generation))
    }

    /// The peer address of a session.
    ///
    /// # Errors
    /// [`DtlsError::UnknownSession`] for a stale handle.
    pub fn addr(&self, h: SessionHandle) -> Result<SocketAddr, DtlsError> {
        Ok(self.entry(h)?.addr)
    }

    /// The session behind a handle (read-only: status, cipher, data MTU, peer certificate).
    ///
    /// # Errors
    /// [`DtlsError::UnknownSession`] for a stale handle.
    pub fn session(&self, h: SessionHandle) -> Result<&DtlsSession, DtlsError> {
        Ok(&self.entry(h)?.session)
    }

    /// The status of a session.
    ///
    /// # Errors
    /// [`DtlsError::UnknownSession`] for a stale handle.
    pub fn status(&self, h: SessionHandle) -> Result<Status, DtlsError> {
        Ok(self.entry(h)?.session.status())
    }

    fn entry(&self, h: SessionHandle) -> Result<&Entry, DtlsError> {
        self.slots
            .get(h.index as usize)
            .filter(|s| s.generation == h.generation)
            .and_then(|s| s.entry.as_ref())
            .ok_or(DtlsError::UnknownSession)
    }

    /// Starts a client handshake with the DTLS server at `addr` (normalised); the ClientHello is ready
    /// in [`poll_transmit`](Self::poll_transmit), and [`Event::Connected`] or [`Event::Failed`] follows.
    ///
    /// # Errors
    /// [`DtlsError::SessionExists`] if `addr` has a session, [`DtlsError::SessionLimit`] when the table
    /// is full, or why OpenSSL refused to create the session.
    pub fn connect(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        config: &ClientConfig,
    ) -> Result<SessionHandle, DtlsError> {
        let addr = normalize_addr(addr);
        if self.by_addr.contains_key(&addr) {
            return Err(DtlsError::SessionExists { addr });
        }
        if self.by_addr.len() >= self.config.max_sessions {
            return Err(DtlsError::SessionLimit {
                max: self.config.max_sessions,
            });
        }
        let session = DtlsSession::client(config, now)?;
        tracing::debug!(%addr, "dtls endpoint starts a client handshake");
        let h = self.insert(Entry {
            addr,
            session,
            connected: false,
            accepted: false,
            hello_random: None,
            last_activity: now,
            timer: None,
            scheduled: None,
        });
        self.after_input(h.index as usize, now);
        self.settle_timers();
        Ok(h)
    }

    /// Encrypts `data` as one datagram to the session's peer (queued for `poll_transmit`).
    ///
    /// # Errors
    /// [`DtlsError::UnknownSession`] for a stale handle; [`DtlsError::NotConnected`] while handshaking;
    /// [`DtlsError::PacketTooLarge`] beyond the session's data MTU; [`DtlsError::EmptyPacket`] for an
    /// empty `data`.
    pub fn send(&mut self, h: SessionHandle, data: &[u8]) -> Result<(), DtlsError> {
        let slot = self
            .slots
            .get_mut(h.index as usize)
            .filter(|s| s.generation == h.generation)
            .ok_or(DtlsError::UnknownSession)?;
        let entry = slot.entry.as_mut().ok_or(DtlsError::UnknownSession)?;
        let result = entry.session.send(data);
        if result.is_ok() {
            // An application record written: it only adds datagrams (no event, and OpenSSL
            // starts no timer for application data), so skip the full drain step.
            drain_transmits(&mut self.transmits, &mut entry.session, entry.addr);
            return result;
        }
        let now = entry.last_activity;
        // A failed write may have failed the session: report it like any other input.
        self.after_input(h.index as usize, now);
        self.settle_timers();
        result
    }

    /// Closes a session: close_notify when established, then [`Event::Closed`] with
    /// [`CloseReason::Local`]; the handle is stale afterwards.
    ///
    /// # Errors
    /// [`DtlsError::UnknownSession`] for a stale handle.
    pub fn close(&mut self, h: SessionHandle) -> Result<(), DtlsError> {
        self.entry(h)?;
        self.end(h.index as usize, CloseReason::Local, true);
        self.settle_timers();
        Ok(())
    }

    /// Closes every session (close_notify to each established peer), e.g. on shutdown.
    pub fn close_all(&mut self) {
        for i in 0..self.slots.len() {
            if self.slots[i].entry.is_some() {
                self.end(i, CloseReason::Local, true);
            }
        }
        self.settle_timers();
    }

    /// Handles one datagram that arrived from `from`.
    pub fn handle(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.handle_inner(now, from, data, None);
        self.settle_timers();
    }

    /// Like [`handle`](Self::handle), but the application datagrams of an established session
    /// go to `deliver` (with the session and the peer) straight from the decryption buffer,
    /// instead of becoming [`Event::Data`] (no copy, no queue), as long as no event is
    /// waiting in [`poll_event`](Self::poll_event): then they queue behind it, so events and
    /// data keep their order. Returns how many datagrams went to `deliver`.
    pub fn handle_with(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
        deliver: &mut dyn FnMut(SessionHandle, SocketAddr, &[u8]),
    ) -> usize {
        let delivered = self.handle_inner(now, from, data, Some(deliver));
        self.settle_timers();
        delivered
    }

    fn handle_inner(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
        deliver: Option<Deliver<'_>>,
    ) -> usize {
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += data.len() as u64;
        let from = normalize_addr(from);
        if data.is_empty() || data.len() > MAX_DATAGRAM_SIZE {
            self.stats.dropped += 1;
            return 0;
        }
        let existing = match self.last_lookup {
            Some((a, i)) if a == from => Some(i),
            _ => {
                let found = self.by_addr.get(&from).copied();
                if let Some(i) = found {
                    self.last_lookup = Some((from, i));
                }
                found
            }
        };
        if let Some(index) = existing {
            let slot = &mut self.slots[index as usize];
            let generation = slot.generation;
            if let Some(entry) = slot.entry.as_mut() {
                // RFC 6347 section 4.2.8: a peer that lost its state reconnects from the same address
                // with a fresh epoch-0 ClientHello; only a valid cookie (the listener's check) replaces
                // the session. The ClientHello that created it (same random) is a retransmission. This
                // holds for accepted sessions still in their handshake too (a client restarted
                // mid-handshake need not wait for the half-open timeout), and for established
                // sessions we started.
                let reconnect = (entry.connected || entry.accepted)
                    && client_hello(data).is_some_and(|h| Some(h.random) != entry.hello_random);
                if !reconnect {
                    let mut delivered = 0;
                    match deliver {
                        Some(deliver) if self.events.is_empty() => {
                            let h = handle(index as usize, generation);
                            delivered = entry
                                .session
                                .handle_datagram_with(now, data, &mut |p| deliver(h, from, p));
                            if delivered > 0 {
                                entry.last_activity = now;
                            }
                        }
                        _ => entry.session.handle_datagram(now, data),
                    }
                    self.after_input(index as usize, now);
                    return delivered;
                }
            }
        }
        if self.refuse_new && self.listener.is_some() {
            // Nobody new is taken in: no reply, no cookie check, no state (a reconnection would
            // start a handshake too).
            self.stats.ignored_refusing += 1;
            tracing::trace!(%from, len = data.len(), "dtls endpoint refuses new sessions; datagram ignored");
            return 0;
        }
        let room = match existing {
            // A reconnection replaces its own session: no new room needed.
            Some(_) => Ok(()),
            None => self.room_for(from),
        };
        let Some(listener) = self.listener.as_mut() else {
            self.stats.dropped += 1;
            tracing::trace!(%from, len = data.len(), "dtls endpoint dropped a datagram from an unknown address (client-only)");
            return 0;
        };
        match listener.handle_datagram_admit(now, from, data, room.is_ok()) {
            ListenOutcome::Drop => {
                self.stats.dropped += 1;
                tracing::trace!(%from, len = data.len(), "dtls endpoint dropped a datagram from an unknown address");
            }
            ListenOutcome::Reply(hvr) => {
                self.stats.cookies_sent += 1;
                self.push_transmit(from, hvr);
            }
            ListenOutcome::Refused => {
                let cause = room.err().unwrap_or(Refusal::TableFull);
                self.refuse(now, from, cause);
            }
            ListenOutcome::Accept(session) => {
                if let Some(old) = existing {
                    tracing::debug!(%from, "dtls peer reconnected with a new handshake; old session replaced");
                    self.end(old as usize, CloseReason::Replaced, false);
                }
                self.stats.server_handshakes_started += 1;
                let h = self.insert(Entry {
                    addr: from,
                    session,
                    connected: false,
                    accepted: true,
                    hello_random: client_hello(data).map(|h| h.random),
                    last_activity: now,
                    timer: None,
                    scheduled: None,
                });
                tracing::debug!(%from, ?h, "dtls cookie valid, handshake starts");
                self.after_input(h.index as usize, now);
            }
        }
        0
    }

    /// Runs every timer due at `now`: idle expiry, handshake expiry, retransmissions. Only the
    /// sessions whose timer-heap entries are due are visited, in slot order.
    pub fn handle_timeout(&mut self, now: Instant) {
        let idle = self.config.idle_timeout;
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        while let Some(&Reverse((when, index, generation))) = self.timers.peek() {
            if when > now {
                break;
            }
            self.timers.pop();
            let slot = &mut self.slots[index as usize];
            if slot.generation == generation {
                if let Some(entry) = slot.entry.as_mut() {
                    // Its heap entry is gone: scheduled again below.
                    entry.scheduled = None;
                    due.push(index);
                }
            }
        }
        due.sort_unstable();
        due.dedup();
        for &index in &due {
            let i = index as usize;
            let Some(entry) = self.slots[i].entry.as_mut() else {
                continue;
            };
            if entry.connected && idle.is_some_and(|t| now >= entry.last_activity + t) {
                tracing::debug!(addr = %entry.addr, "dtls session idle for too long; closing it");
                self.stats.expired_idle += 1;
                self.end(i, CloseReason::IdleTimeout, true);
                continue;
            }
            if entry.timer.is_some_and(|t| t <= now) {
                entry.session.handle_timeout(now);
                self.after_input(i, now);
            }
            self.schedule(i);
        }
        self.due = due;
        self.settle_timers();
    }

    /// The earliest timer of any session (retransmission, handshake or idle timeout). Constant
    /// time: the top of a timer heap that every `&mut self` call leaves exact.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|&Reverse((when, _, _))| when)
    }

    /// Makes sure the session in slot `index` has a heap entry no later than its deadline.
    fn schedule(&mut self, index: usize) {
        let idle = self.config.idle_timeout;
        let generation = self.slots[index].generation;
        let Some(entry) = self.slots[index].entry.as_mut() else {
            return;
        };
        let Some(deadline) = entry.deadline(idle) else {
            return;
        };
        if !matches!(entry.scheduled, Some(s) if s <= deadline) {
            entry.scheduled = Some(deadline);
            self.timers
                .push(Reverse((deadline, index as u32, generation)));
        }
    }

    /// Drops or reschedules heap entries until the top one is exact (or the heap is empty),
    /// and rebuilds the heap when stale entries pile up.
    fn settle_timers(&mut self) {
        if self.timers.len() > 2 * self.by_addr.len() + TIMER_HEAP_SLACK {
            self.rebuild_timers();
        }
        let idle = self.config.idle_timeout;
        while let Some(&Reverse((when, index, generation))) = self.timers.peek() {
            let slot = &mut self.slots[index as usize];
            let entry = match slot.entry.as_mut() {
                Some(e) if slot.generation == generation && e.scheduled == Some(when) => e,
                // An ended session, or a deadline superseded by an earlier entry.
                _ => {
                    self.timers.pop();
                    continue;
                }
            };
            let deadline = entry.deadline(idle);
            if deadline == Some(when) {
                return;
            }
            // The deadline moved later (or went away): schedule the real one.
            self.timers.pop();
            entry.scheduled = deadline;
            if let Some(d) = deadline {
                self.timers.push(Reverse((d, index, generation)));
            }
        }
    }

    /// One heap entry per session with a deadline, exact.
    fn rebuild_timers(&mut self) {
        let idle = self.config.idle_timeout;
        let mut heap = std::mem::take(&mut self.timers).into_vec();
        heap.clear();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if let Some(entry) = slot.entry.as_mut() {
                entry.scheduled = entry.deadline(idle);
                if let Some(d) = entry.scheduled {
                    heap.push(Reverse((d, index as u32, slot.generation)));
                }
            }
        }
        self.timers = BinaryHeap::from(heap);
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.transmits.pop_front()?;
        self.stats.datagrams_out += 1;
        self.stats.bytes_out += t.contents.len() as u64;
        Some(t)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Gives back a buffer once done with it: the `contents` of a sent [`Transmit`] or the
    /// `data` of an [`Event::Data`]. The next datagram encrypted or decrypted on this thread
    /// reuses its allocation instead of allocating, so a steady stream of records allocates
    /// nothing per datagram. Optional; a small per-thread pool (bounded in count and buffer
    /// size) keeps them.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        crate::bio::recycle(buf);
    }

    fn room_for(&self, from: SocketAddr) -> Result<(), Refusal> {
        if self.by_addr.len() >= self.config.max_sessions {
            return Err(Refusal::TableFull);
        }
        let used = self.per_source.get(&source_of(from)).copied().unwrap_or(0);
        if used >= self.config.get_max_sessions_per_address() {
            return Err(Refusal::AddressShare);
        }
        Ok(())
    }

    fn refuse(&mut self, now: Instant, from: SocketAddr, cause: Refusal) {
        match cause {
            Refusal::TableFull => self.stats.refused_table_full += 1,
            Refusal::AddressShare => self.stats.refused_address_share += 1,
        }
        self.refusals_since_log += 1;
        let due = match self.last_refusal_log {
            None => true,
            Some(at) => now.saturating_duration_since(at) >= REFUSAL_LOG_INTERVAL,
        };
        if due {
            let why = match cause {
                Refusal::TableFull => {
                    format!("session table full ({} sessions)", self.config.max_sessions)
                }
                Refusal::AddressShare => format!(
                    "source address at its share ({} sessions per address)",
                    self.config.get_max_sessions_per_address()
                ),
            };
            tracing::warn!(
                %from,
                refused = self.refusals_since_log,
                "dtls endpoint refusing valid-cookie ClientHellos: {why}; refusals since the last warning: {}",
                self.refusals_since_log
            );
            self.last_refusal_log = Some(now);
            self.refusals_since_log = 0;
        } else {
            tracing::debug!(%from, ?cause, "dtls endpoint refused a valid-cookie ClientHello");
        }
    }

    fn insert(&mut self, entry: Entry) -> SessionHandle {
        self.stats.sessions_created += 1;
        let addr = entry.addr;
        if entry.accepted {
            *self.per_source.entry(source_of(addr)).or_insert(0) += 1;
        }
        let index = match self.free.pop() {
            Some(i) => i as usize,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    entry: None,
                });
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[index];
        slot.entry = Some(entry);
        self.last_lookup = None;
        self.by_addr.insert(addr, index as u32);
        handle(index, slot.generation)
    }

    /// Removes the session in slot `index`, closing it first if `notify` (close_notify when established),
    /// and reports [`Event::Closed`] with `reason`.
    fn end(&mut self, index: usize, reason: CloseReason, notify: bool) {
        let h = handle(index, self.slots[index].generation);
        let Some(mut entry) = self.remove(index) else {
            return;
        };
        if notify {
            entry.session.close();
            while let Some(d) = entry.session.poll_transmit() {
                self.push_transmit(entry.addr, d);
            }
        }
        if !entry.connected {
            self.stats.handshakes_failed += 1;
        }
        self.events.push_back(Event::Closed {
            handle: h,
            addr: entry.addr,
            reason,
        });
    }

    fn remove(&mut self, index: usize) -> Option<Entry> {
        let slot = self.slots.get_mut(index)?;
        let entry = slot.entry.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index as u32);
        self.last_lookup = None;
        self.by_addr.remove(&entry.addr);
        if entry.accepted {
            let key = source_of(entry.addr);
            if let Some(n) = self.per_source.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_source.remove(&key);
                }
            }
        }
        Some(entry)
    }

    fn push_transmit(&mut self, destination: SocketAddr, contents: Vec<u8>) {
        queue_transmit(&mut self.transmits, destination, contents);
    }

    /// The drain step after any input to the session in slot `index`: queue its datagrams, turn its
    /// events and data into endpoint events, remove it once it is over.
    fn after_input(&mut self, index: usize, now: Instant) {
        let generation = self.slots[index].generation;
        let h = handle(index, generation);
        let Some(entry) = self.slots[index].entry.as_mut() else {
            return;
        };
        let addr = entry.addr;
        // Datagrams and data go straight into the endpoint's queues (no per-call vectors).
        drain_transmits(&mut self.transmits, &mut entry.session, addr);
        let mut terminal = None;
        while let Some(ev) = entry.session.poll_event() {
            match ev {
                SessionEvent::Connected => {
                    entry.connected = true;
                    entry.last_activity = now;
                    self.stats.handshakes_completed += 1;
                    tracing::debug!(%addr, "dtls session connected");
                    self.events.push_back(Event::Connected { handle: h, addr });
                }
                SessionEvent::Closed => terminal = Some(Ok(())),
                SessionEvent::Failed(e) => terminal = Some(Err(e)),
            }
        }
        while let Some(data) = entry.session.recv() {
            entry.last_activity = now;
            if self.events.len() >= MAX_QUEUED {
                tracing::trace!("dtls endpoint event queue full (not drained?); datagram dropped");
                continue;
            }
            self.events.push_back(Event::Data {
                handle: h,
                addr,
                data,
            });
        }
        let was_connected = entry.connected;
        entry.timer = entry.session.poll_timeout();
        let deadline = entry.deadline(self.config.idle_timeout);
        if let Some(d) = deadline.filter(|&d| !matches!(entry.scheduled, Some(s) if s <= d)) {
            entry.scheduled = Some(d);
            self.timers.push(Reverse((d, index as u32, generation)));
        }
        match terminal {
            None => {}
            Some(Ok(())) => {
                tracing::debug!(%addr, "dtls peer closed the session");
                self.remove(index);
                self.events.push_back(Event::Closed {
                    handle: h,
                    addr,
                    reason: CloseReason::Remote,
                });
            }
            Some(Err(error)) => {
                tracing::debug!(%addr, %error, "dtls session failed");
                if was_connected {
                    self.stats.sessions_failed += 1;
                } else {
                    self.stats.handshakes_failed += 1;
                    if matches!(error, DtlsError::HandshakeTimeout { .. }) {
                        self.stats.expired_handshake += 1;
                    }
                }
                self.remove(index);
                self.events.push_back(Event::Failed {
                    handle: h,
                    addr,
                    error,
                });
            }
        }
    }
}

fn handle(index: usize, generation: u32) -> SessionHandle {
    SessionHandle {
        index: u32::try_from(index).unwrap_or(u32::MAX),
        generation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Certificate, CertificateParams, KeyType, PrivateKey};

    /// What `poll_timeout` computed before the timer heap: a scan of every session.
    fn scan(ep: &Endpoint) -> Option<Instant> {
        let idle = ep.config.idle_timeout;
        ep.slots
            .iter()
            .filter_map(|s| s.entry.as_ref())
            .filter_map(|e| e.deadline(idle))
            .min()
    }

    /// A tiny deterministic generator (xorshift), so the run is the same every time.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Many clients against one server under loss, with data, closes, reconnections, stalled
    /// handshakes, idle expiry and a changed idle timeout: after every call the heap's
    /// `poll_timeout` equals the full scan, on the server and on every client, and the heap
    /// stays bounded.
    #[test]
    fn timer_heap_matches_a_full_scan() {
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let cert = Certificate::self_signed(&key, &CertificateParams::new("localhost")).unwrap();
        let server_cfg = ServerConfig::builder(key, cert).build().unwrap();
        let client_cfg = ClientConfig::builder().verify(false).build().unwrap();
        let limits = EndpointConfig::default()
            .idle_timeout(Some(Duration::from_secs(3)))
            .max_sessions(12);
        let mut server = Endpoint::server(limits, &server_cfg).unwrap();
        let s_addr: SocketAddr = "10.0.0.1:4433".parse().unwrap();
        let n = 16;
        // Four clients per address (the share of a 12-session table is 12).
        let c_addr = |i: usize| SocketAddr::from(([10, 0, 1, (i % 4) as u8], 5000 + i as u16));
        let mut clients: Vec<Endpoint> = (0..n)
            .map(|_| Endpoint::client(EndpointConfig::default()).unwrap())
            .collect();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut now = Instant::now();
        let check = |server: &Endpoint, clients: &[Endpoint]| {
            assert_eq!(server.poll_timeout(), scan(server));
            assert!(server.timers.len() <= 2 * server.session_count() + TIMER_HEAP_SLACK + 1);
            for c in clients {
                assert_eq!(c.poll_timeout(), scan(c));
            }
        };
        let mut connected = 0;
        for step in 0..4000 {
            match rng.below(10) {
                0 => {
                    let i = rng.below(n as u64) as usize;
                    if clients[i].session_count() == 0 {
                        clients[i].connect(now, s_addr, &client_cfg).unwrap();
                    } else if let Some(h) = clients[i].handle_of(s_addr) {
                        match rng.below(3) {
                            0 => clients[i].close(h).unwrap(),
                            _ => {
                                let _ = clients[i].send(h, &[step as u8; 40]);
                            }
                        }
                    }
                }
                1 => {
                    let pick = server.sessions().nth(rng.below(4) as usize);
                    if let Some((h, _)) = pick {
                        if rng.below(2) == 0 {
                            let _ = server.send(h, b"from the server");
                        } else {
                            server.close(h).unwrap();
                        }
                    }
                }
                2 if step == 2000 => {
                    let idle = Duration::from_millis(500 + rng.below(3000));
                    server
                        .set_config(server.config().clone().idle_timeout(Some(idle)))
                        .unwrap();
                }
                3 => {
                    now += Duration::from_millis(rng.below(1500));
                    server.handle_timeout(now);
                    for c in &mut clients {
                        c.handle_timeout(now);
                    }
                }
                _ => now += Duration::from_millis(rng.below(40)),
            }
            check(&server, &clients);
            // Deliver, losing one datagram in eight.
            for (i, c) in clients.iter_mut().enumerate() {
                while let Some(t) = c.poll_transmit() {
                    if rng.below(8) != 0 {
                        server.handle(now, c_addr(i), &t.contents);
                    }
                }
            }
            while let Some(t) = server.poll_transmit() {
                let i = (0..n).find(|&i| c_addr(i) == t.destination).unwrap();
                if rng.below(8) != 0 {
                    clients[i].handle(now, s_addr, &t.contents);
                }
            }
            while let Some(e) = server.poll_event() {
                connected += usize::from(matches!(e, Event::Connected { .. }));
            }
            for c in &mut clients {
                while c.poll_event().is_some() {}
            }
            check(&server, &clients);
        }
        assert!(connected > 20, "{connected}");
        assert!(server.stats().expired_idle > 0, "{:?}", server.stats());
    }
}
