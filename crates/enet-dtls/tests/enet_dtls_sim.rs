//! The ENet-over-DTLS path (`DtlsEnetSocket` on an in-memory transport, with `enet_proto::Host`
//! on top) in the simulator (`enet-sim`), in virtual time: under loss, reordering and
//! duplication every reliable packet arrives, in order, for several seeds; no datagram on the
//! wire exceeds the DTLS MTU and none is plaintext ENet.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use enet_dtls::dtls_proto::{ClientConfig, EndpointConfig, ServerConfig};
use enet_dtls::enet::testing::WireSocket;
use enet_dtls::enet::{enet_mtu_for_dtls_mtu, DtlsEnetSocket, EnetSocket};
use enet_dtls::enet_proto::{Event, Host, HostConfig, Packet, PeerId, Transmit};
use enet_dtls::keys::{Certificate, CertificateParams, KeyType, PrivateKey};
use enet_sim::{Endpoint, LinkConfig, Network, Sim};

const MESSAGES: usize = 200;
const DTLS_MTU: usize = 1440;

/// An ENet host on a DTLS socket on the wire. The client sends `MESSAGES` reliable packets once
/// connected; the server echoes each one.
struct Node {
    addr: SocketAddr,
    host: Host,
    socket: DtlsEnetSocket<WireSocket>,
    client: bool,
    peer: Option<PeerId>,
    connected_at: Option<Instant>,
    received: Vec<Vec<u8>>,
}

fn message(i: usize) -> Vec<u8> {
    // Every 20th message is larger than the ENet MTU (fragmented).
    let len = if i % 20 == 7 {
        4000
    } else {
        1 + (i * 37) % 300
    };
    (0..len).map(|j| (i * 13 + j) as u8).collect()
}

impl Node {
    fn new(
        addr: SocketAddr,
        socket: DtlsEnetSocket<WireSocket>,
        now: Instant,
        client: bool,
    ) -> Node {
        let config = HostConfig {
            mtu: socket.max_datagram_size() as u32,
            seed: if client { 11 } else { 22 },
            ..HostConfig::default()
        };
        Node {
            addr,
            host: Host::new(config, now).unwrap(),
            socket,
            client,
            peer: None,
            connected_at: None,
            received: Vec::new(),
        }
    }

    /// Moves the host's datagrams into the socket and handles the host's events, until both
    /// are quiet.
    fn pump(&mut self, now: Instant) {
        loop {
            let batch: Vec<Transmit> =
                std::iter::from_fn(|| self.host.poll_transmit(now)).collect();
            if !batch.is_empty() {
                self.socket.send_batch(now, &batch).unwrap();
            }
            let Some(event) = self.host.poll_event() else {
                if batch.is_empty() {
                    return;
                }
                continue;
            };
            match event {
                Event::Connect { peer, .. } => {
                    self.peer = Some(peer);
                    // This test is about delivery under loss, not about when ENet gives up:
                    // with the default timeouts (32 retries, 5 s, 30 s) a command that happens
                    // to be lost five times running drops the connection, which at 10% loss
                    // each way happens to about one seed in 150.
                    self.host
                        .set_peer_timeout(
                            peer,
                            u32::MAX,
                            Duration::from_secs(300),
                            Duration::from_secs(300),
                        )
                        .unwrap();
                    self.connected_at.get_or_insert(now);
                    if self.client {
                        for i in 0..MESSAGES {
                            self.host
                                .send(peer, 0, Packet::reliable(message(i)))
                                .unwrap();
                        }
                    }
                }
                Event::Receive {
                    peer,
                    channel,
                    packet,
                } => {
                    if self.client {
                        self.received.push(packet.data);
                    } else {
                        self.received.push(packet.data.clone());
                        self.host.send(peer, channel, packet).unwrap();
                    }
                }
                Event::Disconnect { .. } => self.peer = None,
            }
        }
    }
}

impl Endpoint for Node {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.socket
            .transport_mut()
            .inbox
            .push_back((from, data.to_vec()));
        let host = &mut self.host;
        while self
            .socket
            .recv_batch(now, &mut |from, data| host.handle_datagram(now, from, data))
            .unwrap()
            > 0
        {}
        self.pump(now);
    }
    fn handle_timeout(&mut self, now: Instant) {
        if self.socket.poll_timeout().is_some_and(|t| t <= now) {
            self.socket.handle_timeout(now).unwrap();
        }
        if self.host.poll_timeout().is_some_and(|t| t <= now) {
            self.host.handle_timeout(now);
        }
        self.pump(now);
    }
    fn poll_transmit(&mut self, now: Instant) -> Option<(SocketAddr, Vec<u8>)> {
        self.pump(now);
        self.socket.transport_mut().outbox.pop_front()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        [self.host.poll_timeout(), self.socket.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }
}

/// A server and a client node (EC P-256, pinned certificate), the client connecting.
fn nodes(start: Instant) -> (Node, Node) {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let cert = Certificate::self_signed(&key, &CertificateParams::new("localhost")).unwrap();
    let server_config = ServerConfig::builder(key, cert.clone()).build().unwrap();
    let client_config = ClientConfig::builder()
        .trusted_certificate(cert)
        .hostname("localhost")
        .build()
        .unwrap();
    let s_addr: SocketAddr = "10.0.0.1:7777".parse().unwrap();
    let c_addr: SocketAddr = "10.0.0.2:5000".parse().unwrap();
    let server_socket = DtlsEnetSocket::server_over(
        WireSocket::new(s_addr),
        &server_config,
        EndpointConfig::default(),
    )
    .unwrap();
    let client_socket =
        DtlsEnetSocket::client_over(WireSocket::new(c_addr), &client_config).unwrap();
    let mut server = Node::new(s_addr, server_socket, start, false);
    let mut client = Node::new(c_addr, client_socket, start, true);
    client.host.connect(start, s_addr, 1, 0).unwrap();
    client.pump(start);
    server.pump(start);
    (server, client)
}

