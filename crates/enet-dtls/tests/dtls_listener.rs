//! The DTLS drivers over real loopback sockets: [`DtlsListener`] (events, limits, timeouts,
//! the ClientHello flood), [`PacketPeerDtls`] and the Godot-shaped [`DtlsServer`].

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use enet_dtls::dtls::{
    ClientConfig, DtlsError, DtlsListener, DtlsServer, Error, ListenerEvent, PacketPeerDtls,
    ServerConfig, Status,
};
use enet_dtls::dtls_proto::keys::{Certificate, CertificateParams, KeyType, PrivateKey};
use enet_dtls::dtls_proto::DtlsSession;
use enet_dtls::udp::{PacketPeerUdp, UdpServer};

const T: Duration = Duration::from_secs(10);

fn identity() -> (PrivateKey, Certificate) {
    let key = PrivateKey::generate(KeyType::EcP256).expect("key");
    let cert = Certificate::self_signed(&key, &CertificateParams::new("localhost")).expect("cert");
    (key, cert)
}

fn listener_with(
    cfg: impl FnOnce(
        enet_dtls::dtls_proto::ServerConfigBuilder,
    ) -> enet_dtls::dtls_proto::ServerConfigBuilder,
) -> (DtlsListener, Certificate) {
    let (key, cert) = identity();
    let config = cfg(ServerConfig::builder(key, cert.clone()))
        .build()
        .expect("server config");
    (
        DtlsListener::bind("127.0.0.1:0", &config).expect("bind"),
        cert,
    )
}

fn client_config(cert: &Certificate) -> ClientConfig {
    ClientConfig::builder()
        .hostname("localhost")
        .trusted_certificate(cert.clone())
        .build()
        .expect("client config")
}

fn client(addr: SocketAddr, cert: &Certificate) -> PacketPeerDtls {
    let udp = PacketPeerUdp::connect(addr).expect("udp connect");
    PacketPeerDtls::connect_to_peer(udp, &client_config(cert)).expect("connect_to_peer")
}

/// Drives the listener and the clients until `done` says so (or panics after `T`).
/// Returns the listener events seen on the way.
fn drive(
    l: &mut DtlsListener,
    clients: &mut [&mut PacketPeerDtls],
    mut done: impl FnMut(&DtlsListener, &[&mut PacketPeerDtls], &[ListenerEvent]) -> bool,
) -> Vec<ListenerEvent> {
    let deadline = Instant::now() + T;
    let mut events = Vec::new();
    loop {
        while let Some(ev) = l.service(Duration::from_millis(2)).expect("service") {
            events.push(ev);
        }
        for c in clients.iter_mut() {
            c.poll().expect("client poll");
        }
        if done(l, clients, &events) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "timed out; events so far: {events:?}"
        );
    }
}

