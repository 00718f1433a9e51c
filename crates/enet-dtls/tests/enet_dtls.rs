//! ENet over DTLS (`DtlsEnetSocket`) on loopback, our client and our server, under the blocking
//! and the tokio driver: verification on (pinned certificate and hostname) and off, the
//! failures with their cause, many clients, a stalled handshake, plaintext to a DTLS host, and
//! the session limits played by an attacker.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use enet_dtls::dtls_proto::{ClientConfig, DtlsError, EndpointConfig, ServerConfig};
use enet_dtls::enet::{
    enet_mtu_for_dtls_mtu, ConnectionFailure, DtlsEnetSocket, DtlsSocketStats, EnetHost,
    EnetSocket, FailureCause,
};
use enet_dtls::enet_proto::{DisconnectReason, Event, HostConfig, Packet, PeerId};
use enet_dtls::keys::{Certificate, KeyType, PrivateKey};

use common::{expired_certificate, identity};

/// Stops a hung test; never an expectation on speed.
const DEADLINE: Duration = Duration::from_secs(30);

fn server_config(key: PrivateKey, cert: Certificate) -> ServerConfig {
    ServerConfig::builder(key, cert).build().unwrap()
}

fn pinned(cert: &Certificate, hostname: &str) -> ClientConfig {
    ClientConfig::builder()
        .trusted_certificate(cert.clone())
        .hostname(hostname)
        .build()
        .unwrap()
}

/// What an echo server saw when it stopped.
#[derive(Debug)]
struct EchoReport {
    connects: usize,
    disconnects: usize,
    echoed: usize,
    stats: DtlsSocketStats,
    endpoint: enet_dtls::dtls_proto::EndpointStats,
    sessions_left: usize,
}

/// A blocking ENet-over-DTLS echo server in a thread, until `stop` is set.
struct EchoServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<EchoReport>,
}

impl EchoServer {
    fn spawn(config: &ServerConfig, limits: EndpointConfig) -> EchoServer {
        let socket = DtlsEnetSocket::server("127.0.0.1:0", config, limits).unwrap();
        let config = HostConfig {
            peer_limit: 256,
            duplicate_peers: 256,
            ..HostConfig::server()
        };
        let mut host = EnetHost::with_socket(socket, config).unwrap();
        let addr = host.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let (mut connects, mut disconnects, mut echoed) = (0, 0, 0);
            let deadline = Instant::now() + DEADLINE * 2;
            while !flag.load(Ordering::SeqCst) && Instant::now() < deadline {
                match host.service(Duration::from_millis(20)).unwrap() {
                    Some(Event::Connect { .. }) => connects += 1,
                    Some(Event::Disconnect { .. }) => disconnects += 1,
                    Some(Event::Receive {
                        peer,
                        channel,
                        packet,
                    }) => {
                        host.send(peer, channel, packet).unwrap();
                        echoed += 1;
                    }
                    None => {}
                }
            }
            // Let the last acknowledgements and close_notify go out, and count the events still
            // queued: a client's last step (its Disconnect: our ACK arrived) can end the test while
            // the matching Disconnect event here waits in the queue.
            while let Some(event) = host.service(Duration::from_millis(50)).unwrap() {
                match event {
                    Event::Connect { .. } => connects += 1,
                    Event::Disconnect { .. } => disconnects += 1,
                    Event::Receive { .. } => {}
                }
            }
            EchoReport {
                connects,
                disconnects,
                echoed,
                stats: host.socket().stats(),
                endpoint: host.socket().endpoint_stats(),
                sessions_left: host.socket().session_count(),
            }
        });
        EchoServer { addr, stop, thread }
    }

    fn finish(self) -> EchoReport {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

fn dtls_client(config: &ClientConfig) -> EnetHost<DtlsEnetSocket> {
    let socket = DtlsEnetSocket::client("127.0.0.1:0", config).unwrap();
    EnetHost::with_socket(socket, HostConfig::default()).unwrap()
}

fn next_event<S: EnetSocket>(host: &mut EnetHost<S>, what: &str) -> Event {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no event ({what}) within {DEADLINE:?}");
        if let Some(ev) = host.service(left).unwrap() {
            return ev;
        }
    }
}

