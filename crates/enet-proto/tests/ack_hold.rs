//! `HostConfig::acks_with_replies`: the acknowledgements of data wait while the application
//! has events to take, and leave in the datagram that carries its reply; everything else
//! (pings, no event waiting, an explicit release) is acknowledged at once, as C ENet does.

mod common;

use std::time::{Duration, Instant};

use common::addr;
use enet_proto::wire::{Command, Datagram};
use enet_proto::{Event, Host, HostConfig, Packet, PeerId};

const SERVER: &str = "10.0.0.1:7000";
const CLIENT: &str = "10.0.0.2:7000";

/// What one datagram carries: (ACKNOWLEDGEs, SEND_RELIABLEs, PINGs).
fn kinds(data: &[u8]) -> (usize, usize, usize) {
    let d = Datagram::parse(data, false).expect("a well-formed datagram");
    let count = |f: fn(&Command<'_>) -> bool| d.commands.iter().filter(|c| f(&c.command)).count();
    (
        count(|c| matches!(c, Command::Acknowledge { .. })),
        count(|c| matches!(c, Command::SendReliable { .. })),
        count(|c| matches!(c, Command::Ping)),
    )
}

struct Pair {
    server: Host,
    client: Host,
    to_server: PeerId,
    to_client: PeerId,
    now: Instant,
}

impl Pair {
    /// A connected pair; the server holds acknowledgements when `hold`.
    fn new(hold: bool) -> Pair {
        let now = Instant::now();
        let config = HostConfig {
            acks_with_replies: hold,
            ..HostConfig::default()
        };
        let (server, client, to_server) = common::connecting(now, SERVER, config);
        let mut pair = Pair {
            server,
            client,
            to_server,
            to_client: to_server,
            now,
        };
        let mut to_client = None;
        for _ in 0..10 {
            pair.client_to_server();
            pair.server_to_client();
            while let Some(e) = pair.server.poll_event() {
                if let Event::Connect { peer, .. } = e {
                    to_client = Some(peer);
                }
            }
            while pair.client.poll_event().is_some() {}
        }
        pair.to_client = to_client.expect("connected");
        pair
    }

    /// Moves every datagram the client wants to send to the server.
    fn client_to_server(&mut self) {
        while let Some(t) = self.client.poll_transmit(self.now) {
            self.server.handle_datagram(self.now, addr(CLIENT), &t.data);
        }
    }

    /// Moves every datagram the server wants to send to the client; returns them.
    fn server_to_client(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(t) = self.server.poll_transmit(self.now) {
            self.client.handle_datagram(self.now, addr(SERVER), &t.data);
            out.push(t.data);
        }
        out
    }

    /// The client sends one reliable packet; the server receives it.
    fn request(&mut self, body: &[u8]) {
        self.client
            .send(self.to_server, 0, Packet::reliable(body.to_vec()))
            .unwrap();
        self.client_to_server();
    }
}

/// The acknowledgement and the reply leave in one datagram: nothing goes out while the
/// request's event waits; once the application took it and queued its reply, one datagram
/// carries both, and the client needs nothing else (no retransmission, no second datagram).
#[test]
fn the_acknowledgement_rides_with_the_reply() {
    let mut p = Pair::new(true);
    p.request(b"ping?");
    // The service round's send after receiving: the ack is held (an event waits).
    assert!(
        p.server_to_client().is_empty(),
        "sent before the event was taken"
    );
    assert!(p.server.holds_acknowledgements());
    assert!(
        p.server.poll_timeout().is_none_or(|t| t > p.now),
        "a held acknowledgement must not make the host due now"
    );
    let Some(Event::Receive { peer, packet, .. }) = p.server.poll_event() else {
        panic!("no receive event")
    };
    assert_eq!(packet.data, b"ping?");
    p.server
        .send(peer, 0, Packet::reliable(b"pong!".to_vec()))
        .unwrap();
    let sent = p.server_to_client();
    assert_eq!(sent.len(), 1, "one datagram for the ack and the reply");
    assert_eq!(kinds(&sent[0]), (1, 1, 0));
    assert!(!p.server.holds_acknowledgements());
    // The client got its acknowledgement (nothing in flight) and the reply.
    let client_peer = p.client.peer(p.to_server).unwrap();
    assert_eq!(client_peer.stats().reliable_data_in_transit, 0);
    assert!(matches!(
        p.client.poll_event(),
        Some(Event::Receive { packet, .. }) if packet.data == b"pong!"
    ));
}

/// Without the option (C ENet's behaviour) the same exchange takes two datagrams: the
/// acknowledgement at once, the reply after.
#[test]
fn without_the_option_the_acknowledgement_leaves_at_once() {
    let mut p = Pair::new(false);
    p.request(b"ping?");
    let sent = p.server_to_client();
    assert_eq!(sent.len(), 1);
    assert_eq!(kinds(&sent[0]), (1, 0, 0));
    assert!(!p.server.holds_acknowledgements());
    let Some(Event::Receive { peer, .. }) = p.server.poll_event() else {
        panic!("no receive event")
    };
    p.server
        .send(peer, 0, Packet::reliable(b"pong!".to_vec()))
        .unwrap();
    let sent = p.server_to_client();
    assert_eq!(sent.len(), 1);
    assert_eq!(kinds(&sent[0]), (0, 1, 0));
}

/// The hold is bounded: taking the event without replying sends the acknowledgement at the
/// next `poll_transmit`, and `release_acknowledgements` sends it while the event still waits.
#[test]
fn held_acknowledgements_leave_once_the_events_are_taken_or_released() {
    let mut p = Pair::new(true);
    p.request(b"a");
    assert!(p.server_to_client().is_empty());
    assert!(p.server.poll_event().is_some());
    // No event waits now: the host is due, and the ack goes out alone.
    assert!(p.server.poll_timeout().is_some_and(|t| t <= p.now));
    let sent = p.server_to_client();
    assert_eq!(sent.len(), 1);
    assert_eq!(kinds(&sent[0]), (1, 0, 0));

    p.request(b"b");
    assert!(p.server_to_client().is_empty());
    p.server.release_acknowledgements();
    let sent = p.server_to_client();
    assert_eq!(sent.len(), 1, "released while the event still waits");
    assert_eq!(kinds(&sent[0]), (1, 0, 0));
    // The released hold does not come back for the same batch.
    assert!(p.server_to_client().is_empty());
    assert!(p.server.poll_event().is_some());
    assert!(p.server_to_client().is_empty());
}

/// Pings are acknowledged at once even while events wait (the remote's round-trip time
/// must not include the application's time), and so is data when no event waits.
#[test]
fn pings_are_acknowledged_at_once() {
    let mut p = Pair::new(true);
    p.request(b"x");
    assert!(p.server_to_client().is_empty());
    // The event still waits; the client pings.
    p.client.ping(p.to_server).unwrap();
    p.client_to_server();
    let sent = p.server_to_client();
    assert_eq!(sent.len(), 1);
    let (acks, replies, _) = kinds(&sent[0]);
    assert_eq!(replies, 0);
    assert!(acks >= 1, "the ping's acknowledgement left");
    // The unreliable traffic of a peer that produces no event is acknowledged at once too:
    // time passes and the client's own ping timer fires without any event on the server
    // (after 1.5 ping intervals of silence: the client has sent nothing but acknowledgements
    // since its last acknowledgement came back).
    while p.server.poll_event().is_some() {}
    p.server_to_client();
    p.now += Duration::from_millis(800);
    p.client.handle_timeout(p.now);
    p.client_to_server();
    p.server.handle_timeout(p.now);
    let sent = p.server_to_client();
    assert!(
        sent.iter().any(|d| kinds(d).0 >= 1),
        "ping not acknowledged"
    );
    assert!(!p.server.holds_acknowledgements());
}

/// A soak in the simulator under loss, jitter and reordering: an echo server that holds its
/// acknowledgements for the echoes returns every packet, in order, with far fewer datagrams
/// than the same server acknowledging at once.
#[test]
fn echo_soak_with_held_acknowledgements() {
    for seed in [3, 4] {
        let at_once = echo_soak(seed, false);
        let held = echo_soak(seed, true);
        // Without the hold: one datagram for the acknowledgements and one for the echoes of
        // each batch of requests; with it, mostly one (retransmissions and pings aside).
        assert!(
            held * 10 < at_once * 7,
            "seed {seed}: {held} datagrams with the hold, {at_once} without"
        );
    }
}

/// Runs the echo soak; returns the datagrams the server sent.
fn echo_soak(seed: u64, hold: bool) -> u64 {
    use common::{connect, pair};
    use enet_sim::LinkConfig;
    let link = LinkConfig {
        latency: Duration::from_millis(5),
        jitter: Duration::from_millis(3),
        loss: 0.02,
        ..LinkConfig::default()
    };
    let server = HostConfig {
        acks_with_replies: hold,
        ..HostConfig::default()
    };
    let mut sim = pair(seed, link, server, HostConfig::default());
    sim.nodes[0].echo = true;
    let (_sp, cp) = connect(&mut sim, 2, 0);
    let before = sim.nodes[0].host.stats().packets_sent;
    const N: u32 = 3000;
    let mut sent = 0u32;
    let deadline = sim.now() + Duration::from_secs(600);
    while sim.nodes[1].receives < N as usize {
        assert!(
            sim.now() < deadline,
            "seed {seed}: stalled at {} of {sent}: {:?} {:?}",
            sim.nodes[1].receives,
            sim.nodes[0].host.stats(),
            sim.nodes[0].host.holds_acknowledgements()
        );
        // At most 4 requests in flight, each one reliable.
        while sent < N && sent - (sim.nodes[1].receives as u32) < 4 {
            let body = sent.to_be_bytes().to_vec();
            sim.nodes[1]
                .host
                .send(cp, 1, Packet::reliable(body))
                .unwrap();
            sent += 1;
        }
        let until = sim.now() + Duration::from_millis(1);
        sim.run_until(until, |_| false);
    }
    let got: Vec<u32> = sim.nodes[1]
        .received()
        .iter()
        .map(|(_, d)| u32::from_be_bytes(d[..4].try_into().unwrap()))
        .collect();
    assert!(got.iter().copied().eq(0..N), "seed {seed}: out of order");
    assert!(sim.nodes[0].disconnects().is_empty());
    assert!(sim.nodes[1].disconnects().is_empty());
    assert_eq!(sim.nodes[0].oversize, 0);
    sim.nodes[0].host.stats().packets_sent - before
}
