//! The sans-IO DTLS [`Endpoint`] in the simulator (virtual time, fixed seeds): handshakes under loss,
//! duplication and reordering, many clients, the session cap, the per-address share, reconnection,
//! idle and half-open expiry, cheap refusals, generational handles and IPv4-mapped addresses.

mod support;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use dtls_proto::keys::{Certificate, PrivateKey};
use dtls_proto::{
    ClientConfig, CloseReason, DtlsError, DtlsSession, Endpoint, EndpointConfig, Event,
    ServerConfig, SessionHandle,
};
use enet_sim::{Endpoint as SimEndpoint, LinkConfig, Network, Sim};

fn identity() -> &'static (PrivateKey, Certificate) {
    static ID: OnceLock<(PrivateKey, Certificate)> = OnceLock::new();
    ID.get_or_init(|| support::rsa_identity("localhost"))
}

fn server_config() -> ServerConfig {
    let (key, cert) = identity().clone();
    ServerConfig::builder(key, cert)
        .build()
        .expect("server config")
}

fn client_config() -> ClientConfig {
    ClientConfig::builder()
        .hostname("localhost")
        .trusted_certificate(identity().1.clone())
        .build()
        .expect("client config")
}

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const SERVER: &str = "10.0.0.1:4433";

/// One endpoint in the simulator with the events it reported.
struct Node {
    addr: SocketAddr,
    ep: Endpoint,
    events: Vec<(Instant, Event)>,
    /// Receives and sends nothing (a peer that went away).
    stalled: bool,
}

impl Node {
    fn server(config: EndpointConfig) -> Node {
        // Every simulation here depends on OpenSSL's timers following the virtual clock.
        assert!(dtls_proto::virtual_time_supported());
        Node {
            addr: a(SERVER),
            ep: Endpoint::server(config, &server_config()).unwrap(),
            events: vec![],
            stalled: false,
        }
    }

    fn client(addr: SocketAddr, now: Instant) -> (Node, SessionHandle) {
        let mut ep = Endpoint::client(EndpointConfig::default()).unwrap();
        let h = ep.connect(now, a(SERVER), &client_config()).unwrap();
        (
            Node {
                addr,
                ep,
                events: vec![],
                stalled: false,
            },
            h,
        )
    }

    fn drain(&mut self, now: Instant) {
        while let Some(e) = self.ep.poll_event() {
            self.events.push((now, e));
        }
    }

    fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|(_, e)| f(e)).count()
    }

    fn connected(&self) -> usize {
        self.count(|e| matches!(e, Event::Connected { .. }))
    }

    fn ended(&self) -> usize {
        self.count(|e| matches!(e, Event::Closed { .. } | Event::Failed { .. }))
    }
}

impl SimEndpoint for Node {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        if !self.stalled {
            self.ep.handle(now, from, data);
            self.drain(now);
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.ep.handle_timeout(now);
        self.drain(now);
    }
    fn poll_transmit(&mut self, _now: Instant) -> Option<(SocketAddr, Vec<u8>)> {
        let t = self.ep.poll_transmit()?;
        (!self.stalled).then_some((t.destination, t.contents))
    }
    fn poll_timeout(&self) -> Option<Instant> {
        if self.stalled {
            return None;
        }
        self.ep.poll_timeout()
    }
}

fn client_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 1, (i / 200) as u8, (i % 200) as u8 + 1], 5000))
}

/// A server and `n` clients (each its own address), all connecting at the start.
fn sim(seed: u64, link: LinkConfig, server: EndpointConfig, n: usize) -> Sim<Node> {
    let start = Instant::now();
    let mut net = Network::new(seed, start);
    net.set_default_link(link);
    net.set_capture(true);
    let mut sim = Sim::new(net);
    sim.nodes.push(Node::server(server));
    for i in 0..n {
        sim.nodes.push(Node::client(client_addr(i), start).0);
    }
    sim
}

