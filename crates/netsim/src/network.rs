//! The simulated network: links, in-flight datagrams, the virtual clock and statistics.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Impairments of one direction of a link (from one address to another).
///
/// [`LinkConfig::default()`] is a perfect link: no latency, no loss, no duplication, no
/// reordering, unlimited bandwidth and no MTU. Build other links with struct update syntax:
///
/// ```
/// use std::time::Duration;
/// use enet_sim::LinkConfig;
///
/// let lossy = LinkConfig {
///     latency: Duration::from_millis(50),
///     jitter: Duration::from_millis(10),
///     loss: 0.05,
///     ..LinkConfig::default()
/// };
/// assert_eq!(lossy.duplicate, 0.0);
/// ```
///
/// Probabilities (`loss`, `duplicate`, `reorder`) are clamped to `0.0..=1.0`; `NaN` counts as 0.
///
/// What happens to a datagram sent over the link, in this order:
/// 1. larger than `mtu` bytes: dropped ([`NetStats::dropped_mtu`]);
/// 2. `bandwidth` set: it waits in the link's FIFO queue behind earlier datagrams and then
///    takes `len / bandwidth` seconds to serialise; if the queue already holds more than
///    the link's queue limit ([`Network::set_queue_limit`]) it is dropped
///    ([`NetStats::dropped_queue`]);
/// 3. lost with probability `loss` ([`NetStats::lost`]);
/// 4. with probability `duplicate` a second copy is delivered too ([`NetStats::duplicated`]);
/// 5. every copy arrives `latency` plus a uniformly random `0..=jitter` after it left the
///    queue, plus `reorder_delay` with probability `reorder` ([`NetStats::reordered`]), so
///    later datagrams overtake it. Jitter alone can also reorder datagrams sent close together.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// Fixed one-way propagation delay.
    pub latency: Duration,
    /// Maximum extra random delay; each datagram gets a uniform draw from `0..=jitter`.
    pub jitter: Duration,
    /// Probability (0.0..=1.0) that a datagram is lost.
    pub loss: f64,
    /// Probability (0.0..=1.0) that a delivered datagram is delivered twice.
    pub duplicate: f64,
    /// Probability (0.0..=1.0) that a datagram is held back by `reorder_delay`.
    pub reorder: f64,
    /// Extra delay of a datagram picked for reordering.
    pub reorder_delay: Duration,
    /// Bandwidth cap in bytes per second (`None` = unlimited). `Some(0)` drops everything.
    pub bandwidth: Option<u64>,
    /// Largest datagram (payload bytes) the link carries; larger ones are dropped.
    pub mtu: Option<usize>,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            bandwidth: None,
            mtu: None,
        }
    }
}

impl LinkConfig {
    /// A perfect link with only a fixed one-way `latency`.
    pub fn with_latency(latency: Duration) -> Self {
        LinkConfig {
            latency,
            ..LinkConfig::default()
        }
    }
}

/// One datagram on its way through (or out of) the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Sender address.
    pub from: SocketAddr,
    /// Destination address.
    pub to: SocketAddr,
    /// Payload.
    pub data: Vec<u8>,
}

/// Counters kept by a [`Network`], in total ([`Network::stats`]) or per link direction
/// ([`Network::link_stats`]).
///
/// Every datagram handed to [`Network::send`] ends up in exactly one of `dropped_mtu`,
/// `dropped_queue`, `lost` or (once delivered, or still in flight) the delivered copies;
/// `duplicated` counts the extra copies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Datagrams handed to [`Network::send`].
    pub sent: u64,
    /// Payload bytes handed to [`Network::send`].
    pub sent_bytes: u64,
    /// Datagram copies handed out by [`Network::poll_delivery`].
    pub delivered: u64,
    /// Payload bytes handed out by [`Network::poll_delivery`].
    pub delivered_bytes: u64,
    /// Datagrams dropped by random loss.
    pub lost: u64,
    /// Extra copies created by duplication.
    pub duplicated: u64,
    /// Copies that got the extra reorder delay.
    pub reordered: u64,
    /// Datagrams dropped for being larger than the link MTU.
    pub dropped_mtu: u64,
    /// Datagrams dropped because the bandwidth queue was full (or bandwidth was 0).
    pub dropped_queue: u64,
}

impl std::ops::AddAssign for NetStats {
    /// Adds every counter of `o` (totals over several links or several networks).
    fn add_assign(&mut self, o: NetStats) {
        self.add(&o);
    }
}

impl NetStats {
    fn add(&mut self, o: &NetStats) {
        self.sent += o.sent;
        self.sent_bytes += o.sent_bytes;
        self.delivered += o.delivered;
        self.delivered_bytes += o.delivered_bytes;
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
        self.dropped_mtu += o.dropped_mtu;
        self.dropped_queue += o.dropped_queue;
    }
}

