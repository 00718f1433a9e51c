//! CONNECT floods from one address (many ports, or many IPv6 addresses of one
//! /64) take at most `duplicate_peers` slots; clients from other addresses still
//! get in, and the refused CONNECTs cost no reply.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use enet_proto::wire::{self, Command, CommandHeader, WireCommand, COMMAND_FLAG_ACKNOWLEDGE};
use enet_proto::{Event, HostConfig, Packet, PeerState, SERVER_DUPLICATE_PEERS};
use enet_sim::{LinkConfig, Network, Sim};

fn lan() -> LinkConfig {
    LinkConfig::with_latency(Duration::from_millis(2))
}

/// A CONNECT as C ENet sends it (peer id 0xFFF, sentTime, command CONNECT).
fn connect_datagram(connect_id: u32) -> Vec<u8> {
    let mut d = vec![0x8f, 0xff, 0x00, 0x01];
    WireCommand {
        header: CommandHeader::new(Command::CONNECT | COMMAND_FLAG_ACKNOWLEDGE, 0xFF, 1),
        command: Command::Connect(wire::Connect {
            outgoing_peer_id: 0,
            incoming_session_id: 0xFF,
            outgoing_session_id: 0xFF,
            mtu: 1392,
            window_size: 65536,
            channel_count: 2,
            incoming_bandwidth: 0,
            outgoing_bandwidth: 0,
            packet_throttle_interval: 5000,
            packet_throttle_acceleration: 2,
            packet_throttle_deceleration: 2,
            connect_id,
            data: 0,
        }),
    }
    .emit(&mut d);
    d
}

fn server_sim(seed: u64, server: SocketAddr, config: HostConfig) -> Sim<Node> {
    let start = Instant::now();
    let mut net = Network::new(seed, start);
    net.set_default_link(lan());
    let mut sim = Sim::new(net);
    sim.nodes.push(Node::new(server, config, start));
    sim
}

/// Slots in use (any state but free) whose address matches `pred`.
fn slots(sim: &Sim<Node>, pred: impl Fn(&SocketAddr) -> bool) -> usize {
    sim.nodes[0]
        .host
        .peers()
        .filter(|p| p.state() != PeerState::Disconnected && pred(&p.address()))
        .count()
}

/// A legitimate client at `from` connects and gets an echo-free packet through.
fn legit_client_gets_in(sim: &mut Sim<Node>, server: SocketAddr, from: SocketAddr) {
    let now = sim.now();
    sim.nodes.push(Node::new(
        from,
        HostConfig {
            seed: 99,
            ..HostConfig::default()
        },
        now,
    ));
    let me = sim.nodes.len() - 1;
    let cp = sim.nodes[me].host.connect(now, server, 1, 7).unwrap();
    let t = now + Duration::from_secs(10);
    assert!(
        sim.run_until(t, |n| !n[me].connected().is_empty()),
        "the client from {from} did not get in"
    );
    sim.nodes[me]
        .host
        .send(cp, 0, Packet::reliable(b"legit".to_vec()))
        .unwrap();
    let t = sim.now() + Duration::from_secs(5);
    assert!(sim.run_until(t, |n| n[0].received().contains(&(0, b"legit".to_vec()))));
}

#[test]
fn server_config_limits_peers_per_address() {
    assert_eq!(HostConfig::server().duplicate_peers, SERVER_DUPLICATE_PEERS);
    assert_eq!(HostConfig::default().duplicate_peers, 4095);
    let bad = HostConfig {
        duplicate_peers: 0,
        ..HostConfig::default()
    };
    assert!(enet_proto::Host::new(bad, Instant::now()).is_err());
}

