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
    /// [`set_busy_poll`](Self::set_busy_poll): whether and how long to poll before sleeping.
    busy_poll: BusyPoll,
    /// For [`BusyPoll::Adaptive`]: whether the next wait polls (the last one ended soon).
    poll_next: bool,
    /// For [`BusyPoll::Adaptive`]: polling that found nothing since `budget_since`, held to
    /// [`BusyPoll::ADAPTIVE_BUDGET`] per [`BusyPoll::ADAPTIVE_BUDGET_PERIOD`].
    fruitless: Duration,
    budget_since: Instant,
}

/// Whether [`EnetHost`] polls its socket, without blocking, before it sleeps
/// ([`EnetHost::set_busy_poll`]), in the spirit of Linux's `SO_BUSY_POLL`.
///
/// Under dense traffic, sleeping costs twice: this thread's sleep and wake-up in the kernel,
/// and the sender's wake-up of it. When the next datagram is only microseconds away, polling
/// for it costs less and answers sooner, so the peers send sooner too. When it is not,
/// polling is CPU spent for nothing.
///
/// ```
/// use std::time::Duration;
/// use enet_dtls::enet::BusyPoll;
///
/// // The default: poll for up to 40 us, only while waits end within 50 us.
/// let mode = BusyPoll::default();
/// assert!(matches!(mode, BusyPoll::Adaptive(_) | BusyPoll::Off));
/// assert_eq!(BusyPoll::Always(Duration::ZERO).limit(), Duration::ZERO);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusyPoll {
    /// Sleep at once when there is nothing to do, as C ENet does.
    Off,
    /// Poll for up to this long before every sleep: the lowest latency under dense traffic,
    /// for a server with a core to spare; every wait that finds nothing costs the limit.
    Always(Duration),
    /// Poll for up to this long only while traffic is dense: when the host's last wait ended
    /// by a datagram within [`BusyPoll::ADAPTIVE_WINDOW`] (or its last poll found one). A
    /// host whose datagrams come further apart, such as a server of idle peers, only sleeps;
    /// a busy one sleeps far less often. Polling that finds nothing is held to
    /// [`BusyPoll::ADAPTIVE_BUDGET`] per [`BusyPoll::ADAPTIVE_BUDGET_PERIOD`] (a tenth of
    /// a core), for traffic whose gaps are just longer than the limit.
    Adaptive(Duration),
}

impl BusyPoll {
    /// How soon a wait must end for [`BusyPoll::Adaptive`] to poll before the next one.
    pub const ADAPTIVE_WINDOW: Duration = Duration::from_micros(50);

    /// The default poll limit of [`BusyPoll::Adaptive`]: long enough for a peer's next
    /// datagram in a request/response exchange on one machine (its acknowledgement, then its
    /// next request) to be found without a sleep.
    pub const ADAPTIVE_LIMIT: Duration = Duration::from_micros(40);

    /// The most time [`BusyPoll::Adaptive`] spends on polls that find nothing in one
    /// [`BusyPoll::ADAPTIVE_BUDGET_PERIOD`]; past it, waits only sleep until the period ends.
    pub const ADAPTIVE_BUDGET: Duration = Duration::from_millis(10);

    /// The period of [`BusyPoll::ADAPTIVE_BUDGET`].
    pub const ADAPTIVE_BUDGET_PERIOD: Duration = Duration::from_millis(100);

    /// The longest time one wait polls (zero for [`BusyPoll::Off`]).
    pub fn limit(self) -> Duration {
        match self {
            BusyPoll::Off => Duration::ZERO,
            BusyPoll::Always(limit) | BusyPoll::Adaptive(limit) => limit,
        }
    }
}

impl Default for BusyPoll {
    /// [`BusyPoll::Adaptive`] for up to [`BusyPoll::ADAPTIVE_LIMIT`] when the machine runs
    /// two threads or more at once; [`BusyPoll::Off`] on a single CPU, where polling would
    /// only take time from the thread it waits for.
    fn default() -> Self {
        match std::thread::available_parallelism() {
            Ok(n) if n.get() > 1 => BusyPoll::Adaptive(BusyPoll::ADAPTIVE_LIMIT),
            _ => BusyPoll::Off,
        }
    }
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
            busy_poll: BusyPoll::default(),
            poll_next: false,
            fruitless: Duration::ZERO,
            budget_since: Instant::now(),
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

