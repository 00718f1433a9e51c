//! The whole sans-IO stack, `MultiplayerApi` over `MultiplayerCore` over the ENet `Host`, in
//! the deterministic network simulator (virtual time) with loss, duplication and reordering:
//! a server and three clients in a chat room. Every reliable call runs exactly once and in
//! order per sender, relayed calls keep their original sender id, unreliable calls never run
//! twice, every path cache entry ends confirmed, and the same seed gives the same run.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use enet_dtls::enet_proto::{Host, HostConfig};
use enet_dtls::godot_proto::{self, ApiEvent, MultiplayerApi, RpcMode};
use enet_dtls::multiplayer::{
    FramingConfig, MultiplayerCore, MultiplayerEvent, Target, TransferMode,
};
use enet_sim::{Endpoint, LinkConfig, Network, Sim};

/// What a node's handlers saw, in order.
#[derive(Debug, Default, Clone, PartialEq)]
struct Seen {
    /// (sender of the `show`, original speaker, k)
    shows: Vec<(i32, i64, i64)>,
    /// (sender, k) of unreliable ticks
    ticks: Vec<(i32, i64)>,
    /// (sender, k) of whispers from another client
    whispers: Vec<(i32, i64)>,
}

struct Node {
    addr: SocketAddr,
    host: Host,
    core: MultiplayerCore,
    api: MultiplayerApi<Seen>,
    events: Vec<ApiEvent>,
}

fn api_id(id: u32) -> i32 {
    i32::try_from(id).unwrap()
}

fn mode(m: godot_proto::TransferMode) -> TransferMode {
    match m {
        godot_proto::TransferMode::Unreliable => TransferMode::Unreliable,
        godot_proto::TransferMode::UnreliableOrdered => TransferMode::UnreliableOrdered,
        godot_proto::TransferMode::Reliable => TransferMode::Reliable,
    }
}

impl Node {
    /// Moves everything between the layers until nothing is left (what `RpcPeer::poll` does).
    fn process(&mut self) {
        loop {
            while let Some(o) = self.api.poll_outgoing() {
                // A packet to a peer that left meanwhile is dropped, as the driver does.
                let _ = self.core.send(
                    &mut self.host,
                    Target::from_wire(o.target),
                    mode(o.mode),
                    None,
                    &o.data,
                );
            }
            let mut progressed = false;
            while let Some(e) = self.host.poll_event() {
                self.core.handle_event(&mut self.host, e);
                progressed = true;
            }
            while self.core.poll_released().is_some() {}
            while let Some(e) = self.core.poll_event() {
                progressed = true;
                match e {
                    MultiplayerEvent::PeerConnected(id) => self.api.on_peer_connected(api_id(id)),
                    MultiplayerEvent::PeerDisconnected(id) => {
                        self.api.on_peer_disconnected(api_id(id))
                    }
                    MultiplayerEvent::ConnectionSucceeded => self.api.on_connected_to_server(),
                    MultiplayerEvent::ConnectionFailed(_) => self.api.on_connection_failed(),
                    MultiplayerEvent::ServerDisconnected => self.api.on_server_disconnected(),
                    MultiplayerEvent::Packet(p) => self.api.handle_packet(api_id(p.from), &p.data),
                    _ => {}
                }
            }
            while let Some(e) = self.api.poll_event() {
                self.events.push(e);
            }
            if !progressed && !self.api.has_outgoing() {
                break;
            }
        }
    }
}

impl Endpoint for Node {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.host.handle_datagram(now, from, data);
        self.process();
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.host.handle_timeout(now);
        self.process();
    }
    fn poll_transmit(&mut self, now: Instant) -> Option<(SocketAddr, Vec<u8>)> {
        self.host
            .poll_transmit(now)
            .map(|t| (t.destination, t.data))
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.host.poll_timeout()
    }
}

/// An API that records the `Chat.show` calls it gets (puppetsync: the server's run locally).
fn showing_api() -> MultiplayerApi<Seen> {
    let mut api = MultiplayerApi::with_state(Seen::default());
    api.register(
        "Chat",
        "show",
        RpcMode::PuppetSync,
        |ctx, (who, k): (i64, i64)| {
            let s = ctx.sender();
            ctx.state_mut().shows.push((s, who, k));
        },
    );
    api
}

fn server_api() -> MultiplayerApi<Seen> {
    let mut api = showing_api();
    api.register("Chat", "say", RpcMode::Remote, |ctx, (k,): (i64,)| {
        let speaker = i64::from(ctx.sender());
        ctx.rpc("Chat", "show", (speaker, k)).unwrap();
    });
    api.register("Chat", "tick", RpcMode::Remote, |ctx, (k,): (i64,)| {
        let s = ctx.sender();
        ctx.state_mut().ticks.push((s, k));
    });
    api
}

fn client_api() -> MultiplayerApi<Seen> {
    let mut api = showing_api();
    api.register("Chat", "whisper", RpcMode::Remote, |ctx, (k,): (i64,)| {
        let s = ctx.sender();
        ctx.state_mut().whispers.push((s, k));
    });
    api
}

const COUNT: i64 = 60;
const CLIENTS: [u32; 3] = [1000, 1001, 1002];

