//! Each link impairment on its own, checked statistically with fixed seeds, plus replay.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use enet_sim::{Datagram, LinkConfig, NetStats, Network};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

const MS: Duration = Duration::from_millis(1);

/// One arrival: virtual time since start, and the datagram.
type Trace = Vec<(Duration, Datagram)>;

/// Sends `count` datagrams from `a` to `b`, one every `interval` starting at time 0, each
/// carrying its index (u32 big-endian) padded to `size` bytes; returns every arrival in
/// delivery order with its arrival time.
fn drive(net: &mut Network, count: u32, interval: Duration, size: usize) -> Trace {
    let (a, b) = (addr(1), addr(2));
    let start = net.start();
    let mut trace = Vec::new();
    let deliver_until = |net: &mut Network, t: Option<Instant>, trace: &mut Trace| {
        while let Some(at) = net.next_delivery() {
            if t.is_some_and(|t| at > t) {
                break;
            }
            net.advance_to(at);
            while let Some(d) = net.poll_delivery() {
                trace.push((net.now() - start, d));
            }
        }
    };
    for i in 0..count {
        let t = start + interval * i;
        deliver_until(net, Some(t), &mut trace);
        net.advance_to(t);
        let mut data = i.to_be_bytes().to_vec();
        data.resize(size.max(4), 0xAB);
        net.send(a, b, data);
    }
    deliver_until(net, None, &mut trace);
    trace
}

fn index(d: &Datagram) -> u32 {
    u32::from_be_bytes(d.data[..4].try_into().unwrap())
}

fn sent_at(d: &Datagram, interval: Duration) -> Duration {
    interval * index(d)
}

fn net_with(seed: u64, cfg: LinkConfig) -> Network {
    let mut net = Network::new(seed, Instant::now());
    net.set_default_link(cfg);
    net
}

#[test]
fn perfect_link_delivers_everything_in_order_at_send_time() {
    let mut net = net_with(1, LinkConfig::default());
    let trace = drive(&mut net, 100, MS, 20);
    assert_eq!(trace.len(), 100);
    for (i, (at, d)) in trace.iter().enumerate() {
        assert_eq!(index(d) as usize, i);
        assert_eq!(*at, sent_at(d, MS));
        assert_eq!((d.from, d.to, d.data.len()), (addr(1), addr(2), 20));
    }
    let s = net.stats();
    assert_eq!(
        s,
        NetStats {
            sent: 100,
            sent_bytes: 2000,
            delivered: 100,
            delivered_bytes: 2000,
            ..NetStats::default()
        }
    );
}

#[test]
fn latency_delays_every_datagram_exactly() {
    let mut net = net_with(2, LinkConfig::with_latency(Duration::from_millis(75)));
    let trace = drive(&mut net, 50, 10 * MS, 8);
    assert_eq!(trace.len(), 50);
    for (at, d) in &trace {
        assert_eq!(*at, sent_at(d, 10 * MS) + Duration::from_millis(75));
    }
}

#[test]
fn jitter_stays_within_bounds_and_spreads_uniformly() {
    let latency = Duration::from_millis(40);
    let jitter = Duration::from_millis(20);
    let mut net = net_with(
        3,
        LinkConfig {
            latency,
            jitter,
            ..LinkConfig::default()
        },
    );
    let trace = drive(&mut net, 4000, MS, 8);
    assert_eq!(trace.len(), 4000);
    let extra: Vec<f64> = trace
        .iter()
        .map(|(at, d)| {
            let delay = *at - sent_at(d, MS);
            assert!(
                delay >= latency && delay <= latency + jitter,
                "delay {delay:?} out of bounds"
            );
            (delay - latency).as_secs_f64() / jitter.as_secs_f64()
        })
        .collect();
    let mean = extra.iter().sum::<f64>() / extra.len() as f64;
    assert!((0.47..=0.53).contains(&mean), "mean jitter fraction {mean}");
    // Each quarter of the jitter range holds roughly a quarter of the samples.
    for q in 0..4 {
        let lo = q as f64 / 4.0;
        let n = extra.iter().filter(|&&x| x >= lo && x < lo + 0.25).count();
        assert!((850..=1150).contains(&n), "quarter {q} has {n} of 4000");
    }
    // Jitter 20 ms with 1 ms spacing must reorder some datagrams.
    let inversions = trace
        .windows(2)
        .filter(|w| index(&w[0].1) > index(&w[1].1))
        .count();
    assert!(inversions > 100, "only {inversions} inversions");
}

#[test]
fn loss_rate_matches_probability() {
    let mut net = net_with(
        4,
        LinkConfig {
            loss: 0.2,
            ..LinkConfig::default()
        },
    );
    let trace = drive(&mut net, 20_000, MS, 4);
    let s = net.stats();
    assert_eq!(s.sent, 20_000);
    assert_eq!(s.delivered, trace.len() as u64);
    assert_eq!(s.delivered + s.lost, s.sent);
    let rate = s.lost as f64 / s.sent as f64;
    assert!((0.185..=0.215).contains(&rate), "loss rate {rate}");
    // Survivors arrive in order and unchanged.
    assert!(trace.windows(2).all(|w| index(&w[0].1) < index(&w[1].1)));
}

