//! Two hosts over the in-memory simulator: connect, data, disconnect, timeouts.

mod common;

use std::time::Duration;

use common::*;
use enet_proto::{DisconnectReason, Event, HostConfig, Packet, PacketFlags, PeerState};
use enet_sim::LinkConfig;

fn lan() -> LinkConfig {
    LinkConfig::with_latency(Duration::from_millis(5))
}

#[test]
fn connect_exchange_and_disconnect() {
    let mut sim = pair(1, lan(), HostConfig::default(), HostConfig::default());
    let (sp, cp) = connect(&mut sim, 4, 0xABCD);
    // The server sees the client's data; the client sees 0.
    assert!(sim.nodes[0].events.iter().any(
        |e| matches!(e, Event::Connect { data: 0xABCD, address, .. } if *address == addr(CLIENT))
    ));
    assert!(sim.nodes[1]
        .events
        .iter()
        .any(|e| matches!(e, Event::Connect { data: 0, .. })));
    assert_eq!(sim.nodes[0].host.peer(sp).unwrap().channel_count(), 4);

    sim.nodes[1]
        .host
        .send(cp, 0, Packet::reliable(b"hello".to_vec()))
        .unwrap();
    sim.nodes[1]
        .host
        .send(cp, 3, Packet::unreliable(b"u".to_vec()))
        .unwrap();
    sim.nodes[1]
        .host
        .send(cp, 2, Packet::unsequenced(b"s".to_vec()))
        .unwrap();
    sim.nodes[0]
        .host
        .send(sp, 1, Packet::reliable(b"back".to_vec()))
        .unwrap();
    let t = sim.now() + Duration::from_secs(5);
    assert!(sim.run_until(t, |n| n[0].received().len() == 3
        && n[1].received().len() == 1));
    let mut got = sim.nodes[0].received();
    got.sort();
    assert_eq!(
        got,
        vec![
            (0, b"hello".to_vec()),
            (2, b"s".to_vec()),
            (3, b"u".to_vec())
        ]
    );
    assert_eq!(sim.nodes[1].received(), vec![(1, b"back".to_vec())]);

    sim.nodes[1].host.disconnect(cp, 77);
    let t = sim.now() + Duration::from_secs(5);
    assert!(sim.run_until(t, |n| !n[0].disconnects().is_empty()
        && !n[1].disconnects().is_empty()));
    assert!(matches!(
        sim.nodes[0].disconnects()[0],
        Event::Disconnect {
            data: 77,
            reason: DisconnectReason::Remote,
            ..
        }
    ));
    assert!(matches!(
        sim.nodes[1].disconnects()[0],
        Event::Disconnect {
            reason: DisconnectReason::Local,
            ..
        }
    ));
    // The connection's id is stale now, and its slot is free.
    assert!(sim.nodes[0].host.peer(sp).is_none());
    assert_eq!(
        sim.nodes[0].host.peers().nth(sp.index()).unwrap().state(),
        PeerState::Disconnected
    );
    assert_eq!(sim.nodes[0].host.stats().connected_peers, 0);
    assert_eq!(sim.nodes[1].oversize + sim.nodes[0].oversize, 0);
}

#[test]
fn large_reliable_and_unreliable_fragments() {
    let mut sim = pair(2, lan(), HostConfig::default(), HostConfig::default());
    let (_sp, cp) = connect(&mut sim, 2, 0);
    let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let big2: Vec<u8> = (0..5_000u32).map(|i| (i % 13) as u8).collect();
    let host = &mut sim.nodes[1].host;
    host.send(cp, 0, Packet::reliable(big.clone())).unwrap();
    host.send(
        cp,
        1,
        Packet::new(big2.clone(), PacketFlags::UNRELIABLE_FRAGMENT),
    )
    .unwrap();
    // Oversize unreliable without the flag goes reliably.
    host.send(cp, 1, Packet::unreliable(big2.clone())).unwrap();
    let t = sim.now() + Duration::from_secs(10);
    assert!(sim.run_until(t, |n| n[0].received().len() == 3));
    let got = sim.nodes[0].received();
    assert!(got.contains(&(0, big)));
    assert_eq!(got.iter().filter(|g| **g == (1, big2.clone())).count(), 2);
    let flags: Vec<_> = sim.nodes[0]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Receive { packet, .. } => Some(packet.flags),
            _ => None,
        })
        .collect();
    assert!(flags.contains(&PacketFlags::UNRELIABLE_FRAGMENT));
    assert!(sim.nodes[1].max_datagram <= 1392);
    assert_eq!(sim.nodes[1].oversize, 0);
}

