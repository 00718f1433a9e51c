//! Driving endpoints with `Sim`: time jumps, timers, delivery, bounds, livelock, replay.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use enet_sim::{Endpoint, LinkConfig, Network, RunOutcome, Sim};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

const MS: Duration = Duration::from_millis(1);

/// A toy reliable sender: sends numbered datagrams, retransmits the oldest unacknowledged
/// one every `rto`, and acknowledges everything it receives. Enough state to make runs with
/// loss take seed-dependent paths.
#[derive(Debug)]
struct Toy {
    addr: SocketAddr,
    peer: SocketAddr,
    /// Datagrams still to send for the first time.
    to_send: u32,
    next_seq: u32,
    unacked: Vec<u32>,
    rto: Duration,
    timer: Option<Instant>,
    out: Vec<Vec<u8>>,
    /// (virtual time, payload) of every datagram received.
    log: Vec<(Instant, Vec<u8>)>,
    acked: u32,
    timeouts: u32,
}

impl Toy {
    fn new(addr: SocketAddr, peer: SocketAddr, to_send: u32) -> Self {
        Toy {
            addr,
            peer,
            to_send,
            next_seq: 0,
            unacked: Vec::new(),
            rto: 50 * MS,
            timer: None,
            out: Vec::new(),
            log: Vec::new(),
            acked: 0,
            timeouts: 0,
        }
    }
}