#[test]
fn loss_extremes_and_nan() {
    for (p, expect_delivered) in [(1.0, 0), (0.0, 500), (f64::NAN, 500), (-3.0, 500), (7.0, 0)] {
        let mut net = net_with(
            5,
            LinkConfig {
                loss: p,
                ..LinkConfig::default()
            },
        );
        let trace = drive(&mut net, 500, MS, 4);
        assert_eq!(trace.len(), expect_delivered, "loss {p}");
    }
}

#[test]
fn duplication_rate_matches_probability() {
    let mut net = net_with(
        6,
        LinkConfig {
            duplicate: 0.3,
            ..LinkConfig::default()
        },
    );
    let trace = drive(&mut net, 10_000, MS, 4);
    let s = net.stats();
    assert_eq!(s.delivered, trace.len() as u64);
    assert_eq!(s.delivered, s.sent + s.duplicated);
    let rate = s.duplicated as f64 / s.sent as f64;
    assert!((0.28..=0.32).contains(&rate), "duplicate rate {rate}");
    let mut seen = vec![0u8; 10_000];
    for (_, d) in &trace {
        seen[index(d) as usize] += 1;
    }
    assert!(seen.iter().all(|&n| n == 1 || n == 2));
    assert_eq!(
        seen.iter().filter(|&&n| n == 2).count() as u64,
        s.duplicated
    );
}

#[test]
fn reordering_holds_back_a_fraction_by_the_reorder_delay() {
    let latency = Duration::from_millis(10);
    let reorder_delay = Duration::from_millis(25);
    let cfg = LinkConfig {
        latency,
        reorder: 0.1,
        reorder_delay,
        ..LinkConfig::default()
    };
    let mut net = net_with(7, cfg);
    let trace = drive(&mut net, 10_000, MS, 4);
    assert_eq!(trace.len(), 10_000);
    let s = net.stats();
    let rate = s.reordered as f64 / s.sent as f64;
    assert!((0.09..=0.11).contains(&rate), "reorder rate {rate}");
    let mut held = 0u64;
    for (at, d) in &trace {
        let delay = *at - sent_at(d, MS);
        if delay == latency + reorder_delay {
            held += 1;
        } else {
            assert_eq!(delay, latency);
        }
    }
    assert_eq!(held, s.reordered);
    // A held-back datagram is overtaken by the ones sent in the next 25 ms.
    let inversions = trace
        .windows(2)
        .filter(|w| index(&w[0].1) > index(&w[1].1))
        .count();
    assert!(
        inversions as u64 >= s.reordered / 2,
        "{inversions} inversions"
    );
}

#[test]
fn bandwidth_serialises_through_a_fifo_queue() {
    let latency = Duration::from_millis(5);
    let cfg = LinkConfig {
        latency,
        bandwidth: Some(1000),
        ..LinkConfig::default()
    };
    let mut net = net_with(8, cfg);
    // Ten 100-byte datagrams at once: 100 ms of serialisation each.
    for i in 0u8..10 {
        net.send(addr(1), addr(2), vec![i; 100]);
    }
    let start = net.start();
    for i in 0u8..10 {
        let at = net.next_delivery().unwrap();
        assert_eq!(
            at - start,
            Duration::from_millis(100) * (u32::from(i) + 1) + latency
        );
        net.advance_to(at);
        assert_eq!(net.poll_delivery().unwrap().data, vec![i; 100]);
        assert!(net.poll_delivery().is_none());
    }
    // The queue drained; a datagram sent later only pays its own serialisation time.
    net.advance_to(start + Duration::from_secs(5));
    net.send(addr(1), addr(2), vec![0; 50]);
    assert_eq!(
        net.next_delivery().unwrap() - start,
        Duration::from_millis(5050) + latency
    );
    // The other direction has its own queue.
    net.send(addr(2), addr(1), vec![0; 50]);
    assert_eq!(net.in_flight(), 2);
}

#[test]
fn queue_limit_drops_tail() {
    let cfg = LinkConfig {
        bandwidth: Some(1000),
        ..LinkConfig::default()
    };
    let mut net = net_with(9, cfg);
    net.set_queue_limit(addr(1), addr(2), Some(300));
    for _ in 0..10 {
        net.send(addr(1), addr(2), vec![0; 100]);
    }
    let s = net.link_stats(addr(1), addr(2));
    assert_eq!((s.sent, s.dropped_queue), (10, 7));
    assert_eq!(net.in_flight(), 3);
    // After 150 ms the backlog is 150 bytes: one more 100-byte datagram fits, a second not.
    net.advance_to(net.start() + Duration::from_millis(150));
    net.send(addr(1), addr(2), vec![0; 100]);
    net.send(addr(1), addr(2), vec![0; 100]);
    assert_eq!(net.link_stats(addr(1), addr(2)).dropped_queue, 8);
}

#[test]
fn zero_bandwidth_blocks_the_link() {
    let mut net = net_with(
        10,
        LinkConfig {
            bandwidth: Some(0),
            ..LinkConfig::default()
        },
    );
    let trace = drive(&mut net, 20, MS, 4);
    assert!(trace.is_empty());
    assert_eq!(net.stats().dropped_queue, 20);
}