#[test]
fn listener_connects_echoes_and_closes() {
    let (mut l, cert) = listener_with(|b| b);
    let mut c = client(l.local_addr(), &cert);
    let me = c.udp().local_addr().unwrap();
    assert_eq!(c.status(), Status::Handshaking);
    let ev = drive(&mut l, &mut [&mut c], |_, cs, evs| {
        cs[0].status() == Status::Connected
            && evs.iter().any(|e| matches!(e, ListenerEvent::Connected(_)))
    });
    assert!(
        matches!(ev[..], [ListenerEvent::Connected(a)] if a == me),
        "{ev:?}"
    );
    assert_eq!(l.session_count(), 1);
    assert_eq!(l.status(me), Some(Status::Connected));
    assert!(c.cipher().is_some());
    assert_eq!(l.cipher(me), c.cipher());
    let mtu = l.data_mtu(me).expect("data mtu once connected");
    assert!(
        mtu > 1000 && mtu < enet_dtls::dtls_proto::DEFAULT_MTU,
        "{mtu}"
    );
    assert_eq!(c.data_mtu(), Some(mtu));

    // client -> server -> echo -> client
    c.put_packet(b"one").unwrap();
    c.put_packet(b"two").unwrap();
    let mut got = Vec::new();
    drive(&mut l, &mut [&mut c], |_, _, evs| {
        evs.iter()
            .filter(|e| matches!(e, ListenerEvent::Packet(..)))
            .count()
            == 2
    })
    .into_iter()
    .for_each(|e| {
        if let ListenerEvent::Packet(a, d) = e {
            assert_eq!(a, me);
            got.push(d);
        }
    });
    assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
    for d in &got {
        l.send_to(me, d).unwrap();
    }
    drive(&mut l, &mut [&mut c], |_, cs, _| {
        cs[0].available_packet_count() == 2
    });
    assert_eq!(c.get_packet().unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(c.get_packet().unwrap().as_deref(), Some(&b"two"[..]));
    assert_eq!(c.get_packet().unwrap(), None);

    // too large for one record: refused, the session survives
    let big = vec![7u8; mtu + 1];
    assert!(matches!(
        l.send_to(me, &big),
        Err(Error::Dtls(DtlsError::PacketTooLarge { .. }))
    ));
    assert!(matches!(
        c.put_packet(&big),
        Err(Error::Dtls(DtlsError::PacketTooLarge { .. }))
    ));
    l.send_to(me, &big[..mtu]).unwrap();
    drive(&mut l, &mut [&mut c], |_, cs, _| {
        cs[0].available_packet_count() == 1
    });
    assert_eq!(c.get_packet().unwrap().map(|d| d.len()), Some(mtu));

    // close_notify from the client -> Closed, and the session is gone
    c.disconnect_from_peer();
    assert_eq!(c.status(), Status::Disconnected);
    assert!(matches!(
        c.put_packet(b"late"),
        Err(Error::NotConnected(Status::Disconnected))
    ));
    let ev = drive(&mut l, &mut [], |_, _, evs| !evs.is_empty());
    assert!(
        matches!(ev[..], [ListenerEvent::Closed(a)] if a == me),
        "{ev:?}"
    );
    assert_eq!(l.session_count(), 0);
    assert!(matches!(l.send_to(me, b"x"), Err(Error::NoSession(a)) if a == me));
}

#[test]
fn dropping_a_connected_peer_sends_close_notify() {
    let (mut l, cert) = listener_with(|b| b);
    let mut c = client(l.local_addr(), &cert);
    let me = c.udp().local_addr().unwrap();
    drive(&mut l, &mut [&mut c], |l, cs, _| {
        cs[0].status() == Status::Connected && l.status(me) == Some(Status::Connected)
    });
    drop(c);
    let ev = drive(&mut l, &mut [], |_, _, evs| !evs.is_empty());
    assert!(
        matches!(ev[..], [ListenerEvent::Closed(a)] if a == me),
        "{ev:?}"
    );
}

#[test]
fn server_close_reaches_the_client() {
    let (mut l, cert) = listener_with(|b| b);
    let mut c = client(l.local_addr(), &cert);
    let me = c.udp().local_addr().unwrap();
    drive(&mut l, &mut [&mut c], |l, cs, _| {
        cs[0].status() == Status::Connected && l.status(me) == Some(Status::Connected)
    });
    l.close(me).unwrap();
    assert_eq!(l.session_count(), 0);
    let ev = drive(&mut l, &mut [&mut c], |_, cs, _| {
        cs[0].status() == Status::Disconnected
    });
    assert!(
        matches!(ev[..], [ListenerEvent::Closed(a)] if a == me),
        "{ev:?}"
    );
}

/// The gettimeofday interposition of dtls-proto takes effect in this crate's binaries too.
#[test]
fn openssl_timers_follow_the_callers_clock_here_too() {
    assert!(enet_dtls::dtls_proto::virtual_time_supported());
}

#[test]
fn session_limit_is_enforced() {
    let (mut l, cert) = listener_with(|b| b);
    l.set_max_sessions(1).unwrap();
    assert!(
        l.set_max_sessions(0).is_err(),
        "0 sessions is a configuration error"
    );
    assert_eq!(l.max_sessions(), 1);
    let mut a = client(l.local_addr(), &cert);
    drive(&mut l, &mut [&mut a], |_, cs, _| {
        cs[0].status() == Status::Connected
    });
    let udp = PacketPeerUdp::connect(l.local_addr()).unwrap();
    let cfg = ClientConfig::builder()
        .hostname("localhost")
        .trusted_certificate(cert.clone())
        .handshake_timeout(Duration::from_millis(600))
        .build()
        .unwrap();
    let mut b = PacketPeerDtls::connect_to_peer(udp, &cfg).unwrap();
    drive(&mut l, &mut [&mut a, &mut b], |_, cs, _| {
        cs[1].status() != Status::Handshaking
    });
    assert_eq!(b.status(), Status::Error);
    assert!(
        matches!(b.error(), Some(DtlsError::HandshakeTimeout { .. })),
        "{:?}",
        b.error()
    );
    assert_eq!(l.session_count(), 1);
    assert!(l.stats().sessions_refused >= 1, "{:?}", l.stats());
    assert_eq!(
        a.status(),
        Status::Connected,
        "the existing session is untouched"
    );
}

/// A client that passes the cookie check and then goes silent: the server-side handshake
/// times out, the session is removed and reported.
#[test]
fn silent_client_times_out_on_the_listener() {
    let (mut l, _cert) = listener_with(|b| b.handshake_timeout(Duration::from_millis(400)));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(l.local_addr()).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let me = sock.local_addr().unwrap();
    let now = Instant::now();
    let mut s =
        DtlsSession::client(&ClientConfig::builder().verify(false).build().unwrap(), now).unwrap();
    let mut buf = [0u8; 4096];
    // ClientHello -> HelloVerifyRequest -> ClientHello with cookie, then silence
    sock.send(&s.poll_transmit().unwrap()).unwrap();
    let hvr = loop {
        assert!(l.service(Duration::from_millis(5)).unwrap().is_none());
        if let Ok(n) = sock.recv(&mut buf) {
            break buf[..n].to_vec();
        }
        assert!(now.elapsed() < T);
    };
    assert_eq!(
        l.session_count(),
        0,
        "nothing kept before the cookie checks out"
    );
    s.handle_datagram(Instant::now(), &hvr);
    sock.send(&s.poll_transmit().unwrap()).unwrap();
    let ev = drive(&mut l, &mut [], |_, _, evs| !evs.is_empty());
    match &ev[..] {
        [ListenerEvent::Error(a, DtlsError::HandshakeTimeout { timeout })] => {
            assert_eq!(*a, me);
            assert_eq!(*timeout, Duration::from_millis(400));
        }
        other => panic!("expected a handshake timeout, got {other:?}"),
    }
    assert_eq!(l.session_count(), 0);
    assert_eq!(l.stats().sessions_accepted, 1);
    // the server did retransmit its flight while waiting
    let mut flights = 0;
    while sock.recv(&mut buf).is_ok() {
        flights += 1;
    }
    assert!(
        flights >= 2,
        "server flight plus at least one retransmission, got {flights}"
    );
}

/// Runs a hand-driven client session over a std socket against the listener until it is
/// connected; returns every datagram the client sent (for replays) and the listener events.
fn handshake_by_hand(
    l: &mut DtlsListener,
    sock: &UdpSocket,
    s: &mut DtlsSession,
) -> (Vec<Vec<u8>>, Vec<ListenerEvent>) {
    sock.set_read_timeout(Some(Duration::from_millis(2)))
        .unwrap();
    let mut sent = Vec::new();
    let mut events = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + T;
    while s.status() != Status::Connected
        || !events
            .iter()
            .any(|e| matches!(e, ListenerEvent::Connected(_)))
    {
        while let Some(d) = s.poll_transmit() {
            sock.send(&d).unwrap();
            sent.push(d);
        }
        while let Some(ev) = l.service(Duration::from_millis(2)).unwrap() {
            events.push(ev);
        }
        while let Ok(n) = sock.recv(&mut buf) {
            s.handle_datagram(Instant::now(), &buf[..n]);
        }
        if s.poll_timeout().is_some_and(|t| t <= Instant::now()) {
            s.handle_timeout(Instant::now());
        }
        assert_ne!(s.status(), Status::Error, "{:?}", s.error());
        assert!(
            Instant::now() < deadline,
            "handshake by hand timed out: {events:?}"
        );
    }
    (sent, events)
}

/// A peer that lost its state (crash, restart) handshakes again from the same address: the
/// new handshake replaces its old session (RFC 6347 section 4.2.8). A delayed duplicate of the
/// old ClientHello does not.
#[test]
fn reconnect_from_same_address_replaces_the_session() {
    let (mut l, cert) = listener_with(|b| b);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(l.local_addr()).unwrap();
    let me = sock.local_addr().unwrap();
    let cfg = client_config(&cert);
    let mut first = DtlsSession::client(&cfg, Instant::now()).unwrap();
    let (sent, ev) = handshake_by_hand(&mut l, &sock, &mut first);
    assert!(
        matches!(ev[..], [ListenerEvent::Connected(a)] if a == me),
        "{ev:?}"
    );
    // replay both ClientHellos (the cookie-less one and the one with the cookie): the live
    // session must survive
    for d in sent
        .iter()
        .filter(|d| d.len() > 13 && d[0] == 22 && d[13] == 1)
    {
        sock.send(d).unwrap();
    }
    let deadline = Instant::now() + Duration::from_millis(300);
    while Instant::now() < deadline {
        let e = l.service(Duration::from_millis(10)).unwrap();
        assert!(
            e.is_none(),
            "a replayed hello must not disturb the session: {e:?}"
        );
    }
    assert_eq!(l.status(me), Some(Status::Connected));
    // the "restarted" client: a brand new session from the same address
    let mut second = DtlsSession::client(&cfg, Instant::now()).unwrap();
    let (_, ev) = handshake_by_hand(&mut l, &sock, &mut second);
    assert!(
        matches!(ev[..], [ListenerEvent::Closed(a), ListenerEvent::Connected(b)] if a == me && b == me),
        "{ev:?}"
    );
    assert_eq!(l.session_count(), 1);
    // and the new session carries data
    second.send(b"after restart").unwrap();
    while let Some(d) = second.poll_transmit() {
        sock.send(&d).unwrap();
    }
    let deadline = Instant::now() + T;
    let got = loop {
        if let Some(ListenerEvent::Packet(a, d)) = l.service(Duration::from_millis(10)).unwrap() {
            break (a, d);
        }
        assert!(Instant::now() < deadline);
    };
    assert_eq!(got, (me, b"after restart".to_vec()));
}

/// 10,000 cookie-less ClientHellos from 10,000 distinct source addresses (100 loopback IPs x
/// 100 ports): every one gets a HelloVerifyRequest, and the listener keeps no state for any of
/// them. A real client still connects afterwards.
#[test]
fn clienthello_flood_leaves_no_per_source_state() {
    let (mut l, cert) = listener_with(|b| b);
    let target = l.local_addr();
    let hello = DtlsSession::client(
        &ClientConfig::builder().verify(false).build().unwrap(),
        Instant::now(),
    )
    .unwrap()
    .poll_transmit()
    .unwrap();
    const IPS: u32 = 100;
    const PER_IP: u32 = 100;
    let mut answered = 0u32;
    let mut sources = std::collections::HashSet::new();
    let mut buf = [0u8; 2048];
    for ip in 0..IPS {
        let src = Ipv4Addr::new(127, 0, (ip / 200) as u8, (ip % 200) as u8 + 2);
        let socks: Vec<UdpSocket> = (0..PER_IP)
            .map(|_| UdpSocket::bind((src, 0)).expect("bind flood socket"))
            .collect();
        for s in &socks {
            sources.insert(s.local_addr().unwrap());
            s.send_to(&hello, target).unwrap();
        }
        // serve this batch, then every source must have its HelloVerifyRequest
        let deadline = Instant::now() + T;
        let want = u64::from((ip + 1) * PER_IP);
        while l.stats().datagrams_received < want {
            assert!(l.service(Duration::from_millis(5)).unwrap().is_none());
            assert!(
                Instant::now() < deadline,
                "listener got only {:?}",
                l.stats()
            );
        }
        for s in &socks {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let (n, from) = s
                .recv_from(&mut buf)
                .expect("HelloVerifyRequest for every source");
            assert_eq!(from, target);
            assert!(
                n > 25 && buf[0] == 22 && buf[13] == 3,
                "a HelloVerifyRequest record"
            );
            answered += 1;
        }
        assert_eq!(l.session_count(), 0);
    }
    assert_eq!(
        sources.len(),
        (IPS * PER_IP) as usize,
        "distinct source addresses"
    );
    assert_eq!(answered, IPS * PER_IP);
    let st = l.stats();
    assert_eq!(st.datagrams_received, u64::from(IPS * PER_IP));
    assert_eq!(st.cookies_sent, u64::from(IPS * PER_IP));
    assert_eq!(st.sessions_accepted, 0);
    assert_eq!(l.session_count(), 0);
    assert_eq!(
        l.pending_state().ssl_objects_created,
        1,
        "one listening SSL object, none per source"
    );
    assert_eq!(l.pending_state().queued_datagrams, 0);
    // still serving
    let mut c = client(target, &cert);
    drive(&mut l, &mut [&mut c], |_, cs, _| {
        cs[0].status() == Status::Connected
    });
    assert_eq!(l.session_count(), 1);
}

/// Godot's shape: a UdpServer hands out a peer per source; DtlsServer::take_connection answers
/// the cookie-less hello (peer in Status::Error, like Godot) and the retry handshakes.
#[test]
fn godot_shaped_dtls_server_with_udp_server() {
    let (key, cert) = identity();
    let mut dtls = DtlsServer::setup(&key, &cert, &[]).unwrap();
    let mut udp = UdpServer::listen("127.0.0.1:0").unwrap();
    let mut c = client(udp.local_addr().unwrap(), &cert);
    let mut statuses = Vec::new();
    let mut peers: Vec<PacketPeerDtls> = Vec::new();
    let deadline = Instant::now() + T;
    let mut echoed = false;
    let mut sent = false;
    while !(echoed && c.available_packet_count() > 0) {
        udp.poll().unwrap();
        while let Some(conn) = udp.take_connection() {
            let p = dtls.take_connection(conn);
            statuses.push(p.status());
            if p.status() == Status::Handshaking {
                peers.push(p);
            }
        }
        for p in &mut peers {
            p.poll().unwrap();
            while let Some(d) = p.get_packet().unwrap() {
                p.put_packet(&d).unwrap();
                echoed = true;
            }
        }
        c.poll().unwrap();
        if c.status() == Status::Connected && !sent {
            c.put_packet(b"via DtlsServer").unwrap();
            sent = true;
        }
        std::thread::sleep(Duration::from_millis(1));
        assert!(
            Instant::now() < deadline,
            "statuses {statuses:?}, client {:?}",
            c.status()
        );
    }
    assert_eq!(
        statuses[..2],
        [Status::Error, Status::Handshaking],
        "cookie-less hello first, then the retry"
    );
    assert_eq!(
        c.get_packet().unwrap().as_deref(),
        Some(&b"via DtlsServer"[..])
    );
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].status(), Status::Connected);
}