fn lossy() -> LinkConfig {
    LinkConfig {
        latency: Duration::from_millis(15),
        jitter: Duration::from_millis(10),
        loss: 0.2,
        duplicate: 0.15,
        reorder: 0.15,
        reorder_delay: Duration::from_millis(25),
        ..LinkConfig::default()
    }
}

/// Times, addresses, lengths and record headers of everything sent, plus every event and its time.
fn digest(sim: &mut Sim<Node>) -> u64 {
    let start = sim.net.start();
    let mut h = DefaultHasher::new();
    for (t, d) in sim.net.take_captured() {
        (t - start).hash(&mut h);
        (d.from, d.to, d.data.len()).hash(&mut h);
        let mut rest = &d.data[..];
        while rest.len() >= 13 {
            rest[..13].hash(&mut h);
            let len = usize::from(u16::from_be_bytes([rest[11], rest[12]]));
            rest = rest.get(13 + len..).unwrap_or(&[]);
        }
    }
    for n in &sim.nodes {
        for (t, e) in &n.events {
            (*t - start).hash(&mut h);
            format!("{e:?}").hash(&mut h);
        }
    }
    h.finish()
}

#[test]
fn many_clients_handshake_under_loss_duplication_and_reordering_deterministically() {
    assert!(dtls_proto::virtual_time_supported());
    let run = |seed| {
        let mut s = sim(seed, lossy(), EndpointConfig::default(), 24);
        let start = s.now();
        let done = s.run_until(start + Duration::from_secs(20), |nodes| {
            nodes[1..].iter().all(|n| n.connected() == 1) && nodes[0].connected() == 24
        });
        assert!(
            done,
            "seed {seed}: server saw {} connections",
            s.nodes[0].connected()
        );
        let stats = s.net.stats();
        assert!(
            stats.lost > 0 && stats.duplicated > 0 && stats.reordered > 0,
            "{stats:?}"
        );
        assert_eq!(s.nodes[0].ep.session_count(), 24);
        assert_eq!(s.nodes[0].ep.stats().handshakes_completed, 24);
        digest(&mut s)
    };
    for seed in [11, 12] {
        assert_eq!(run(seed), run(seed), "seed {seed}: runs differ");
    }
    assert_ne!(run(11), run(12));
}

#[test]
fn data_flows_both_ways_and_close_notify_reaches_the_peer() {
    let mut s = sim(
        1,
        LinkConfig::with_latency(Duration::from_millis(5)),
        EndpointConfig::default(),
        1,
    );
    let start = s.now();
    assert!(
        s.run_until(start + Duration::from_secs(5), |n| n[0].connected() == 1
            && n[1].connected() == 1)
    );
    let ch = s.nodes[1].ep.handle_of(a(SERVER)).unwrap();
    s.nodes[1].ep.send(ch, b"ping").unwrap();
    assert!(s.run_until(start + Duration::from_secs(5), |n| n[0]
        .count(|e| matches!(e, Event::Data { data, .. } if data == b"ping"))
        == 1));
    let sh = s.nodes[0].ep.handle_of(client_addr(0)).unwrap();
    s.nodes[0].ep.send(sh, b"pong").unwrap();
    s.nodes[0].ep.close(sh).unwrap();
    let now = s.now();
    s.nodes[0].drain(now);
    assert!(s.run_until(start + Duration::from_secs(5), |n| n[1].ended() == 1));
    let ev: Vec<&Event> = s.nodes[1].events.iter().map(|(_, e)| e).collect();
    assert!(
        matches!(ev[1], Event::Data { data, .. } if data == b"pong"),
        "{ev:?}"
    );
    assert!(
        matches!(
            ev[2],
            Event::Closed {
                reason: CloseReason::Remote,
                ..
            }
        ),
        "{ev:?}"
    );
    assert!(matches!(
        s.nodes[0].events.last().unwrap().1,
        Event::Closed {
            reason: CloseReason::Local,
            ..
        }
    ));
    // Both handles are stale now.
    assert_eq!(s.nodes[0].ep.send(sh, b"x"), Err(DtlsError::UnknownSession));
    assert_eq!(s.nodes[1].ep.send(ch, b"x"), Err(DtlsError::UnknownSession));
}