#[test]
fn mtu_is_negotiated_to_the_minimum() {
    let server = HostConfig {
        mtu: 1000,
        ..HostConfig::default()
    };
    let client = HostConfig {
        mtu: 4096,
        ..HostConfig::default()
    };
    let mut sim = pair(3, lan(), server, client);
    let (sp, cp) = connect(&mut sim, 1, 0);
    assert_eq!(sim.nodes[0].host.peer(sp).unwrap().mtu(), 1000);
    assert_eq!(sim.nodes[1].host.peer(cp).unwrap().mtu(), 1000);
    sim.nodes[1]
        .host
        .send(cp, 0, Packet::reliable(vec![9u8; 20_000]))
        .unwrap();
    let t = sim.now() + Duration::from_secs(5);
    assert!(sim.run_until(t, |n| n[0].received().len() == 1));
    assert!(sim.nodes[1].max_datagram <= 1000);
    assert!(Host_new_rejects_bad_mtu());
}

#[allow(non_snake_case)]
fn Host_new_rejects_bad_mtu() -> bool {
    let now = std::time::Instant::now();
    let bad = |mtu| {
        enet_proto::Host::new(
            HostConfig {
                mtu,
                ..HostConfig::default()
            },
            now,
        )
        .is_err()
    };
    bad(575) && bad(4097) && !bad(576) && !bad(4096)
}

#[test]
fn channel_count_is_limited_by_the_server() {
    let server = HostConfig {
        channel_limit: 2,
        ..HostConfig::default()
    };
    let mut sim = pair(4, lan(), server, HostConfig::default());
    let (sp, cp) = connect(&mut sim, 255, 0);
    assert_eq!(sim.nodes[0].host.peer(sp).unwrap().channel_count(), 2);
    assert_eq!(sim.nodes[1].host.peer(cp).unwrap().channel_count(), 2);
    let err = sim.nodes[1]
        .host
        .send(cp, 2, Packet::reliable(b"x".to_vec()))
        .unwrap_err();
    assert!(matches!(
        err,
        enet_proto::Error::InvalidChannel {
            channel: 2,
            channel_count: 2
        }
    ));
}

#[test]
fn connect_to_nobody_times_out() {
    let mut sim = pair(5, lan(), HostConfig::default(), HostConfig::default());
    let now = sim.now();
    sim.nodes[1]
        .host
        .connect(now, addr("127.0.0.1:9"), 1, 0)
        .unwrap();
    let t = now + Duration::from_secs(60);
    assert!(sim.run_until(t, |n| !n[1].disconnects().is_empty()));
    assert!(matches!(
        sim.nodes[1].disconnects()[0],
        Event::Disconnect {
            reason: DisconnectReason::Timeout,
            ..
        }
    ));
    let elapsed = sim.now() - now;
    // RTO 500 ms doubling: attempts at 0, 0.5, 1.5, 3.5, 7.5, 15.5 s; the check at
    // 31.5 s finds the command older than the 30 s maximum (and 2^5 >= limit 32).
    assert_eq!(elapsed, Duration::from_millis(31_500));
}