/// One endpoint connects out from its socket (`connect`), the other accepts: both report the
/// session by address, and data flows both ways through `send_to`.
#[test]
fn endpoint_connects_out_to_a_listener() {
    let (mut server, cert) = listener_with(|b| b);
    let mut client = DtlsListener::bind_client("127.0.0.1:0").unwrap();
    let (s_addr, c_addr) = (server.local_addr(), client.local_addr());
    client.connect(s_addr, &client_config(&cert)).unwrap();
    assert!(
        matches!(client.connect(s_addr, &client_config(&cert)), Err(Error::SessionExists(a)) if a == s_addr)
    );
    assert_eq!(client.status(s_addr), Some(Status::Handshaking));
    let deadline = Instant::now() + T;
    let (mut on_server, mut on_client) = (Vec::new(), Vec::new());
    while on_server.is_empty() || on_client.is_empty() {
        on_server.extend(server.poll().unwrap());
        on_client.extend(client.poll().unwrap());
        server.wait_readable(Duration::from_millis(1)).unwrap();
        assert!(Instant::now() < deadline, "{on_server:?} {on_client:?}");
    }
    assert!(
        matches!(on_server[..], [ListenerEvent::Connected(a)] if a == c_addr),
        "{on_server:?}"
    );
    assert!(
        matches!(on_client[..], [ListenerEvent::Connected(a)] if a == s_addr),
        "{on_client:?}"
    );
    client.send_to(s_addr, b"ping").unwrap();
    let got = loop {
        if let Some(ev) = server.service(Duration::from_millis(5)).unwrap() {
            break ev;
        }
        assert!(Instant::now() < deadline);
    };
    assert!(
        matches!(&got, ListenerEvent::Packet(a, d) if *a == c_addr && d == b"ping"),
        "{got:?}"
    );
    server.send_to(c_addr, b"pong").unwrap();
    let got = loop {
        if let Some(ev) = client.service(Duration::from_millis(5)).unwrap() {
            break ev;
        }
        assert!(Instant::now() < deadline);
    };
    assert!(
        matches!(&got, ListenerEvent::Packet(a, d) if *a == s_addr && d == b"pong"),
        "{got:?}"
    );
    // a client-only endpoint accepts nothing: a stranger's ClientHello is dropped
    let mut stranger = DtlsListener::bind_client("127.0.0.1:0").unwrap();
    stranger.connect(c_addr, &client_config(&cert)).unwrap();
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        assert!(client.service(Duration::from_millis(10)).unwrap().is_none());
        assert!(stranger.poll().unwrap().is_none());
    }
    assert_eq!(client.session_count(), 1);
    assert!(client.stats().dropped >= 1);
}