#[test]
fn session_cap_refuses_extra_clients_without_building_their_flight() {
    let cfg = EndpointConfig::default()
        .max_sessions(4)
        .max_sessions_per_address(4);
    let mut s = sim(
        2,
        LinkConfig::with_latency(Duration::from_millis(10)),
        cfg,
        6,
    );
    let start = s.now();
    // Clients give up after their 10 s handshake timeout; the four admitted ones connect.
    s.run_until(start + Duration::from_secs(15), |n| {
        n[1..].iter().all(|c| c.connected() + c.ended() == 1)
    });
    let connected = s.nodes[1..].iter().filter(|c| c.connected() == 1).count();
    let failed = s.nodes[1..]
        .iter()
        .filter(|c| {
            c.count(|e| {
                matches!(
                    e,
                    Event::Failed {
                        error: DtlsError::HandshakeTimeout { .. },
                        ..
                    }
                )
            }) == 1
        })
        .count();
    assert_eq!((connected, failed), (4, 2));
    let st = s.nodes[0].ep.stats();
    assert_eq!(st.sessions, 4);
    assert_eq!(st.server_handshakes_started, 4, "{st:?}");
    assert!(st.refused_table_full >= 2, "{st:?}");
    assert_eq!(st.refused_address_share, 0);
}

#[test]
fn one_address_cannot_take_the_table_another_address_still_gets_in() {
    let start = Instant::now();
    let mut net = Network::new(3, start);
    net.set_default_link(LinkConfig::with_latency(Duration::from_millis(10)));
    let mut s = Sim::new(net);
    let cfg = EndpointConfig::default()
        .max_sessions(8)
        .max_sessions_per_address(3);
    assert_eq!(cfg.get_max_sessions_per_address(), 3);
    s.nodes.push(Node::server(cfg));
    for port in 0..6 {
        s.nodes
            .push(Node::client(SocketAddr::from(([10, 9, 9, 9], 6000 + port)), start).0);
    }
    let (other, _) = Node::client(a("10.9.9.10:6000"), start);
    s.nodes.push(other);
    s.run_until(start + Duration::from_secs(12), |n| {
        n[1..].iter().all(|c| c.connected() + c.ended() == 1)
    });
    let same: usize = s.nodes[1..7].iter().map(Node::connected).sum();
    assert_eq!(same, 3, "one address got its share, no more");
    assert_eq!(s.nodes[7].connected(), 1, "another address still gets in");
    let st = s.nodes[0].ep.stats();
    assert!(st.refused_address_share >= 3, "{st:?}");
    assert_eq!(st.server_handshakes_started, 4);
}

#[test]
fn default_share_rule() {
    let share = |max| {
        EndpointConfig::default()
            .max_sessions(max)
            .get_max_sessions_per_address()
    };
    assert_eq!(share(1024), 128);
    assert_eq!(share(64), 16);
    assert_eq!(share(4), 4);
    assert_eq!(share(1), 1);
    for bad in [
        EndpointConfig::default().max_sessions(0),
        EndpointConfig::default().max_sessions_per_address(0),
        EndpointConfig::default().idle_timeout(Some(Duration::ZERO)),
    ] {
        let err = Endpoint::client(bad).unwrap_err();
        assert!(matches!(err, DtlsError::Config { .. }), "{err}");
    }
}

