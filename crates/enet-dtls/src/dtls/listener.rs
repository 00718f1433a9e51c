//! [`DtlsListener`]: one UDP socket, stateless cookies, a bounded table of sessions keyed by
//! the peer's address.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use dtls_proto::{
    ClientConfig, CookieListener, DtlsError, DtlsSession, ListenOutcome, PendingState,
    ServerConfig, Status,
};
use tracing::{debug, trace, warn};

use super::Error;

/// Default for [`DtlsListener::set_max_sessions`].
pub const DEFAULT_MAX_SESSIONS: usize = 1024;

/// Largest UDP payload we read; bigger datagrams are truncated by the kernel and then rejected
/// by DTLS record parsing.
const RECV_BUFFER: usize = 65_536;

/// Datagrams handled per [`DtlsListener::poll`] call before timers get their turn, so a flood
/// cannot starve retransmissions and timeouts.
const BATCH: usize = 256;

/// What happened on a [`DtlsListener`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ListenerEvent {
    /// The DTLS handshake with this address completed; it can now send and receive.
    Connected(SocketAddr),
    /// An application datagram arrived from a connected peer.
    Packet(SocketAddr, Vec<u8>),
    /// The peer closed the session (`close_notify`), or [`DtlsListener::close`] did.
    Closed(SocketAddr),
    /// The session with this address failed (handshake timeout, bad certificate, fatal alert,
    /// ...) and was removed.
    Error(SocketAddr, DtlsError),
}

/// Counters of a [`DtlsListener`], for tests and monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenerStats {
    /// UDP datagrams received.
    pub datagrams_received: u64,
    /// Datagrams from unknown addresses that the cookie listener dropped (not a ClientHello).
    pub dropped: u64,
    /// HelloVerifyRequests sent (answers to cookie-less or stale-cookie ClientHellos).
    pub cookies_sent: u64,
    /// Sessions created after a valid cookie.
    pub sessions_accepted: u64,
    /// Valid-cookie ClientHellos refused because [`DtlsListener::max_sessions`] was reached.
    pub sessions_refused: u64,
}

struct Entry {
    session: DtlsSession,
    connected: bool,
    /// The `random` of the ClientHello that created the session, to tell a delayed duplicate
    /// of it from a real reconnection.
    hello_random: Option<[u8; 32]>,
}

/// A DTLS server on one UDP socket, resistant to spoofed ClientHellos.
///
/// Unknown source addresses go through a stateless [`CookieListener`]: a ClientHello without
/// a valid cookie is answered with a HelloVerifyRequest and *nothing is stored*. Only a
/// ClientHello echoing a valid cookie (proof that the client receives at its address) creates
/// a session, and at most [`max_sessions`](Self::max_sessions) of them exist at once.
///
/// Drive it with [`service`](Self::service) (blocks up to a timeout) or
/// [`poll`](Self::poll) (never blocks); both run the sessions' timers (retransmissions,
/// handshake timeout) and return [`ListenerEvent`]s. Sessions are addressed by the peer's
/// `SocketAddr`.
///
/// The same socket can also start client sessions with [`connect`](Self::connect) (use
/// [`bind_client`](Self::bind_client) for an endpoint that only connects); they share the
/// table, the limit and the events.
///
/// ```no_run
/// use std::time::Duration;
/// use enet_dtls::dtls::{DtlsListener, ListenerEvent, ServerConfig};
/// use enet_dtls::dtls_proto::keys::{Certificate, PrivateKey};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let key = PrivateKey::from_pem(&std::fs::read("key.pem")?)?;
/// let cert = Certificate::from_pem(&std::fs::read("cert.pem")?)?;
/// let config = ServerConfig::builder(key, cert).build()?;
/// let mut listener = DtlsListener::bind("127.0.0.1:4433", &config)?;
/// loop {
///     match listener.service(Duration::from_millis(100))? {
///         Some(ListenerEvent::Packet(from, data)) => listener.send_to(from, &data)?, // echo
///         Some(other) => println!("{other:?}"),
///         None => {}
///     }
/// }
/// # }
/// ```
pub struct DtlsListener {
    socket: UdpSocket,
    local_addr: SocketAddr,
    /// `None` for a client-only endpoint ([`DtlsListener::bind_client`]).
    cookies: Option<CookieListener>,
    sessions: HashMap<SocketAddr, Entry>,
    max_sessions: usize,
    events: VecDeque<ListenerEvent>,
    stats: ListenerStats,
    buf: Vec<u8>,
}