/// Connects, sends small and large reliable packets plus an unsequenced one, checks every echo,
/// disconnects. Returns the client for its counters.
fn round_trip(server: SocketAddr, config: &ClientConfig) -> EnetHost<DtlsEnetSocket> {
    let mut client = dtls_client(config);
    let peer = client.connect(server, 2, 5).unwrap();
    match next_event(&mut client, "connect") {
        Event::Connect { peer: p, .. } => assert_eq!(p, peer),
        other => panic!("expected Connect, got {other:?}"),
    }
    // Both ends lowered their MTU to what one record carries under any cipher suite.
    let mtu = client.peer(peer).unwrap().mtu() as usize;
    assert_eq!(mtu, enet_mtu_for_dtls_mtu(1440));
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let mut sent = vec![Packet::reliable(big)];
    for i in 0..20u8 {
        sent.push(Packet::reliable(vec![i; 10 + usize::from(i)]));
    }
    sent.push(Packet::unsequenced(b"unsequenced".to_vec()));
    for p in &sent {
        client.send(peer, 0, p.clone()).unwrap();
    }
    let mut got = Vec::new();
    while got.len() < sent.len() {
        match next_event(&mut client, "echo") {
            Event::Receive { packet, .. } => got.push(packet.data),
            other => panic!("expected an echo, got {other:?}"),
        }
    }
    for p in &sent {
        assert!(
            got.contains(&p.data),
            "missing echo of {} bytes",
            p.data.len()
        );
    }
    client.disconnect(peer, 0);
    match next_event(&mut client, "disconnect") {
        Event::Disconnect { reason, .. } => assert_eq!(reason, DisconnectReason::Local),
        other => panic!("expected Disconnect, got {other:?}"),
    }
    client
}

#[test]
fn verify_on_with_pinned_certificate_and_hostname() {
    let (key, cert) = identity("localhost");
    let server = EchoServer::spawn(&server_config(key, cert.clone()), EndpointConfig::default());
    let client = round_trip(server.addr, &pinned(&cert, "localhost"));
    let stats = client.socket().stats();
    assert_eq!(stats.handshakes_started, 1, "{stats:?}");
    assert!(stats.records_sent >= 22, "{stats:?}");
    assert!(stats.records_received >= 22, "{stats:?}");
    assert_eq!(stats.dropped_refused, 0, "{stats:?}");
    // Our disconnect closed the client's session.
    assert_eq!(client.socket().session_count(), 0);
    assert_eq!(client.socket().endpoint_stats().handshakes_completed, 1);
    let report = server.finish();
    assert_eq!((report.connects, report.disconnects), (1, 1), "{report:?}");
    assert_eq!(report.echoed, 22, "{report:?}");
    assert_eq!(report.endpoint.handshakes_completed, 1, "{report:?}");
    // The server's session ended with its ENet peer.
    assert_eq!(report.sessions_left, 0, "{report:?}");
    assert_eq!(report.stats.released, 1, "{report:?}");
}

#[test]
fn verify_off_accepts_any_certificate() {
    let (key, cert) = identity("some.other.name");
    let server = EchoServer::spawn(&server_config(key, cert), EndpointConfig::default());
    let insecure = ClientConfig::builder().verify(false).build().unwrap();
    let client = round_trip(server.addr, &insecure);
    assert_eq!(client.socket().stats().handshakes_started, 1);
    let report = server.finish();
    assert_eq!(report.connects, 1, "{report:?}");
}

