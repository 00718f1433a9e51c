//! Drives the sans-IO framing core of the multiplayer peer (`MultiplayerCore`, Godot 3.2's
//! `NetworkedMultiplayerENet`) with hostile input over real in-memory ENet hosts:
//!
//! * a server core faces raw ENet attackers that connect with any id (CONNECT data), send any
//!   bytes on any channel with any flags (short headers, spoofed sources, any targets,
//!   system messages), and disconnect; the server's API (send to any target, disconnect) is
//!   called in between;
//! * a client core faces a raw ENet "server" that sends it any bytes, ADD_PEER/REMOVE_PEER
//!   floods included.
//!
//! Checks: no panic, the server only ever admits valid, distinct client ids (at most its peer
//! limit), a client's peer table stays bounded, and every packet the server delivers comes from
//! a connected client.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use enet_dtls::multiplayer::{
    valid_client_id, FramingConfig, MultiplayerCore, MultiplayerEvent, Target, TransferMode,
    MAX_REMOTE_PEERS,
};
use enet_proto::{Event, Host, HostConfig, Packet, PacketFlags, PeerId};
use libfuzzer_sys::fuzz_target;

const ATTACKERS: usize = 3;

struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(*b)
    }
    fn u32(&mut self) -> Option<u32> {
        let mut v = [0u8; 4];
        for b in &mut v {
            *b = self.byte()?;
        }
        Some(u32::from_le_bytes(v))
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.data.len());
        let (a, rest) = self.data.split_at(n);
        self.data = rest;
        a.to_vec()
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

struct Node {
    addr: SocketAddr,
    host: Host,
}

/// Delivers every queued datagram between the nodes, a few rounds, advancing the clock.
fn pump(nodes: &mut [Node], now: &mut Instant) {
    for _ in 0..4 {
        let mut moved = false;
        for i in 0..nodes.len() {
            while let Some(t) = nodes[i].host.poll_transmit(*now) {
                let from = nodes[i].addr;
                if let Some(to) = nodes.iter_mut().find(|n| n.addr == t.destination) {
                    to.host.handle_datagram(*now, from, &t.data);
                    moved = true;
                }
            }
        }
        *now += Duration::from_millis(5);
        for n in nodes.iter_mut() {
            n.host.handle_timeout(*now);
        }
        if !moved {
            break;
        }
    }
}

fn flags(b: u8) -> PacketFlags {
    match b % 3 {
        0 => PacketFlags::RELIABLE,
        1 => PacketFlags::UNSEQUENCED,
        _ => PacketFlags::NONE,
    }
}

fn mode(b: u8) -> TransferMode {
    TransferMode::ALL[usize::from(b) % 3]
}

/// Feeds the events of `host` to `core` and checks what comes out.
fn drain(core: &mut MultiplayerCore, host: &mut Host, peer_limit: usize) {
    while let Some(event) = host.poll_event() {
        core.handle_event(host, event);
    }
    while core.poll_released().is_some() {}
    while let Some(event) = core.poll_event() {
        match event {
            MultiplayerEvent::PeerConnected(id) if core.is_server() => {
                assert!(valid_client_id(id), "admitted id {id}");
            }
            MultiplayerEvent::Packet(p) if core.is_server() => {
                assert!(core.has_peer(p.from), "packet from unknown {}", p.from);
            }
            _ => {}
        }
    }
    let ids: Vec<u32> = core.peer_ids().collect();
    if core.is_server() {
        assert!(ids.len() <= peer_limit);
        assert!(ids.iter().all(|id| valid_client_id(*id)));
    } else {
        assert!(ids.len() <= MAX_REMOTE_PEERS + 1);
    }
}