#[test]
fn peer_times_out_when_link_dies() {
    let mut sim = pair(6, lan(), HostConfig::default(), HostConfig::default());
    let (sp, cp) = connect(&mut sim, 1, 0);
    sim.nodes[0]
        .host
        .set_peer_timeout(sp, 0, Duration::from_secs(1), Duration::from_secs(3))
        .unwrap();
    let dead = LinkConfig {
        loss: 1.0,
        ..LinkConfig::default()
    };
    sim.net.set_default_link(dead);
    let start = sim.now();
    let t = start + Duration::from_secs(40);
    assert!(sim.run_until(t, |n| !n[0].disconnects().is_empty()
        && !n[1].disconnects().is_empty()));
    for n in &sim.nodes {
        assert!(matches!(
            n.disconnects()[0],
            Event::Disconnect {
                reason: DisconnectReason::Timeout,
                ..
            }
        ));
    }
    // The server used its shorter maximum (pings keep a reliable command in flight).
    let _ = cp;
}

#[test]
fn disconnect_later_delivers_queued_data_first() {
    let mut sim = pair(7, lan(), HostConfig::default(), HostConfig::default());
    let (_sp, cp) = connect(&mut sim, 1, 0);
    for i in 0..50u32 {
        sim.nodes[1]
            .host
            .send(cp, 0, Packet::reliable(vec![i as u8; 3000]))
            .unwrap();
    }
    sim.nodes[1].host.disconnect_later(cp, 5);
    let t = sim.now() + Duration::from_secs(10);
    assert!(sim.run_until(t, |n| !n[0].disconnects().is_empty()));
    assert_eq!(sim.nodes[0].received().len(), 50);
    assert!(matches!(
        sim.nodes[0].disconnects()[0],
        Event::Disconnect {
            data: 5,
            reason: DisconnectReason::Remote,
            ..
        }
    ));
}

#[test]
fn disconnect_now_notifies_remote_without_local_event() {
    let mut sim = pair(8, lan(), HostConfig::default(), HostConfig::default());
    let (sp, cp) = connect(&mut sim, 1, 0);
    let now = sim.now();
    sim.nodes[1].host.disconnect_now(now, cp, 9);
    // The connection's id is stale now, and its slot is free.
    assert!(sim.nodes[1].host.peer(cp).is_none());
    assert_eq!(
        sim.nodes[1].host.peers().nth(cp.index()).unwrap().state(),
        PeerState::Disconnected
    );
    let t = sim.now() + Duration::from_secs(2);
    assert!(sim.run_until(t, |n| !n[0].disconnects().is_empty()));
    assert!(matches!(
        sim.nodes[0].disconnects()[0],
        Event::Disconnect {
            data: 9,
            reason: DisconnectReason::Remote,
            ..
        }
    ));
    assert!(sim.nodes[1].disconnects().is_empty());
    // The connection's id is stale now, and its slot is free.
    assert!(sim.nodes[0].host.peer(sp).is_none());
    assert_eq!(
        sim.nodes[0].host.peers().nth(sp.index()).unwrap().state(),
        PeerState::Disconnected
    );
}

#[test]
fn full_server_refuses_by_silence_and_client_times_out() {
    let server = HostConfig {
        peer_limit: 1,
        ..HostConfig::default()
    };
    let start = std::time::Instant::now();
    let mut net = enet_sim::Network::new(9, start);
    net.set_default_link(lan());
    let mut sim = enet_sim::Sim::new(net);
    sim.nodes.push(Node::new(addr(SERVER), server, start));
    sim.nodes.push(Node::new(
        addr("127.0.0.1:40001"),
        HostConfig::default(),
        start,
    ));
    sim.nodes.push(Node::new(
        addr("127.0.0.1:40002"),
        HostConfig::default(),
        start,
    ));
    sim.nodes[1]
        .host
        .connect(start, addr(SERVER), 1, 1)
        .unwrap();
    sim.nodes[2]
        .host
        .connect(start, addr(SERVER), 1, 2)
        .unwrap();
    assert!(sim.run_until(start + Duration::from_secs(60), |n| !n[2]
        .disconnects()
        .is_empty()
        || !n[1].disconnects().is_empty()));
    let connected: usize = sim.nodes[1..].iter().map(|n| n.connected().len()).sum();
    assert_eq!(connected, 1);
    assert_eq!(sim.nodes[0].connected().len(), 1);
}

