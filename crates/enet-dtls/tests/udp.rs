//! Tests of the Godot-shaped UDP layer over real loopback sockets (IPv4 and IPv6).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use enet_dtls::udp::{PacketPeerUdp, UdpServer, DEFAULT_MAX_PENDING_CONNECTIONS};

/// Generous upper bound for a loopback datagram to show up (waits return as soon as it does).
const T: Duration = Duration::from_secs(5);

/// Waits for the next datagram on `peer` and returns it with its source.
fn recv(peer: &mut PacketPeerUdp) -> (Vec<u8>, SocketAddr) {
    assert!(
        peer.wait(Some(T)).expect("wait"),
        "no datagram within {T:?}"
    );
    let data = peer
        .get_packet()
        .expect("get_packet")
        .expect("a datagram after wait");
    (
        data,
        peer.packet_address()
            .expect("packet_address after get_packet"),
    )
}

/// Polls `server` until it has a pending connection and takes it.
fn accept(server: &mut UdpServer) -> PacketPeerUdp {
    let deadline = std::time::Instant::now() + T;
    loop {
        server.poll().expect("poll");
        if let Some(peer) = server.take_connection() {
            return peer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no connection within {T:?}"
        );
        server
            .wait(Some(Duration::from_millis(100)))
            .expect("server wait");
    }
}

fn ipv6_available() -> bool {
    UdpSocket::bind("[::1]:0").is_ok()
}

#[test]
fn bind_port_zero_reads_back_a_real_port() {
    let peer = PacketPeerUdp::bind("127.0.0.1:0").unwrap();
    let addr = peer.local_addr().unwrap();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0);
    assert!(peer.is_bound());
    assert!(!peer.is_connected_to_host());
}

#[test]
fn get_packet_is_non_blocking() {
    let mut peer = PacketPeerUdp::bind("127.0.0.1:0").unwrap();
    assert_eq!(peer.get_packet().unwrap(), None);
    assert_eq!(peer.available_packet_count(), 0);
    assert!(!peer.wait(Some(Duration::ZERO)).unwrap());
    assert_eq!(peer.packet_address(), None);
}

fn bound_pair_roundtrip(bind: &str) {
    let mut a = PacketPeerUdp::bind(bind).unwrap();
    let mut b = PacketPeerUdp::bind(bind).unwrap();
    let a_addr = a.local_addr().unwrap();
    let b_addr = b.local_addr().unwrap();
    a.set_dest_address(b_addr).unwrap();
    a.put_packet(b"one").unwrap();
    a.put_packet(b"two").unwrap();
    a.put_packet(&[]).unwrap();

    let (data, from) = recv(&mut b);
    assert_eq!((data.as_slice(), from), (&b"one"[..], a_addr));
    // Loopback delivers a sender's datagrams in order; wait for the rest.
    assert_eq!(recv(&mut b).0, b"two");
    assert_eq!(recv(&mut b).0, b"", "empty datagrams are datagrams too");
    assert_eq!(b.get_packet().unwrap(), None);

    b.set_dest_address(b.packet_address().unwrap()).unwrap();
    b.put_packet(b"back").unwrap();
    let (data, from) = recv(&mut a);
    assert_eq!((data.as_slice(), from), (&b"back"[..], b_addr));
}

#[test]
fn ipv4_bound_peers_exchange_datagrams_in_order() {
    bound_pair_roundtrip("127.0.0.1:0");
}

#[test]
fn ipv6_bound_peers_exchange_datagrams_in_order() {
    if !ipv6_available() {
        eprintln!("SKIP: no IPv6 loopback on this machine");
        return;
    }
    bound_pair_roundtrip("[::1]:0");
}

#[test]
fn large_datagram_arrives_whole() {
    let mut a = PacketPeerUdp::bind("127.0.0.1:0").unwrap();
    let mut b = PacketPeerUdp::bind("127.0.0.1:0").unwrap();
    let payload: Vec<u8> = (0..60_000u32).map(|i| (i % 251) as u8).collect();
    a.set_dest_address(b.local_addr().unwrap()).unwrap();
    a.put_packet(&payload).unwrap();
    assert_eq!(recv(&mut b).0, payload);
}

#[test]
fn put_packet_without_destination_is_not_connected() {
    let mut unbound = PacketPeerUdp::new();
    let err = unbound.put_packet(b"x").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotConnected);
    let mut bound = PacketPeerUdp::bind("127.0.0.1:0").unwrap();
    let err = bound.put_packet(b"x").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotConnected);
    assert_eq!(
        unbound.get_packet().unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
}

