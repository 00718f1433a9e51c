//! [`DtlsListener`]: a thin driver over the sans-IO [`dtls_proto::Endpoint`]: it owns the UDP
//! socket and reads the clock; the endpoint does everything else (cookies, session table, limits,
//! timers).

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use dtls_proto::{
    ClientConfig, DtlsError, Endpoint, EndpointConfig, EndpointStats, Event, PendingState,
    ServerConfig, Status, Transmit,
};
use tracing::{debug, trace};

use super::Error;

pub use dtls_proto::DEFAULT_MAX_SESSIONS;

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
    /// Valid-cookie ClientHellos refused because the session table or the source address's
    /// share was full (see [`EndpointStats`] for the split).
    pub sessions_refused: u64,
}

/// A DTLS server on one UDP socket, resistant to spoofed ClientHellos: the socket-owning driver
/// of a sans-IO [`dtls_proto::Endpoint`].
///
/// Unknown source addresses go through a stateless cookie listener: a ClientHello without
/// a valid cookie is answered with a HelloVerifyRequest and *nothing is stored*. Only a
/// ClientHello echoing a valid cookie (proof that the client receives at its address) creates
/// a session, within the endpoint's limits ([`EndpointConfig`]: at most
/// [`max_sessions`](Self::max_sessions) sessions, a per-address share, a handshake timeout and
/// an idle timeout of 30 s by default); a refused ClientHello costs no handshake work.
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
    endpoint: Endpoint,
    events: VecDeque<ListenerEvent>,
    datagrams_received: u64,
    buf: Vec<u8>,
}

