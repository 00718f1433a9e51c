//! `enet-dtls netsim`: a UDP relay that applies the simulator's link model in real time, so
//! that any program (ours, Godot, C ENet) can be tried on a lossy link (no netem needed).
//!
//! ```text
//! client A ─┐                     ┌─ upstream socket for A ─┐
//! client B ─┼─> --listen socket ──┼─ upstream socket for B ─┼─> --forward ADDR:PORT
//!           └── (replies go back  └─ ...                    ┘   (replies come back on the
//!               from here)                                      client's upstream socket)
//! ```
//!
//! Every datagram, in both directions, goes through one [`enet_sim::Network`] (the same model
//! and the same seeded RNG as the deterministic simulator tests) whose virtual clock simply
//! follows the real one: loss, duplication, delay plus uniform jitter, reordering (an extra
//! `--reorder-delay`), and a bandwidth cap with a drop-tail queue (`--rate`). Each client
//! source address gets its own upstream socket, so the server sees several clients as several
//! peers; an upstream socket idle for `--idle-timeout` is closed.
//!
//! I/O is batched (`recvmmsg`/`sendmmsg` through the library's [`UdpEnetSocket`]) and one
//! thread serves every socket with `poll(2)`, sleeping until the next datagram is due.
//!
//! Output on stdout: `LISTENING <addr:port>` first, then on exit (SIGINT/SIGTERM) the
//! counters, one line per direction and one of totals:
//!
//! ```text
//! NETSIM up received=.. delivered=.. lost=.. duplicated=.. reordered=.. dropped_queue=.. dropped_overflow=..
//! NETSIM down received=.. ...
//! NETSIM clients=.. refused=.. evicted=.. stray=.. send_dropped=.. in_flight=.. seed=..
//! ```
//!
//! Memory is bounded: at most `--max-clients` upstream sockets, and at most
//! [`MAX_IN_FLIGHT_BYTES`] of datagrams held for later delivery (beyond it a datagram is
//! dropped and counted in `dropped_overflow`).

use std::collections::HashMap;
use std::io::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use enet_dtls::enet::{EnetSocket, UdpEnetSocket};
use enet_proto::Transmit;
use enet_sim::{LinkConfig, NetStats, Network};
use rustix::event::{PollFd, PollFlags, Timespec};

use crate::args;
use crate::shutdown::{self, Shutdown};

/// Most payload bytes held in the simulated links at once (datagrams waiting for their
/// delay). 64 MiB is 0.5 s of a 1 Gbit/s stream; past it datagrams are dropped.
pub(crate) const MAX_IN_FLIGHT_BYTES: usize = 64 << 20;

/// Receive calls (of up to 16 datagrams each) on one socket per loop turn, so that a flood
/// on one socket cannot delay the deliveries that are due.
const MAX_RECV_CALLS_PER_TURN: usize = 32;

/// The bandwidth queue of a `--rate` link holds this much time's worth of bytes...
const QUEUE_TIME: Duration = Duration::from_millis(200);
/// ...but never less than this many bytes (two full Ethernet frames).
const MIN_QUEUE_BYTES: usize = 3000;

/// Arguments of `netsim`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct NetsimArgs {
    /// Address clients send to (port 0 picks a free port, printed on the `LISTENING` line).
    #[arg(long, value_name = "ADDR:PORT", value_parser = args::socket_addr)]
    pub(crate) listen: SocketAddr,
    /// The server every client's datagrams are relayed to.
    #[arg(long, value_name = "ADDR:PORT", value_parser = args::socket_addr_with_port)]
    pub(crate) forward: SocketAddr,
    /// Probability (0 to 1) that a datagram is lost, in each direction.
    #[arg(long, value_name = "P", default_value = "0", value_parser = args::probability, allow_negative_numbers = true)]
    pub(crate) loss: f64,
    /// One-way delay in milliseconds, in each direction.
    #[arg(long, value_name = "MS", default_value = "0", value_parser = args::millis, allow_negative_numbers = true)]
    pub(crate) delay: u64,
    /// Extra random delay, uniform in 0..=MS milliseconds, per datagram.
    #[arg(long, value_name = "MS", default_value = "0", value_parser = args::millis, allow_negative_numbers = true)]
    pub(crate) jitter: u64,
    /// Probability (0 to 1) that a datagram is delivered twice.
    #[arg(long, value_name = "P", default_value = "0", value_parser = args::probability, allow_negative_numbers = true)]
    pub(crate) dup: f64,
    /// Probability (0 to 1) that a datagram is held back by --reorder-delay, so that later
    /// ones overtake it.
    #[arg(long, value_name = "P", default_value = "0", value_parser = args::probability, allow_negative_numbers = true)]
    pub(crate) reorder: f64,
    /// How long a reordered datagram is held back, in milliseconds.
    #[arg(long, value_name = "MS", default_value = "10", value_parser = args::millis, allow_negative_numbers = true)]
    pub(crate) reorder_delay: u64,
    /// Bandwidth cap per direction and client, in kilobits per second (1 kbit = 1000 bits);
    /// excess waits in a drop-tail queue of 200 ms worth of bytes. Default: no cap.
    #[arg(long, value_name = "KBPS",
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub(crate) rate: Option<u64>,
    /// Seed of the random stream (loss, jitter, duplication, reordering): the same seed and
    /// the same traffic give the same impairments. Default: taken from the clock, and
    /// printed in the counters.
    #[arg(long, value_name = "N")]
    pub(crate) seed: Option<u64>,
    /// Most clients (source addresses) relayed at once; each holds one upstream socket.
    #[arg(long, value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..=16_384))]
    pub(crate) max_clients: u64,
    /// Close a client's upstream socket after this many seconds without a datagram.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = args::seconds)]
    pub(crate) idle_timeout: f64,
}

