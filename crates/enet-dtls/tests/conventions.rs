//! The conventions shared by the UDP, DTLS and ENet types (issue 7, section 3): waiting is
//! `wait(Option<Duration>) -> Result<bool>`, reading is `get_packet() -> Result<Option<_>>`
//! (and works without a separate `poll`), binding takes `ToSocketAddrs`.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use enet_dtls::dtls::{ClientConfig, DtlsServer, PacketPeerDtls, Status};
use enet_dtls::dtls_proto::keys::{Certificate, CertificateParams, KeyType, PrivateKey};
use enet_dtls::enet::{EnetHost, UdpEnetSocket};
use enet_dtls::enet_proto::HostConfig;
use enet_dtls::godot;
use enet_dtls::udp::{PacketPeerUdp, UdpServer};

const HANG_GUARD: Duration = Duration::from_secs(20);

/// A Godot-shaped DTLS echo server in a thread, serving until `stop` is dropped.
fn spawn_dtls_echo(stop: std::sync::mpsc::Receiver<()>) -> (SocketAddr, Certificate) {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let cert = Certificate::self_signed(&key, &CertificateParams::new("localhost")).unwrap();
    let mut dtls = DtlsServer::setup(&key, &cert, &[]).unwrap();
    let mut udp = UdpServer::listen("127.0.0.1:0").unwrap();
    let addr = udp.local_addr().unwrap();
    thread::spawn(move || {
        let mut peers: Vec<PacketPeerDtls> = Vec::new();
        while matches!(stop.try_recv(), Err(std::sync::mpsc::TryRecvError::Empty)) {
            udp.poll().unwrap();
            while let Some(conn) = udp.take_connection() {
                let p = dtls.take_connection(conn);
                if p.status() == Status::Handshaking {
                    peers.push(p);
                }
            }
            for p in &mut peers {
                // No poll: get_packet reads the socket itself when nothing is queued.
                while let Some(d) = p.get_packet().unwrap() {
                    p.put_packet(&d).unwrap();
                }
            }
            udp.wait(Some(Duration::from_millis(5))).unwrap();
        }
    });
    (addr, cert)
}

#[test]
fn dtls_peer_waits_with_an_option_and_reads_without_poll() {
    let (stop_tx, stop) = std::sync::mpsc::channel();
    let (addr, cert) = spawn_dtls_echo(stop);
    let config = ClientConfig::builder()
        .hostname("localhost")
        .trusted_certificate(cert)
        .build()
        .unwrap();
    // Binding takes anything ToSocketAddrs: a (host, port) pair here.
    let udp = PacketPeerUdp::connect(("127.0.0.1", addr.port())).unwrap();
    let mut c = PacketPeerDtls::connect_to_peer(udp, &config).unwrap();
    let deadline = Instant::now() + HANG_GUARD;
    while c.status() == Status::Handshaking {
        assert!(Instant::now() < deadline, "handshake hung");
        c.wait(Some(Duration::from_millis(50))).unwrap();
        c.poll().unwrap();
    }
    assert_eq!(c.status(), Status::Connected, "{:?}", c.error());
    // Nothing to read yet: Ok(None), not an error.
    assert_eq!(c.get_packet().unwrap(), None);
    c.put_packet(b"ping").unwrap();
    let echo = loop {
        assert!(Instant::now() < deadline, "no echo");
        // wait(None) would also do; the guard only stops a hung test.
        c.wait(Some(HANG_GUARD)).unwrap();
        if let Some(d) = c.get_packet().unwrap() {
            break d;
        }
    };
    assert_eq!(echo, b"ping");
    drop(stop_tx);
}

#[test]
fn udp_peer_and_server_follow_the_same_shapes() {
    // The Godot layer names the same types.
    let mut server: godot::UdpServer = UdpServer::listen(("127.0.0.1", 0)).unwrap();
    let mut client: godot::PacketPeerUdp =
        PacketPeerUdp::connect(server.local_addr().unwrap()).unwrap();
    assert!(!server.wait(Some(Duration::from_millis(5))).unwrap());
    client.put_packet(b"a").unwrap();
    assert!(server.wait(Some(HANG_GUARD)).unwrap());
    server.poll().unwrap();
    let mut peer = server.take_connection().unwrap();
    assert_eq!(peer.get_packet().unwrap().as_deref(), Some(&b"a"[..]));
    assert_eq!(peer.get_packet().unwrap(), None);
    peer.put_packet(b"b").unwrap();
    assert!(client.wait(Some(HANG_GUARD)).unwrap());
    assert_eq!(client.get_packet().unwrap().as_deref(), Some(&b"b"[..]));
}

#[test]
fn enet_types_bind_with_to_socket_addrs() {
    let host = EnetHost::bind(("127.0.0.1", 0), HostConfig::default()).unwrap();
    assert!(host.local_addr().unwrap().ip().is_loopback());
    let socket = UdpEnetSocket::bind("localhost:0").unwrap();
    assert!(enet_dtls::enet::EnetSocket::local_addr(&socket)
        .unwrap()
        .ip()
        .is_loopback());
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut host = EnetHost::bind(addr, HostConfig::default()).unwrap();
    // Idle, no peers, no timers: the wait runs out.
    assert!(!host.wait(Some(Duration::from_millis(5))).unwrap());
    let other = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    other
        .send_to(b"not enet", host.local_addr().unwrap())
        .unwrap();
    assert!(host.wait(Some(HANG_GUARD)).unwrap());
}
