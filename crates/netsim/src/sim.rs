//! Driving sans-IO endpoints over a [`Network`] in virtual time.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::network::Network;

/// A sans-IO protocol endpoint the simulator can drive.
///
/// The shape is the one every core in this workspace follows: inputs
/// (`handle_datagram`, `handle_timeout`) and outputs (`poll_transmit`, `poll_timeout`).
/// Implement it for a thin wrapper around the state machine under test.
pub trait Endpoint {
    /// The address this endpoint sends from and receives on.
    fn addr(&self) -> SocketAddr;
    /// A datagram from `from` arrived at virtual time `now`.
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]);
    /// The deadline returned by [`poll_timeout`](Endpoint::poll_timeout) has been reached;
    /// `now` is at or after it.
    fn handle_timeout(&mut self, now: Instant);
    /// The next datagram to send as `(destination, payload)`; called until `None`.
    fn poll_transmit(&mut self, now: Instant) -> Option<(SocketAddr, Vec<u8>)>;
    /// When [`handle_timeout`](Endpoint::handle_timeout) must next be called (`None` = no timer).
    fn poll_timeout(&self) -> Option<Instant>;
}

impl<E: Endpoint + ?Sized> Endpoint for Box<E> {
    fn addr(&self) -> SocketAddr {
        (**self).addr()
    }
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        (**self).handle_datagram(now, from, data)
    }
    fn handle_timeout(&mut self, now: Instant) {
        (**self).handle_timeout(now)
    }
    fn poll_transmit(&mut self, now: Instant) -> Option<(SocketAddr, Vec<u8>)> {
        (**self).poll_transmit(now)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        (**self).poll_timeout()
    }
}

/// How a bounded run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The stop condition returned `true`.
    Stopped,
    /// The deadline was reached without the stop condition becoming true.
    DeadlineReached,
    /// Nothing left to do: no datagram in flight and no endpoint timer set (the clock was
    /// not moved to the deadline).
    Idle,
    /// More than the allowed number of steps ran without virtual time advancing, or more than
    /// the allowed total: endpoints keep producing work at one instant (a livelock).
    Livelock {
        /// Virtual time elapsed since the network's start when the run was abandoned.
        at: Duration,
        /// Steps taken in this run.
        steps: u64,
    },
}

impl fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunOutcome::Stopped => f.write_str("stop condition met"),
            RunOutcome::DeadlineReached => f.write_str("deadline reached"),
            RunOutcome::Idle => f.write_str("idle: no datagram in flight and no timer set"),
            RunOutcome::Livelock { at, steps } => {
                write!(
                    f,
                    "livelock: {steps} steps without progress, at virtual time {at:?}"
                )
            }
        }
    }
}

/// Endpoints connected by a [`Network`], driven in virtual time.
///
/// Each [`step`](Sim::step):
/// 1. drains every endpoint's `poll_transmit` into the network (so output queued by API calls
///    made between steps leaves at the current time),
/// 2. jumps the clock to the earliest of the next delivery and every endpoint's `poll_timeout`
///    (never backwards: an overdue timer fires at the current time),
/// 3. delivers every datagram due by then to the endpoint whose [`Endpoint::addr`] matches
///    (datagrams for unknown addresses are discarded),
/// 4. calls `handle_timeout` on every endpoint whose deadline has passed,
/// 5. drains `poll_transmit` again.
///
/// ```
/// use std::net::SocketAddr;
/// use std::time::{Duration, Instant};
/// use enet_sim::{Endpoint, LinkConfig, Network, Sim};
///
/// /// Answers every datagram with the same bytes.
/// struct Echo { addr: SocketAddr, out: Vec<(SocketAddr, Vec<u8>)>, got: usize }
/// impl Endpoint for Echo {
///     fn addr(&self) -> SocketAddr { self.addr }
///     fn handle_datagram(&mut self, _now: Instant, from: SocketAddr, data: &[u8]) {
///         self.got += 1;
///         if self.got < 3 { self.out.push((from, data.to_vec())); }
///     }
///     fn handle_timeout(&mut self, _now: Instant) {}
///     fn poll_transmit(&mut self, _now: Instant) -> Option<(SocketAddr, Vec<u8>)> { self.out.pop() }
///     fn poll_timeout(&self) -> Option<Instant> { None }
/// }
///
/// let start = Instant::now();
/// let mut net = Network::new(1, start);
/// net.set_default_link(LinkConfig::with_latency(Duration::from_millis(10)));
/// let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
/// let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
/// let mut sim = Sim::new(net);
/// sim.nodes.push(Echo { addr: a, out: vec![(b, b"ping".to_vec())], got: 0 });
/// sim.nodes.push(Echo { addr: b, out: vec![], got: 0 });
///
/// // a -> b -> a -> b -> a: stops when `a` has seen its second reply.
/// let done = sim.run_until(start + Duration::from_secs(1), |nodes| nodes[0].got == 2);
/// assert!(done);
/// assert_eq!(sim.now(), start + Duration::from_millis(40));
/// ```
#[derive(Debug)]
pub struct Sim<E: Endpoint> {
    /// The network carrying datagrams between the nodes; it owns the virtual clock.
    pub net: Network,
    /// The endpoints, addressed by [`Endpoint::addr`].
    pub nodes: Vec<E>,
}