#[test]
fn duplicate_peer_cap_per_address() {
    let server = HostConfig {
        duplicate_peers: 1,
        ..HostConfig::default()
    };
    let start = std::time::Instant::now();
    let mut net = enet_sim::Network::new(10, start);
    net.set_default_link(lan());
    let mut sim = enet_sim::Sim::new(net);
    sim.nodes.push(Node::new(addr(SERVER), server, start));
    sim.nodes.push(Node::new(
        addr("127.0.0.1:40001"),
        HostConfig::default(),
        start,
    ));
    sim.nodes.push(Node::new(
        addr("127.0.0.1:40002"),
        HostConfig::default(),
        start,
    ));
    sim.nodes.push(Node::new(
        addr("127.0.0.2:40002"),
        HostConfig::default(),
        start,
    ));
    for i in 1..4 {
        sim.nodes[i]
            .host
            .connect(start, addr(SERVER), 1, i as u32)
            .unwrap();
    }
    sim.run_for(Duration::from_secs(2));
    // One from 127.0.0.1 and one from 127.0.0.2.
    assert_eq!(sim.nodes[0].connected().len(), 2);
}

#[test]
fn ipv6_addresses_work() {
    let start = std::time::Instant::now();
    let mut net = enet_sim::Network::new(11, start);
    net.set_default_link(lan());
    let mut sim = enet_sim::Sim::new(net);
    let s = addr("[::1]:7777");
    sim.nodes.push(Node::new(s, HostConfig::default(), start));
    sim.nodes
        .push(Node::new(addr("[::1]:40000"), HostConfig::default(), start));
    let cp = sim.nodes[1].host.connect(start, s, 1, 0).unwrap();
    assert!(sim.run_until(start + Duration::from_secs(5), |n| !n[1]
        .connected()
        .is_empty()));
    sim.nodes[1]
        .host
        .send(cp, 0, Packet::reliable(b"v6".to_vec()))
        .unwrap();
    assert!(
        sim.run_until(start + Duration::from_secs(10), |n| n[0].received().len()
            == 1)
    );
}

#[test]
fn checksum_and_compression_roundtrip() {
    let cfg = || HostConfig {
        checksum: true,
        compressor: Some(Box::new(enet_proto::range_coder::RangeCoder::new())),
        ..HostConfig::default()
    };
    let mut sim = pair(12, lan(), cfg(), cfg());
    let (_sp, cp) = connect(&mut sim, 1, 0);
    let text = b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".repeat(40);
    sim.nodes[1]
        .host
        .send(cp, 0, Packet::reliable(text.clone()))
        .unwrap();
    let t = sim.now() + Duration::from_secs(5);
    assert!(sim.run_until(t, |n| n[0].received().len() == 1));
    assert_eq!(sim.nodes[0].received()[0].1, text);
    assert_eq!(sim.nodes[0].host.stats().datagrams_dropped, 0);
}

#[test]
fn checksum_mismatch_is_not_accepted() {
    // Client checksums, server does not: the server cannot parse the extra slot
    // as a command header, so no connection is made.
    let client = HostConfig {
        checksum: true,
        ..HostConfig::default()
    };
    let mut sim = pair(13, lan(), HostConfig::default(), client);
    let now = sim.now();
    sim.nodes[1].host.connect(now, addr(SERVER), 1, 0).unwrap();
    sim.run_for(Duration::from_secs(2));
    assert!(sim.nodes[0].connected().is_empty());
}

#[test]
fn idle_connection_pings_and_stays_up() {
    let mut sim = pair(14, lan(), HostConfig::default(), HostConfig::default());
    let (sp, _cp) = connect(&mut sim, 1, 0);
    sim.run_for(Duration::from_secs(60));
    assert!(sim.nodes[0].disconnects().is_empty());
    assert!(sim.nodes[1].disconnects().is_empty());
    let stats = sim.nodes[0].host.peer(sp).unwrap().stats();
    // 5 ms one way => ~10 ms RTT measured from ping acknowledgements.
    assert!(
        stats.rtt >= Duration::from_millis(9) && stats.rtt <= Duration::from_millis(40),
        "{stats:?}"
    );
    // Roughly 2 pings per second for 60 s.
    assert!(stats.packets_sent > 60, "{stats:?}");
}

