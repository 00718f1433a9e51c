//! Peer slots are made when first used: a host sized for 4,095 peers holds only the slots its
//! connections needed, and still hands out the lowest free slot first, as C ENet does.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use enet_proto::{Event, Host, HostConfig, PeerId, PeerState};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Moves datagrams both ways until neither host has anything to send.
fn exchange(server: &mut Host, client: &mut Host, now: Instant) {
    for _ in 0..20 {
        let mut moved = false;
        while let Some(t) = client.poll_transmit(now) {
            server.handle_datagram(now, addr("10.0.0.2:5000"), &t.data);
            moved = true;
        }
        while let Some(t) = server.poll_transmit(now) {
            client.handle_datagram(now, addr("10.0.0.1:7000"), &t.data);
            moved = true;
        }
        if !moved {
            break;
        }
    }
}

/// A host with `peer_limit` slots and the given seed.
fn host(peer_limit: usize, seed: u64, now: Instant) -> Host {
    common::host(
        now,
        seed,
        HostConfig {
            peer_limit,
            ..HostConfig::default()
        },
    )
}

fn server_connects(server: &mut Host) -> Vec<PeerId> {
    let mut ids = Vec::new();
    while let Some(e) = server.poll_event() {
        if let Event::Connect { peer, .. } = e {
            ids.push(peer);
        }
    }
    ids
}

#[test]
fn slots_are_made_on_demand_lowest_free_first() {
    let now = Instant::now();
    let mut server = host(4095, 1, now);
    let mut client = host(4095, 2, now);
    assert_eq!(server.peer_limit(), 4095);
    assert_eq!(server.peers().count(), 0, "no slot before any connection");

    let outgoing: Vec<PeerId> = (0..3)
        .map(|_| client.connect(now, addr("10.0.0.1:7000"), 1, 0).unwrap())
        .collect();
    assert_eq!(
        outgoing.iter().map(|p| p.index()).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(client.peers().count(), 3);
    exchange(&mut server, &mut client, now);
    let incoming = server_connects(&mut server);
    assert_eq!(
        incoming.iter().map(|p| p.index()).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(server.peers().count(), 3, "one slot per connection");

    // Slot 1 is freed on both sides; the next connection takes it again on both sides (the
    // lowest free slot), not a new one.
    let now = now + Duration::from_millis(10);
    client.disconnect(outgoing[1], 0);
    exchange(&mut server, &mut client, now);
    while client.poll_event().is_some() {}
    while server.poll_event().is_some() {}
    assert_eq!(
        server.peers().nth(1).unwrap().state(),
        PeerState::Disconnected
    );
    let again = client.connect(now, addr("10.0.0.1:7000"), 1, 0).unwrap();
    assert_eq!(again.index(), 1);
    exchange(&mut server, &mut client, now);
    assert_eq!(
        server_connects(&mut server)
            .iter()
            .map(|p| p.index())
            .collect::<Vec<_>>(),
        [1]
    );
    assert_eq!(server.peers().count(), 3);
    assert_eq!(client.peers().count(), 3);
    // The stale id of the old connection in slot 1 does not address the new one.
    assert!(client.peer(outgoing[1]).is_none());
    assert!(client.peer(again).is_some());
}

/// A host full of connected peers refuses the next CONNECT (by silence, as C ENet does) and
/// makes no slot beyond its limit.
#[test]
fn a_full_host_makes_no_slot_beyond_its_limit() {
    let now = Instant::now();
    let mut server = host(2, 1, now);
    let mut client = host(HostConfig::default().peer_limit, 2, now);
    for _ in 0..3 {
        client.connect(now, addr("10.0.0.1:7000"), 1, 0).unwrap();
    }
    exchange(&mut server, &mut client, now);
    assert_eq!(server_connects(&mut server).len(), 2);
    assert_eq!(server.peers().count(), 2);
    assert_eq!(server.stats().connects_refused, 1);
    let mut small = host(1, 0, now);
    small.connect(now, addr("10.0.0.1:7000"), 1, 0).unwrap();
    assert!(matches!(
        small.connect(now, addr("10.0.0.1:7000"), 1, 0),
        Err(enet_proto::Error::NoFreePeer)
    ));
}