/// State of one link direction.
#[derive(Debug, Default)]
struct LinkState {
    /// Explicit configuration (`None` = the network's default link).
    config: Option<LinkConfig>,
    /// Explicit queue limit in bytes (`None` = the network's default).
    queue_limit: Option<Option<usize>>,
    /// When the bandwidth queue is empty again (the last queued byte has left).
    busy_until: Option<Instant>,
    stats: NetStats,
}

/// A datagram copy in flight; ordered by arrival time, then by creation order.
#[derive(Debug)]
struct InFlight {
    at: Instant,
    seq: u64,
    datagram: Datagram,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap, we want the earliest first.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A deterministic simulated network with a virtual clock.
///
/// Time only moves when [`advance_to`](Network::advance_to) is called; nothing here reads the
/// real clock (except [`Network::starting_now`], once). All randomness comes from one
/// `ChaCha8Rng` seeded by the caller, so the same seed and the same sequence of calls give
/// the same deliveries at the same virtual instants on every platform.
///
/// Links are per direction: `set_link(a, b, ..)` configures only datagrams from `a` to `b`.
/// Directions without their own configuration use the default link
/// ([`set_default_link`](Network::set_default_link)).
///
/// ```
/// use std::time::{Duration, Instant};
/// use enet_sim::{LinkConfig, Network};
///
/// let start = Instant::now();
/// let mut net = Network::new(7, start);
/// net.set_default_link(LinkConfig::with_latency(Duration::from_millis(20)));
/// let (a, b) = ("127.0.0.1:1000".parse().unwrap(), "127.0.0.1:2000".parse().unwrap());
/// net.send(a, b, b"hello".to_vec());
/// assert!(net.poll_delivery().is_none()); // still in flight
/// let at = net.next_delivery().unwrap();
/// assert_eq!(at, start + Duration::from_millis(20));
/// net.advance_to(at);
/// let d = net.poll_delivery().unwrap();
/// assert_eq!((d.from, d.to, &d.data[..]), (a, b, &b"hello"[..]));
/// ```
#[derive(Debug)]
pub struct Network {
    start: Instant,
    now: Instant,
    rng: ChaCha8Rng,
    default_link: LinkConfig,
    default_queue_limit: Option<usize>,
    links: BTreeMap<(SocketAddr, SocketAddr), LinkState>,
    in_flight: BinaryHeap<InFlight>,
    next_seq: u64,
    /// Payload bytes of the copies in `in_flight`.
    in_flight_bytes: usize,
    /// Every datagram handed to `send`, when capturing.
    capture: Option<Vec<(Instant, Datagram)>>,
}

/// Clamps a probability into `0.0..=1.0` (NaN becomes 0).
fn probability(p: f64) -> f64 {
    if p.is_nan() {
        0.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

/// Time to serialise `len` bytes at `bandwidth` bytes per second (rounded up to a nanosecond).
fn serialisation_time(len: usize, bandwidth: u64) -> Duration {
    let nanos = (len as u128 * 1_000_000_000).div_ceil(bandwidth as u128);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Maps a uniform random `u64` onto `0..=max` (multiply-shift: exactly one draw, bias below
/// 2^-30 for any duration under a year).
fn uniform_up_to(r: u64, max: Duration) -> Duration {
    let span = max.as_nanos().min(u128::from(u64::MAX - 1)) + 1;
    let nanos = (u128::from(r) * span) >> 64;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

impl Network {
    /// A network with perfect default links whose virtual clock starts at `start`.
    ///
    /// `seed` selects the random stream for loss, jitter, duplication and reordering.
    pub fn new(seed: u64, start: Instant) -> Self {
        Network {
            start,
            now: start,
            rng: ChaCha8Rng::seed_from_u64(seed),
            default_link: LinkConfig::default(),
            default_queue_limit: None,
            links: BTreeMap::new(),
            in_flight: BinaryHeap::new(),
            next_seq: 0,
            in_flight_bytes: 0,
            capture: None,
        }
    }

    /// Like [`new`](Network::new) with the real clock's current instant as the start.
    ///
    /// This is the only place the simulator reads the real clock; virtual time never
    /// follows it afterwards.
    pub fn starting_now(seed: u64) -> Self {
        Network::new(seed, Instant::now())
    }

    /// Sets the link used by every direction that has no [`set_link`](Network::set_link) of its own.
    pub fn set_default_link(&mut self, config: LinkConfig) {
        self.default_link = config;
    }

    /// The default link configuration.
    pub fn default_link(&self) -> &LinkConfig {
        &self.default_link
    }

    /// Configures the direction `from -> to`. Datagrams already in flight keep their schedule.
    pub fn set_link(&mut self, from: SocketAddr, to: SocketAddr, config: LinkConfig) {
        self.links.entry((from, to)).or_default().config = Some(config);
    }

    /// Configures both directions between `a` and `b` with the same settings.
    pub fn set_link_both(&mut self, a: SocketAddr, b: SocketAddr, config: LinkConfig) {
        self.set_link(a, b, config.clone());
        self.set_link(b, a, config);
    }

    /// Makes the direction `from -> to` use the default link again.
    pub fn clear_link(&mut self, from: SocketAddr, to: SocketAddr) {
        if let Some(state) = self.links.get_mut(&(from, to)) {
            state.config = None;
        }
    }

    /// The configuration in force for `from -> to`.
    pub fn link(&self, from: SocketAddr, to: SocketAddr) -> &LinkConfig {
        self.links
            .get(&(from, to))
            .and_then(|s| s.config.as_ref())
            .unwrap_or(&self.default_link)
    }

    /// Limits the bandwidth queue of every link without its own limit to `limit` bytes
    /// waiting to be serialised (`None`, the default, = unbounded). Only matters for links
    /// with a `bandwidth`.
    pub fn set_default_queue_limit(&mut self, limit: Option<usize>) {
        self.default_queue_limit = limit;
    }

    /// Limits the bandwidth queue of `from -> to` to `limit` bytes waiting to be serialised
    /// (`None` = unbounded). A datagram that would make the backlog exceed the limit is
    /// dropped (drop-tail) and counted in [`NetStats::dropped_queue`].
    pub fn set_queue_limit(&mut self, from: SocketAddr, to: SocketAddr, limit: Option<usize>) {
        self.links.entry((from, to)).or_default().queue_limit = Some(limit);
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The virtual time the network started at.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Virtual time elapsed since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Sends `data` from `from` to `to` at the current virtual time, applying the
    /// impairments of that link direction (see [`LinkConfig`]).
    pub fn send(&mut self, from: SocketAddr, to: SocketAddr, data: impl Into<Vec<u8>>) {
        let data = data.into();
        let now = self.now;
        if let Some(capture) = &mut self.capture {
            capture.push((
                now,
                Datagram {
                    from,
                    to,
                    data: data.clone(),
                },
            ));
        }
        let len = data.len();
        let state = self.links.entry((from, to)).or_default();
        let config = state.config.as_ref().unwrap_or(&self.default_link);
        let queue_limit = state.queue_limit.unwrap_or(self.default_queue_limit);
        let stats = &mut state.stats;
        stats.sent += 1;
        stats.sent_bytes += len as u64;

        if config.mtu.is_some_and(|mtu| len > mtu) {
            stats.dropped_mtu += 1;
            return;
        }

        let mut departure = now;
        if let Some(bandwidth) = config.bandwidth {
            if bandwidth == 0 {
                stats.dropped_queue += 1;
                return;
            }
            let queue_start = state.busy_until.filter(|&t| t > now).unwrap_or(now);
            if let Some(limit) = queue_limit {
                let waiting = queue_start - now;
                let backlog = (waiting.as_nanos() * u128::from(bandwidth)).div_ceil(1_000_000_000);
                if backlog + len as u128 > limit as u128 {
                    stats.dropped_queue += 1;
                    return;
                }
            }
            departure = queue_start + serialisation_time(len, bandwidth);
            state.busy_until = Some(departure);
        }

        // Every datagram that got past the MTU and the queue draws the same random values in
        // the same order (loss, duplicate, then per copy jitter and reorder), whatever the
        // probabilities, so changing one impairment does not shift the stream the others see.
        let lost = self.rng.gen::<f64>() < probability(config.loss);
        let duplicated = self.rng.gen::<f64>() < probability(config.duplicate);
        if lost {
            stats.lost += 1;
            return;
        }
        let copies = if duplicated {
            stats.duplicated += 1;
            2
        } else {
            1
        };
        let mut payload = Some(data);
        for copy in 0..copies {
            let jitter = uniform_up_to(self.rng.gen::<u64>(), config.jitter);
            let reordered = self.rng.gen::<f64>() < probability(config.reorder);
            let mut at = departure + config.latency + jitter;
            if reordered {
                stats.reordered += 1;
                at += config.reorder_delay;
            }
            let data = if copy + 1 == copies {
                payload.take().unwrap_or_default()
            } else {
                payload.clone().unwrap_or_default()
            };
            let seq = self.next_seq;
            self.next_seq += 1;
            self.in_flight_bytes += data.len();
            self.in_flight.push(InFlight {
                at,
                seq,
                datagram: Datagram { from, to, data },
            });
        }
    }

    /// The virtual instant of the earliest datagram still in flight, if any.
    ///
    /// It may be at or before [`now`](Network::now), meaning a delivery is ready.
    pub fn next_delivery(&self) -> Option<Instant> {
        self.in_flight.peek().map(|f| f.at)
    }

    /// Moves the virtual clock forward to `t`. Never goes backwards: an earlier `t` is ignored.
    pub fn advance_to(&mut self, t: Instant) {
        if t > self.now {
            self.now = t;
        }
    }

    /// Moves the virtual clock forward by `d`.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// The next datagram that has arrived by the current virtual time, earliest first
    /// (ties in send order). `None` when nothing has arrived yet.
    pub fn poll_delivery(&mut self) -> Option<Datagram> {
        if self.in_flight.peek()?.at > self.now {
            return None;
        }
        let f = self.in_flight.pop()?;
        self.in_flight_bytes -= f.datagram.data.len();
        let stats = &mut self
            .links
            .entry((f.datagram.from, f.datagram.to))
            .or_default()
            .stats;
        stats.delivered += 1;
        stats.delivered_bytes += f.datagram.data.len() as u64;
        Some(f.datagram)
    }

    /// Starts (`true`) or stops (`false`, discarding what was kept) recording every datagram
    /// handed to [`send`](Network::send), with its send time, before any impairment applies.
    /// Lets a test inspect exactly what an endpoint put on the wire.
    ///
    /// ```
    /// use std::time::Instant;
    /// use enet_sim::{LinkConfig, Network};
    ///
    /// let mut net = Network::new(1, Instant::now());
    /// net.set_default_link(LinkConfig { loss: 1.0, ..LinkConfig::default() });
    /// net.set_capture(true);
    /// let (a, b) = ("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
    /// net.send(a, b, b"dropped, but seen".to_vec());
    /// let seen = net.take_captured();
    /// assert_eq!(seen.len(), 1);
    /// assert_eq!(seen[0].1.data, b"dropped, but seen");
    /// assert!(net.poll_delivery().is_none());
    /// ```
    pub fn set_capture(&mut self, on: bool) {
        self.capture = on.then(Vec::new);
    }

    /// Returns the datagrams recorded since capturing started or since the last call
    /// (empty when not capturing); capturing goes on.
    pub fn take_captured(&mut self) -> Vec<(Instant, Datagram)> {
        self.capture
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Forgets the direction `from -> to`: its configuration, queue limit, bandwidth queue and
    /// counters, which are returned. For long-running users (a real-time relay whose clients
    /// come and go) that must keep the per-link state bounded; a datagram of that direction
    /// still in flight is delivered as usual and starts new counters.
    ///
    /// ```
    /// use std::time::Instant;
    /// use enet_sim::Network;
    ///
    /// let mut net = Network::new(1, Instant::now());
    /// let (a, b) = ("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
    /// net.send(a, b, b"x".to_vec());
    /// assert_eq!(net.remove_link(a, b).sent, 1);
    /// assert_eq!(net.link_stats(a, b).sent, 0);
    /// ```
    pub fn remove_link(&mut self, from: SocketAddr, to: SocketAddr) -> NetStats {
        self.links
            .remove(&(from, to))
            .map(|s| s.stats)
            .unwrap_or_default()
    }

    /// Number of datagram copies still in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Payload bytes of the datagram copies still in flight (what holding them costs; a
    /// real-time relay bounds it).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use enet_sim::{LinkConfig, Network};
    ///
    /// let mut net = Network::new(1, Instant::now());
    /// net.set_default_link(LinkConfig::with_latency(Duration::from_millis(5)));
    /// let (a, b) = ("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
    /// net.send(a, b, vec![0; 100]);
    /// net.send(a, b, vec![0; 20]);
    /// assert_eq!(net.in_flight_bytes(), 120);
    /// net.advance(Duration::from_millis(5));
    /// while net.poll_delivery().is_some() {}
    /// assert_eq!(net.in_flight_bytes(), 0);
    /// ```
    pub fn in_flight_bytes(&self) -> usize {
        self.in_flight_bytes
    }

    /// Totals over every link direction.
    pub fn stats(&self) -> NetStats {
        let mut total = NetStats::default();
        for state in self.links.values() {
            total.add(&state.stats);
        }
        total
    }

    /// Counters of the direction `from -> to` alone.
    pub fn link_stats(&self, from: SocketAddr, to: SocketAddr) -> NetStats {
        self.links
            .get(&(from, to))
            .map(|s| s.stats)
            .unwrap_or_default()
    }
}