/// Runs the room; returns what every node saw (server first).
fn scenario(seed: u64) -> Vec<Seen> {
    let start = Instant::now();
    let mut net = Network::new(seed, start);
    net.set_default_link(LinkConfig {
        latency: Duration::from_millis(30),
        jitter: Duration::from_millis(10),
        loss: 0.1,
        duplicate: 0.05,
        reorder: 0.05,
        reorder_delay: Duration::from_millis(40),
        ..LinkConfig::default()
    });
    let server_addr: SocketAddr = "10.0.0.1:7777".parse().unwrap();
    let mut api = server_api();
    api.start_server();
    let mut nodes = vec![Node {
        addr: server_addr,
        host: Host::new(
            HostConfig {
                seed,
                ..HostConfig::server()
            },
            start,
        )
        .unwrap(),
        core: MultiplayerCore::server(FramingConfig::default()).unwrap(),
        api,
        events: Vec::new(),
    }];
    for (i, id) in CLIENTS.into_iter().enumerate() {
        let mut host = Host::new(
            HostConfig {
                seed: seed + i as u64 + 1,
                ..HostConfig::default()
            },
            start,
        )
        .unwrap();
        let mut core = MultiplayerCore::client(FramingConfig::default(), id).unwrap();
        core.connect(&mut host, start, server_addr).unwrap();
        let mut api = client_api();
        api.start_client(api_id(id));
        nodes.push(Node {
            addr: format!("10.0.1.{}:5000", i + 1).parse().unwrap(),
            host,
            core,
            api,
            events: Vec::new(),
        });
    }
    let mut sim = Sim::with_nodes(net, nodes);
    let deadline = start + Duration::from_secs(900);
    assert!(sim.run_until(deadline, |n| {
        n[1..]
            .iter()
            .all(|c| c.api.is_connected() && c.api.peers().count() == 3)
    }));
    // Every client: COUNT reliable says, COUNT unreliable ticks, COUNT whispers to the next
    // client (relayed), one of each every 20 ms: the first ones carry the path inline, later
    // ones the cached id once confirmations are back.
    for k in 0..COUNT {
        for (i, node) in sim.nodes[1..].iter_mut().enumerate() {
            let next = api_id(CLIENTS[(i + 1) % CLIENTS.len()]);
            node.api.rpc_id(1, "Chat", "say", (k,)).unwrap();
            node.api.rpc_unreliable_id(1, "Chat", "tick", (k,)).unwrap();
            node.api.rpc_id(next, "Chat", "whisper", (k,)).unwrap();
            node.process();
        }
        sim.run_for(Duration::from_millis(20));
    }
    let total = COUNT as usize * CLIENTS.len();
    let done = sim.run_until(deadline, |n| {
        n.iter().all(|node| node.api.state().shows.len() == total)
            && n[1..]
                .iter()
                .all(|c| c.api.state().whispers.len() == COUNT as usize)
    });
    assert!(done, "not everything arrived");
    // Let the last acknowledgements and confirmations settle.
    sim.run_for(Duration::from_secs(5));
    for node in &sim.nodes {
        let refused: Vec<&ApiEvent> = node
            .events
            .iter()
            .filter(|e| matches!(e, ApiEvent::Refused { .. }))
            .collect();
        assert!(refused.is_empty(), "{refused:?}");
    }
    // Every path each client announced was confirmed by its receivers.
    for (i, node) in sim.nodes[1..].iter().enumerate() {
        let next = api_id(CLIENTS[(i + 1) % CLIENTS.len()]);
        assert!(node.api.path_confirmed_by("Chat", 1));
        assert!(node.api.path_confirmed_by("Chat", next));
    }
    // The server announced Chat to every client when it first showed a line.
    for id in CLIENTS {
        assert!(sim.nodes[0].api.path_confirmed_by("Chat", api_id(id)));
    }
    sim.nodes.iter().map(|n| n.api.state().clone()).collect()
}

#[test]
fn chat_room_over_a_lossy_network() {
    let seen = scenario(7);
    for (n, s) in seen.iter().enumerate() {
        // Every show came from the server (puppetsync: the server runs it too, as itself).
        assert!(
            s.shows.iter().all(|(sender, _, _)| *sender == 1),
            "node {n}"
        );
        // Per speaker, the lines arrive once each, in order.
        for id in CLIENTS {
            let ks: Vec<i64> = s
                .shows
                .iter()
                .filter(|(_, who, _)| *who == i64::from(id))
                .map(|(_, _, k)| *k)
                .collect();
            assert_eq!(ks, (0..COUNT).collect::<Vec<_>>(), "node {n}, speaker {id}");
        }
    }
    // Whispers: from the previous client, relayed with its id, once each, in order.
    for (i, s) in seen[1..].iter().enumerate() {
        let prev = api_id(CLIENTS[(i + CLIENTS.len() - 1) % CLIENTS.len()]);
        let expected: Vec<(i32, i64)> = (0..COUNT).map(|k| (prev, k)).collect();
        assert_eq!(s.whispers, expected, "client {}", CLIENTS[i]);
    }
    // Unreliable ticks: some may be lost, none runs twice, each with its sender.
    let ticks = &seen[0].ticks;
    for id in CLIENTS {
        let mut ks: Vec<i64> = ticks
            .iter()
            .filter(|(s, _)| *s == api_id(id))
            .map(|(_, k)| *k)
            .collect();
        let n = ks.len();
        ks.sort_unstable();
        ks.dedup();
        assert_eq!(ks.len(), n, "a tick from {id} ran twice");
        assert!(ks.iter().all(|k| (0..COUNT).contains(k)));
        // With 10 % loss most arrive (the run is deterministic for the seed).
        assert!(n > COUNT as usize / 2, "only {n} ticks from {id}");
        eprintln!("ticks from {id}: {n} of {COUNT}");
    }
}

#[test]
fn the_same_seed_gives_the_same_run() {
    assert_eq!(scenario(11), scenario(11));
}