/// IPv6 loopback works end to end, and dropping the listener sends close_notify to its
/// connected peers.
#[test]
fn ipv6_session_and_listener_drop_closes_peers() {
    let (key, cert) = identity();
    let config = ServerConfig::builder(key, cert.clone()).build().unwrap();
    let mut l = DtlsListener::bind("[::1]:0", &config).expect("bind [::1]");
    assert!(l.local_addr().is_ipv6());
    let mut c = client(l.local_addr(), &cert);
    drive(&mut l, &mut [&mut c], |l, cs, _| {
        cs[0].status() == Status::Connected && l.session_count() == 1
    });
    c.put_packet(b"v6").unwrap();
    let ev = drive(&mut l, &mut [&mut c], |_, _, evs| {
        evs.iter().any(|e| matches!(e, ListenerEvent::Packet(..)))
    });
    assert!(
        matches!(&ev[..], [ListenerEvent::Packet(a, d)] if a.is_ipv6() && d == b"v6"),
        "{ev:?}"
    );
    drop(l);
    let deadline = Instant::now() + T;
    while c.status() == Status::Connected {
        c.wait(Some(Duration::from_millis(20))).unwrap();
        c.poll().unwrap();
        assert!(
            Instant::now() < deadline,
            "no close_notify from the dropped listener"
        );
    }
    assert_eq!(c.status(), Status::Disconnected);
}