impl NetsimArgs {
    /// The link model both directions use.
    fn link(&self) -> LinkConfig {
        LinkConfig {
            latency: Duration::from_millis(self.delay),
            jitter: Duration::from_millis(self.jitter),
            loss: self.loss,
            duplicate: self.dup,
            reorder: self.reorder,
            reorder_delay: Duration::from_millis(self.reorder_delay),
            bandwidth: self.rate.map(|kbps| kbps * 125),
            mtu: None,
        }
    }
}

/// What the relay counted, per direction and in total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Client to server: what the link model did.
    pub(crate) up: NetStats,
    /// Server to client.
    pub(crate) down: NetStats,
    /// Datagrams received from clients (before the model).
    pub(crate) up_received: u64,
    /// Datagrams received from the server (before the model).
    pub(crate) down_received: u64,
    /// Client to server datagrams dropped because [`MAX_IN_FLIGHT_BYTES`] were held.
    pub(crate) up_overflow: u64,
    /// Server to client datagrams dropped for the same reason.
    pub(crate) down_overflow: u64,
    /// Clients (source addresses) that got an upstream socket.
    pub(crate) clients: u64,
    /// Datagrams from new clients refused (`--max-clients` reached, or no socket could be bound).
    pub(crate) refused: u64,
    /// Upstream sockets closed after `--idle-timeout`.
    pub(crate) evicted: u64,
    /// Datagrams arriving on an upstream socket from anyone but the server (ignored).
    pub(crate) stray: u64,
    /// Datagrams the kernel would not take on send (buffer full, unreachable).
    pub(crate) send_dropped: u64,
    /// Datagrams still held by the model when the relay stopped.
    pub(crate) in_flight: u64,
    /// The seed of the run.
    pub(crate) seed: u64,
}

impl Counters {
    /// The three `NETSIM` lines printed on exit.
    pub(crate) fn lines(&self) -> String {
        let dir = |name: &str, s: &NetStats, received: u64, overflow: u64| {
            format!(
                "NETSIM {name} received={received} delivered={} lost={} duplicated={} \
                 reordered={} dropped_queue={} dropped_overflow={overflow}\n",
                s.delivered, s.lost, s.duplicated, s.reordered, s.dropped_queue
            )
        };
        let mut out = dir("up", &self.up, self.up_received, self.up_overflow);
        out += &dir("down", &self.down, self.down_received, self.down_overflow);
        out += &format!(
            "NETSIM clients={} refused={} evicted={} stray={} send_dropped={} in_flight={} seed={}\n",
            self.clients,
            self.refused,
            self.evicted,
            self.stray,
            self.send_dropped,
            self.in_flight,
            self.seed
        );
        out
    }
}

/// Runs `netsim` until SIGINT/SIGTERM.
pub(crate) fn run(args: NetsimArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let shutdown = Shutdown::install()?;
    let counters = relay(&args, &|| shutdown.requested(), &mut |addr| {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "LISTENING {addr}");
        let _ = out.flush();
    })?;
    let mut out = io::stdout().lock();
    write!(out, "{}", counters.lines())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// One client: its address and the socket its datagrams leave from towards the server.
struct Client {
    addr: SocketAddr,
    upstream: UdpEnetSocket,
    last_active: Instant,
    /// Its upstream socket failed: closed at the next idle check.
    broken: bool,
    /// Datagrams due for the server, sent at the end of the turn in one batch.
    out: Vec<Transmit>,
}

