//! The host touches only peers with something due: the work of the send and timer
//! paths (`HostStats::peer_visits`) and everything on the wire are the same
//! whether the host has 64 or 4,095 peer slots, and idle connected peers cost a
//! visit per timer of their own (ping, retransmission), not one per wake-up.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use enet_proto::{Event, Host, HostConfig, Packet, PeerId};

const SERVER: &str = "127.0.0.1:7000";

/// Runs `clients` client hosts against one server with `capacity` slots, in
/// memory with a virtual clock: every client connects, echoes `messages`
/// reliable 64-byte messages (8 in flight), then all stay idle for `idle`.
/// Returns the server's peer visits during the echo phase, during the idle
/// phase, the datagrams it received and sent during the idle phase, and every
/// datagram the server sent (the transcript).
fn run(
    capacity: usize,
    clients: u16,
    messages: usize,
    idle: Duration,
) -> (u64, u64, u64, Vec<Vec<u8>>) {
    let start = Instant::now();
    let server_addr: SocketAddr = SERVER.parse().unwrap();
    let mut server = Host::new(
        HostConfig {
            peer_limit: capacity,
            duplicate_peers: capacity,
            seed: 1,
            ..HostConfig::default()
        },
        start,
    )
    .unwrap();
    let mut hosts: Vec<(SocketAddr, Host, PeerId)> = (0..clients)
        .map(|i| {
            let addr = SocketAddr::from(([127, 0, 0, 1], 20_000 + i));
            let mut h = Host::new(
                HostConfig {
                    peer_limit: 1,
                    seed: u64::from(i) + 2,
                    ..HostConfig::default()
                },
                start,
            )
            .unwrap();
            let id = h.connect(start, server_addr, 1, 0).unwrap();
            (addr, h, id)
        })
        .collect();
    let mut transcript = Vec::new();
    let mut now = start;
    let mut sent = vec![0usize; usize::from(clients)];
    let mut echoed = vec![0usize; usize::from(clients)];
    let mut connected = vec![false; usize::from(clients)];
    let mut phase_visits = Vec::new();
    let mut phase_start = server.stats().peer_visits;
    let echo_done = |echoed: &[usize]| echoed.iter().all(|e| *e >= messages);
    let idle_end = |t: Instant, since: Instant| t >= since + idle;
    let mut idle_since: Option<Instant> = None;
    let mut idle_datagrams = 0;
    for _ in 0..1_000_000 {
        // Clients: queue messages, then everything they have goes to the server.
        for (i, (addr, h, id)) in hosts.iter_mut().enumerate() {
            while connected[i] && sent[i] < messages && sent[i] - echoed[i] < 8 {
                h.send(*id, 0, Packet::reliable(vec![i as u8; 64])).unwrap();
                sent[i] += 1;
            }
            h.handle_timeout(now);
            while let Some(t) = h.poll_transmit(now) {
                server.handle_datagram(now, *addr, &t.data);
            }
        }
        // The server echoes and answers.
        while let Some(e) = server.poll_event() {
            if let Event::Receive {
                peer,
                channel,
                packet,
            } = e
            {
                server.send(peer, channel, packet).unwrap();
            }
        }
        server.handle_timeout(now);
        while let Some(t) = server.poll_transmit(now) {
            let i = usize::from(t.destination.port() - 20_000);
            hosts[i].1.handle_datagram(now, server_addr, &t.data);
            transcript.push(t.data);
        }
        for (i, (_, h, _)) in hosts.iter_mut().enumerate() {
            while let Some(e) = h.poll_event() {
                match e {
                    Event::Connect { .. } => connected[i] = true,
                    Event::Receive { .. } => echoed[i] += 1,
                    Event::Disconnect { .. } => panic!("client {i} disconnected"),
                }
            }
        }
        if idle_since.is_none() && connected.iter().all(|c| *c) && echo_done(&echoed) {
            phase_visits.push(server.stats().peer_visits - phase_start);
            phase_start = server.stats().peer_visits;
            idle_datagrams = server.stats().packets_received + server.stats().packets_sent;
            idle_since = Some(now);
        }
        if let Some(since) = idle_since {
            if idle_end(now, since) {
                phase_visits.push(server.stats().peer_visits - phase_start);
                let st = server.stats();
                idle_datagrams = st.packets_received + st.packets_sent - idle_datagrams;
                return (phase_visits[0], phase_visits[1], idle_datagrams, transcript);
            }
        }
        // Next instant: the earliest timer of anyone, at least 1 ms ahead.
        let next = hosts
            .iter()
            .filter_map(|(_, h, _)| h.poll_timeout())
            .chain(server.poll_timeout())
            .min()
            .unwrap_or(now + Duration::from_millis(100));
        now = next.max(now + Duration::from_millis(1));
    }
    panic!("the run did not finish");
}

#[test]
fn work_and_wire_do_not_depend_on_peer_capacity() {
    let small = run(64, 3, 300, Duration::from_secs(5));
    let large = run(4095, 3, 300, Duration::from_secs(5));
    assert!(
        small.0 > 0 && small.1 > 0,
        "the run did something: {small:?}"
    );
    assert_eq!(small.3, large.3, "the same datagrams, byte for byte");
    assert_eq!(
        (small.0, small.1),
        (large.0, large.1),
        "peer visits (echo phase, idle phase) with 64 and 4,095 slots"
    );
}

#[test]
fn idle_peers_cost_visits_per_datagram_not_per_wakeup() {
    // 50 connected idle peers for 10 s with 4,095 slots: ENet pings each peer
    // (both ways) about every 500 ms. A peer is visited when a datagram for it
    // arrives, when it sends one (plus one visit that finds nothing more), and
    // when its own timer expires (which sends a ping): at most 3 visits per
    // datagram in or out. A host that walked its table at every wake-up would
    // make thousands of visits per wake-up instead.
    let (_, visits, datagrams, _) = run(4095, 50, 1, Duration::from_secs(10));
    assert!(
        datagrams >= 50 * 10,
        "the idle peers kept pinging: {datagrams} datagrams"
    );
    assert!(
        visits <= 3 * datagrams,
        "{visits} peer visits for {datagrams} datagrams in and out (50 idle peers, 10 s)"
    );
}
