//! The blocking driver: [`EnetHost`].

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use enet_proto::{Event, Host, HostConfig, Packet, Peer, PeerId};

use super::driver::Core;
use super::socket::{EnetSocket, UdpEnetSocket};

/// Why [`EnetHost::bind`] (or [`EnetHost::with_socket`]) failed.
///
/// The message includes the wrapped error's, so [`source`](std::error::Error::source) returns
/// `None` (a report that walks the chain prints the cause once).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// The socket could not be created or bound.
    #[error("cannot bind the ENet socket: {0}")]
    Io(io::Error),
    /// The host configuration was refused by the ENet core.
    #[error("invalid ENet host configuration: {0}")]
    Config(enet_proto::Error),
}

impl From<io::Error> for BindError {
    fn from(e: io::Error) -> Self {
        BindError::Io(e)
    }
}

impl From<enet_proto::Error> for BindError {
    fn from(e: enet_proto::Error) -> Self {
        BindError::Config(e)
    }
}

/// An ENet host on a real socket, driven like C ENet's `enet_host_service`.
///
/// It owns an [`EnetSocket`] (plain UDP by default) and an [`enet_proto::Host`], and is the
/// only place that reads the clock. Calls that only queue work ([`connect`](Self::connect),
/// [`send`](Self::send), [`disconnect`](Self::disconnect)...) do no I/O; the datagrams go out on
/// the next [`service`](Self::service) or [`flush`](Self::flush).
///
/// # Example: a client
///
/// ```no_run
/// use std::time::Duration;
/// use enet_dtls::enet::EnetHost;
/// use enet_dtls::enet_proto::{Event, HostConfig, Packet};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut host = EnetHost::bind("127.0.0.1:0", HostConfig::default())?;
/// let server = host.connect("127.0.0.1:7777".parse()?, 2, 0)?;
/// while let Some(event) = host.service(Duration::from_secs(5))? {
///     match event {
///         Event::Connect { .. } => host.send(server, 0, Packet::reliable(b"hi".to_vec()))?,
///         Event::Receive { packet, .. } => {
///             println!("echo: {:?}", packet.data);
///             host.disconnect(server, 0);
///         }
///         Event::Disconnect { .. } => break,
///         _ => {}
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct EnetHost<S: EnetSocket = UdpEnetSocket> {
    socket: S,
    core: Core,
    /// [`set_busy_poll`](Self::set_busy_poll): how long to poll before sleeping (zero: never).
    busy_poll: Duration,
}

impl EnetHost<UdpEnetSocket> {
    /// Binds a UDP socket to `addr` (port 0: any free port; see [`local_addr`](Self::local_addr))
    /// and creates the host.
    pub fn bind<A: ToSocketAddrs>(addr: A, config: HostConfig) -> Result<Self, BindError> {
        let socket = UdpEnetSocket::bind(addr)?;
        EnetHost::with_socket(socket, config)
    }
}

impl<S: EnetSocket> EnetHost<S> {
    /// Creates a host on an existing socket. The configured MTU is capped at the socket's
    /// [`max_datagram_size`](EnetSocket::max_datagram_size).
    pub fn with_socket(socket: S, config: HostConfig) -> Result<Self, BindError> {
        let core = Core::new(config, socket.max_datagram_size(), Instant::now())?;
        Ok(EnetHost {
            socket,
            core,
            busy_poll: Duration::ZERO,
        })
    }

    /// Services the host, like `enet_host_service`: returns a queued event at once if there is
    /// one; otherwise sends what is queued, receives every ready datagram, runs the timers,
    /// sends again (acknowledgements, retransmissions) and returns the first event, or waits
    /// for traffic until `timeout` has passed and returns `Ok(None)`. `Duration::ZERO` never
    /// blocks. `Err` only for a broken socket.
    pub fn service(&mut self, timeout: Duration) -> io::Result<Option<Event>> {
        // One clock read per round: the time a round started stands for the whole round
        // (`block` measures its wait from it, so the deadline is kept exactly).
        let mut now = Instant::now();
        if let Some(event) = self.core.queued_event(&mut self.socket, now)? {
            return Ok(Some(event));
        }
        let deadline = now.checked_add(timeout);
        loop {
            self.pump(now)?;
            if let Some(event) = self.core.poll_event(&mut self.socket, now) {
                return Ok(Some(event));
            }
            if deadline.is_some_and(|d| now >= d) {
                return Ok(None);
            }
            let wake = self.core.wake_at(now, deadline, self.socket.poll_timeout());
            let wait = wake.map(|w| w.saturating_duration_since(now));
            self.block(now, wait)?;
            now = Instant::now();
        }
    }

