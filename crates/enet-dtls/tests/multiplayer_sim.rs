//! The sans-IO framing core (`MultiplayerCore`) in the deterministic network simulator
//! (`enet-sim`, virtual time): a server and three clients over lossy, duplicating, reordering
//! links. Relayed reliable packets all arrive in order, sequenced ones never go backwards,
//! unsequenced ones never twice; a leaving client is announced; and the same seed gives the
//! same run.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use enet_dtls::enet_proto::{Host, HostConfig};
use enet_dtls::multiplayer::{
    FramingConfig, MultiplayerCore, MultiplayerEvent, ReceivedPacket, Target, TransferMode,
};
use enet_sim::{Endpoint, LinkConfig, Network, Sim};

struct Node {
    addr: SocketAddr,
    host: Host,
    core: MultiplayerCore,
    log: Vec<MultiplayerEvent>,
}

impl Node {
    fn process(&mut self) {
        while let Some(e) = self.host.poll_event() {
            self.core.handle_event(&mut self.host, e);
        }
        while self.core.poll_released().is_some() {}
        while let Some(e) = self.core.poll_event() {
            self.log.push(e);
        }
    }

    fn packets(&self) -> Vec<&ReceivedPacket> {
        self.log
            .iter()
            .filter_map(|e| match e {
                MultiplayerEvent::Packet(p) => Some(p),
                _ => None,
            })
            .collect()
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

const COUNT: u32 = 150;

/// Runs the scenario; returns every node's event log.
fn scenario(seed: u64) -> Vec<Vec<MultiplayerEvent>> {
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
        log: Vec::new(),
    }];
    for i in 0..3u32 {
        let mut host = Host::new(
            HostConfig {
                seed: seed + u64::from(i) + 1,
                ..HostConfig::default()
            },
            start,
        )
        .unwrap();
        let mut core = MultiplayerCore::client(FramingConfig::default(), 1000 + i).unwrap();
        core.connect(&mut host, start, server_addr).unwrap();
        nodes.push(Node {
            addr: format!("10.0.1.{}:5000", i + 1).parse().unwrap(),
            host,
            core,
            log: Vec::new(),
        });
    }
    let mut sim = Sim::with_nodes(net, nodes);
    let deadline = start + Duration::from_secs(600);
    // Everybody knows everybody.
    assert!(sim.run_until(deadline, |n| {
        (1..4).all(|i| n[i].core.peer_ids().count() == 3) && n[0].core.peer_ids().count() == 3
    }));
    // Client 1000 sends to 1001 (relayed) in every mode, and a broadcast.
    {
        let a = &mut sim.nodes[1];
        for k in 0..COUNT {
            for mode in TransferMode::ALL {
                let data = [&[mode as u8][..], &k.to_le_bytes()].concat();
                a.core
                    .send(&mut a.host, Target::Peer(1001), mode, None, &data)
                    .unwrap();
            }
        }
        a.core
            .send(
                &mut a.host,
                Target::AllExcept(1002),
                TransferMode::Reliable,
                None,
                b"not for 1002",
            )
            .unwrap();
    }
    assert!(sim.run_until(deadline, |n| {
        n[2].packets()
            .iter()
            .filter(|p| p.mode == TransferMode::Reliable)
            .count()
            == COUNT as usize + 1
    }));
    // Client 1002 leaves.
    {
        let now = sim.now();
        let c = &mut sim.nodes[3];
        c.core.close(&mut c.host, now);
    }
    assert!(sim.run_until(deadline, |n| {
        [0, 1, 2].iter().all(|i| {
            n[*i]
                .log
                .contains(&MultiplayerEvent::PeerDisconnected(1002))
        })
    }));
    sim.nodes.iter().map(|n| n.log.clone()).collect()
}

#[test]
fn relay_under_loss_duplication_and_reordering() {
    let logs = scenario(7);
    let received: Vec<&ReceivedPacket> = logs[2]
        .iter()
        .filter_map(|e| match e {
            MultiplayerEvent::Packet(p) => Some(p),
            _ => None,
        })
        .collect();
    assert!(received.iter().all(|p| p.from == 1000));
    let numbers = |mode: TransferMode| -> Vec<u32> {
        received
            .iter()
            .filter(|p| p.mode == mode && p.data.len() == 5 && p.data[0] == mode as u8)
            .map(|p| u32::from_le_bytes(p.data[1..5].try_into().unwrap()))
            .collect()
    };
    // Reliable: all of them, in order.
    assert_eq!(
        numbers(TransferMode::Reliable),
        (0..COUNT).collect::<Vec<_>>()
    );
    // Sequenced: never backwards, never twice.
    let ordered = numbers(TransferMode::UnreliableOrdered);
    assert!(ordered.windows(2).all(|w| w[0] < w[1]), "{ordered:?}");
    assert!(!ordered.is_empty());
    assert!(ordered.len() < COUNT as usize, "no loss happened");
    // Unsequenced: never twice (duplicated datagrams are filtered by ENet).
    let mut unseq = numbers(TransferMode::Unreliable);
    let n = unseq.len();
    unseq.sort_unstable();
    unseq.dedup();
    assert_eq!(unseq.len(), n, "a duplicate got through");
    assert!(n > 0);
    // All-but-1002 reached 1001 and the server, not 1002.
    assert!(received.iter().any(|p| p.data == b"not for 1002"));
    assert!(!logs[3]
        .iter()
        .any(|e| matches!(e, MultiplayerEvent::Packet(p) if p.data == b"not for 1002")));
    assert!(logs[0]
        .iter()
        .any(|e| matches!(e, MultiplayerEvent::Packet(p) if p.data == b"not for 1002")));
}

#[test]
fn the_same_seed_gives_the_same_run() {
    assert_eq!(scenario(11), scenario(11));
}