    /// Sets whether the host polls its socket, without blocking, before each sleep in
    /// [`service`](Self::service) and [`wait`](Self::wait): [`BusyPoll::Off`] sleeps at once,
    /// as C ENet does; the default is [`BusyPoll::Adaptive`] (see [`BusyPoll::default`]).
    ///
    /// Measured on this project's 2-core VM against a C ENet client (`enet-dtls enet-echo`,
    /// medians of five rounds alternating with `--busy-poll-us 0` and C ENet's echo host):
    /// with 300,000 echoed 64-byte messages, 64 in flight, adaptive polling moved 1.15x the
    /// messages per second of the same server without it, at 0.98x its CPU per message
    /// (1.64x C ENet's messages/s at 0.57x its CPU); a one-message ping-pong took 42 us
    /// (p50) instead of 95 us (C ENet: 79 us). Its costs, in alternating rounds: 4,000 idle
    /// peers took 4.2-4.4% of a core instead of 4.0-4.1%, a 1 MiB transfer 15% more CPU per
    /// MiB, and a flood of one datagram every ~60 us, the worst case for the rule (armed by
    /// each short wait, then polling in vain), 36-37% of a core instead of 23-24%
    /// (`Always(40 us)`: 61-65%). Only the blocking driver polls; the tokio driver leaves
    /// waiting to tokio.
    ///
    /// ```
    /// use std::time::Duration;
    /// use enet_dtls::enet::{BusyPoll, EnetHost};
    /// use enet_dtls::enet_proto::HostConfig;
    ///
    /// let mut server = EnetHost::bind("127.0.0.1:0", HostConfig::server()).unwrap();
    /// server.set_busy_poll(BusyPoll::Always(Duration::from_micros(20)));
    /// assert_eq!(server.busy_poll(), BusyPoll::Always(Duration::from_micros(20)));
    /// server.set_busy_poll(BusyPoll::Off);
    /// ```
    pub fn set_busy_poll(&mut self, mode: BusyPoll) {
        self.busy_poll = mode;
        self.poll_next = false;
    }

    /// The mode set by [`set_busy_poll`](Self::set_busy_poll).
    pub fn busy_poll(&self) -> BusyPoll {
        self.busy_poll
    }

    /// Waits until the socket is readable, for at most `limit` from `start` (`None`: no
    /// limit), polling first for up to the busy-poll limit. Returns whether it is.
    fn block(&mut self, start: Instant, limit: Option<Duration>) -> io::Result<bool> {
        let adaptive = matches!(self.busy_poll, BusyPoll::Adaptive(_));
        let mode = self.busy_poll;
        let poll = match mode {
            BusyPoll::Off => Duration::ZERO,
            BusyPoll::Always(max) => max,
            BusyPoll::Adaptive(max) if self.poll_next && self.within_budget(start) => max,
            BusyPoll::Adaptive(_) => Duration::ZERO,
        };
        let spin = limit.map_or(poll, |l| l.min(poll));
        if !spin.is_zero() {
            let polling = Instant::now();
            loop {
                if self.socket.wait_readable(Some(Duration::ZERO))? {
                    return Ok(true);
                }
                let polled = polling.elapsed();
                if polled >= spin {
                    if adaptive {
                        self.fruitless += polled;
                    }
                    break;
                }
                std::hint::spin_loop();
            }
        }
        let left = limit.map(|l| l.saturating_sub(start.elapsed()));
        if !adaptive {
            return self.socket.wait_readable(left);
        }
        let sleeping = Instant::now();
        let readable = self.socket.wait_readable(left)?;
        self.poll_next = readable && sleeping.elapsed() < BusyPoll::ADAPTIVE_WINDOW;
        Ok(readable)
    }

    /// Whether adaptive polling has budget left at `now` (a new period starts afresh).
    fn within_budget(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.budget_since) >= BusyPoll::ADAPTIVE_BUDGET_PERIOD {
            self.budget_since = now;
            self.fruitless = Duration::ZERO;
        }
        self.fruitless < BusyPoll::ADAPTIVE_BUDGET
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