/// Issue 7: IPv4 peers of a dual-stack `[::]` listener are IPv4 addresses in events, lookups and
/// `send_to`; a dual-stack endpoint that connects out to an IPv4 address (plain or written
/// `::ffff:a.b.c.d`) keys the session by that IPv4 address and matches the replies to it.
#[test]
fn ipv4_peers_on_a_dual_stack_socket_are_ipv4_addresses() {
    let (key, cert) = identity();
    let config = ServerConfig::builder(key, cert.clone()).build().unwrap();
    let mut l = DtlsListener::bind("[::]:0", &config).expect("bind [::]");
    let port = l.local_addr().port();
    let mut c = client(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), &cert);
    let me = c.udp().local_addr().unwrap();
    assert!(me.is_ipv4());
    let ev = drive(&mut l, &mut [&mut c], |_, cs, evs| {
        cs[0].status() == Status::Connected && !evs.is_empty()
    });
    assert!(
        matches!(ev[..], [ListenerEvent::Connected(a)] if a == me),
        "{ev:?}"
    );
    assert_eq!(l.sessions().collect::<Vec<_>>(), vec![me]);
    assert_eq!(l.status(me), Some(Status::Connected));
    let mapped: SocketAddr = format!("[::ffff:127.0.0.1]:{}", me.port()).parse().unwrap();
    assert_eq!(
        l.status(mapped),
        Some(Status::Connected),
        "mapped form finds it too"
    );
    l.send_to(me, b"to v4").unwrap();
    let deadline = Instant::now() + T;
    while c.available_packet_count() == 0 {
        c.wait(Some(Duration::from_millis(10))).unwrap();
        c.poll().unwrap();
        assert!(Instant::now() < deadline);
    }
    assert_eq!(c.get_packet().unwrap().as_deref(), Some(&b"to v4"[..]));

    // Outgoing: a dual-stack client endpoint connects to the IPv4 listener address written as
    // `::ffff:127.0.0.1`; the session is keyed by the IPv4 address and connects.
    let (key2, cert2) = identity();
    let config2 = ServerConfig::builder(key2, cert2.clone()).build().unwrap();
    let mut v4 = DtlsListener::bind("127.0.0.1:0", &config2).unwrap();
    let v4_addr = v4.local_addr();
    let mut out = DtlsListener::bind_client("[::]:0").unwrap();
    let target: SocketAddr = format!("[::ffff:127.0.0.1]:{}", v4_addr.port())
        .parse()
        .unwrap();
    out.connect(target, &client_config(&cert2)).unwrap();
    assert_eq!(out.sessions().collect::<Vec<_>>(), vec![v4_addr]);
    let mut on_out = Vec::new();
    while on_out.is_empty() {
        let _ = v4.poll().unwrap();
        on_out.extend(out.poll().unwrap());
        out.wait_readable(Duration::from_millis(1)).unwrap();
        assert!(Instant::now() < deadline, "{on_out:?}");
    }
    assert!(
        matches!(on_out[..], [ListenerEvent::Connected(a)] if a == v4_addr),
        "{on_out:?}"
    );
}