    /// Makes the host poll its socket, without blocking, for up to `limit` before each sleep
    /// in [`service`](Self::service) and [`wait`](Self::wait) (`Duration::ZERO`, the default:
    /// sleep at once, as C ENet does). Opt-in busy polling, for a server with a core to spare
    /// for its network thread, in the spirit of Linux's `SO_BUSY_POLL`.
    ///
    /// Sleeping costs twice under dense traffic: the kernel's sleep and wake-up of this
    /// thread, and the sender's wake-up of it. When the next datagram is only microseconds
    /// away, polling for it answers sooner, and then the peers send sooner. Measured on this
    /// project's 2-core VM while it was otherwise idle (where a wake-up is slow), with
    /// `enet-dtls enet-echo --busy-poll-us 20` driven by C ENet clients (three alternating
    /// rounds against the same server without it): with 64 messages in flight, 1.37-1.45x C
    /// ENet's messages per second instead of 0.80-0.86x, at 0.73-0.87x C's CPU per message
    /// instead of 0.79-0.91x; a ping-pong round trip of 66-68 us instead of 43-91 us. The
    /// price: every wait that finds nothing spends up to `limit` of CPU before it sleeps (a
    /// 1 MiB transfer cost 0.61-0.67x C's CPU per MiB instead of 0.51-0.59x), and a host that
    /// shares its core with other busy threads takes time from them.
    ///
    /// ```
    /// use std::time::Duration;
    /// use enet_dtls::enet::EnetHost;
    /// use enet_dtls::enet_proto::HostConfig;
    ///
    /// let mut server = EnetHost::bind("127.0.0.1:0", HostConfig::server()).unwrap();
    /// server.set_busy_poll(Duration::from_micros(20));
    /// assert_eq!(server.busy_poll(), Duration::from_micros(20));
    /// ```
    pub fn set_busy_poll(&mut self, limit: Duration) {
        self.busy_poll = limit;
    }

    /// The limit set by [`set_busy_poll`](Self::set_busy_poll) (zero: off).
    pub fn busy_poll(&self) -> Duration {
        self.busy_poll
    }

    /// Waits until the socket is readable, for at most `limit` from `start` (`None`: no
    /// limit), polling first for up to the busy-poll limit. Returns whether it is.
    fn block(&mut self, start: Instant, limit: Option<Duration>) -> io::Result<bool> {
        let spin = limit.map_or(self.busy_poll, |l| l.min(self.busy_poll));
        if !spin.is_zero() {
            let polling = Instant::now();
            loop {
                if self.socket.wait_readable(Some(Duration::ZERO))? {
                    return Ok(true);
                }
                if polling.elapsed() >= spin {
                    break;
                }
                std::hint::spin_loop();
            }
        }
        let left = limit.map(|l| l.saturating_sub(start.elapsed()));
        self.socket.wait_readable(left)
    }