#[test]
fn reconnect_from_the_same_address_replaces_the_old_session() {
    let mut s = sim(
        4,
        LinkConfig::with_latency(Duration::from_millis(10)),
        EndpointConfig::default(),
        1,
    );
    let start = s.now();
    assert!(
        s.run_until(start + Duration::from_secs(5), |n| n[0].connected() == 1
            && n[1].connected() == 1)
    );
    let old = s.nodes[0].ep.handle_of(client_addr(0)).unwrap();
    // The client "restarts": a fresh endpoint at the same address, with no memory of the session.
    let now = s.now();
    let (fresh, _) = Node::client(client_addr(0), now);
    s.nodes[1] = fresh;
    assert!(
        s.run_until(now + Duration::from_secs(5), |n| n[0].connected() == 2
            && n[1].connected() == 1)
    );
    let replaced = s.nodes[0].count(|e| matches!(e, Event::Closed { handle, reason: CloseReason::Replaced, .. } if *handle == old));
    assert_eq!(replaced, 1);
    let new = s.nodes[0].ep.handle_of(client_addr(0)).unwrap();
    assert_ne!(new, old);
    assert_eq!(s.nodes[0].ep.session_count(), 1);
    assert_eq!(s.nodes[0].ep.status(old), Err(DtlsError::UnknownSession));
}

/// A client that restarts in the middle of its handshake (after the server accepted its cookie) gets in
/// at once with a new handshake from the same address, instead of waiting for the half-open timeout.
#[test]
fn restart_mid_handshake_replaces_the_half_open_session() {
    let mut s = sim(
        8,
        LinkConfig::with_latency(Duration::from_millis(10)),
        EndpointConfig::default(),
        1,
    );
    let start = s.now();
    // The cookie ClientHello reaches the server at 30 ms; the client goes silent at 25 ms (it never
    // sees the server flight) and restarts from the same address at 150 ms, between the server's
    // retransmissions (130 ms, 330 ms).
    s.run_until(start + Duration::from_millis(25), |_| false);
    s.nodes[1].stalled = true;
    s.run_until(start + Duration::from_millis(150), |_| false);
    assert_eq!(s.nodes[0].ep.session_count(), 1, "half-open session");
    let old = s.nodes[0].ep.handle_of(client_addr(0)).unwrap();
    let now = s.now();
    s.nodes[1] = Node::client(client_addr(0), now).0;
    let ok = s.run_until(now + Duration::from_secs(2), |n| {
        n[1].connected() == 1 && n[0].connected() == 1
    });
    assert!(
        ok,
        "server {:?}\nclient {:?}",
        s.nodes[0].events, s.nodes[1].events
    );
    assert!(
        s.now() - now < Duration::from_secs(1),
        "connected without waiting for a timeout"
    );
    assert_eq!(
        s.nodes[0].count(|e| matches!(e, Event::Closed { handle, reason: CloseReason::Replaced, .. } if *handle == old)),
        1
    );
    assert_eq!(s.nodes[0].ep.session_count(), 1);
}