#[test]
fn unbound_peer_binds_on_first_put_packet() {
    let mut server = PacketPeerUdp::bind("127.0.0.1:0").unwrap();
    let mut client = PacketPeerUdp::new();
    assert!(!client.is_bound());
    client
        .set_dest_address(server.local_addr().unwrap())
        .unwrap();
    client.put_packet(b"auto").unwrap();
    assert!(client.is_bound());
    let (data, from) = recv(&mut server);
    assert_eq!(data, b"auto");
    assert_eq!(from.port(), client.local_addr().unwrap().port());
}

#[test]
fn ipv4_socket_refuses_ipv6_destination() {
    let mut peer = PacketPeerUdp::bind("127.0.0.1:0").unwrap();
    let err = peer.set_dest_address("[::1]:9").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

fn connect_by_name(host_port: &str, server_bind: &str) {
    let mut server = PacketPeerUdp::bind(server_bind).unwrap();
    let port = server.local_addr().unwrap().port();
    let mut client = PacketPeerUdp::connect(format!("{host_port}:{port}")).unwrap();
    assert!(client.is_connected_to_host());
    assert_eq!(client.remote_addr(), Some(server.local_addr().unwrap()));
    client.put_packet(b"ping").unwrap();
    let (data, from) = recv(&mut server);
    assert_eq!(data, b"ping");
    assert_eq!(from, client.local_addr().unwrap());
    server.set_dest_address(from).unwrap();
    server.put_packet(b"pong").unwrap();
    assert_eq!(recv(&mut client).0, b"pong");
}

#[test]
fn connect_to_host_resolves_ipv4_names() {
    connect_by_name("127.0.0.1", "127.0.0.1:0");
}

#[test]
fn connect_to_host_resolves_ipv6_names() {
    if !ipv6_available() {
        eprintln!("SKIP: no IPv6 loopback on this machine");
        return;
    }
    connect_by_name("[::1]", "[::1]:0");
}

#[test]
fn connected_peer_ignores_strangers() {
    let mut server = PacketPeerUdp::bind("127.0.0.1:0").unwrap();
    let server_addr = server.local_addr().unwrap();
    let mut client = PacketPeerUdp::bind("127.0.0.1:0").unwrap();
    let client_addr = client.local_addr().unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    // A stranger's datagram read into our queue before connecting...
    stranger.send_to(b"queued stranger", client_addr).unwrap();
    assert!(client.wait(Some(T)).unwrap());
    assert_eq!(client.available_packet_count(), 1);
    // ...and one still in the kernel's buffer (loopback delivers before send_to returns).
    stranger.send_to(b"kernel stranger", client_addr).unwrap();

    client.connect_to_host(server_addr).unwrap();
    assert!(
        client.set_dest_address(server_addr).is_err(),
        "Godot refuses this on a connected peer"
    );
    stranger.send_to(b"late stranger", client_addr).unwrap();

    server.set_dest_address(client_addr).unwrap();
    server.put_packet(b"from server").unwrap();
    let (data, from) = recv(&mut client);
    assert_eq!(
        data, b"from server",
        "only the connected host's datagram gets through"
    );
    assert_eq!(from, server_addr);
    assert_eq!(client.get_packet().unwrap(), None);
}

#[test]
fn server_hands_out_one_peer_per_client_and_routes_by_source() {
    let mut server = UdpServer::listen("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let mut c1 = PacketPeerUdp::connect(addr).unwrap();
    let mut c2 = PacketPeerUdp::connect(addr).unwrap();

    c1.put_packet(b"c1 first").unwrap();
    let mut p1 = accept(&mut server);
    assert_eq!(p1.remote_addr(), Some(c1.local_addr().unwrap()));
    assert_eq!(p1.local_addr().unwrap(), addr);

    c2.put_packet(b"c2 first").unwrap();
    let mut p2 = accept(&mut server);
    assert_eq!(p2.remote_addr(), Some(c2.local_addr().unwrap()));
    assert!(!server.is_connection_available());

    // Interleave traffic; each peer sees only its own client's datagrams, in order.
    for i in 0..5 {
        c1.put_packet(format!("c1 {i}").as_bytes()).unwrap();
        c2.put_packet(format!("c2 {i}").as_bytes()).unwrap();
    }
    let (first, from) = recv(&mut p1);
    assert_eq!(
        (first.as_slice(), from),
        (&b"c1 first"[..], c1.local_addr().unwrap())
    );
    for i in 0..5 {
        assert_eq!(recv(&mut p1).0, format!("c1 {i}").as_bytes());
    }
    assert_eq!(recv(&mut p2).0, b"c2 first");
    for i in 0..5 {
        assert_eq!(recv(&mut p2).0, format!("c2 {i}").as_bytes());
    }
    assert_eq!(p1.get_packet().unwrap(), None);
    assert_eq!(p2.get_packet().unwrap(), None);
    assert!(
        !server.is_connection_available(),
        "known sources never become new connections"
    );

    // Replies go to the right client only.
    p1.put_packet(b"to c1").unwrap();
    p2.put_packet(b"to c2").unwrap();
    assert_eq!(recv(&mut c1), (b"to c1".to_vec(), addr));
    assert_eq!(recv(&mut c2), (b"to c2".to_vec(), addr));
    assert_eq!(c1.get_packet().unwrap(), None);
    assert_eq!(c2.get_packet().unwrap(), None);
}

#[test]
fn server_polling_routes_datagrams_for_taken_peers() {
    let mut server = UdpServer::listen("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let mut c1 = PacketPeerUdp::connect(addr).unwrap();
    c1.put_packet(b"hello").unwrap();
    let mut p1 = accept(&mut server);
    c1.put_packet(b"second").unwrap();
    // Only the server reads the socket here; the peer then finds the datagram in its queue.
    let deadline = std::time::Instant::now() + T;
    while p1.available_packet_count() < 2 {
        assert!(std::time::Instant::now() < deadline);
        server.wait(Some(Duration::from_millis(50))).unwrap();
        server.poll().unwrap();
    }
    assert_eq!(p1.get_packet().unwrap().unwrap(), b"hello");
    assert_eq!(p1.get_packet().unwrap().unwrap(), b"second");
}

#[test]
fn ipv6_server_and_clients() {
    if !ipv6_available() {
        eprintln!("SKIP: no IPv6 loopback on this machine");
        return;
    }
    let mut server = UdpServer::listen("[::1]:0").unwrap();
    let addr = server.local_addr().unwrap();
    assert!(addr.is_ipv6());
    let mut c = PacketPeerUdp::connect(addr).unwrap();
    c.put_packet(b"v6").unwrap();
    let mut p = accept(&mut server);
    assert_eq!(p.remote_addr(), Some(c.local_addr().unwrap()));
    assert_eq!(recv(&mut p).0, b"v6");
    p.put_packet(b"v6 back").unwrap();
    assert_eq!(recv(&mut c), (b"v6 back".to_vec(), addr));
}

/// Polls `server` until `cond` holds (or fails after [`T`]).
fn poll_until(server: &mut UdpServer, what: &str, mut cond: impl FnMut(&UdpServer) -> bool) {
    let deadline = std::time::Instant::now() + T;
    loop {
        server.poll().unwrap();
        if cond(server) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        server.wait(Some(Duration::from_millis(50))).unwrap();
    }
}

#[test]
fn pending_connections_are_capped_and_extra_sources_dropped() {
    let mut server = UdpServer::listen("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    assert_eq!(
        server.max_pending_connections(),
        DEFAULT_MAX_PENDING_CONNECTIONS
    );
    assert_eq!(DEFAULT_MAX_PENDING_CONNECTIONS, 16, "Godot's default");
    server.set_max_pending_connections(2);

    let clients: Vec<UdpSocket> = (0..4)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let client_addrs: Vec<SocketAddr> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
    for c in &clients {
        c.send_to(b"hi", addr).unwrap();
    }
    poll_until(&mut server, "2 dropped datagrams", |s| {
        s.dropped_datagrams() == 2
    });
    assert_eq!(server.pending_connection_count(), 2);
    let mut taken = Vec::new();
    while let Some(p) = server.take_connection() {
        taken.push(p);
    }
    let from: Vec<SocketAddr> = taken.iter().map(|p| p.remote_addr().unwrap()).collect();
    assert_eq!(
        from,
        client_addrs[..2],
        "the oldest sources are kept, in order"
    );
    // The dropped sources were not remembered: they are new connections next time.
    server.set_max_pending_connections(3);
    for c in &clients[2..] {
        c.send_to(b"again", addr).unwrap();
    }
    poll_until(&mut server, "2 pending", |s| {
        s.pending_connection_count() == 2
    });
    assert_eq!(server.dropped_datagrams(), 2);

    // Lowering the limit drops the newest pending connections.
    server.set_max_pending_connections(1);
    assert_eq!(server.pending_connection_count(), 1);
    let mut p = server.take_connection().unwrap();
    assert_eq!(p.remote_addr(), Some(client_addrs[2]));
    assert_eq!(
        recv(&mut p).0,
        b"again",
        "only the second datagram: the first was dropped"
    );
    assert!(server.take_connection().is_none());
}

#[test]
fn zero_pending_connections_accepts_nobody() {
    let mut server = UdpServer::listen("127.0.0.1:0").unwrap();
    server.set_max_pending_connections(0);
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.send_to(b"hi", server.local_addr().unwrap()).unwrap();
    poll_until(&mut server, "1 dropped datagram", |s| {
        s.dropped_datagrams() == 1
    });
    assert!(!server.is_connection_available());
    assert!(server.take_connection().is_none());
}

#[test]
fn closing_a_taken_peer_makes_its_source_new_again() {
    let mut server = UdpServer::listen("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let mut c = PacketPeerUdp::connect(addr).unwrap();
    c.put_packet(b"one").unwrap();
    let mut p = accept(&mut server);
    assert_eq!(recv(&mut p).0, b"one");
    p.close();
    assert_eq!(
        p.get_packet().unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
    c.put_packet(b"two").unwrap();
    let mut again = accept(&mut server);
    assert_eq!(again.remote_addr(), Some(c.local_addr().unwrap()));
    assert_eq!(recv(&mut again).0, b"two");
}

#[test]
fn stop_disconnects_taken_peers_and_frees_the_port() {
    let mut server = UdpServer::listen("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let mut c = PacketPeerUdp::connect(addr).unwrap();
    c.put_packet(b"hi").unwrap();
    let mut p = accept(&mut server);
    let other = UdpSocket::bind("127.0.0.1:0").unwrap();
    other.send_to(b"pending", addr).unwrap();
    poll_until(&mut server, "a pending connection", |s| {
        s.is_connection_available()
    });

    server.stop();
    assert!(!server.is_listening());
    assert!(
        !server.is_connection_available(),
        "pending connections are discarded"
    );
    assert!(server.take_connection().is_none());
    assert_eq!(
        server.poll().unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
    assert_eq!(
        server.local_addr().unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
    assert_eq!(
        p.put_packet(b"x").unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
    assert_eq!(
        p.get_packet().unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
    assert_eq!(
        p.wait(Some(Duration::ZERO)).unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
    server.stop();

    // The port is free again.
    let again = UdpServer::listen(addr).expect("re-listen on the stopped server's port");
    assert_eq!(again.local_addr().unwrap(), addr);
}

#[test]
fn dropping_the_server_keeps_taken_peers_working() {
    let mut server = UdpServer::listen("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let mut c = PacketPeerUdp::connect(addr).unwrap();
    c.put_packet(b"hi").unwrap();
    let mut p = accept(&mut server);
    drop(server);
    assert_eq!(recv(&mut p).0, b"hi");
    c.put_packet(b"after drop").unwrap();
    assert_eq!(
        recv(&mut p).0,
        b"after drop",
        "the taken peer drives the shared socket itself"
    );
    p.put_packet(b"reply").unwrap();
    assert_eq!(recv(&mut c).0, b"reply");
}

#[test]
fn taken_peer_refuses_to_be_redirected() {
    let mut server = UdpServer::listen("127.0.0.1:0").unwrap();
    let mut c = PacketPeerUdp::connect(server.local_addr().unwrap()).unwrap();
    c.put_packet(b"hi").unwrap();
    let mut p = accept(&mut server);
    let elsewhere = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    assert_eq!(
        p.set_dest_address(elsewhere).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(
        p.connect_to_host(elsewhere).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    p.connect_to_host(c.local_addr().unwrap())
        .expect("its own remote is fine");
}

#[test]
fn dual_stack_server_sees_ipv4_clients_as_ipv4() {
    let Ok(mut server) = UdpServer::listen("[::]:0") else {
        eprintln!("SKIP: cannot bind [::]");
        return;
    };
    let port = server.local_addr().unwrap().port();
    let mut c = PacketPeerUdp::connect(("127.0.0.1", port)).unwrap();
    c.put_packet(b"v4 via v6").unwrap();
    let mut p = accept(&mut server);
    assert_eq!(
        p.remote_addr(),
        Some(c.local_addr().unwrap()),
        "plain IPv4, not ::ffff:"
    );
    assert_eq!(recv(&mut p).0, b"v4 via v6");
    p.put_packet(b"back").unwrap();
    assert_eq!(recv(&mut c).0, b"back");
}

#[test]
fn wait_times_out_without_traffic() {
    let mut peer = PacketPeerUdp::bind("127.0.0.1:0").unwrap();
    let start = std::time::Instant::now();
    assert!(!peer.wait(Some(Duration::from_millis(50))).unwrap());
    assert!(start.elapsed() >= Duration::from_millis(50));
    let server = UdpServer::listen("127.0.0.1:0").unwrap();
    assert!(!server.wait(Some(Duration::from_millis(20))).unwrap());
}

#[test]
fn broadcast_can_be_enabled_on_own_sockets_only() {
    let mut peer = PacketPeerUdp::bind("127.0.0.1:0").unwrap();
    peer.set_broadcast_enabled(true).unwrap();
    let mut unbound = PacketPeerUdp::new();
    let err = unbound.set_broadcast_enabled(true).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotConnected);
}

#[test]
fn server_wait_wakes_up_for_a_datagram() {
    let mut server = UdpServer::listen("127.0.0.1:0").unwrap();
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.send_to(b"wake", server.local_addr().unwrap()).unwrap();
    assert!(server.wait(Some(T)).unwrap());
    server.poll().unwrap();
    assert!(server.is_connection_available());
    // Everything was read: nothing left to wake up for.
    assert!(!server.wait(Some(Duration::ZERO)).unwrap());
}

/// Sends `count` datagrams of `size` bytes from `client` to `to`, letting `server` read every
/// `batch` datagrams so the kernel's receive buffer never overflows.
fn send_polled(
    client: &UdpSocket,
    to: SocketAddr,
    server: &mut UdpServer,
    count: usize,
    size: usize,
    batch: usize,
) {
    let payload = vec![7u8; size];
    for i in 0..count {
        client.send_to(&payload, to).unwrap();
        if i % batch == batch - 1 {
            server.poll().unwrap();
        }
    }
    server.poll().unwrap();
}

#[test]
fn a_peer_queue_is_bounded_by_packet_count() {
    use enet_dtls::udp::MAX_QUEUED_PACKETS;
    let mut server = UdpServer::listen("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"first", addr).unwrap();
    let mut peer = accept(&mut server);
    let extra = MAX_QUEUED_PACKETS + 100;
    send_polled(&client, addr, &mut server, extra, 8, 50);
    assert_eq!(peer.available_packet_count(), MAX_QUEUED_PACKETS);
    assert_eq!(
        server.dropped_datagrams(),
        (extra + 1 - MAX_QUEUED_PACKETS) as u64
    );
    assert_eq!(
        peer.get_packet().unwrap().unwrap(),
        b"first",
        "the oldest are kept"
    );
}

#[test]
fn a_peer_queue_is_bounded_by_bytes() {
    use enet_dtls::udp::MAX_QUEUED_BYTES;
    let mut server = UdpServer::listen("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"", addr).unwrap();
    let mut peer = accept(&mut server);
    let size = 60_000;
    let fit = MAX_QUEUED_BYTES / size;
    send_polled(&client, addr, &mut server, fit + 3, size, 1);
    assert_eq!(
        peer.available_packet_count(),
        fit + 1,
        "the empty first datagram plus {fit}"
    );
    assert_eq!(server.dropped_datagrams(), 3);
}

#[test]
fn taken_peers_work_from_other_threads_while_the_server_polls() {
    let mut server = UdpServer::listen("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let mut clients: Vec<PacketPeerUdp> = (0..3)
        .map(|_| PacketPeerUdp::connect(addr).unwrap())
        .collect();
    let mut echoers = Vec::new();
    for c in clients.iter_mut() {
        c.put_packet(b"start").unwrap();
        let mut peer = accept(&mut server);
        // Each peer echoes 20 datagrams on its own thread.
        echoers.push(std::thread::spawn(move || {
            for _ in 0..21 {
                let (data, _) = recv(&mut peer);
                peer.put_packet(&data).unwrap();
            }
        }));
    }
    // Meanwhile the main thread keeps polling the shared socket too.
    for i in 0..20u32 {
        for (n, c) in clients.iter_mut().enumerate() {
            c.put_packet(format!("{n}:{i}").as_bytes()).unwrap();
        }
        server.poll().unwrap();
    }
    for (n, c) in clients.iter_mut().enumerate() {
        assert_eq!(recv(c).0, b"start");
        for i in 0..20u32 {
            assert_eq!(
                recv(c).0,
                format!("{n}:{i}").as_bytes(),
                "client {n} got another's echo"
            );
        }
    }
    for e in echoers {
        e.join().expect("echo thread");
    }
    assert!(!server.is_connection_available());
}
