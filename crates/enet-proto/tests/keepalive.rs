//! Keepalive pings of idle connections (`Peer::ping_wait`): C ENet pings a peer once
//! `ping_interval` passes without an acknowledgement from it, even when that peer pings too;
//! our host, when it has sent nothing but acknowledgements, waits for 1.5 intervals of
//! silence, so that one side's pings keep an idle connection alive. A peer that goes quiet
//! is still pinged and timed out, and unreliable traffic keeps C ENet's rule.

mod common;

use std::time::{Duration, Instant};

use enet_proto::wire::{Command, Datagram};
use enet_proto::{DisconnectReason, Event, Host, HostConfig, Packet, PeerId};

use common::addr;

const SERVER: &str = "10.0.0.1:7000";
const CLIENT: &str = "10.0.0.2:7000";
const STEP: Duration = Duration::from_millis(5);

/// PINGs and ACKNOWLEDGEs in one datagram.
fn pings_and_acks(data: &[u8]) -> (usize, usize) {
    let d = Datagram::parse(data, false).expect("a well-formed datagram");
    let pings = d
        .commands
        .iter()
        .filter(|c| matches!(c.command, Command::Ping))
        .count();
    let acks = d
        .commands
        .iter()
        .filter(|c| matches!(c.command, Command::Acknowledge { .. }))
        .count();
    (pings, acks)
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    datagrams: usize,
    /// PING commands, retransmissions included.
    pings: usize,
    acks: usize,
    /// When the first PING of this tally went out.
    first_ping: Option<Instant>,
}

impl Tally {
    fn add(&mut self, data: &[u8], now: Instant) {
        let (pings, acks) = pings_and_acks(data);
        self.datagrams += 1;
        self.pings += pings;
        self.acks += acks;
        if pings > 0 && self.first_ping.is_none() {
            self.first_ping = Some(now);
        }
    }
}

struct Pair {
    server: Host,
    client: Host,
    to_server: PeerId,
    to_client: PeerId,
    now: Instant,
    /// What each side sent: [server, client].
    sent: [Tally; 2],
    /// Whether the client's datagrams reach the server (false: the client vanished).
    client_alive: bool,
    /// The time between two service rounds of both hosts.
    step: Duration,
    server_events: Vec<Event>,
    client_events: Vec<Event>,
}

impl Pair {
    fn new() -> Pair {
        let now = Instant::now();
        let (server, client, to_server) = common::connecting(now, SERVER, HostConfig::default());
        let mut p = Pair {
            server,
            client,
            to_server,
            to_client: to_server,
            now,
            sent: [Tally::default(); 2],
            client_alive: true,
            step: STEP,
            server_events: Vec::new(),
            client_events: Vec::new(),
        };
        // The connection and the tail of its setup (each side's BANDWIDTH_LIMIT, sent at the
        // first bandwidth throttle a second later, and its acknowledgement) before the tallies
        // start.
        p.run(Duration::from_millis(1500), |_| {});
        p.to_client = p
            .server_events
            .iter()
            .find_map(|e| match e {
                Event::Connect { peer, .. } => Some(*peer),
                _ => None,
            })
            .expect("connected");
        p.sent = [Tally::default(); 2];
        p
    }

    /// Runs `time` in steps of `self.step` on a lossless link with no delay; `each` runs before
    /// every step with the elapsed time of this call.
    fn run(&mut self, time: Duration, mut each: impl FnMut(&mut Pair)) {
        let end = self.now + time;
        while self.now < end {
            each(self);
            self.server.handle_timeout(self.now);
            self.client.handle_timeout(self.now);
            for _ in 0..4 {
                while let Some(t) = self.client.poll_transmit(self.now) {
                    self.sent[1].add(&t.data, self.now);
                    if self.client_alive {
                        self.server.handle_datagram(self.now, addr(CLIENT), &t.data);
                    }
                }
                while let Some(t) = self.server.poll_transmit(self.now) {
                    self.sent[0].add(&t.data, self.now);
                    if self.client_alive {
                        self.client.handle_datagram(self.now, addr(SERVER), &t.data);
                    }
                }
            }
            while let Some(e) = self.server.poll_event() {
                self.server_events.push(e);
            }
            while let Some(e) = self.client.poll_event() {
                self.client_events.push(e);
            }
            self.now += self.step;
        }
    }

    /// The client pings the server every 500 ms for `time`, as an idle C ENet host does;
    /// returns when it pinged last.
    fn client_pings_like_c(&mut self, time: Duration) -> Instant {
        let mut next = self.now;
        let mut last = self.now;
        let to_server = self.to_server;
        self.run(time, |p| {
            if p.now >= next {
                p.client.ping(to_server).unwrap();
                last = p.now;
                next = p.now + Duration::from_millis(500);
            }
        });
        last
    }