/// The relay state (everything but the sockets' readiness).
struct Relay {
    forward: SocketAddr,
    net: Network,
    clients: Vec<Client>,
    by_addr: HashMap<SocketAddr, usize>,
    /// Datagrams due for clients, sent from the listening socket in one batch.
    down_out: Vec<Transmit>,
    /// Counters of clients already gone.
    retired_up: NetStats,
    retired_down: NetStats,
    counters: Counters,
    max_clients: usize,
    /// Where upstream sockets bind (the wildcard of the server's address family).
    upstream_bind: SocketAddr,
}

/// Runs the relay described by `args` until `stop()` returns true; `on_listen` gets the bound
/// listening address once, before any datagram is relayed.
///
/// # Errors
///
/// Binding the listening socket, or a socket error that is not about one datagram.
pub(crate) fn relay(
    args: &NetsimArgs,
    stop: &dyn Fn() -> bool,
    on_listen: &mut dyn FnMut(SocketAddr),
) -> io::Result<Counters> {
    if args.forward == args.listen {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--forward must differ from --listen (the relay would send to itself)",
        ));
    }
    let mut listen = UdpEnetSocket::bind(args.listen)?;
    let local = listen.local_addr()?;
    if local == args.forward {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--forward is the relay's own listening address",
        ));
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let mut net = Network::starting_now(seed);
    let link = args.link();
    if let Some(bandwidth) = link.bandwidth {
        let per_queue = (bandwidth as u128 * QUEUE_TIME.as_millis() / 1000) as usize;
        net.set_default_queue_limit(Some(per_queue.max(MIN_QUEUE_BYTES)));
    }
    net.set_default_link(link);
    let upstream_bind = match args.forward.ip() {
        IpAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        IpAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    };
    let mut r = Relay {
        forward: args.forward,
        net,
        clients: Vec::new(),
        by_addr: HashMap::new(),
        down_out: Vec::new(),
        retired_up: NetStats::default(),
        retired_down: NetStats::default(),
        counters: Counters {
            seed,
            ..Counters::default()
        },
        max_clients: usize::try_from(args.max_clients).unwrap_or(usize::MAX),
        upstream_bind,
    };
    let idle = Duration::from_secs_f64(args.idle_timeout);
    on_listen(local);

    let mut readable: Vec<bool> = Vec::new();
    let mut next_idle_check = Instant::now() + idle.min(Duration::from_secs(1));
    while !stop() {
        // Sleep until a socket is readable or the next datagram is due (at most the shutdown
        // poll interval).
        let now = Instant::now();
        let mut timeout = shutdown::POLL_INTERVAL;
        if let Some(due) = r.net.next_delivery() {
            timeout = timeout.min(due.saturating_duration_since(now));
        }
        wait(&listen, &r.clients, timeout, &mut readable)?;

        let now = Instant::now();
        r.net.advance_to(now);
        if readable.first().copied().unwrap_or(false) {
            r.recv_from_clients(&mut listen, now)?;
        }
        for i in 0..r.clients.len() {
            if readable.get(i + 1).copied().unwrap_or(false) {
                r.recv_from_server(i, now);
            }
        }
        r.deliver();
        r.flush(&mut listen, now)?;
        if now >= next_idle_check {
            r.evict_idle(now, idle);
            next_idle_check = now + idle.min(Duration::from_secs(1));
        }
    }
    Ok(r.finish())
}