fn server_side(input: &mut Input<'_>) {
    let mut now = Instant::now();
    let peer_limit = 4;
    let config = FramingConfig {
        channel_count: 4,
        server_relay: input.byte().unwrap_or(1) % 2 == 0,
        ..FramingConfig::default()
    };
    let Ok(mut core) = MultiplayerCore::server(config) else {
        return;
    };
    let mut nodes = vec![Node {
        addr: addr(7000),
        host: Host::new(
            HostConfig {
                peer_limit,
                channel_limit: 4,
                ..HostConfig::server()
            },
            now,
        )
        .expect("server host"),
    }];
    for i in 0..ATTACKERS {
        nodes.push(Node {
            addr: addr(8000 + i as u16),
            host: Host::new(HostConfig::default(), now).expect("attacker host"),
        });
    }
    let mut links: [Option<PeerId>; ATTACKERS] = [None; ATTACKERS];
    for _ in 0..64 {
        let Some(op) = input.byte() else { break };
        let k = usize::from(input.byte().unwrap_or(0)) % ATTACKERS;
        match op % 6 {
            0 => {
                let id = input.u32().unwrap_or(2);
                let server = nodes[0].addr;
                if let Ok(p) = nodes[k + 1].host.connect(now, server, 4, id) {
                    links[k] = Some(p);
                }
            }
            1 => {
                let channel = input.byte().unwrap_or(1) % 5;
                let f = flags(input.byte().unwrap_or(0));
                let len = usize::from(input.byte().unwrap_or(8));
                let body = input.bytes(len);
                if let Some(p) = links[k] {
                    let _ = nodes[k + 1].host.send(p, channel, Packet::new(body, f));
                }
            }
            2 => {
                if let Some(p) = links[k].take() {
                    nodes[k + 1].host.disconnect(p, 0);
                }
            }
            3 => {
                let target = Target::from_wire(input.u32().unwrap_or(0) as i32);
                let m = mode(input.byte().unwrap_or(0));
                let channel = match input.byte().unwrap_or(0) {
                    0 => None,
                    c => Some(c % 6),
                };
                let body = input.bytes(16);
                let _ = core.send(&mut nodes[0].host, target, m, channel, &body);
            }
            4 => {
                let ids: Vec<u32> = core.peer_ids().collect();
                if !ids.is_empty() {
                    let id = ids[usize::from(input.byte().unwrap_or(0)) % ids.len()];
                    let at_once = input.byte().unwrap_or(0) % 2 == 0;
                    let _ = core.disconnect_peer(&mut nodes[0].host, now, id, at_once);
                }
            }
            _ => {
                let refuse = input.byte().unwrap_or(0) % 2 == 0;
                core.set_refuse_new_connections(&mut nodes[0].host, refuse);
            }
        }
        pump(&mut nodes, &mut now);
        drain(&mut core, &mut nodes[0].host, peer_limit);
        for n in &mut nodes[1..] {
            while n.host.poll_event().is_some() {}
        }
    }
    core.close(&mut nodes[0].host, now);
    pump(&mut nodes, &mut now);
}

fn client_side(input: &mut Input<'_>) {
    let mut now = Instant::now();
    let Ok(mut core) = MultiplayerCore::client(FramingConfig::default(), 12345) else {
        return;
    };
    let mut nodes = vec![
        Node {
            addr: addr(9000),
            host: Host::new(
                HostConfig {
                    peer_limit: 1,
                    ..HostConfig::default()
                },
                now,
            )
            .expect("client host"),
        },
        Node {
            addr: addr(9001),
            host: Host::new(HostConfig::server(), now).expect("evil server"),
        },
    ];
    let server = nodes[1].addr;
    if core.connect(&mut nodes[0].host, now, server).is_err() {
        return;
    }
    let mut evil_peer = None;
    for _ in 0..8 {
        pump(&mut nodes, &mut now);
        drain(&mut core, &mut nodes[0].host, 0);
        while let Some(e) = nodes[1].host.poll_event() {
            if let Event::Connect { peer, .. } = e {
                evil_peer = Some(peer);
            }
        }
    }
    let Some(evil) = evil_peer else { return };
    for _ in 0..64 {
        let Some(op) = input.byte() else { break };
        match op % 4 {
            0 | 1 => {
                let channel = input.byte().unwrap_or(0) % 4;
                let f = flags(input.byte().unwrap_or(0));
                let len = usize::from(input.byte().unwrap_or(8));
                let body = input.bytes(len);
                let _ = nodes[1].host.send(evil, channel, Packet::new(body, f));
            }
            2 => {
                // A burst of ADD_PEER messages with consecutive ids.
                let first = input.u32().unwrap_or(2);
                for i in 0..64u32 {
                    let mut m = 0u32.to_le_bytes().to_vec();
                    m.extend_from_slice(&first.wrapping_add(i).to_le_bytes());
                    let _ = nodes[1].host.send(evil, 0, Packet::reliable(m));
                }
            }
            _ => {
                let target = Target::from_wire(input.u32().unwrap_or(1) as i32);
                let m = mode(input.byte().unwrap_or(0));
                let _ = core.send(&mut nodes[0].host, target, m, None, b"x");
            }
        }
        pump(&mut nodes, &mut now);
        drain(&mut core, &mut nodes[0].host, 0);
        while nodes[1].host.poll_event().is_some() {}
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input { data };
    match input.byte() {
        Some(b) if b % 2 == 0 => server_side(&mut input),
        Some(_) => client_side(&mut input),
        None => {}
    }
});