impl Endpoint for Toy {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn handle_datagram(&mut self, now: Instant, _from: SocketAddr, data: &[u8]) {
        self.log.push((now, data.to_vec()));
        match data {
            [b'D', seq @ ..] => {
                let mut ack = vec![b'A'];
                ack.extend_from_slice(seq);
                self.out.push(ack);
            }
            [b'A', seq @ ..] => {
                let seq = u32::from_be_bytes(seq.try_into().unwrap());
                if let Some(i) = self.unacked.iter().position(|&s| s == seq) {
                    self.unacked.remove(i);
                    self.acked += 1;
                }
                if self.unacked.is_empty() {
                    self.timer = None;
                }
            }
            _ => panic!("unexpected datagram"),
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.timeouts += 1;
        if let Some(&seq) = self.unacked.first() {
            let mut d = vec![b'D'];
            d.extend_from_slice(&seq.to_be_bytes());
            self.out.push(d);
            self.timer = Some(now + self.rto);
        } else {
            self.timer = None;
        }
    }
    fn poll_transmit(&mut self, now: Instant) -> Option<(SocketAddr, Vec<u8>)> {
        if self.out.is_empty() && self.to_send > 0 {
            self.to_send -= 1;
            let seq = self.next_seq;
            self.next_seq += 1;
            self.unacked.push(seq);
            self.timer.get_or_insert(now + self.rto);
            let mut d = vec![b'D'];
            d.extend_from_slice(&seq.to_be_bytes());
            return Some((self.peer, d));
        }
        self.out.pop().map(|d| (self.peer, d))
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }
}

fn pair(seed: u64, cfg: LinkConfig, count: u32) -> Sim<Toy> {
    let mut net = Network::new(seed, Instant::now());
    net.set_default_link(cfg);
    Sim::with_nodes(
        net,
        vec![
            Toy::new(addr(1), addr(2), count),
            Toy::new(addr(2), addr(1), 0),
        ],
    )
}

#[test]
fn step_jumps_to_the_next_delivery() {
    let mut sim = pair(1, LinkConfig::with_latency(30 * MS), 1);
    let start = sim.now();
    assert!(sim.step()); // sends D0 at 0, delivers it at 30 ms
    assert_eq!(sim.now(), start + 30 * MS);
    assert_eq!(sim.nodes[1].log.len(), 1);
    assert!(sim.step()); // the ack arrives at 60 ms; the 50 ms timer fires first
    assert_eq!(sim.now(), start + 50 * MS);
    assert_eq!(sim.nodes[0].timeouts, 1);
    assert!(sim.step());
    assert_eq!(sim.now(), start + 60 * MS);
    assert_eq!(sim.nodes[0].acked, 1);
}

#[test]
fn step_reports_idle() {
    let mut sim = pair(1, LinkConfig::default(), 0);
    assert!(!sim.step());
    assert_eq!(sim.now(), sim.net.start());
}

#[test]
fn timers_fire_without_traffic() {
    let mut sim = pair(
        2,
        LinkConfig {
            loss: 1.0,
            ..LinkConfig::default()
        },
        1,
    );
    let start = sim.now();
    assert_eq!(
        sim.run_for(Duration::from_millis(500)),
        RunOutcome::DeadlineReached
    );
    assert_eq!(sim.now(), start + 500 * MS);
    // Retransmissions at 50, 100, ..., 500 ms.
    assert_eq!(sim.nodes[0].timeouts, 10);
    assert_eq!(sim.net.stats().lost, 11);
}

#[test]
fn run_until_stops_on_condition_and_honours_the_deadline() {
    let mut sim = pair(3, LinkConfig::with_latency(10 * MS), 5);
    let start = sim.now();
    assert!(sim.run_until(start + Duration::from_secs(1), |n| n[0].acked == 5));
    // Five datagrams sent at 0 ms, acks back at 20 ms.
    assert_eq!(sim.now(), start + 20 * MS);

    let mut sim = pair(
        3,
        LinkConfig {
            loss: 1.0,
            ..LinkConfig::default()
        },
        1,
    );
    assert!(!sim.run_until(start + 120 * MS, |n| n[0].acked == 1));
    assert_eq!(sim.now(), start + 120 * MS);
}

#[test]
fn run_until_reports_idle() {
    let mut sim = pair(4, LinkConfig::with_latency(MS), 1);
    let start = sim.now();
    let outcome = sim.run_until_outcome(start + Duration::from_secs(10), 1000, |_| false);
    assert_eq!(outcome, RunOutcome::Idle);
    assert_eq!(sim.now(), start + 2 * MS);
}

#[test]
fn datagrams_to_unknown_addresses_are_discarded() {
    let mut sim = pair(5, LinkConfig::default(), 0);
    sim.nodes[0].peer = addr(9);
    sim.nodes[0].to_send = 1;
    sim.run_for(Duration::from_millis(10));
    assert_eq!(sim.net.stats().delivered, 1);
    assert!(sim.nodes[1].log.is_empty());
}

/// An endpoint whose timer is always overdue: a livelock.
struct Stuck(SocketAddr, Instant);
impl Endpoint for Stuck {
    fn addr(&self) -> SocketAddr {
        self.0
    }
    fn handle_datagram(&mut self, _: Instant, _: SocketAddr, _: &[u8]) {}
    fn handle_timeout(&mut self, _: Instant) {}
    fn poll_transmit(&mut self, _: Instant) -> Option<(SocketAddr, Vec<u8>)> {
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Some(self.1)
    }
}

#[test]
fn livelock_is_caught() {
    let start = Instant::now();
    let mut sim = Sim::with_nodes(Network::new(6, start), vec![Stuck(addr(1), start)]);
    let outcome = sim.run_until_outcome(start + Duration::from_secs(1), u64::MAX, |_| false);
    assert_eq!(
        outcome,
        RunOutcome::Livelock {
            at: Duration::ZERO,
            steps: Sim::<Stuck>::MAX_STEPS_WITHOUT_PROGRESS
        }
    );
    assert!(!sim.run_until(start + Duration::from_secs(1), |_| false));
    assert!(matches!(
        sim.run_for(Duration::from_secs(1)),
        RunOutcome::Livelock { .. }
    ));
}

#[test]
fn total_step_bound_is_caught() {
    let mut sim = pair(
        7,
        LinkConfig {
            loss: 1.0,
            ..LinkConfig::default()
        },
        1,
    );
    let start = sim.now();
    let outcome = sim.run_until_outcome(start + Duration::from_secs(3600), 100, |_| false);
    assert_eq!(
        outcome,
        RunOutcome::Livelock {
            at: Duration::from_millis(5000),
            steps: 100
        }
    );
}

/// A zero-latency echo pair that bounces one datagram forever, all at the same instant.
struct Bouncer(SocketAddr, SocketAddr, bool);
impl Endpoint for Bouncer {
    fn addr(&self) -> SocketAddr {
        self.0
    }
    fn handle_datagram(&mut self, _: Instant, _: SocketAddr, _: &[u8]) {
        self.2 = true;
    }
    fn handle_timeout(&mut self, _: Instant) {}
    fn poll_transmit(&mut self, _: Instant) -> Option<(SocketAddr, Vec<u8>)> {
        std::mem::take(&mut self.2).then(|| (self.1, b"x".to_vec()))
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

#[test]
fn zero_latency_ping_pong_is_a_livelock() {
    let start = Instant::now();
    let nodes = vec![
        Bouncer(addr(1), addr(2), true),
        Bouncer(addr(2), addr(1), false),
    ];
    let mut sim = Sim::with_nodes(Network::new(8, start), nodes);
    let outcome = sim.run_until_outcome(start + Duration::from_secs(1), u64::MAX, |_| false);
    assert!(
        matches!(
            outcome,
            RunOutcome::Livelock {
                at: Duration::ZERO,
                ..
            }
        ),
        "{outcome}"
    );
    assert!(sim.net.stats().delivered >= Sim::<Bouncer>::MAX_STEPS_WITHOUT_PROGRESS);
}

fn lossy() -> LinkConfig {
    LinkConfig {
        latency: Duration::from_millis(15),
        jitter: Duration::from_millis(10),
        loss: 0.2,
        duplicate: 0.05,
        reorder: 0.1,
        reorder_delay: Duration::from_millis(20),
        bandwidth: Some(50_000),
        mtu: Some(1400),
    }
}

#[test]
fn same_seed_same_run() {
    let run = |seed| {
        let mut sim = pair(seed, lossy(), 200);
        let start = sim.now();
        let done = sim.run_until(start + Duration::from_secs(60), |n| n[0].acked == 200);
        let logs: Vec<Vec<(Duration, Vec<u8>)>> = sim
            .nodes
            .iter()
            .map(|n| n.log.iter().map(|(t, d)| (*t - start, d.clone())).collect())
            .collect();
        (done, sim.now() - start, logs, sim.net.stats())
    };
    let a = run(1234);
    assert!(a.0, "toy transfer did not finish");
    assert!(a.3.lost > 0 && a.3.duplicated > 0 && a.3.reordered > 0);
    assert_eq!(a, run(1234));
    let b = run(4321);
    assert!(b.0);
    assert_ne!(a.2, b.2);
}

#[test]
fn boxed_heterogeneous_nodes() {
    let start = Instant::now();
    let nodes: Vec<Box<dyn Endpoint>> = vec![
        Box::new(Toy::new(addr(1), addr(2), 3)),
        Box::new(Toy::new(addr(2), addr(1), 0)),
    ];
    let mut sim = Sim::with_nodes(Network::new(9, start), nodes);
    sim.run_for(Duration::from_millis(100));
    assert_eq!(sim.net.stats().delivered, 6);
    assert!(sim.node(addr(2)).is_some() && sim.node_mut(addr(3)).is_none());
}