/// Connects with `config` and returns the failure the driver reported.
fn expect_failure(server: SocketAddr, config: &ClientConfig) -> FailureCause {
    let mut client = dtls_client(config);
    let peer: PeerId = client.connect(server, 2, 0).unwrap();
    match next_event(&mut client, "failure") {
        Event::Disconnect {
            peer: p,
            address,
            reason,
            ..
        } => {
            assert_eq!((p, address), (peer, server));
            assert_eq!(reason, DisconnectReason::Failed);
        }
        other => panic!("expected a failed connection, got {other:?}"),
    }
    let failure = client.take_failure(peer).expect("the cause is kept");
    assert_eq!(failure.address, server);
    assert!(client.take_failure(peer).is_none(), "taken once");
    // The failed session is gone, and no second handshake was started meanwhile.
    assert_eq!(client.socket().session_count(), 0);
    assert_eq!(client.socket().stats().handshakes_started, 1);
    failure.cause
}

#[test]
fn wrong_certificate_is_reported_as_untrusted() {
    let (key, cert) = identity("localhost");
    let (_, other) = identity("localhost");
    let server = EchoServer::spawn(&server_config(key, cert), EndpointConfig::default());
    let cause = expect_failure(server.addr, &pinned(&other, "localhost"));
    assert!(
        matches!(
            cause,
            FailureCause::Dtls(DtlsError::UntrustedCertificate { .. })
        ),
        "{cause:?}"
    );
    let report = server.finish();
    assert_eq!(report.connects, 0, "{report:?}");
}

#[test]
fn wrong_hostname_is_reported_with_both_names() {
    let (key, cert) = identity("localhost");
    let server = EchoServer::spawn(&server_config(key, cert.clone()), EndpointConfig::default());
    let cause = expect_failure(server.addr, &pinned(&cert, "game.example.org"));
    match &cause {
        FailureCause::Dtls(DtlsError::HostnameMismatch {
            expected,
            presented,
        }) => {
            assert_eq!(expected, "game.example.org");
            assert!(presented.iter().any(|n| n == "localhost"), "{presented:?}");
        }
        other => panic!("expected a hostname mismatch, got {other:?}"),
    }
    let text = enet_dtls::enet::ConnectionFailure::new(server.addr, cause).to_string();
    assert!(
        text.contains("game.example.org") && text.contains("localhost"),
        "{text}"
    );
    server.finish();
}

#[test]
fn expired_certificate_is_reported_as_expired() {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let expired = expired_certificate(&key, "localhost");
    let server = EchoServer::spawn(
        &server_config(key, expired.clone()),
        EndpointConfig::default(),
    );
    let cause = expect_failure(server.addr, &pinned(&expired, "localhost"));
    assert!(
        matches!(
            cause,
            FailureCause::Dtls(DtlsError::CertificateExpired { .. })
        ),
        "{cause:?}"
    );
    server.finish();
}

#[test]
fn plaintext_enet_to_a_dtls_host_is_dropped_without_side_effects() {
    let (key, cert) = identity("localhost");
    let server = EchoServer::spawn(&server_config(key, cert), EndpointConfig::default());
    // A plain ENet client: its CONNECT datagrams reach the DTLS host in clear.
    let mut plain = EnetHost::bind("127.0.0.1:0", HostConfig::default()).unwrap();
    let peer = plain.connect(server.addr, 2, 0).unwrap();
    // And a raw UDP socket that would see any reply.
    let raw = UdpSocket::bind("127.0.0.1:0").unwrap();
    raw.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let connect = capture_connect(server.addr);
    for _ in 0..5 {
        raw.send_to(&connect, server.addr).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Some(ev) = plain.service(Duration::from_millis(50)).unwrap() {
            panic!("plaintext client got an event from a DTLS host: {ev:?}");
        }
    }
    let mut buf = [0u8; 2048];
    assert!(
        raw.recv_from(&mut buf).is_err(),
        "the DTLS host answered plaintext"
    );
    plain.reset_peer(peer);
    let plain_sent = plain.host().stats().packets_sent;
    assert!(
        plain_sent >= 2,
        "the plain client retried CONNECT ({plain_sent})"
    );
    let report = server.finish();
    assert_eq!(report.connects, 0, "{report:?}");
    assert_eq!(report.stats.records_received, 0, "{report:?}");
    assert_eq!(report.endpoint.cookies_sent, 0, "{report:?}");
    assert_eq!(report.endpoint.sessions_created, 0, "{report:?}");
    assert_eq!(report.endpoint.datagrams_out, 0, "{report:?}");
    // Every plaintext datagram was counted as dropped.
    assert!(
        report.endpoint.dropped >= 5 + plain_sent,
        "{report:?} (plain client sent {plain_sent})"
    );
}

