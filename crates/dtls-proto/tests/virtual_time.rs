//! OpenSSL's DTLS timers run in the caller's time: retransmissions and handshake timeouts follow the
//! `now` passed in, to the microsecond, and handshakes run in the simulator (`enet-sim`) in virtual time,
//! deterministically.

mod support;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use dtls_proto::keys::{Certificate, PrivateKey};
use dtls_proto::{
    ClientConfig, DtlsError, DtlsSession, ServerConfig, SessionEvent, Status, INITIAL_RETRANSMIT,
};
use enet_sim::{Endpoint, LinkConfig, Network, Sim};

/// One RSA identity for the whole test binary (RSA signatures have a fixed length, so transcripts of
/// two runs have the same datagram sizes; ECDSA signatures vary by a byte or two).
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

#[test]
fn virtual_time_is_in_effect() {
    assert!(
        dtls_proto::virtual_time_supported(),
        "OpenSSL does not read its DTLS timer clock through our gettimeofday"
    );
}

/// A client facing a silent server retransmits its ClientHello exactly on the 100 ms doubling schedule
/// of the caller's clock, and fails with a handshake timeout exactly at the configured time, without a
/// single real millisecond of waiting.
#[test]
fn retransmissions_and_timeout_follow_the_callers_clock() {
    assert!(dtls_proto::virtual_time_supported());
    let t0 = Instant::now();
    let config = ClientConfig::builder()
        .verify(false)
        .handshake_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut client = DtlsSession::client(&config, t0).unwrap();
    let first = client.poll_transmit().expect("ClientHello");
    assert_eq!(client.poll_transmit(), None);
    assert_eq!(client.poll_timeout(), Some(t0 + INITIAL_RETRANSMIT));

    // Early: nothing (OpenSSL treats the last 15 ms as expired, so ask well before).
    client.handle_timeout(t0 + Duration::from_millis(50));
    assert_eq!(client.poll_transmit(), None);

    let mut sends = Vec::new();
    let mut now = t0;
    while let Some(next) = client.poll_timeout() {
        assert!(next >= now, "timer went backwards");
        now = next;
        client.handle_timeout(now);
        while let Some(d) = client.poll_transmit() {
            assert_eq!(d.len(), first.len(), "a retransmitted ClientHello");
            sends.push(now - t0);
        }
        if client.status() != Status::Handshaking {
            break;
        }
    }
    let ms = |v: u64| Duration::from_millis(v);
    assert_eq!(
        sends,
        vec![
            ms(100),
            ms(300),
            ms(700),
            ms(1500),
            ms(3100),
            ms(6100),
            ms(9100)
        ],
        "retransmission schedule in caller time"
    );
    assert_eq!(now - t0, Duration::from_secs(10));
    assert_eq!(
        client.poll_event(),
        Some(SessionEvent::Failed(DtlsError::HandshakeTimeout {
            timeout: Duration::from_secs(10)
        }))
    );
}

/// A client or a stateful server session in the simulator, talking to one peer.
struct Node {
    addr: SocketAddr,
    peer: SocketAddr,
    session: DtlsSession,
    /// Stalled: receives nothing and sends nothing (a client that went away mid-handshake).
    stalled: bool,
    events: Vec<(Instant, SessionEvent)>,
}

impl Node {
    fn drain(&mut self, now: Instant) {
        while let Some(e) = self.session.poll_event() {
            self.events.push((now, e));
        }
        while self.session.recv().is_some() {}
    }

    fn settled(&self) -> bool {
        self.session.status() != Status::Handshaking
    }
}