fn run(seed: u64) {
    assert!(
        enet_dtls::dtls_proto::virtual_time_supported(),
        "DTLS timers must follow virtual time"
    );
    let start = Instant::now();
    let mut net = Network::new(seed, start);
    net.set_default_link(LinkConfig {
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(10),
        loss: 0.1,
        duplicate: 0.05,
        reorder: 0.1,
        reorder_delay: Duration::from_millis(30),
        // Anything larger than the DTLS MTU would be lost (and the packets with it).
        mtu: Some(DTLS_MTU),
        ..LinkConfig::default()
    });
    net.set_capture(true);
    let (server, client) = nodes(start);
    let mut sim = Sim::with_nodes(net, vec![server, client]);
    let done = sim.run_until(start + Duration::from_secs(600), |nodes| {
        nodes[1].received.len() >= MESSAGES
    });
    let stats = sim.net.stats();
    let (server, client) = (&sim.nodes[0], &sim.nodes[1]);
    assert!(
        done,
        "seed {seed}: {} of {MESSAGES} echoes, server got {}; net {stats:?}; client {:?}",
        client.received.len(),
        server.received.len(),
        client.socket.stats()
    );
    // Every reliable packet arrived once, in order, both ways.
    let expected: Vec<Vec<u8>> = (0..MESSAGES).map(message).collect();
    assert_eq!(server.received, expected, "seed {seed}: server side");
    assert_eq!(client.received, expected, "seed {seed}: client side");
    // The network really misbehaved.
    assert!(
        stats.lost > 0 && stats.duplicated > 0 && stats.reordered > 0,
        "{stats:?}"
    );
    assert_eq!(
        stats.dropped_mtu, 0,
        "seed {seed}: a datagram exceeded the DTLS MTU"
    );
    // The ENet MTU was lowered, and every datagram on the wire was a DTLS record within the MTU.
    let mtu = client.host.peer(client.peer.unwrap()).unwrap().mtu() as usize;
    assert_eq!(mtu, enet_mtu_for_dtls_mtu(DTLS_MTU));
    let captured = sim.net.take_captured();
    let mut application_records = 0;
    for (_, d) in &captured {
        assert!(
            d.data.len() <= DTLS_MTU,
            "seed {seed}: {} bytes",
            d.data.len()
        );
        assert!(
            // Content type 20..=23; record version DTLS 1.2, or DTLS 1.0 in the first
            // ClientHello (as RFC 6347 allows).
            (20..=23).contains(&d.data[0])
                && (d.data[1..3] == [0xFE, 0xFD] || d.data[1..3] == [0xFE, 0xFF]),
            "seed {seed}: not a DTLS record: {:02x?}",
            &d.data[..d.data.len().min(8)]
        );
        if d.data[0] == 23 {
            application_records += 1;
        }
    }
    assert!(application_records > 2 * MESSAGES, "{application_records}");
}

#[test]
fn reliable_packets_survive_loss_reordering_and_duplication() {
    for seed in 1..=8 {
        run(seed);
    }
}

/// The client's first ENet CONNECT, sent while the DTLS handshake runs, is held and sent as soon
/// as the session is up: on a lossless link ENet connects one round trip after the handshake
/// (4 round trips in all: ClientHello/HelloVerifyRequest, the cookie ClientHello and the server
/// flight, the client's Finished flight and the server's, then CONNECT/VERIFY_CONNECT), with no
/// CONNECT retransmission (ENet's first retry would come after 500 ms).
#[test]
fn first_connect_is_sent_once_the_handshake_completes() {
    let start = Instant::now();
    let mut net = Network::new(7, start);
    let one_way = Duration::from_millis(20);
    net.set_default_link(LinkConfig {
        latency: one_way,
        ..LinkConfig::default()
    });
    let (server, client) = nodes(start);
    let mut sim = Sim::with_nodes(net, vec![server, client]);
    let done = sim.run_until(start + Duration::from_secs(10), |nodes| {
        nodes[0].peer.is_some() && nodes[1].peer.is_some()
    });
    assert!(done, "the ENet connection did not complete");
    let (server, client) = (&sim.nodes[0], &sim.nodes[1]);
    let rtt = 2 * one_way;
    let took = client.connected_at.unwrap() - start;
    assert!(
        took <= 4 * rtt + Duration::from_millis(5),
        "connected after {took:?}, expected 4 round trips ({:?})",
        4 * rtt
    );
    let stats = client.socket.stats();
    assert_eq!(stats.handshakes_started, 1, "{stats:?}");
    assert_eq!(stats.sent_after_handshake, 1, "{stats:?}");
    assert_eq!(stats.dropped_handshaking, 0, "{stats:?}");
    let peer = client.host.peer(client.peer.unwrap()).unwrap().stats();
    assert_eq!(peer.packets_lost, 0, "the client retransmitted: {peer:?}");
    // The server's ENet connects when the acknowledgement of its VERIFY_CONNECT arrives, half a
    // round trip after the client.
    let server_took = server.connected_at.unwrap() - start;
    assert!(server_took <= took + rtt, "{server_took:?} {took:?}");
}