/// The first datagram a plain ENet client sends to `to` (a CONNECT), taken from an in-memory
/// client so the raw socket can replay it.
fn capture_connect(to: SocketAddr) -> Vec<u8> {
    let mut host = enet_dtls::enet_proto::Host::new(HostConfig::default(), Instant::now()).unwrap();
    host.connect(Instant::now(), to, 2, 0).unwrap();
    host.poll_transmit(Instant::now()).expect("a CONNECT").data
}

/// The tokio driver on both ends: a DTLS echo server task and a verifying client.
#[cfg(feature = "tokio")]
#[test]
fn tokio_server_and_client() {
    use enet_dtls::enet::TokioEnetHost;

    let rt = common::runtime();
    rt.block_on(async {
        let (key, cert) = identity("localhost");
        let socket = DtlsEnetSocket::server(
            "127.0.0.1:0",
            &server_config(key, cert.clone()),
            EndpointConfig::default(),
        )
        .unwrap();
        let mut server = TokioEnetHost::with_socket(socket, HostConfig::server()).unwrap();
        let server_addr = server.local_addr().unwrap();
        let echo = tokio::spawn(async move {
            let mut echoed = 0;
            loop {
                match server.next_event().await.unwrap() {
                    Event::Receive {
                        peer,
                        channel,
                        packet,
                    } => {
                        server.send(peer, channel, packet).unwrap();
                        echoed += 1;
                    }
                    Event::Disconnect { .. } => {
                        // The session ends with the peer.
                        return (echoed, server.socket().session_count());
                    }
                    Event::Connect { .. } => {}
                }
            }
        });
        let socket = DtlsEnetSocket::client("127.0.0.1:0", &pinned(&cert, "localhost")).unwrap();
        let mut client = TokioEnetHost::with_socket(socket, HostConfig::default()).unwrap();
        let peer = client.connect(server_addr, 2, 0).unwrap();
        assert!(matches!(next(&mut client).await, Event::Connect { .. }));
        let big = vec![7u8; 50_000];
        for i in 0..10u8 {
            client
                .send(peer, 0, Packet::reliable(vec![i; 100]))
                .unwrap();
        }
        client.send(peer, 1, Packet::reliable(big.clone())).unwrap();
        let mut got = 0;
        while got < 11 {
            match next(&mut client).await {
                Event::Receive { packet, .. } => {
                    assert!(packet.data.len() == 100 || packet.data == big);
                    got += 1;
                }
                other => panic!("expected an echo, got {other:?}"),
            }
        }
        client.disconnect(peer, 0);
        assert!(matches!(
            next(&mut client).await,
            Event::Disconnect {
                reason: DisconnectReason::Local,
                ..
            }
        ));
        let (echoed, sessions) = tokio::time::timeout(DEADLINE, echo)
            .await
            .expect("hung")
            .unwrap();
        assert_eq!((echoed, sessions), (11, 0));
        assert_eq!(client.socket().stats().handshakes_started, 1);
    });
}

#[cfg(feature = "tokio")]
async fn next(client: &mut enet_dtls::enet::TokioEnetHost<DtlsEnetSocket>) -> Event {
    tokio::time::timeout(DEADLINE, client.next_event())
        .await
        .expect("no event within the deadline")
        .unwrap()
}