#[test]
fn mtu_drops_oversize_datagrams_only() {
    let mut net = net_with(
        11,
        LinkConfig {
            mtu: Some(100),
            ..LinkConfig::default()
        },
    );
    net.send(addr(1), addr(2), vec![1; 100]);
    net.send(addr(1), addr(2), vec![2; 101]);
    net.send(addr(1), addr(2), Vec::new());
    let got: Vec<usize> = std::iter::from_fn(|| net.poll_delivery())
        .map(|d| d.data.len())
        .collect();
    assert_eq!(got, [100, 0]);
    assert_eq!(net.stats().dropped_mtu, 1);
}

#[test]
fn links_are_per_direction() {
    let mut net = Network::new(12, Instant::now());
    net.set_link(
        addr(1),
        addr(2),
        LinkConfig {
            loss: 1.0,
            ..LinkConfig::default()
        },
    );
    net.set_link(addr(2), addr(1), LinkConfig::with_latency(3 * MS));
    net.send(addr(1), addr(2), b"lost".to_vec());
    net.send(addr(2), addr(1), b"kept".to_vec());
    net.send(addr(1), addr(3), b"default".to_vec());
    assert_eq!(net.poll_delivery().unwrap().data, b"default");
    net.advance(3 * MS);
    assert_eq!(net.poll_delivery().unwrap().data, b"kept");
    assert!(net.poll_delivery().is_none());
    assert_eq!(net.link_stats(addr(1), addr(2)).lost, 1);
    assert_eq!(net.link_stats(addr(2), addr(1)).delivered, 1);
    assert_eq!(net.stats().sent, 3);

    net.clear_link(addr(1), addr(2));
    assert_eq!(net.link(addr(1), addr(2)), &LinkConfig::default());
    net.send(addr(1), addr(2), b"now fine".to_vec());
    assert_eq!(net.poll_delivery().unwrap().data, b"now fine");
}

#[test]
fn clock_never_goes_backwards() {
    let start = Instant::now();
    let mut net = Network::new(13, start);
    net.advance_to(start + 10 * MS);
    net.advance_to(start + 5 * MS);
    assert_eq!(net.now(), start + 10 * MS);
    assert_eq!(net.elapsed(), 10 * MS);
}

fn everything() -> LinkConfig {
    LinkConfig {
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(15),
        loss: 0.1,
        duplicate: 0.05,
        reorder: 0.05,
        reorder_delay: Duration::from_millis(30),
        bandwidth: Some(200_000),
        mtu: Some(1200),
    }
}

#[test]
fn same_seed_replays_identically_and_other_seeds_differ() {
    let run = |seed| {
        let mut net = net_with(seed, everything());
        let trace = drive(&mut net, 3000, MS, 300);
        (trace, net.stats())
    };
    let (t1, s1) = run(99);
    let (t2, s2) = run(99);
    assert_eq!(t1, t2);
    assert_eq!(s1, s2);
    assert!(s1.lost > 0 && s1.duplicated > 0 && s1.reordered > 0);
    let (t3, _) = run(100);
    assert_ne!(t1, t3);
}

#[test]
fn loss_decisions_do_not_depend_on_other_impairments() {
    // A fixed number of random draws per datagram means that adding jitter or reordering to
    // a link does not change which datagrams a given seed loses.
    let lost = |cfg: LinkConfig| {
        let mut net = net_with(2024, cfg);
        let got: Vec<u32> = drive(&mut net, 500, 100 * MS, 4)
            .iter()
            .map(|(_, d)| index(d))
            .collect();
        (0..500).filter(|i| !got.contains(i)).collect::<Vec<u32>>()
    };
    let plain = lost(LinkConfig {
        loss: 0.5,
        ..LinkConfig::default()
    });
    let shaken = lost(LinkConfig {
        loss: 0.5,
        jitter: Duration::from_millis(3),
        reorder: 0.3,
        reorder_delay: Duration::from_millis(7),
        ..LinkConfig::default()
    });
    assert_eq!(plain, shaken);
    assert!((200..300).contains(&plain.len()), "{} lost", plain.len());
}

#[test]
fn capture_records_what_was_sent_before_impairments() {
    let mut net = net_with(
        14,
        LinkConfig {
            loss: 0.5,
            mtu: Some(10),
            ..LinkConfig::default()
        },
    );
    assert!(net.take_captured().is_empty());
    net.set_capture(true);
    let trace = drive(&mut net, 100, MS, 4);
    net.send(addr(1), addr(2), vec![0; 11]); // over the MTU: dropped, still captured
    let captured = net.take_captured();
    assert_eq!(captured.len(), 101);
    for (i, (at, d)) in captured[..100].iter().enumerate() {
        assert_eq!(index(d) as usize, i);
        assert_eq!(*at - net.start(), MS * i as u32);
    }
    assert!(trace.len() < 100);
    assert!(net.take_captured().is_empty());
    net.set_capture(false);
    net.send(addr(1), addr(2), vec![1]);
    assert!(net.take_captured().is_empty());
}