#[test]
fn idle_sessions_expire_and_the_peer_sees_close_notify() {
    let cfg = EndpointConfig::default().idle_timeout(Some(Duration::from_secs(7)));
    let mut s = sim(
        5,
        LinkConfig::with_latency(Duration::from_millis(10)),
        cfg,
        2,
    );
    let start = s.now();
    assert!(s.run_until(start + Duration::from_secs(5), |n| n[0].connected() == 2));
    let connected_at = s.nodes[0].events[0].0;
    // Client 1 keeps talking every 2 s; client 0 stays silent.
    let h1 = s.nodes[2].ep.handle_of(a(SERVER)).unwrap();
    for _ in 0..6 {
        let t = s.now() + Duration::from_secs(2);
        s.run_until(t, |_| false);
        s.nodes[2].ep.send(h1, b"alive").unwrap();
    }
    let closed: Vec<_> = s.nodes[0]
        .events
        .iter()
        .filter(|(_, e)| {
            matches!(
                e,
                Event::Closed {
                    reason: CloseReason::IdleTimeout,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(closed.len(), 1, "{:?}", s.nodes[0].events);
    let (t, Event::Closed { addr, .. }) = closed[0] else {
        unreachable!()
    };
    assert_eq!(*addr, client_addr(0));
    assert_eq!(
        *t - connected_at,
        Duration::from_secs(7),
        "expired exactly at the idle timeout"
    );
    assert_eq!(
        s.nodes[1].count(|e| matches!(
            e,
            Event::Closed {
                reason: CloseReason::Remote,
                ..
            }
        )),
        1
    );
    assert_eq!(s.nodes[0].ep.session_count(), 1);
    assert_eq!(s.nodes[0].ep.stats().expired_idle, 1);
}

#[test]
fn stalled_handshakes_expire() {
    let mut s = sim(
        6,
        LinkConfig::with_latency(Duration::from_millis(10)),
        EndpointConfig::default(),
        3,
    );
    let start = s.now();
    // Stall every client once it sent its cookie ClientHello (t = 20 ms).
    s.run_until(start + Duration::from_millis(25), |_| false);
    for c in &mut s.nodes[1..] {
        c.stalled = true;
    }
    // Their cookie ClientHellos are still in flight; they arrive at 30 ms.
    s.run_until(start + Duration::from_millis(35), |_| false);
    assert_eq!(s.nodes[0].ep.session_count(), 3, "half-open sessions");
    assert!(s.run_until(start + Duration::from_secs(12), |n| n[0].ended() == 3));
    for (t, e) in &s.nodes[0].events {
        assert!(
            matches!(
                e,
                Event::Failed {
                    error: DtlsError::HandshakeTimeout { .. },
                    ..
                }
            ),
            "{e:?}"
        );
        // The server session was created at 30 ms, its 10 s handshake timeout runs from there.
        assert_eq!(*t - start, Duration::from_millis(10_030));
    }
    let st = s.nodes[0].ep.stats();
    assert_eq!(
        (st.sessions, st.expired_handshake, st.handshakes_failed),
        (0, 3, 3)
    );
}

/// Runs one client's cookie exchange against `server` from `from`: the valid-cookie ClientHello.
fn valid_cookie_hello(server: &mut Endpoint, now: Instant, from: SocketAddr) -> Vec<u8> {
    let mut client = DtlsSession::client(&client_config(), now).unwrap();
    let hello = client.poll_transmit().unwrap();
    server.handle(now, from, &hello);
    let hvr = server.poll_transmit().expect("HelloVerifyRequest").contents;
    client.handle_datagram(now, &hvr);
    client.poll_transmit().expect("ClientHello with cookie")
}

/// Connects an in-memory client at `from` to `server` over a perfect zero-latency link.
fn connect_direct(
    server: &mut Endpoint,
    now: Instant,
    from: SocketAddr,
) -> (Endpoint, SessionHandle) {
    let mut client = Endpoint::client(EndpointConfig::default()).unwrap();
    let h = client.connect(now, a(SERVER), &client_config()).unwrap();
    for _ in 0..10 {
        while let Some(t) = client.poll_transmit() {
            server.handle(now, from, &t.contents);
        }
        while let Some(t) = server.poll_transmit() {
            client.handle(now, a(SERVER), &t.contents);
        }
    }
    assert_eq!(client.status(h), Ok(dtls_proto::Status::Connected));
    (client, h)
}

/// Issue 6 section 3: 2,000 replays of one valid-cookie ClientHello against a full table build no server
/// flight (no SSL object, no handshake start), send nothing back, and are all counted; once a slot frees,
/// a legitimate client gets in.
#[test]
fn replayed_valid_cookie_hellos_against_a_full_table_cost_no_flight() {
    let now = Instant::now();
    let cfg = EndpointConfig::default().max_sessions(1);
    let mut server = Endpoint::server(cfg, &server_config()).unwrap();
    let (_c1, _) = connect_direct(&mut server, now, a("10.0.0.2:5000"));
    while server.poll_event().is_some() {}
    let attacker = a("10.6.6.6:7000");
    let hello = valid_cookie_hello(&mut server, now, attacker);
    let before_state = server.pending_state();
    let before = server.stats();
    for _ in 0..2000 {
        server.handle(now, attacker, &hello);
        assert_eq!(server.poll_transmit(), None, "a refusal sends nothing");
    }
    let after_state = server.pending_state();
    let after = server.stats();
    assert_eq!(after.refused_table_full - before.refused_table_full, 2000);
    assert_eq!(
        after_state.handshakes_started, before_state.handshakes_started,
        "no server flight built"
    );
    assert_eq!(
        after_state.ssl_objects_created, before_state.ssl_objects_created,
        "no SSL object created"
    );
    assert_eq!(
        after.server_handshakes_started,
        before.server_handshakes_started
    );
    assert_eq!(after.sessions, 1);
    assert_eq!(server.poll_event(), None);
    // A slot frees: a legitimate client from another address connects.
    let h = server.handle_of(a("10.0.0.2:5000")).unwrap();
    server.close(h).unwrap();
    while server.poll_transmit().is_some() {}
    let (_c2, _) = connect_direct(&mut server, now, a("10.0.0.3:5000"));
    assert_eq!(server.session_count(), 1);
}

/// While the server refuses new sessions (its application takes nobody in), ClientHellos from new
/// addresses, with or without a valid cookie, and a reconnecting ClientHello over an established
/// session get no answer and cost nothing (no cookie, no SSL object, no flight); the established
/// session keeps working. Accepting again lets a new client in.
#[test]
fn a_server_refusing_new_sessions_answers_nothing_and_keeps_its_sessions() {
    let now = Instant::now();
    let mut server = Endpoint::server(EndpointConfig::default(), &server_config()).unwrap();
    let (mut c1, h1) = connect_direct(&mut server, now, a("10.0.0.2:5000"));
    while server.poll_event().is_some() {}
    let attacker = a("10.6.6.6:7000");
    let with_cookie = valid_cookie_hello(&mut server, now, attacker);
    let fresh = DtlsSession::client(&client_config(), now)
        .unwrap()
        .poll_transmit()
        .unwrap();
    let reconnect = DtlsSession::client(&client_config(), now)
        .unwrap()
        .poll_transmit()
        .unwrap();
    server.set_refuse_new_sessions(true);
    assert!(server.refuses_new_sessions());
    let (before, before_state) = (server.stats(), server.pending_state());
    for _ in 0..500 {
        server.handle(now, attacker, &with_cookie);
        server.handle(now, a("10.6.6.7:7000"), &fresh);
        server.handle(now, a("10.0.0.2:5000"), &reconnect);
        assert_eq!(server.poll_transmit(), None, "nothing is answered");
    }
    let (after, after_state) = (server.stats(), server.pending_state());
    assert_eq!(after.ignored_refusing - before.ignored_refusing, 1500);
    assert_eq!(after.cookies_sent, before.cookies_sent);
    assert_eq!(after.sessions_created, before.sessions_created);
    assert_eq!(
        after.server_handshakes_started,
        before.server_handshakes_started
    );
    assert_eq!(after_state, before_state, "the listener did no work");
    assert_eq!((after.sessions, after.refused()), (1, 0));
    assert_eq!(server.poll_event(), None);
    // The established session is untouched both ways.
    c1.send(h1, b"still here").unwrap();
    while let Some(t) = c1.poll_transmit() {
        server.handle(now, a("10.0.0.2:5000"), &t.contents);
    }
    assert!(matches!(server.poll_event(), Some(Event::Data { data, .. }) if data == b"still here"));
    let s1 = server.handle_of(a("10.0.0.2:5000")).unwrap();
    server.send(s1, b"and answered").unwrap();
    while let Some(t) = server.poll_transmit() {
        c1.handle(now, a(SERVER), &t.contents);
    }
    let got = std::iter::from_fn(|| c1.poll_event())
        .any(|e| matches!(e, Event::Data { data, .. } if data == b"and answered"));
    assert!(
        got,
        "the established session still carries data to the client"
    );
    // Accepting again: a new client gets in.
    server.set_refuse_new_sessions(false);
    let (_c2, _) = connect_direct(&mut server, now, a("10.0.0.3:5000"));
    assert_eq!(server.session_count(), 2);
}

/// The same against a source at its share: refused before any work, while another address connects.
#[test]
fn replayed_hellos_from_an_address_at_its_share_cost_no_flight() {
    let now = Instant::now();
    let cfg = EndpointConfig::default()
        .max_sessions(16)
        .max_sessions_per_address(2);
    let mut server = Endpoint::server(cfg, &server_config()).unwrap();
    let _c1 = connect_direct(&mut server, now, a("10.6.6.6:1"));
    let _c2 = connect_direct(&mut server, now, a("10.6.6.6:2"));
    let hello = valid_cookie_hello(&mut server, now, a("10.6.6.6:3"));
    let before = server.pending_state();
    for _ in 0..2000 {
        server.handle(now, a("10.6.6.6:3"), &hello);
    }
    assert_eq!(server.poll_transmit(), None);
    assert_eq!(
        server.pending_state().handshakes_started,
        before.handshakes_started
    );
    assert_eq!(
        server.pending_state().ssl_objects_created,
        before.ssl_objects_created
    );
    assert_eq!(server.stats().refused_address_share, 2000);
    let _c3 = connect_direct(&mut server, now, a("10.6.6.7:1"));
    assert_eq!(server.session_count(), 3);
}

#[test]
fn ipv4_mapped_addresses_are_ipv4_everywhere() {
    let now = Instant::now();
    let mut server = Endpoint::server(EndpointConfig::default(), &server_config()).unwrap();
    let mapped = a("[::ffff:10.0.0.9]:5000");
    let (_client, _) = connect_direct(&mut server, now, mapped);
    let Some(Event::Connected { addr, handle }) = server.poll_event() else {
        panic!()
    };
    assert_eq!(addr, a("10.0.0.9:5000"));
    assert_eq!(server.handle_of(mapped), Some(handle));
    assert_eq!(server.handle_of(a("10.0.0.9:5000")), Some(handle));
    server.send(handle, b"x").unwrap();
    assert_eq!(
        server.poll_transmit().unwrap().destination,
        a("10.0.0.9:5000")
    );
    // connect() to a mapped address is keyed as IPv4: replies from the plain IPv4 address reach it.
    let mut client = Endpoint::client(EndpointConfig::default()).unwrap();
    let h = client
        .connect(now, a("[::ffff:10.0.0.1]:4433"), &client_config())
        .unwrap();
    assert_eq!(client.addr(h), Ok(a(SERVER)));
    assert_eq!(
        client.connect(now, a(SERVER), &client_config()),
        Err(DtlsError::SessionExists { addr: a(SERVER) })
    );
}

#[test]
fn handles_are_generational() {
    let now = Instant::now();
    let mut client = Endpoint::client(EndpointConfig::default().max_sessions(1)).unwrap();
    let h1 = client
        .connect(now, a("10.0.0.1:1"), &client_config())
        .unwrap();
    assert_eq!(
        client.connect(now, a("10.0.0.1:2"), &client_config()),
        Err(DtlsError::SessionLimit { max: 1 })
    );
    client.close(h1).unwrap();
    let h2 = client
        .connect(now, a("10.0.0.1:2"), &client_config())
        .unwrap();
    assert_eq!(h1.index(), h2.index(), "the slot is reused");
    assert_ne!(h1, h2);
    assert_eq!(client.close(h1), Err(DtlsError::UnknownSession));
    assert_eq!(client.addr(h2), Ok(a("10.0.0.1:2")));
}