impl std::fmt::Debug for DtlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsListener")
            .field("local_addr", &self.local_addr)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl DtlsListener {
    /// Binds a UDP socket to `addr` (port 0 picks a free port, see
    /// [`local_addr`](Self::local_addr)) and serves DTLS with `config` and the default limits.
    ///
    /// # Errors
    /// [`Error::Io`] if the address cannot be bound, [`Error::Dtls`] if OpenSSL refuses the
    /// configuration.
    pub fn bind<A: ToSocketAddrs>(addr: A, config: &ServerConfig) -> Result<Self, Error> {
        Self::bind_with_limits(addr, config, EndpointConfig::default())
    }

    /// Like [`bind`](Self::bind) with explicit limits (session cap, per-address share, idle
    /// timeout).
    ///
    /// # Errors
    /// As [`bind`](Self::bind); [`Error::Dtls`] with [`DtlsError::Config`] for an invalid limit
    /// (`max_sessions == 0`, ...).
    pub fn bind_with_limits<A: ToSocketAddrs>(
        addr: A,
        config: &ServerConfig,
        limits: EndpointConfig,
    ) -> Result<Self, Error> {
        let endpoint = Endpoint::server(limits, config)?;
        Self::new(UdpSocket::bind(addr)?, endpoint)
    }

    /// Serves DTLS on an already bound UDP socket.
    ///
    /// # Errors
    /// As [`bind`](Self::bind).
    pub fn from_socket(socket: UdpSocket, config: &ServerConfig) -> Result<Self, Error> {
        let endpoint = Endpoint::server(EndpointConfig::default(), config)?;
        Self::new(socket, endpoint)
    }

    /// Binds a UDP socket to `addr` for outgoing sessions only ([`connect`](Self::connect)):
    /// datagrams from addresses without a session are dropped, nothing is accepted.
    ///
    /// # Errors
    /// [`Error::Io`] if the address cannot be bound.
    pub fn bind_client<A: ToSocketAddrs>(addr: A) -> Result<Self, Error> {
        let endpoint = Endpoint::client(EndpointConfig::default())?;
        Self::new(UdpSocket::bind(addr)?, endpoint)
    }

    fn new(socket: UdpSocket, endpoint: Endpoint) -> Result<Self, Error> {
        socket.set_nonblocking(true)?;
        let local_addr = socket.local_addr()?;
        debug!(%local_addr, server = endpoint.is_server(), "dtls endpoint bound");
        Ok(Self {
            socket,
            local_addr,
            endpoint,
            events: VecDeque::new(),
            datagrams_received: 0,
            buf: vec![0; RECV_BUFFER],
        })
    }

    /// The address the socket is bound to (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The sans-IO endpoint underneath (limits, detailed [`EndpointStats`], sessions by handle).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Replaces the limits (existing sessions are never evicted).
    ///
    /// # Errors
    /// [`Error::Dtls`] with [`DtlsError::Config`] for an invalid limit; the old ones stay.
    pub fn set_limits(&mut self, limits: EndpointConfig) -> Result<(), Error> {
        Ok(self.endpoint.set_config(limits)?)
    }

    /// Caps the number of sessions (handshaking or connected). A valid-cookie ClientHello
    /// beyond the cap is refused before any handshake work; existing sessions are never evicted.
    ///
    /// # Errors
    /// [`Error::Dtls`] with [`DtlsError::Config`] if `max` is 0.
    pub fn set_max_sessions(&mut self, max: usize) -> Result<(), Error> {
        let limits = self.endpoint.config().clone().max_sessions(max);
        self.set_limits(limits)
    }

    /// The session cap (default [`DEFAULT_MAX_SESSIONS`]).
    pub fn max_sessions(&self) -> usize {
        self.endpoint.config().get_max_sessions()
    }

    /// How many sessions exist (handshaking or connected). This is *all* the per-source
    /// state the listener keeps: a ClientHello without a valid cookie leaves nothing behind.
    pub fn session_count(&self) -> usize {
        self.endpoint.session_count()
    }

    /// Addresses of every session (handshaking or connected).
    pub fn sessions(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.endpoint.sessions().map(|(_, addr)| addr)
    }

    /// The status of the session with `addr`, if there is one.
    pub fn status(&self, addr: SocketAddr) -> Option<Status> {
        let h = self.endpoint.handle_of(addr)?;
        self.endpoint.status(h).ok()
    }

    /// The largest application datagram [`send_to`](Self::send_to) accepts for `addr`
    /// (`None` without a session, or before the handshake has chosen a cipher).
    pub fn data_mtu(&self, addr: SocketAddr) -> Option<usize> {
        let h = self.endpoint.handle_of(addr)?;
        self.endpoint.session(h).ok()?.data_mtu()
    }

    /// The cipher suite negotiated with `addr`, once connected.
    pub fn cipher(&self, addr: SocketAddr) -> Option<&'static str> {
        let h = self.endpoint.handle_of(addr)?;
        self.endpoint.session(h).ok()?.cipher_name()
    }

    /// What the stateless cookie listener holds: it does not grow with the number of
    /// sources that sent cookie-less ClientHellos.
    pub fn pending_state(&self) -> PendingState {
        self.endpoint.pending_state()
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
        match self.endpoint.connect(Instant::now(), addr, config) {
            Ok(_) => {}
            Err(DtlsError::SessionExists { addr }) => return Err(Error::SessionExists(addr)),
            Err(DtlsError::SessionLimit { max }) => return Err(Error::TooManySessions(max)),
            Err(e) => return Err(e.into()),
        }
        self.drain()
    }

    /// Counters (datagrams, cookies, sessions); [`endpoint_stats`](Self::endpoint_stats) has
    /// the details (refusals and expiries by cause, bytes).
    pub fn stats(&self) -> ListenerStats {
        let st = self.endpoint.stats();
        ListenerStats {
            datagrams_received: self.datagrams_received,
            dropped: st.dropped,
            cookies_sent: st.cookies_sent,
            sessions_accepted: st.server_handshakes_started,
            sessions_refused: st.refused(),
        }
    }

    /// The endpoint's detailed counters.
    pub fn endpoint_stats(&self) -> EndpointStats {
        self.endpoint.stats()
    }

    /// Sends one application datagram to the connected peer `addr`.
    ///
    /// # Errors
    /// [`Error::NoSession`] if there is no session with `addr`, [`Error::NotConnected`]
    /// while it is still handshaking, [`Error::Dtls`] if the session refuses the datagram
    /// (too large for [`data_mtu`](Self::data_mtu)), [`Error::Io`] if the socket fails.
    pub fn send_to(&mut self, addr: SocketAddr, data: &[u8]) -> Result<(), Error> {
        let h = self
            .endpoint
            .handle_of(addr)
            .ok_or(Error::NoSession(addr))?;
        let status = self.endpoint.status(h)?;
        if status != Status::Connected {
            return Err(Error::NotConnected(status));
        }
        let sent = self.endpoint.send(h, data);
        self.drain()?;
        Ok(sent?)
    }

    /// Closes the session with `addr` (sends `close_notify`) and removes it; a
    /// [`ListenerEvent::Closed`] follows.
    ///
    /// # Errors
    /// [`Error::NoSession`] if there is no session with `addr`.
    pub fn close(&mut self, addr: SocketAddr) -> Result<(), Error> {
        let h = self
            .endpoint
            .handle_of(addr)
            .ok_or(Error::NoSession(addr))?;
        self.endpoint.close(h)?;
        if let Err(e) = self.drain() {
            debug!(%addr, error = %e, "could not send close_notify");
        }
        Ok(())
    }

    /// Closes every session (close_notify to each connected peer) and sends what that
    /// produced, e.g. on shutdown; a [`ListenerEvent::Closed`] follows for each.
    ///
    /// # Errors
    /// [`Error::Io`] if the socket fails.
    pub fn close_all(&mut self) -> Result<(), Error> {
        self.endpoint.close_all();
        self.drain()
    }

    /// The earliest timer of any session (retransmission, handshake or idle timeout).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.endpoint.poll_timeout()
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
        let now = Instant::now();
        if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
            self.endpoint.handle_timeout(now);
        }
        self.drain()?;
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
        // poll(2) through the shared socket layer; the sessions' timers are `service`'s job.
        crate::net::wait_readable(&self.socket, Some(wait))?;
        Ok(())
    }

    fn receive_batch(&mut self) -> Result<(), Error> {
        for _ in 0..BATCH {
            let (len, from) = match self.socket.recv_from(&mut self.buf) {
                Ok(x) => x,
                Err(e) if would_block(&e) => return Ok(()),
                Err(e) if transient(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            self.datagrams_received += 1;
            self.endpoint.handle(Instant::now(), from, &self.buf[..len]);
            self.drain()?;
        }
        Ok(())
    }

    /// Sends every queued datagram and turns the endpoint's events into [`ListenerEvent`]s.
    fn drain(&mut self) -> Result<(), Error> {
        let mut result = Ok(());
        while let Some(t) = self.endpoint.poll_transmit() {
            if let Err(e) = self.send(&t) {
                result = Err(e);
            }
        }
        while let Some(ev) = self.endpoint.poll_event() {
            self.events.push_back(match ev {
                Event::Connected { addr, .. } => ListenerEvent::Connected(addr),
                Event::Data { addr, data, .. } => ListenerEvent::Packet(addr, data),
                Event::Closed { addr, reason, .. } => {
                    debug!(%addr, ?reason, "dtls session closed");
                    ListenerEvent::Closed(addr)
                }
                Event::Failed { addr, error, .. } => ListenerEvent::Error(addr, error),
                other => {
                    trace!(?other, "dtls endpoint event not mapped");
                    continue;
                }
            });
        }
        result
    }

    fn send(&self, t: &Transmit) -> Result<(), Error> {
        // The endpoint reports IPv4 peers as IPv4; an IPv6 socket needs them IPv4-mapped.
        let to = match (self.local_addr, t.destination) {
            (SocketAddr::V6(_), SocketAddr::V4(v4)) => {
                SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
            }
            (_, to) => to,
        };
        match self.socket.send_to(&t.contents, to) {
            Ok(_) => Ok(()),
            Err(e) if transient(&e) || would_block(&e) => {
                trace!(%to, error = %e, "send dropped");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl Drop for DtlsListener {
    /// Sends `close_notify` to every connected peer, so they see a clean close rather than a
    /// timeout.
    fn drop(&mut self) {
        if let Err(e) = self.close_all() {
            debug!(error = %e, "could not send close_notify to every peer");
        }
    }
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// Errors after which the socket is still fine: a signal or an ICMP report about an earlier
/// datagram (the shared socket layer's classification).
fn transient(e: &io::Error) -> bool {
    crate::net::is_transient(e)
}