#[test]
fn bandwidth_limits_are_exchanged() {
    let server = HostConfig {
        incoming_bandwidth: 100_000,
        outgoing_bandwidth: 50_000,
        ..HostConfig::default()
    };
    let mut sim = pair(15, lan(), server, HostConfig::default());
    let (sp, cp) = connect(&mut sim, 1, 0);
    // VERIFY_CONNECT offered the window of the server's 100 000 B/s downstream: 4096.
    assert_eq!(
        sim.nodes[1].host.peer(cp).unwrap().stats().window_size,
        4096
    );
    sim.run_for(Duration::from_secs(3));
    // Server side: window from its 50 000 B/s upstream = (50000 / 64 KiB) * 4096, clamped to 4096.
    assert_eq!(
        sim.nodes[0].host.peer(sp).unwrap().stats().window_size,
        4096
    );
    // Client side: the server's BANDWIDTH_LIMIT grants the client's own (unlimited) upstream
    // as its incoming limit, so, as in C ENet, the window goes back to the maximum.
    assert_eq!(
        sim.nodes[1].host.peer(cp).unwrap().stats().window_size,
        65536
    );
    sim.nodes[1]
        .host
        .throttle_configure(cp, Duration::from_millis(1000), 4, 4)
        .unwrap();
    sim.run_for(Duration::from_secs(1));
    assert!(sim.nodes[0].disconnects().is_empty());
}

#[test]
fn send_side_limits_are_enforced() {
    let client = HostConfig {
        maximum_packet_size: 50_000,
        maximum_waiting_data: 20_000,
        peer_limit: 1,
        ..HostConfig::default()
    };
    let mut sim = pair(16, lan(), HostConfig::default(), client);
    let (_sp, cp) = connect(&mut sim, 1, 0);
    let host = &mut sim.nodes[1].host;
    assert!(matches!(
        host.send(cp, 0, Packet::reliable(vec![0; 50_001])),
        Err(enet_proto::Error::PacketTooLarge {
            size: 50_001,
            maximum: 50_000
        })
    ));
    host.send(cp, 0, Packet::reliable(vec![1; 15_000])).unwrap();
    assert!(matches!(
        host.send(cp, 0, Packet::reliable(vec![2; 15_000])),
        Err(enet_proto::Error::QueueFull { .. })
    ));
    let now = sim.now();
    assert!(matches!(
        sim.nodes[1].host.connect(now, addr("127.0.0.1:9"), 1, 0),
        Err(enet_proto::Error::NoFreePeer)
    ));
    let t = sim.now() + Duration::from_secs(5);
    assert!(sim.run_until(t, |n| n[0].received().len() == 1
        && n[1].host.peer(cp).unwrap().stats().outgoing_queued == 0));
    // Once delivered and acknowledged, the queue accepts data again.
    sim.nodes[1]
        .host
        .send(cp, 0, Packet::reliable(vec![2; 15_000]))
        .unwrap();
    assert!(matches!(
        sim.nodes[1]
            .host
            .send(enet_proto::PeerId::new(7, 0), 0, Packet::reliable(vec![])),
        Err(enet_proto::Error::UnknownPeer(_))
    ));
}