impl<E: Endpoint> Sim<E> {
    /// Steps one `run_until` may take at a single virtual instant before it reports a livelock.
    pub const MAX_STEPS_WITHOUT_PROGRESS: u64 = 10_000;
    /// Steps one `run_until` may take in total before it reports a livelock.
    pub const MAX_STEPS: u64 = 10_000_000;

    /// A simulation over `net` with no nodes yet (push them onto [`nodes`](Sim::nodes)).
    pub fn new(net: Network) -> Self {
        Sim {
            net,
            nodes: Vec::new(),
        }
    }

    /// A simulation over `net` with the given nodes.
    pub fn with_nodes(net: Network, nodes: Vec<E>) -> Self {
        Sim { net, nodes }
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.net.now()
    }

    /// The node whose address is `addr`.
    pub fn node(&self, addr: SocketAddr) -> Option<&E> {
        self.nodes.iter().find(|n| n.addr() == addr)
    }

    /// The node whose address is `addr`, mutably.
    pub fn node_mut(&mut self, addr: SocketAddr) -> Option<&mut E> {
        self.nodes.iter_mut().find(|n| n.addr() == addr)
    }

    /// Sends everything the nodes have queued, at the current virtual time.
    pub fn flush(&mut self) {
        let now = self.net.now();
        for node in &mut self.nodes {
            let from = node.addr();
            while let Some((to, data)) = node.poll_transmit(now) {
                self.net.send(from, to, data);
            }
        }
    }

    /// The earliest instant something happens: a delivery or an endpoint timer. It may lie
    /// in the past (an overdue timer), in which case it fires at the current time.
    /// Call [`flush`](Sim::flush) first if nodes may have output queued.
    pub fn next_event(&self) -> Option<Instant> {
        let timers = self.nodes.iter().filter_map(|n| n.poll_timeout());
        self.net.next_delivery().into_iter().chain(timers).min()
    }

    /// Runs one step (see the type docs). Returns `false` if there was nothing to do:
    /// no datagram in flight and no timer set.
    pub fn step(&mut self) -> bool {
        self.flush();
        match self.next_event() {
            Some(t) => {
                self.process(t);
                true
            }
            None => false,
        }
    }

    /// Advances to `t` (or stays, if `t` is not in the future), delivers, fires timers, drains.
    fn process(&mut self, t: Instant) {
        self.net.advance_to(t);
        let now = self.net.now();
        while let Some(d) = self.net.poll_delivery() {
            if let Some(node) = self.nodes.iter_mut().find(|n| n.addr() == d.to) {
                node.handle_datagram(now, d.from, &d.data);
            }
        }
        for node in &mut self.nodes {
            if node.poll_timeout().is_some_and(|deadline| deadline <= now) {
                node.handle_timeout(now);
            }
        }
        self.flush();
    }

    /// Steps until `stop(&mut nodes)` returns `true` (checked before the first step and after
    /// every step), the virtual clock would pass `deadline`, or nothing is left to do.
    ///
    /// Returns `true` only if `stop` returned `true`. When the deadline ends the run, the clock
    /// is left exactly at `deadline`. A livelock (see [`RunOutcome::Livelock`]) ends the run
    /// with `false` and a report on stderr; use [`run_until_outcome`](Sim::run_until_outcome)
    /// to tell the cases apart.
    pub fn run_until(&mut self, deadline: Instant, stop: impl FnMut(&mut [E]) -> bool) -> bool {
        let outcome = self.run_until_outcome(deadline, Self::MAX_STEPS, stop);
        if let RunOutcome::Livelock { .. } = outcome {
            eprintln!("enet-sim: run_until abandoned: {outcome}");
        }
        outcome == RunOutcome::Stopped
    }

    /// Like [`run_until`](Sim::run_until) with an explicit total step bound, reporting how
    /// the run ended.
    pub fn run_until_outcome(
        &mut self,
        deadline: Instant,
        max_steps: u64,
        mut stop: impl FnMut(&mut [E]) -> bool,
    ) -> RunOutcome {
        let mut steps = 0u64;
        let mut steps_at_instant = 0u64;
        loop {
            self.flush();
            if stop(&mut self.nodes) {
                return RunOutcome::Stopped;
            }
            let Some(t) = self.next_event() else {
                return RunOutcome::Idle;
            };
            if t > deadline {
                self.net.advance_to(deadline);
                return RunOutcome::DeadlineReached;
            }
            if steps >= max_steps || steps_at_instant >= Self::MAX_STEPS_WITHOUT_PROGRESS {
                return RunOutcome::Livelock {
                    at: self.net.elapsed(),
                    steps,
                };
            }
            let before = self.net.now();
            self.process(t);
            steps += 1;
            if self.net.now() > before {
                steps_at_instant = 0;
            } else {
                steps_at_instant += 1;
            }
        }
    }

    /// Runs for `d` of virtual time (no stop condition); the clock ends at `now + d` unless
    /// the run went idle earlier or livelocked.
    pub fn run_for(&mut self, d: Duration) -> RunOutcome {
        let deadline = self.net.now() + d;
        let outcome = self.run_until_outcome(deadline, Self::MAX_STEPS, |_| false);
        match outcome {
            RunOutcome::Idle => {
                self.net.advance_to(deadline);
            }
            RunOutcome::Livelock { .. } => eprintln!("enet-sim: run_for abandoned: {outcome}"),
            _ => {}
        }
        outcome
    }
}