/// 2,000 CONNECTs from 2,000 ports of 127.0.0.1 (none of them completes the
/// handshake): at most the limit of slots is taken, only those get a
/// VERIFY_CONNECT, and a client from 127.0.0.2 connects while the flood's
/// half-open peers still hold their slots.
#[test]
fn raw_connect_flood_from_many_ports_takes_at_most_the_limit() {
    let server = addr(SERVER);
    let limit = 8;
    let config = HostConfig {
        peer_limit: 64,
        duplicate_peers: limit,
        ..HostConfig::server()
    };
    let mut sim = server_sim(1, server, config);
    let flood = 2000u32;
    for i in 0..flood {
        let from = SocketAddr::from(([127, 0, 0, 1], 10_000 + i as u16));
        let now = sim.now();
        sim.nodes[0]
            .host
            .handle_datagram(now, from, &connect_datagram(0x1000 + i));
    }
    let now = sim.now();
    let mut replies = 0;
    while let Some(t) = sim.nodes[0].host.poll_transmit(now) {
        assert_eq!(t.destination.ip(), server.ip());
        replies += 1;
    }
    // One VERIFY_CONNECT per accepted CONNECT, nothing for the refused ones.
    assert_eq!(replies, limit);
    assert_eq!(slots(&sim, |a| a.ip() == server.ip()), limit);
    let stats = sim.nodes[0].host.stats();
    assert_eq!(
        stats.connects_refused,
        u64::from(flood) - limit as u64,
        "{stats:?}"
    );

    legit_client_gets_in(&mut sim, server, addr("127.0.0.2:40001"));
    assert_eq!(slots(&sim, |a| a.ip() == server.ip()), limit);
}

/// 40 real clients on 40 ports of 127.0.0.1 that complete the handshake: at most
/// the limit connect, the others are refused (they time out), and clients from
/// 127.0.0.2 and 127.0.0.3 connect meanwhile.
#[test]
fn completing_connect_flood_takes_at_most_the_limit() {
    let server = addr(SERVER);
    let config = HostConfig {
        peer_limit: 32,
        ..HostConfig::server()
    };
    let mut sim = server_sim(2, server, config);
    let start = sim.now();
    for i in 0..40u16 {
        let from = SocketAddr::from(([127, 0, 0, 1], 20_000 + i));
        let cfg = HostConfig {
            seed: u64::from(i) + 1,
            ..HostConfig::default()
        };
        sim.nodes.push(Node::new(from, cfg, start));
        let me = sim.nodes.len() - 1;
        sim.nodes[me].host.connect(start, server, 1, 0).unwrap();
    }
    sim.run_for(Duration::from_secs(2));
    let connected = sim.nodes[1..]
        .iter()
        .filter(|n| !n.connected().is_empty())
        .count();
    assert_eq!(connected, SERVER_DUPLICATE_PEERS);
    assert_eq!(
        slots(&sim, |a| a.ip() == server.ip()),
        SERVER_DUPLICATE_PEERS
    );
    legit_client_gets_in(&mut sim, server, addr("127.0.0.2:40001"));
    legit_client_gets_in(&mut sim, server, addr("127.0.0.3:40001"));
    // The refused clients' CONNECTs time out on their side.
    let t = sim.now() + Duration::from_secs(40);
    sim.run_until(t, |n| {
        n[1..41]
            .iter()
            .all(|x| !x.connected().is_empty() || !x.disconnects().is_empty())
    });
    let refused = sim.nodes[1..41]
        .iter()
        .filter(|n| {
            n.disconnects()
                .iter()
                .any(|e| matches!(e, Event::Disconnect { .. }))
        })
        .count();
    assert_eq!(refused, 40 - SERVER_DUPLICATE_PEERS);
}

/// IPv6: one /64 counts as one source, so a flood from many addresses of one
/// prefix is limited too; a client from another /64 gets in.
#[test]
fn ipv6_flood_from_one_prefix_takes_at_most_the_limit() {
    let server = addr("[2001:db8:0:1::1]:7777");
    let limit = 4;
    let config = HostConfig {
        peer_limit: 64,
        duplicate_peers: limit,
        ..HostConfig::server()
    };
    let mut sim = server_sim(3, server, config);
    for i in 0..500u16 {
        let from: SocketAddr = format!("[2001:db8:0:2::{:x}]:{}", i + 1, 30_000 + i)
            .parse()
            .unwrap();
        let now = sim.now();
        sim.nodes[0]
            .host
            .handle_datagram(now, from, &connect_datagram(u32::from(i)));
    }
    let prefix = |a: &SocketAddr| a.to_string().starts_with("[2001:db8:0:2:");
    assert_eq!(slots(&sim, prefix), limit);
    legit_client_gets_in(&mut sim, server, addr("[2001:db8:0:3::5]:40000"));
}