#[test]
fn many_clients_at_once() {
    const CLIENTS: usize = 12;
    let (key, cert) = identity("localhost");
    let server = EchoServer::spawn(&server_config(key, cert.clone()), EndpointConfig::default());
    let config = pinned(&cert, "localhost");
    let addr = server.addr;
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let config = config.clone();
            thread::spawn(move || {
                let mut client = dtls_client(&config);
                let peer = client.connect(addr, 1, i as u32).unwrap();
                assert!(matches!(
                    next_event(&mut client, "connect"),
                    Event::Connect { .. }
                ));
                for j in 0..5u8 {
                    client
                        .send(peer, 0, Packet::reliable(vec![i as u8, j]))
                        .unwrap();
                }
                for j in 0..5u8 {
                    match next_event(&mut client, "echo") {
                        Event::Receive { packet, .. } => assert_eq!(packet.data, [i as u8, j]),
                        other => panic!("client {i}: expected an echo, got {other:?}"),
                    }
                }
                client.disconnect(peer, 0);
                assert!(matches!(
                    next_event(&mut client, "disconnect"),
                    Event::Disconnect { .. }
                ));
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let report = server.finish();
    assert_eq!(report.connects, CLIENTS, "{report:?}");
    assert_eq!(report.echoed, CLIENTS * 5, "{report:?}");
    assert_eq!(
        report.endpoint.handshakes_completed, CLIENTS as u64,
        "{report:?}"
    );
    assert_eq!(report.sessions_left, 0, "{report:?}");
}

/// A DTLS client that does the cookie exchange from `bind` and then stops answering, leaving a
/// half-open session on the server if it admitted one. Returns the socket (keep it alive) and
/// whether the server started its handshake flight (false: refused after the cookie).
fn stalled_handshake(server: SocketAddr, bind: &str) -> (UdpSocket, bool) {
    use enet_dtls::dtls_proto::DtlsSession;
    let socket = UdpSocket::bind(bind).unwrap();
    // Long enough for a loaded machine to answer; a refused session costs this wait once.
    socket
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let config = ClientConfig::builder().verify(false).build().unwrap();
    let mut session = DtlsSession::client(&config, Instant::now()).unwrap();
    let mut buf = [0u8; 4096];
    // ClientHello, HelloVerifyRequest, ClientHello with the cookie.
    while let Some(d) = session.poll_transmit() {
        socket.send_to(&d, server).unwrap();
    }
    let (n, _) = socket.recv_from(&mut buf).expect("a HelloVerifyRequest");
    session.handle_datagram(Instant::now(), &buf[..n]);
    while let Some(d) = session.poll_transmit() {
        socket.send_to(&d, server).unwrap();
    }
    // The server's flight (ServerHello...) if it admitted the session; then silence from us.
    let flight = socket.recv_from(&mut buf).is_ok();
    (socket, flight)
}

#[test]
fn stalled_handshakes_do_not_block_others_and_expire() {
    let (key, cert) = identity("localhost");
    let config = ServerConfig::builder(key, cert.clone())
        .handshake_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let server = EchoServer::spawn(&config, EndpointConfig::default());
    let stalled: Vec<_> = (0..3)
        .map(|_| stalled_handshake(server.addr, "127.0.0.1:0"))
        .collect();
    assert!(
        stalled.iter().all(|(_, flight)| *flight),
        "sessions admitted"
    );
    // Real clients from the same address get in meanwhile.
    round_trip(server.addr, &pinned(&cert, "localhost"));
    round_trip(server.addr, &pinned(&cert, "localhost"));
    // Let the half-open sessions run out of time.
    thread::sleep(Duration::from_millis(1500));
    let report = server.finish();
    assert_eq!(report.connects, 2, "{report:?}");
    assert_eq!(report.endpoint.expired_handshake, 3, "{report:?}");
    assert_eq!(report.sessions_left, 0, "{report:?}");
    // The server failures of those strangers (no ENet peer) were only logged.
    assert_eq!(report.disconnects, 2, "{report:?}");
}

#[test]
fn session_limits_hold_against_an_attacker_and_others_still_get_in() {
    let (key, cert) = identity("localhost");
    let config = ServerConfig::builder(key, cert.clone())
        .handshake_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let limits = EndpointConfig::default()
        .max_sessions(4)
        .max_sessions_per_address(2);
    let server = EchoServer::spawn(&config, limits);
    // One address tries 6 half-open sessions: 2 are admitted, 4 refused after a valid cookie
    // (no server flight, no signature).
    let from_one: Vec<_> = (0..6)
        .map(|_| stalled_handshake(server.addr, "127.0.0.1:0"))
        .collect();
    let admitted = from_one.iter().filter(|(_, f)| *f).count();
    assert_eq!(admitted, 2);
    // A second address takes its 2: the table (4) is now full.
    let from_three: Vec<_> = (0..2)
        .map(|_| stalled_handshake(server.addr, "127.0.0.3:0"))
        .collect();
    assert!(from_three.iter().all(|(_, f)| *f));
    let (_s, flight) = stalled_handshake(server.addr, "127.0.0.4:0");
    assert!(!flight, "the table is full");
    drop(from_three);
    drop(from_one);
    let report = server.finish();
    assert_eq!(report.endpoint.server_handshakes_started, 4, "{report:?}");
    assert_eq!(report.endpoint.refused_address_share, 4, "{report:?}");
    assert_eq!(report.endpoint.refused_table_full, 1, "{report:?}");
}

#[test]
fn a_legitimate_client_from_another_address_gets_in_while_one_address_is_at_its_share() {
    let (key, cert) = identity("localhost");
    let limits = EndpointConfig::default()
        .max_sessions(8)
        .max_sessions_per_address(2);
    let server = EchoServer::spawn(&server_config(key, cert.clone()), limits);
    let attack: Vec<_> = (0..5)
        .map(|_| stalled_handshake(server.addr, "127.0.0.1:0"))
        .collect();
    assert_eq!(attack.iter().filter(|(_, f)| *f).count(), 2);
    // 127.0.0.2 is another source: its ENet-over-DTLS client connects and echoes.
    let socket = DtlsEnetSocket::client("127.0.0.2:0", &pinned(&cert, "localhost")).unwrap();
    let mut client = EnetHost::with_socket(socket, HostConfig::default()).unwrap();
    let peer = client.connect(server.addr, 1, 0).unwrap();
    assert!(matches!(
        next_event(&mut client, "connect"),
        Event::Connect { .. }
    ));
    client
        .send(peer, 0, Packet::reliable(b"hello".to_vec()))
        .unwrap();
    assert!(matches!(
        next_event(&mut client, "echo"),
        Event::Receive { .. }
    ));
    // And 127.0.0.1 itself stays refused while its share is used.
    let (_s, flight) = stalled_handshake(server.addr, "127.0.0.1:0");
    assert!(!flight);
    drop(attack);
    let report = server.finish();
    assert_eq!(report.connects, 1, "{report:?}");
    assert_eq!(report.endpoint.server_handshakes_started, 3, "{report:?}");
    assert_eq!(report.endpoint.refused_address_share, 4, "{report:?}");
}

/// An unverifying DTLS client (handshake timeout `handshake_timeout`) connecting to a UDP
/// socket that never answers (returned first: keep it open).
fn connect_to_silent(handshake_timeout: Duration) -> (UdpSocket, EnetHost<DtlsEnetSocket>, PeerId) {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = silent.local_addr().unwrap();
    let config = ClientConfig::builder()
        .verify(false)
        .handshake_timeout(handshake_timeout)
        .build()
        .unwrap();
    let mut client = dtls_client(&config);
    let peer = client.connect(server, 1, 0).unwrap();
    (silent, client, peer)
}

/// Waits for the failed connection of `peer` and returns its failure.
fn expect_failed(
    client: &mut EnetHost<DtlsEnetSocket>,
    peer: PeerId,
    what: &str,
) -> ConnectionFailure {
    match next_event(client, what) {
        Event::Disconnect { reason, .. } => assert_eq!(reason, DisconnectReason::Failed),
        other => panic!("expected a failed connection, got {other:?}"),
    }
    client.take_failure(peer).expect("a cause")
}

#[test]
fn enet_giving_up_during_the_handshake_reports_a_handshake_timeout() {
    let (_silent, mut client, peer) = connect_to_silent(Duration::from_secs(60));
    client
        .host_mut()
        .set_peer_timeout(
            peer,
            1,
            Duration::from_millis(500),
            Duration::from_millis(1000),
        )
        .unwrap();
    let failure = expect_failed(&mut client, peer, "give up");
    assert!(
        matches!(
            failure.cause,
            FailureCause::Dtls(DtlsError::HandshakeTimeout { .. })
        ),
        "{failure}"
    );
    assert_eq!(client.socket().session_count(), 0);
}

#[test]
fn a_dtls_handshake_timeout_is_reported_before_enet_gives_up() {
    let (_silent, mut client, peer) = connect_to_silent(Duration::from_millis(700));
    let failure = expect_failed(&mut client, peer, "failure");
    assert_eq!(
        failure.cause,
        FailureCause::Dtls(DtlsError::HandshakeTimeout {
            timeout: Duration::from_millis(700)
        })
    );
    // The client really retried its flight in the meantime (DTLS timers ran under the driver).
    let udp = client.socket().udp_stats();
    assert!(udp.datagrams_sent >= 2, "{udp:?}");
}

#[test]
fn a_fatal_alert_from_the_server_is_reported_with_its_code() {
    let (key, cert) = identity("localhost");
    let config = ServerConfig::builder(key, cert)
        .cipher_list("ECDHE-ECDSA-AES256-GCM-SHA384")
        .build()
        .unwrap();
    let server = EchoServer::spawn(&config, EndpointConfig::default());
    let client = ClientConfig::builder()
        .verify(false)
        .cipher_list("ECDHE-ECDSA-CHACHA20-POLY1305")
        .build()
        .unwrap();
    let cause = expect_failure(server.addr, &client);
    assert!(
        matches!(
            cause,
            FailureCause::Dtls(DtlsError::PeerAlert { code: 40, .. })
        ),
        "{cause:?}"
    );
    server.finish();
}

#[test]
fn a_peer_reset_by_the_server_closes_the_session_and_the_client_learns_at_once() {
    let (key, cert) = identity("localhost");
    let socket = DtlsEnetSocket::server(
        "127.0.0.1:0",
        &server_config(key, cert.clone()),
        EndpointConfig::default(),
    )
    .unwrap();
    let mut server = EnetHost::with_socket(socket, HostConfig::server()).unwrap();
    let addr = server.local_addr().unwrap();
    let mut client = dtls_client(&pinned(&cert, "localhost"));
    let peer = client.connect(addr, 1, 0).unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut server_peer = None;
    let mut connected = false;
    while server_peer.is_none() || !connected {
        assert!(Instant::now() < deadline, "no connection");
        if let Some(Event::Connect { peer, .. }) = server.service(Duration::from_millis(5)).unwrap()
        {
            server_peer = Some(peer);
        }
        if let Some(Event::Connect { .. }) = client.service(Duration::from_millis(5)).unwrap() {
            connected = true;
        }
    }
    // The server forgets the peer without an ENet word: its DTLS session goes with it
    // (close_notify), and the client's driver reports the loss instead of waiting for ENet's
    // timeout.
    server.reset_peer(server_peer.unwrap());
    assert_eq!(server.socket().session_count(), 0);
    assert_eq!(server.socket().stats().released, 1);
    match next_event(&mut client, "loss") {
        Event::Disconnect {
            peer: p, reason, ..
        } => {
            assert_eq!(p, peer);
            assert_eq!(reason, DisconnectReason::Remote);
        }
        other => panic!("expected a disconnect, got {other:?}"),
    }
    let failure = client.take_failure(peer).expect("a cause");
    assert_eq!(
        failure.cause,
        FailureCause::Closed(enet_dtls::dtls_proto::CloseReason::Remote)
    );
}

#[cfg(feature = "tokio")]
#[test]
fn tokio_client_reports_a_hostname_mismatch() {
    use enet_dtls::enet::TokioEnetHost;

    let (key, cert) = identity("localhost");
    let server = EchoServer::spawn(&server_config(key, cert.clone()), EndpointConfig::default());
    let rt = common::runtime();
    rt.block_on(async {
        let socket =
            DtlsEnetSocket::client("127.0.0.1:0", &pinned(&cert, "other.example")).unwrap();
        let mut client = TokioEnetHost::with_socket(socket, HostConfig::default()).unwrap();
        let peer = client.connect(server.addr, 1, 0).unwrap();
        match next(&mut client).await {
            Event::Disconnect { reason, .. } => assert_eq!(reason, DisconnectReason::Failed),
            other => panic!("expected a failed connection, got {other:?}"),
        }
        let failure = client.take_failure(peer).expect("a cause");
        assert!(
            matches!(&failure.cause, FailureCause::Dtls(DtlsError::HostnameMismatch { expected, .. }) if expected == "other.example"),
            "{failure}"
        );
    });
    server.finish();
}

/// The ENet MTU bound holds for every DTLS 1.2 suite family OpenSSL negotiates (AEAD, and CBC
/// with each MAC), and is exact for the worst one (AES-CBC with SHA-384): an ENet datagram of
/// that size fits one record, and the record is never larger than the DTLS MTU.
#[test]
fn the_enet_mtu_fits_one_record_under_every_cipher_suite() {
    use enet_dtls::dtls_proto::DtlsSession;
    let (key, cert) = identity("localhost");
    let suites = [
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES256-SHA384",
        "ECDHE-ECDSA-AES128-SHA256",
        "ECDHE-ECDSA-AES256-SHA",
    ];
    for suite in suites {
        for mtu in [669, 1000, 1200, 1440, 1500] {
            let now = Instant::now();
            let server = ServerConfig::builder(key.clone(), cert.clone())
                .mtu(mtu)
                .cipher_list(suite)
                .build()
                .unwrap();
            let client = ClientConfig::builder()
                .verify(false)
                .mtu(mtu)
                .cipher_list(suite)
                .build()
                .unwrap();
            let mut c = DtlsSession::client(&client, now).unwrap();
            let mut s = DtlsSession::server(&server, now).unwrap();
            for _ in 0..20 {
                while let Some(d) = c.poll_transmit() {
                    assert!(
                        d.len() <= mtu,
                        "{suite}/{mtu}: handshake datagram of {}",
                        d.len()
                    );
                    s.handle_datagram(now, &d);
                }
                while let Some(d) = s.poll_transmit() {
                    assert!(
                        d.len() <= mtu,
                        "{suite}/{mtu}: handshake datagram of {}",
                        d.len()
                    );
                    c.handle_datagram(now, &d);
                }
            }
            assert_eq!(c.cipher_name(), Some(suite), "the suite was negotiated");
            let bound = enet_mtu_for_dtls_mtu(mtu);
            let data_mtu = c.data_mtu().unwrap();
            assert!(
                data_mtu >= bound,
                "{suite}/{mtu}: data MTU {data_mtu} < {bound}"
            );
            if suite == "ECDHE-ECDSA-AES256-SHA384" {
                assert_eq!(
                    data_mtu, bound,
                    "{suite}/{mtu}: the bound is the worst case"
                );
            }
            c.send(&vec![0xA5; bound]).unwrap();
            let record = c.poll_transmit().unwrap();
            assert!(
                record.len() <= mtu,
                "{suite}/{mtu}: record of {}",
                record.len()
            );
            assert_eq!(record[0], 23, "application data record");
            s.handle_datagram(now, &record);
            assert_eq!(s.recv().map(|d| d.len()), Some(bound));
        }
    }
}