impl Endpoint for Node {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn handle_datagram(&mut self, now: Instant, _from: SocketAddr, data: &[u8]) {
        if !self.stalled {
            self.session.handle_datagram(now, data);
            self.drain(now);
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.session.handle_timeout(now);
        self.drain(now);
    }
    fn poll_transmit(&mut self, _now: Instant) -> Option<(SocketAddr, Vec<u8>)> {
        let d = self.session.poll_transmit()?;
        (!self.stalled).then_some((self.peer, d))
    }
    fn poll_timeout(&self) -> Option<Instant> {
        if self.stalled {
            return None;
        }
        self.session.poll_timeout()
    }
}

/// A digest of what crossed the network and when: for each datagram its time (relative to the start),
/// addresses, length and DTLS record headers (content type, epoch, sequence number, length). Contents
/// are not hashed: TLS randoms, keys and cookies come from OpenSSL's RNG and differ between runs.
fn transcript(captured: &[(Instant, enet_sim::Datagram)], start: Instant) -> u64 {
    let mut h = DefaultHasher::new();
    for (t, d) in captured {
        (*t - start).hash(&mut h);
        d.from.hash(&mut h);
        d.to.hash(&mut h);
        d.data.len().hash(&mut h);
        let mut rest = &d.data[..];
        while rest.len() >= 13 {
            rest[..13].hash(&mut h);
            let len = usize::from(u16::from_be_bytes([rest[11], rest[12]]));
            rest = rest.get(13 + len..).unwrap_or(&[]);
        }
    }
    h.finish()
}

struct Outcome {
    hash: u64,
    datagrams: usize,
    client_events: Vec<(Duration, SessionEvent)>,
    server_events: Vec<(Duration, SessionEvent)>,
    stats: enet_sim::NetStats,
}

fn run_pair(seed: u64, link: LinkConfig, stall_client_at: Option<Duration>) -> Outcome {
    let start = Instant::now();
    let mut net = Network::new(seed, start);
    net.set_default_link(link);
    net.set_capture(true);
    let c: SocketAddr = "10.0.0.1:5000".parse().unwrap();
    let s: SocketAddr = "10.0.0.2:4433".parse().unwrap();
    let client = DtlsSession::client(&client_config(), start).unwrap();
    let server = DtlsSession::server_for_peer(&server_config(), start, c).unwrap();
    let mut sim = Sim::new(net);
    sim.nodes.push(Node {
        addr: c,
        peer: s,
        session: client,
        stalled: false,
        events: vec![],
    });
    sim.nodes.push(Node {
        addr: s,
        peer: c,
        session: server,
        stalled: false,
        events: vec![],
    });
    let deadline = start + Duration::from_secs(30);
    if let Some(at) = stall_client_at {
        let _ = sim.run_until(start + at, |_| false);
        sim.nodes[0].stalled = true;
    }
    let settled = sim.run_until(deadline, |nodes| {
        nodes.iter().all(|n| n.stalled || n.settled())
    });
    assert!(settled, "the simulation did not settle by {deadline:?}");
    let captured = sim.net.take_captured();
    let rel = |v: &Vec<(Instant, SessionEvent)>| {
        v.iter()
            .map(|(t, e)| (*t - start, e.clone()))
            .collect::<Vec<_>>()
    };
    Outcome {
        hash: transcript(&captured, start),
        datagrams: captured.len(),
        client_events: rel(&sim.nodes[0].events),
        server_events: rel(&sim.nodes[1].events),
        stats: sim.net.stats(),
    }
}

fn lossy() -> LinkConfig {
    LinkConfig {
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(10),
        loss: 0.25,
        duplicate: 0.2,
        reorder: 0.2,
        reorder_delay: Duration::from_millis(30),
        ..LinkConfig::default()
    }
}

fn connected_at(events: &[(Duration, SessionEvent)]) -> Option<Duration> {
    events
        .iter()
        .find(|(_, e)| *e == SessionEvent::Connected)
        .map(|(t, _)| *t)
}

/// Handshakes under loss, duplication, reordering and jitter complete in virtual time (up to 30 s of
/// it, with retransmissions), for several seeds; each seed replays to the same transcript.
#[test]
fn handshakes_under_loss_duplication_and_reordering_are_deterministic() {
    assert!(dtls_proto::virtual_time_supported());
    let mut retransmitted = 0;
    for seed in [1u64, 2, 3, 4, 5, 6] {
        let a = run_pair(seed, lossy(), None);
        let b = run_pair(seed, lossy(), None);
        assert_eq!(a.hash, b.hash, "seed {seed}: transcripts differ");
        assert_eq!(a.client_events, b.client_events, "seed {seed}");
        assert_eq!(a.server_events, b.server_events, "seed {seed}");
        let c = connected_at(&a.client_events);
        let s = connected_at(&a.server_events);
        assert!(
            c.is_some() && s.is_some(),
            "seed {seed}: not connected: {:?} {:?}",
            a.client_events,
            a.server_events
        );
        assert!(
            a.stats.lost > 0 || a.stats.duplicated > 0 || a.stats.reordered > 0,
            "seed {seed}: link was perfect"
        );
        // A clean handshake with cookies is 2 + 2 + 2 flights of at most a few datagrams.
        if a.datagrams > 12 {
            retransmitted += 1;
        }
        eprintln!(
            "seed {seed}: connected at client {c:?} server {s:?}, {} datagrams, lost {} dup {} reordered {}",
            a.datagrams, a.stats.lost, a.stats.duplicated, a.stats.reordered
        );
    }
    assert!(
        retransmitted > 0,
        "no seed needed a retransmission: the loss path was not exercised"
    );
    // Different seeds take different paths.
    assert_ne!(
        run_pair(1, lossy(), None).hash,
        run_pair(2, lossy(), None).hash
    );
}

/// A perfect 10 ms link: the handshake takes exactly 6 one-way trips (ClientHello, HelloVerifyRequest,
/// ClientHello with cookie, server flight, client flight, server Finished).
#[test]
fn clean_handshake_takes_exactly_six_trips_of_virtual_time() {
    let o = run_pair(7, LinkConfig::with_latency(Duration::from_millis(10)), None);
    assert_eq!(
        connected_at(&o.server_events),
        Some(Duration::from_millis(50))
    );
    assert_eq!(
        connected_at(&o.client_events),
        Some(Duration::from_millis(60))
    );
}

/// A client that stalls after its cookie ClientHello: the server retransmits its flight on the caller's
/// schedule and fails with a handshake timeout exactly at its configured 10 s, in virtual time.
#[test]
fn stalled_client_times_out_the_server_in_virtual_time() {
    let link = LinkConfig::with_latency(Duration::from_millis(10));
    let a = run_pair(9, link.clone(), Some(Duration::from_millis(25)));
    let b = run_pair(9, link, Some(Duration::from_millis(25)));
    assert_eq!(a.hash, b.hash);
    assert_eq!(
        a.server_events,
        vec![(
            Duration::from_secs(10),
            SessionEvent::Failed(DtlsError::HandshakeTimeout {
                timeout: Duration::from_secs(10)
            })
        )]
    );
    assert!(a.client_events.is_empty(), "{:?}", a.client_events);
}