impl std::fmt::Debug for DtlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsListener")
            .field("local_addr", &self.local_addr)
            .field("sessions", &self.sessions.len())
            .field("max_sessions", &self.max_sessions)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl DtlsListener {
    /// Binds a UDP socket to `addr` (port 0 picks a free port, see
    /// [`local_addr`](Self::local_addr)) and serves DTLS with `config`.
    ///
    /// # Errors
    /// [`Error::Io`] if the address cannot be bound, [`Error::Dtls`] if OpenSSL refuses the
    /// configuration.
    pub fn bind<A: ToSocketAddrs>(addr: A, config: &ServerConfig) -> Result<Self, Error> {
        let socket = UdpSocket::bind(addr)?;
        Self::from_socket(socket, config)
    }

    /// Serves DTLS on an already bound UDP socket.
    ///
    /// # Errors
    /// As [`bind`](Self::bind).
    pub fn from_socket(socket: UdpSocket, config: &ServerConfig) -> Result<Self, Error> {
        let cookies = CookieListener::new(config)?;
        Self::new(socket, Some(cookies))
    }

    /// Binds a UDP socket to `addr` for outgoing sessions only ([`connect`](Self::connect)):
    /// datagrams from addresses without a session are dropped, nothing is accepted.
    ///
    /// # Errors
    /// [`Error::Io`] if the address cannot be bound.
    pub fn bind_client<A: ToSocketAddrs>(addr: A) -> Result<Self, Error> {
        Self::new(UdpSocket::bind(addr)?, None)
    }

    fn new(socket: UdpSocket, cookies: Option<CookieListener>) -> Result<Self, Error> {
        socket.set_nonblocking(true)?;
        let local_addr = socket.local_addr()?;
        debug!(%local_addr, server = cookies.is_some(), "dtls endpoint bound");
        Ok(Self {
            socket,
            local_addr,
            cookies,
            sessions: HashMap::new(),
            max_sessions: DEFAULT_MAX_SESSIONS,
            events: VecDeque::new(),
            stats: ListenerStats::default(),
            buf: vec![0; RECV_BUFFER],
        })
    }

    /// The address the socket is bound to (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Caps the number of sessions (handshaking or connected). A valid-cookie ClientHello
    /// beyond the cap is dropped; existing sessions are never evicted.
    pub fn set_max_sessions(&mut self, max: usize) {
        self.max_sessions = max;
    }

    /// The session cap (default [`DEFAULT_MAX_SESSIONS`]).
    pub fn max_sessions(&self) -> usize {
        self.max_sessions
    }

    /// How many sessions exist (handshaking or connected). This is *all* the per-source
    /// state the listener keeps: a ClientHello without a valid cookie leaves nothing behind.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Addresses of every session (handshaking or connected).
    pub fn sessions(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.sessions.keys().copied()
    }

    /// The status of the session with `addr`, if there is one.
    pub fn status(&self, addr: SocketAddr) -> Option<Status> {
        self.sessions.get(&addr).map(|e| e.session.status())
    }

    /// The largest application datagram [`send_to`](Self::send_to) accepts for `addr`
    /// (`None` without a session, or before the handshake has chosen a cipher).
    pub fn data_mtu(&self, addr: SocketAddr) -> Option<usize> {
        self.sessions.get(&addr).and_then(|e| e.session.data_mtu())
    }

    /// The cipher suite negotiated with `addr`, once connected.
    pub fn cipher(&self, addr: SocketAddr) -> Option<&'static str> {
        self.sessions
            .get(&addr)
            .and_then(|e| e.session.cipher_name())
    }

    /// What the stateless cookie listener holds: it does not grow with the number of
    /// sources that sent cookie-less ClientHellos.
    pub fn pending_state(&self) -> PendingState {
        self.cookies
            .as_ref()
            .map(CookieListener::pending_state)
            .unwrap_or_default()
    }

    /// Starts a client handshake with the DTLS server at `addr` from this endpoint's socket.
    /// The session joins the same table as accepted ones: [`ListenerEvent::Connected`] (or
    /// [`ListenerEvent::Error`]) follows, then it is used with [`send_to`](Self::send_to) like
    /// any other. This lets one socket both accept and connect (an ENet host does).
    ///
    /// # Errors
    /// [`Error::SessionExists`] if `addr` already has a session,
    /// [`Error::TooManySessions`] at [`max_sessions`](Self::max_sessions), [`Error::Dtls`] if
    /// the session cannot be created.
    pub fn connect(&mut self, addr: SocketAddr, config: &ClientConfig) -> Result<(), Error> {
        if self.sessions.contains_key(&addr) {
            return Err(Error::SessionExists(addr));
        }
        if self.sessions.len() >= self.max_sessions {
            return Err(Error::TooManySessions(self.max_sessions));
        }
        let session = DtlsSession::client(config, Instant::now())?;
        debug!(%addr, "dtls client handshake starts");
        self.sessions.insert(
            addr,
            Entry {
                session,
                connected: false,
                hello_random: None,
            },
        );
        self.after_input(addr);
        Ok(())
    }

    /// Counters (datagrams, cookies, sessions).
    pub fn stats(&self) -> ListenerStats {
        self.stats
    }

    /// Sends one application datagram to the connected peer `addr`.
    ///
    /// # Errors
    /// [`Error::NoSession`] if there is no session with `addr`, [`Error::NotConnected`]
    /// while it is still handshaking, [`Error::Dtls`] if the session refuses the datagram
    /// (too large for [`data_mtu`](Self::data_mtu)), [`Error::Io`] if the socket fails.
    pub fn send_to(&mut self, addr: SocketAddr, data: &[u8]) -> Result<(), Error> {
        let entry = self.sessions.get_mut(&addr).ok_or(Error::NoSession(addr))?;
        let status = entry.session.status();
        if status != Status::Connected {
            return Err(Error::NotConnected(status));
        }
        entry.session.send(data)?;
        flush(&self.socket, addr, &mut entry.session)
    }

    /// Closes the session with `addr` (sends `close_notify`) and removes it; a
    /// [`ListenerEvent::Closed`] follows.
    ///
    /// # Errors
    /// [`Error::NoSession`] if there is no session with `addr`.
    pub fn close(&mut self, addr: SocketAddr) -> Result<(), Error> {
        let mut entry = self.sessions.remove(&addr).ok_or(Error::NoSession(addr))?;
        entry.session.close();
        if let Err(e) = flush(&self.socket, addr, &mut entry.session) {
            debug!(%addr, error = %e, "could not send close_notify");
        }
        self.events.push_back(ListenerEvent::Closed(addr));
        Ok(())
    }

    /// The earliest timer of any session (retransmission or handshake timeout).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sessions
            .values()
            .filter_map(|e| e.session.poll_timeout())
            .min()
    }

    /// Never blocks: reads the datagrams waiting on the socket (at most a batch), runs due
    /// timers, and returns the next event.
    ///
    /// # Errors
    /// [`Error::Io`] if the socket fails for good.
    pub fn poll(&mut self) -> Result<Option<ListenerEvent>, Error> {
        if let Some(ev) = self.events.pop_front() {
            return Ok(Some(ev));
        }
        self.receive_batch()?;
        self.run_timers(Instant::now());
        Ok(self.events.pop_front())
    }

    /// Waits up to `timeout` for the next event, running timers on the way. Returns `None`
    /// when `timeout` passed without one.
    ///
    /// # Errors
    /// [`Error::Io`] if the socket fails for good.
    pub fn service(&mut self, timeout: Duration) -> Result<Option<ListenerEvent>, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(ev) = self.poll()? {
                return Ok(Some(ev));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let mut wake = deadline;
            if let Some(t) = self.poll_timeout() {
                wake = wake.min(t);
            }
            let wait = wake.saturating_duration_since(now);
            if !wait.is_zero() {
                self.wait_readable(wait)?;
            }
        }
    }

    /// Blocks until a datagram is readable or `wait` passed (it does not look at the
    /// sessions' timers: [`service`](Self::service) does). May return early.
    ///
    /// # Errors
    /// [`Error::Io`] if the socket fails.
    pub fn wait_readable(&mut self, wait: Duration) -> Result<(), Error> {
        // Blocking peek with a read timeout: std has no portable poll(2), and this crate has
        // no unsafe code.
        self.socket.set_nonblocking(false)?;
        self.socket
            .set_read_timeout(Some(wait.max(Duration::from_micros(100))))?;
        let r = self.socket.peek_from(&mut self.buf[..1]);
        self.socket.set_nonblocking(true)?;
        match r {
            Ok(_) => Ok(()),
            Err(e) if would_block(&e) || transient(&e) => Ok(()),
            // Linux reports a message larger than the peek buffer as success; others may not.
            Err(e) if e.raw_os_error().is_some() && e.kind() == io::ErrorKind::Other => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn receive_batch(&mut self) -> Result<(), Error> {
        for _ in 0..BATCH {
            let (len, from) = match self.socket.recv_from(&mut self.buf) {
                Ok(x) => x,
                Err(e) if would_block(&e) => return Ok(()),
                Err(e) if transient(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            self.stats.datagrams_received += 1;
            let now = Instant::now();
            let data = std::mem::take(&mut self.buf);
            self.handle_datagram(now, from, &data[..len]);
            self.buf = data;
        }
        Ok(())
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        if let Some(entry) = self.sessions.get_mut(&from) {
            // RFC 6347 section 4.2.8: a connected peer that lost its state (crash, restart)
            // reconnects from the same address with a fresh epoch-0 ClientHello. Let the
            // cookie exchange decide; only a valid cookie replaces the old session.
            let reconnect = entry.connected
                && is_epoch0_handshake(data)
                && client_hello_random(data).is_some_and(|r| Some(r) != entry.hello_random);
            if !reconnect {
                entry.session.handle_datagram(now, data);
                self.after_input(from);
                return;
            }
        }
        let Some(cookies) = self.cookies.as_mut() else {
            self.stats.dropped += 1;
            trace!(%from, len = data.len(), "datagram from unknown address dropped (client-only)");
            return;
        };
        match cookies.handle_datagram(now, from, data) {
            ListenOutcome::Drop => {
                self.stats.dropped += 1;
                trace!(%from, len = data.len(), "datagram from unknown address dropped");
            }
            ListenOutcome::Refused => self.stats.sessions_refused += 1,
            ListenOutcome::Reply(hvr) => {
                self.stats.cookies_sent += 1;
                trace!(%from, "HelloVerifyRequest sent");
                if let Err(e) = self.socket.send_to(&hvr, from) {
                    trace!(%from, error = %e, "could not send HelloVerifyRequest");
                }
            }
            ListenOutcome::Accept(session) => {
                if self.sessions.remove(&from).is_some() {
                    debug!(%from, "peer reconnected with a new handshake; old session dropped");
                    self.events.push_back(ListenerEvent::Closed(from));
                }
                if self.sessions.len() >= self.max_sessions {
                    self.stats.sessions_refused += 1;
                    warn!(%from, max = self.max_sessions, "session limit reached, ClientHello dropped");
                    return;
                }
                self.stats.sessions_accepted += 1;
                debug!(%from, "cookie valid, handshake starts");
                let hello_random = client_hello_random(data);
                self.sessions.insert(
                    from,
                    Entry {
                        session,
                        connected: false,
                        hello_random,
                    },
                );
                self.after_input(from);
            }
        }
    }

    fn run_timers(&mut self, now: Instant) {
        let due: Vec<SocketAddr> = self
            .sessions
            .iter()
            .filter(|(_, e)| e.session.poll_timeout().is_some_and(|t| t <= now))
            .map(|(a, _)| *a)
            .collect();
        for addr in due {
            if let Some(e) = self.sessions.get_mut(&addr) {
                e.session.handle_timeout(now);
            }
            self.after_input(addr);
        }
    }

    /// The drain step after any input to the session with `addr`: send its datagrams, turn
    /// status changes and received data into events, drop it once it is over.
    fn after_input(&mut self, addr: SocketAddr) {
        let Some(entry) = self.sessions.get_mut(&addr) else {
            return;
        };
        if let Err(e) = flush(&self.socket, addr, &mut entry.session) {
            debug!(%addr, error = %e, "send failed");
        }
        let status = entry.session.status();
        if status == Status::Connected && !entry.connected {
            entry.connected = true;
            debug!(%addr, cipher = ?entry.session.cipher_name(), "dtls session connected");
            self.events.push_back(ListenerEvent::Connected(addr));
        }
        while let Some(d) = entry.session.recv() {
            self.events.push_back(ListenerEvent::Packet(addr, d));
        }
        match status {
            Status::Connected | Status::Handshaking => {}
            Status::Disconnected => {
                debug!(%addr, "dtls session closed by peer");
                self.sessions.remove(&addr);
                self.events.push_back(ListenerEvent::Closed(addr));
            }
            _ => {
                let err = entry
                    .session
                    .error()
                    .cloned()
                    .unwrap_or(DtlsError::NotConnected);
                debug!(%addr, error = %err, "dtls session failed");
                self.sessions.remove(&addr);
                self.events.push_back(ListenerEvent::Error(addr, err));
            }
        }
    }
}

impl Drop for DtlsListener {
    /// Sends `close_notify` to every connected peer, so they see a clean close rather than a
    /// timeout.
    fn drop(&mut self) {
        for (addr, entry) in &mut self.sessions {
            if entry.session.status() == Status::Connected {
                entry.session.close();
                if let Err(e) = flush(&self.socket, *addr, &mut entry.session) {
                    debug!(%addr, error = %e, "could not send close_notify");
                }
            }
        }
    }
}

fn flush(socket: &UdpSocket, addr: SocketAddr, session: &mut DtlsSession) -> Result<(), Error> {
    while let Some(d) = session.poll_transmit() {
        match socket.send_to(&d, addr) {
            Ok(_) => {}
            Err(e) if transient(&e) || would_block(&e) => trace!(%addr, error = %e, "send dropped"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A DTLS handshake record (content type 22) in epoch 0: a ClientHello from a peer without a
/// session (record header: type, version, epoch, sequence, length).
fn is_epoch0_handshake(data: &[u8]) -> bool {
    data.len() > 13 && data[0] == 22 && data[3] == 0 && data[4] == 0
}

/// The 32-byte `random` of an unfragmented ClientHello in one record (record header 13
/// bytes, handshake header 12, client_version 2), or `None` if `data` is not one.
fn client_hello_random(data: &[u8]) -> Option<[u8; 32]> {
    const RANDOM: usize = 13 + 12 + 2;
    if !is_epoch0_handshake(data) || data.get(13) != Some(&1) {
        return None;
    }
    data.get(RANDOM..RANDOM + 32)?.try_into().ok()
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}