#[test]
fn explicit_ping_measures_rtt_and_set_mtu_applies_to_new_connections() {
    let mut sim = pair(
        17,
        LinkConfig::with_latency(Duration::from_millis(40)),
        HostConfig::default(),
        HostConfig::default(),
    );
    sim.nodes[0].host.set_mtu(700).unwrap();
    assert!(sim.nodes[0].host.set_mtu(100).is_err());
    let (sp, cp) = connect(&mut sim, 1, 0);
    assert_eq!(sim.nodes[1].host.peer(cp).unwrap().mtu(), 700);
    for _ in 0..20 {
        sim.nodes[1].host.ping(cp).unwrap();
        sim.run_for(Duration::from_millis(100));
    }
    let rtt = sim.nodes[1].host.peer(cp).unwrap().stats().rtt;
    assert!(
        rtt >= Duration::from_millis(75) && rtt <= Duration::from_millis(120),
        "{rtt:?}"
    );
    assert!(sim.nodes[0].host.peer(sp).unwrap().stats().packets_received > 20);
}

#[test]
fn reliable_sequence_numbers_wrap_in_order_under_loss() {
    let link = LinkConfig {
        latency: Duration::from_millis(10),
        jitter: Duration::from_millis(5),
        loss: 0.03,
        ..LinkConfig::default()
    };
    let mut sim = pair(18, link, HostConfig::default(), HostConfig::default());
    let (_sp, cp) = connect(&mut sim, 1, 0);
    const N: u32 = 70_000; // more than the 16-bit sequence space
    for i in 0..N {
        sim.nodes[1]
            .host
            .send(cp, 0, Packet::reliable(i.to_be_bytes().to_vec()))
            .unwrap();
    }
    let t = sim.now() + Duration::from_secs(600);
    assert!(sim.run_until(t, |n| n[0].receives == N as usize));
    let got: Vec<u32> = sim.nodes[0]
        .received()
        .iter()
        .map(|(_, d)| u32::from_be_bytes(d[..4].try_into().unwrap()))
        .collect();
    assert!(got.iter().copied().eq(0..N), "out of order or duplicated");
    assert!(sim.nodes[0].disconnects().is_empty());
}

/// Peer ids are generational: once a connection ends, its id is stale, and it
/// does not address the next connection that reuses the slot.
#[test]
fn stale_peer_ids_give_an_error_after_the_slot_is_reused() {
    let server = HostConfig {
        peer_limit: 1,
        ..HostConfig::default()
    };
    let mut sim = pair(30, lan(), server, HostConfig::default());
    let (old_server_side, old) = connect(&mut sim, 1, 0);
    sim.nodes[1].host.disconnect(old, 0);
    let t = sim.now() + Duration::from_secs(5);
    assert!(sim.run_until(t, |n| !n[0].disconnects().is_empty()
        && !n[1].disconnects().is_empty()));
    // The same slots serve a new connection.
    let now = sim.now();
    let new = sim.nodes[1].host.connect(now, addr(SERVER), 1, 0).unwrap();
    let t = now + Duration::from_secs(5);
    assert!(sim.run_until(t, |n| n[0].connected().len() == 2));
    let new_server_side = sim.nodes[0].connected()[1];
    assert_eq!(new.index(), old.index());
    assert_eq!(new_server_side.index(), old_server_side.index());
    assert_ne!(new, old);
    assert_ne!(new_server_side, old_server_side);
    // The old ids: errors and no peer, on both sides; nothing reaches the new peer.
    for (node, stale) in [(1, old), (0, old_server_side)] {
        let host = &mut sim.nodes[node].host;
        assert!(host.peer(stale).is_none());
        assert!(matches!(
            host.send(stale, 0, Packet::reliable(b"stale".to_vec())),
            Err(enet_proto::Error::UnknownPeer(id)) if id == stale
        ));
        assert!(host.ping(stale).is_err());
        host.disconnect(stale, 0);
        host.reset_peer(stale);
    }
    // The new connection is untouched and works.
    sim.nodes[1]
        .host
        .send(new, 0, Packet::reliable(b"fresh".to_vec()))
        .unwrap();
    let t = sim.now() + Duration::from_secs(5);
    assert!(sim.run_until(t, |n| n[0].received().contains(&(0, b"fresh".to_vec()))));
    assert_eq!(sim.nodes[0].received().len(), 1);
    assert_eq!(
        sim.nodes[0].host.peer(new_server_side).unwrap().state(),
        PeerState::Connected
    );
}