    fn counting_host(busy_poll: BusyPoll) -> EnetHost<CountingWaits> {
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
        let mut off = counting_host(BusyPoll::Off);
        assert!(!off.wait(Some(Duration::from_millis(5))).unwrap());
        assert_eq!((off.socket().polls, off.socket().sleeps), (0, 1));

        let mut on = counting_host(BusyPoll::Always(Duration::from_millis(2)));
        let started = Instant::now();
        assert!(!on.wait(Some(Duration::from_millis(20))).unwrap());
        assert!(started.elapsed() >= Duration::from_millis(20));
        assert!(on.socket().polls > 1, "{}", on.socket().polls);
        assert_eq!(on.socket().sleeps, 1);

        // A datagram sent while the host polls (the limit is far longer than the sender's
        // delay) is found by a poll: no sleep.
        let mut on = counting_host(BusyPoll::Always(Duration::from_secs(10)));
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

    /// Adaptive polling polls only after a wait that a datagram ended within the window, and
    /// keeps polling while its polls find datagrams; a wait that ran out, or a datagram that
    /// came late, makes the next wait sleep at once.
    #[test]
    fn adaptive_busy_poll_polls_only_while_waits_end_soon() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut host = counting_host(BusyPoll::Adaptive(Duration::from_secs(5)));
        let to = host.local_addr().unwrap();
        // Receives (and drops) what came, without waiting.
        let drain =
            |h: &mut EnetHost<CountingWaits>| while h.service(Duration::ZERO).unwrap().is_some() {};

        // Nothing came: sleeps only, and the next wait does not poll either.
        assert!(!host.wait(Some(Duration::from_millis(5))).unwrap());
        assert!(!host.wait(Some(Duration::from_millis(5))).unwrap());
        assert_eq!((host.socket().polls, host.socket().sleeps), (0, 2));

        // A datagram already waiting ends the sleep at once: the next wait polls first and
        // finds the next datagram by polling, without sleeping. (A sleep that the scheduler
        // stretched past the window is retried.)
        let mut found_by_polling = false;
        for _ in 0..20 {
            udp.send_to(b"now", to).unwrap();
            std::thread::sleep(Duration::from_millis(1));
            assert!(host.wait(Some(Duration::from_secs(5))).unwrap());
            drain(&mut host);
            let (polls, sleeps) = (host.socket().polls, host.socket().sleeps);
            let sender = std::thread::spawn({
                let udp = udp.try_clone().unwrap();
                move || {
                    std::thread::sleep(Duration::from_millis(2));
                    udp.send_to(b"soon", to).unwrap();
                }
            });
            assert!(host.wait(Some(Duration::from_secs(30))).unwrap());
            sender.join().unwrap();
            drain(&mut host);
            if host.socket().sleeps == sleeps {
                assert!(host.socket().polls > polls);
                found_by_polling = true;
                break;
            }
        }
        assert!(found_by_polling, "no wait polled after a short one");

        // Still polling: a wait whose polls find nothing (`wait`'s limit is shorter than the
        // poll limit) ran out, so the one after does not poll.
        let polls = host.socket().polls;
        assert!(!host.wait(Some(Duration::from_millis(5))).unwrap());
        assert!(host.socket().polls > polls);
        let polls = host.socket().polls;
        assert!(!host.wait(Some(Duration::from_millis(5))).unwrap());
        assert_eq!(host.socket().polls, polls);

        // A datagram that ends a sleep later than the window does not start polling.
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            udp.send_to(b"late", to).unwrap();
        });
        assert!(host.wait(Some(Duration::from_secs(30))).unwrap());
        sender.join().unwrap();
        drain(&mut host);
        let polls = host.socket().polls;
        assert!(!host.wait(Some(Duration::from_millis(5))).unwrap());
        assert_eq!(host.socket().polls, polls);
    }

    /// Adaptive polling that keeps finding nothing stops at its budget: with every wait armed
    /// (a datagram ends each sleep at once) and each poll then running out after 3 ms, at most
    /// `ADAPTIVE_BUDGET` (10 ms: 4 such polls) is spent per 100 ms period.
    #[test]
    fn adaptive_busy_poll_stops_at_its_budget() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut host = counting_host(BusyPoll::Adaptive(Duration::from_secs(5)));
        let to = host.local_addr().unwrap();
        let started = Instant::now();
        let rounds = 20;
        let mut polled = 0;
        for _ in 0..rounds {
            // Arms polling (unless the scheduler stretched this sleep past the window).
            udp.send_to(b"now", to).unwrap();
            assert!(host.wait(Some(Duration::from_secs(5))).unwrap());
            while host.service(Duration::ZERO).unwrap().is_some() {}
            let polls = host.socket().polls;
            assert!(!host.wait(Some(Duration::from_millis(3))).unwrap());
            if host.socket().polls > polls {
                polled += 1;
            }
        }
        let periods = started.elapsed().as_millis() / 100 + 1;
        assert!(polled >= 1, "never polled");
        assert!(
            polled <= 4 * periods as usize,
            "{polled} polls in {periods} periods"
        );
        assert!(polled < rounds, "the budget never stopped polling");
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