/// Issue 6: established sessions that stay silent expire after the idle timeout; the peer gets
/// close_notify and the listener reports `Closed`.
#[test]
fn idle_sessions_expire_on_the_listener() {
    let (key, cert) = identity();
    let config = ServerConfig::builder(key, cert.clone()).build().unwrap();
    let limits =
        enet_dtls::dtls::EndpointConfig::default().idle_timeout(Some(Duration::from_millis(500)));
    let mut l = DtlsListener::bind_with_limits("127.0.0.1:0", &config, limits).unwrap();
    let mut c = client(l.local_addr(), &cert);
    let me = c.udp().local_addr().unwrap();
    drive(&mut l, &mut [&mut c], |l, cs, _| {
        cs[0].status() == Status::Connected && l.session_count() == 1
    });
    let ev = drive(&mut l, &mut [&mut c], |_, cs, evs| {
        cs[0].status() == Status::Disconnected && !evs.is_empty()
    });
    assert!(
        matches!(ev[..], [ListenerEvent::Closed(a)] if a == me),
        "{ev:?}"
    );
    assert_eq!(l.session_count(), 0);
    assert_eq!(l.endpoint_stats().expired_idle, 1);
}

/// Issue 6 section 3 over loopback: with the table full, 2,000 replays of one valid-cookie
/// ClientHello build no server flight and create no SSL object, send nothing back, and are all
/// counted as refusals; the connected client is untouched.
#[test]
fn replayed_valid_cookie_hellos_against_a_full_table_build_nothing() {
    let (mut l, cert) = listener_with(|b| b);
    l.set_max_sessions(1).unwrap();
    let mut a = client(l.local_addr(), &cert);
    drive(&mut l, &mut [&mut a], |_, cs, _| {
        cs[0].status() == Status::Connected
    });
    // The attacker does the cookie exchange by hand and keeps the valid-cookie ClientHello.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(l.local_addr()).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let mut s = DtlsSession::client(
        &ClientConfig::builder().verify(false).build().unwrap(),
        Instant::now(),
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    sock.send(&s.poll_transmit().unwrap()).unwrap();
    let deadline = Instant::now() + T;
    let hvr = loop {
        let _ = l.poll().unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            break buf[..n].to_vec();
        }
        assert!(Instant::now() < deadline);
    };
    s.handle_datagram(Instant::now(), &hvr);
    let hello = s.poll_transmit().unwrap();
    let before = (l.pending_state(), l.endpoint_stats());
    // In bursts of 100, so the kernel's receive buffer never drops one.
    for burst in 1..=20u64 {
        for _ in 0..100 {
            sock.send(&hello).unwrap();
        }
        while l.stats().sessions_refused < burst * 100 {
            let _ = l.poll().unwrap();
            l.wait_readable(Duration::from_millis(5)).unwrap();
            assert!(Instant::now() < deadline, "{:?}", l.endpoint_stats());
        }
    }
    let after = (l.pending_state(), l.endpoint_stats());
    assert_eq!(
        after.0.handshakes_started, before.0.handshakes_started,
        "no server flight built"
    );
    assert_eq!(
        after.0.ssl_objects_created, before.0.ssl_objects_created,
        "no SSL object created"
    );
    assert_eq!(
        after.1.refused_table_full - before.1.refused_table_full,
        2000
    );
    assert_eq!(
        after.1.datagrams_out, before.1.datagrams_out,
        "nothing sent back"
    );
    assert!(sock.recv(&mut buf).is_err(), "a refusal sends nothing");
    assert_eq!(l.session_count(), 1);
    a.poll().unwrap();
    assert_eq!(a.status(), Status::Connected);
}