/// `poll(2)` on the listening socket and every upstream socket; `readable[0]` is the listening
/// socket, `readable[i + 1]` client `i`'s.
fn wait(
    listen: &UdpEnetSocket,
    clients: &[Client],
    timeout: Duration,
    readable: &mut Vec<bool>,
) -> io::Result<()> {
    let mut fds = Vec::with_capacity(clients.len() + 1);
    fds.push(PollFd::new(listen.get_ref(), PollFlags::IN));
    for c in clients {
        fds.push(PollFd::new(c.upstream.get_ref(), PollFlags::IN));
    }
    let ts = Timespec {
        tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    match rustix::event::poll(&mut fds, Some(&ts)) {
        Ok(_) => {}
        Err(rustix::io::Errno::INTR) => {}
        Err(e) => return Err(e.into()),
    }
    readable.clear();
    readable.extend(fds.iter().map(|f| !f.revents().is_empty()));
    Ok(())
}

impl Relay {
    /// Reads what clients sent and hands it to the model, creating upstream sockets for new
    /// clients.
    fn recv_from_clients(&mut self, listen: &mut UdpEnetSocket, now: Instant) -> io::Result<()> {
        for _ in 0..MAX_RECV_CALLS_PER_TURN {
            let mut got = 0usize;
            listen.recv_batch(now, &mut |from, data| {
                got += 1;
                self.counters.up_received += 1;
                if self.client_index(from, now).is_none() {
                    self.counters.refused += 1;
                    return;
                }
                if self.net.in_flight_bytes() + data.len() > MAX_IN_FLIGHT_BYTES {
                    self.counters.up_overflow += 1;
                    return;
                }
                self.net.send(from, self.forward, data.to_vec());
            })?;
            if got == 0 || listen.recv_drained() {
                break;
            }
        }
        Ok(())
    }

    /// The index of `from`'s client, made on its first datagram (`None`: refused).
    fn client_index(&mut self, from: SocketAddr, now: Instant) -> Option<usize> {
        if let Some(&i) = self.by_addr.get(&from) {
            self.clients[i].last_active = now;
            return Some(i);
        }
        if self.clients.len() >= self.max_clients {
            return None;
        }
        let upstream = match UdpEnetSocket::bind(self.upstream_bind) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(client = %from, error = %e, "cannot bind an upstream socket");
                return None;
            }
        };
        self.clients.push(Client {
            addr: from,
            upstream,
            last_active: now,
            broken: false,
            out: Vec::new(),
        });
        self.counters.clients += 1;
        let i = self.clients.len() - 1;
        self.by_addr.insert(from, i);
        Some(i)
    }

    /// Reads what the server sent to client `i`'s upstream socket.
    fn recv_from_server(&mut self, i: usize, now: Instant) {
        let Relay {
            clients,
            net,
            counters,
            forward,
            ..
        } = self;
        let client = &mut clients[i];
        let addr = client.addr;
        for _ in 0..MAX_RECV_CALLS_PER_TURN {
            let mut got = 0usize;
            let result = client.upstream.recv_batch(now, &mut |from, data| {
                got += 1;
                if from != *forward {
                    counters.stray += 1;
                    return;
                }
                counters.down_received += 1;
                if net.in_flight_bytes() + data.len() > MAX_IN_FLIGHT_BYTES {
                    counters.down_overflow += 1;
                    return;
                }
                net.send(*forward, addr, data.to_vec());
            });
            if let Err(e) = result {
                // One broken upstream socket ends that client, not the relay.
                tracing::warn!(client = %addr, error = %e, "upstream socket failed");
                client.broken = true;
                break;
            }
            if got == 0 || client.upstream.recv_drained() {
                break;
            }
        }
    }

    /// Moves every datagram that is due into the send batches.
    fn deliver(&mut self) {
        while let Some(d) = self.net.poll_delivery() {
            if d.to == self.forward {
                match self.by_addr.get(&d.from) {
                    Some(&i) => self.clients[i].out.push(Transmit {
                        destination: d.to,
                        data: d.data,
                    }),
                    // Its client was evicted while the datagram was in flight.
                    None => self.counters.send_dropped += 1,
                }
            } else {
                self.down_out.push(Transmit {
                    destination: d.to,
                    data: d.data,
                });
            }
        }
    }

    /// Sends the batches.
    fn flush(&mut self, listen: &mut UdpEnetSocket, now: Instant) -> io::Result<()> {
        if !self.down_out.is_empty() {
            let sent = listen.send_batch(now, &self.down_out)?;
            self.counters.send_dropped +=
                (self.down_out.len() - sent.min(self.down_out.len())) as u64;
            self.down_out.clear();
        }
        for c in &mut self.clients {
            if c.out.is_empty() {
                continue;
            }
            match c.upstream.send_batch(now, &c.out) {
                Ok(sent) => {
                    self.counters.send_dropped += (c.out.len() - sent.min(c.out.len())) as u64
                }
                Err(e) => {
                    tracing::warn!(client = %c.addr, error = %e, "upstream send failed");
                    c.broken = true;
                    self.counters.send_dropped += c.out.len() as u64;
                }
            }
            c.out.clear();
        }
        Ok(())
    }

    /// Closes the upstream sockets of clients idle for `idle`, keeping their counters.
    fn evict_idle(&mut self, now: Instant, idle: Duration) {
        let mut i = 0;
        while i < self.clients.len() {
            let c = &self.clients[i];
            if !c.broken && now.saturating_duration_since(c.last_active) < idle {
                i += 1;
                continue;
            }
            let gone = self.clients.swap_remove(i);
            self.by_addr.remove(&gone.addr);
            if let Some(moved) = self.clients.get(i) {
                self.by_addr.insert(moved.addr, i);
            }
            self.retired_up += self.net.remove_link(gone.addr, self.forward);
            self.retired_down += self.net.remove_link(self.forward, gone.addr);
            self.counters.evicted += 1;
        }
    }

    /// The final counters.
    fn finish(self) -> Counters {
        let mut c = self.counters;
        c.up = self.retired_up;
        c.down = self.retired_down;
        for client in &self.clients {
            c.up += self.net.link_stats(client.addr, self.forward);
            c.down += self.net.link_stats(self.forward, client.addr);
        }
        c.in_flight = self.net.in_flight() as u64;
        c
    }
}