    /// The client vanishes: the server's first ping comes between 750 ms (1.5 intervals) and
    /// `latest` after the client's last ping, and the server times the client out.
    fn vanish_and_time_out(&mut self, last_ping: Instant, latest: Duration) {
        assert_eq!(self.sent[0].pings, 0, "{:?}", self.sent);
        self.client_alive = false;
        self.run(Duration::from_secs(2), |_| {});
        let first = self.sent[0]
            .first_ping
            .expect("the server pinged the silent client");
        let silence = first - last_ping;
        assert!(
            silence >= Duration::from_millis(750) && silence <= latest,
            "first ping after {silence:?} of silence"
        );
        // C ENet's timeout rules from there on (at most timeout_maximum, 30 s).
        self.run(Duration::from_secs(35), |_| {});
        assert_eq!(
            Pair::disconnects(&self.server_events),
            vec![DisconnectReason::Timeout]
        );
    }

    /// Neither side saw a disconnection.
    fn assert_connected(&self) {
        assert!(Pair::disconnects(&self.server_events).is_empty());
        assert!(Pair::disconnects(&self.client_events).is_empty());
    }

    fn disconnects(events: &[Event]) -> Vec<DisconnectReason> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Disconnect { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect()
    }
}

/// A client that pings every 500 ms (as every C ENet host does while idle) keeps the
/// connection alive on its own: the server acknowledges each ping and sends no ping.
#[test]
fn a_server_only_answers_a_client_that_pings() {
    let mut p = Pair::new();
    p.client_pings_like_c(Duration::from_secs(10));
    let [server, client] = p.sent;
    assert!(client.pings >= 19, "client pings: {client:?}");
    assert_eq!(server.pings, 0, "the server pinged: {server:?}");
    assert!(
        server.acks >= client.pings,
        "every ping acknowledged: {server:?} {client:?}"
    );
    // One datagram per ping: the acknowledgement, nothing else.
    assert_eq!(server.datagrams, client.pings, "{server:?} {client:?}");
    p.assert_connected();
}

/// Two of our hosts left idle carry one ping (and its acknowledgement) per 1.5 ping
/// intervals between them, not two pings per interval as two C ENet hosts do.
#[test]
fn two_idle_hosts_share_one_ping_per_interval() {
    let mut p = Pair::new();
    p.run(Duration::from_secs(15), |_| {});
    let [server, client] = p.sent;
    let pings = server.pings + client.pings;
    // 15 s / 750 ms = 20 (the 20 ms timer grid may stretch an interval a little).
    assert!(
        (17..=21).contains(&pings),
        "pings: server {server:?}, client {client:?}"
    );
    assert_eq!(server.acks, client.pings, "{server:?} {client:?}");
    assert_eq!(client.acks, server.pings, "{server:?} {client:?}");
    p.assert_connected();
}

/// When the client vanishes the server still pings it (1.5 intervals after it last heard
/// from it) and times it out.
#[test]
fn a_vanished_client_is_pinged_and_timed_out() {
    let mut p = Pair::new();
    let last_ping = p.client_pings_like_c(Duration::from_millis(1800));
    // 1.5 intervals, rounded up to the 20 ms timer grid, plus one step of the loop.
    p.vanish_and_time_out(last_ping, Duration::from_millis(775));
}

/// A host that sends unreliable data keeps C ENet's rule (a ping once an interval passes
/// without an acknowledgement), although it hears from its peer all the time: the
/// round-trip samples drive the packet throttle of that data.
#[test]
fn unreliable_traffic_keeps_the_c_ping_rule() {
    let mut p = Pair::new();
    let (to_server, to_client) = (p.to_server, p.to_client);
    let mut next = p.now;
    p.run(Duration::from_secs(5), |p| {
        if p.now >= next {
            p.server
                .send(to_client, 0, Packet::unreliable(b"state".to_vec()))
                .unwrap();
            p.client
                .send(to_server, 0, Packet::unreliable(b"input".to_vec()))
                .unwrap();
            next = p.now + Duration::from_millis(50);
        }
    });
    let [server, client] = p.sent;
    // 5 s / 500 ms = 10 each (the 20 ms grid may stretch an interval a little).
    assert!((8..=10).contains(&server.pings), "server {server:?}");
    assert!((8..=10).contains(&client.pings), "client {client:?}");
}

/// A client that pinged for more than a day (longer than ENet's wire clock can compare two
/// times directly: the server's last acknowledgement from it is that old) and then vanishes
/// is still pinged and timed out.
#[test]
fn a_client_that_pinged_for_a_day_is_still_timed_out() {
    let mut p = Pair::new();
    p.step = Duration::from_millis(250);
    let last_ping = p.client_pings_like_c(Duration::from_secs(25 * 3600));
    assert!(p.sent[1].pings >= 25 * 3600 * 2 - 10, "{:?}", p.sent);
    p.assert_connected();
    // 1.5 intervals, rounded up to the timer grid and this test's 250 ms steps.
    p.vanish_and_time_out(last_ping, Duration::from_millis(1000));
}