    /// Waits until [`service`](Self::service) has something to do: a datagram is readable,
    /// or a timer of the host (retransmission, ping, timeout) or of the socket is due; for at
    /// most `timeout` (`None`: no limit). Returns whether one of those happened (`false`: the
    /// time ran out). It neither sends nor receives: call `service(Duration::ZERO)` next.
    ///
    /// For programs with a loop of their own; [`service`](Self::service) with a timeout does
    /// the same wait itself. Events already queued are not looked at: drain them with
    /// [`check_events`](Self::check_events) or `service` before waiting.
    ///
    /// # Errors
    /// The socket's, when waiting on it fails.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        let now = Instant::now();
        let timer = self.core.next_timer(self.socket.poll_timeout());
        if timer.is_some_and(|t| t <= now) {
            return Ok(true);
        }
        let limit = Core::wait_limit(now, timeout, timer);
        let readable = self.block(now, limit)?;
        Ok(readable || timer.is_some_and(|t| Instant::now() >= t))
    }

    super::driver::forward_host_methods!();

    /// The socket.
    pub fn socket(&self) -> &S {
        &self.socket
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    fn pump(&mut self, now: Instant) -> io::Result<()> {
        self.core.round(&mut self.socket, now)
    }

    fn send_queued(&mut self, now: Instant) -> io::Result<()> {
        self.core.send_via(&mut self.socket, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// Counts the socket's waits: polls (zero timeout) and sleeps (any other).
    struct CountingWaits {
        inner: UdpEnetSocket,
        polls: usize,
        sleeps: usize,
    }

    impl EnetSocket for CountingWaits {
        crate::forward_enet_socket!(field: inner, except: [wait_readable]);

        fn wait_readable(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
            if timeout == Some(Duration::ZERO) {
                self.polls += 1;
            } else {
                self.sleeps += 1;
            }
            self.inner.wait_readable(timeout)
        }
    }

    fn counting_host(busy_poll: Duration) -> EnetHost<CountingWaits> {
        let socket = CountingWaits {
            inner: UdpEnetSocket::bind("127.0.0.1:0").unwrap(),
            polls: 0,
            sleeps: 0,
        };
        let mut host = EnetHost::with_socket(socket, HostConfig::default()).unwrap();
        host.set_busy_poll(busy_poll);
        host
    }

    /// With busy polling, a wait polls the socket before it sleeps: a datagram that arrives
    /// within the limit is found by polling, without sleeping; nothing within the limit ends
    /// in one sleep for the rest of the wait. Without it, a wait only sleeps.
    #[test]
    fn busy_poll_polls_before_sleeping_and_only_when_set() {
        let mut off = counting_host(Duration::ZERO);
        assert!(!off.wait(Some(Duration::from_millis(5))).unwrap());
        assert_eq!((off.socket().polls, off.socket().sleeps), (0, 1));

        let mut on = counting_host(Duration::from_millis(2));
        let started = Instant::now();
        assert!(!on.wait(Some(Duration::from_millis(20))).unwrap());
        assert!(started.elapsed() >= Duration::from_millis(20));
        assert!(on.socket().polls > 1, "{}", on.socket().polls);
        assert_eq!(on.socket().sleeps, 1);

        // A datagram sent while the host polls (the limit is far longer than the sender's
        // delay) is found by a poll: no sleep.
        let mut on = counting_host(Duration::from_secs(10));
        let to = on.local_addr().unwrap();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(2));
            let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            udp.send_to(b"not enet", to).unwrap();
        });
        assert!(on.wait(Some(Duration::from_secs(30))).unwrap());
        sender.join().unwrap();
        assert!(on.socket().polls >= 1);
        assert_eq!(on.socket().sleeps, 0);
    }

    /// While flushes are deferred, `flush` sends nothing; the next flush after sends the queued
    /// packets together, in one datagram, and the peer gets every one of them in order.
    #[test]
    fn deferred_flushes_pack_the_queued_packets() {
        use enet_proto::{Event, Packet, PacketFlags};
        let mut server = EnetHost::bind("127.0.0.1:0", HostConfig::default()).unwrap();
        let mut client = EnetHost::bind("127.0.0.1:0", HostConfig::default()).unwrap();
        let to_server = client.connect(server.local_addr().unwrap(), 2, 0).unwrap();
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        let mut to_client = None;
        let mut client_connected = false;
        while to_client.is_none() || !client_connected {
            assert!(std::time::Instant::now() < give_up, "no connection");
            if let Some(Event::Connect { peer, .. }) =
                server.service(Duration::from_millis(1)).unwrap()
            {
                to_client = Some(peer);
            }
            if let Some(Event::Connect { peer, .. }) =
                client.service(Duration::from_millis(1)).unwrap()
            {
                client_connected = peer == to_server;
            }
        }
        let to_client = to_client.unwrap();
        // Let the last acknowledgements go, so the next datagram carries only our packets.
        for _ in 0..5 {
            while server.service(Duration::from_millis(2)).unwrap().is_some() {}
            while client.service(Duration::from_millis(2)).unwrap().is_some() {}
        }
        let before = server.host().stats().packets_sent;
        server.defer_flushes(true);
        for i in 0..10u8 {
            let packet = Packet::new(vec![i; 20], PacketFlags::RELIABLE);
            server.send(to_client, 0, packet).unwrap();
            server.flush().unwrap();
        }
        assert_eq!(
            server.host().stats().packets_sent,
            before,
            "sent while deferred"
        );
        server.defer_flushes(false);
        server.flush().unwrap();
        assert_eq!(
            server.host().stats().packets_sent,
            before + 1,
            "one datagram"
        );
        let mut got = Vec::new();
        while got.len() < 10 {
            assert!(std::time::Instant::now() < give_up, "got {got:?}");
            if let Some(Event::Receive { packet, .. }) =
                client.service(Duration::from_millis(5)).unwrap()
            {
                got.push(packet.data[0]);
            }
        }
        assert_eq!(got, (0..10).collect::<Vec<u8>>());
    }

    #[test]
    fn bind_errors_print_their_cause_once() {
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = EnetHost::bind(taken.local_addr().unwrap(), HostConfig::default()).unwrap_err();
        assert!(matches!(&err, BindError::Io(e) if e.kind() == io::ErrorKind::AddrInUse));
        let text = err.to_string();
        assert!(text.starts_with("cannot bind the ENet socket: "), "{text}");
        assert!(text.len() > "cannot bind the ENet socket: ".len(), "{text}");
        assert!(err.source().is_none());
        let config = HostConfig {
            channel_limit: 0,
            peer_limit: 0,
            ..HostConfig::default()
        };
        let err = EnetHost::bind("127.0.0.1:0", config).unwrap_err();
        assert!(matches!(err, BindError::Config(_)), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("invalid ENet host configuration: "),
            "{err}"
        );
        assert!(err.source().is_none());
    }
}
