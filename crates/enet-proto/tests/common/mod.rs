//! Shared helpers: an `enet_sim::Endpoint` wrapper around `Host`.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use enet_proto::{Event, Host, HostConfig, PeerId};
use enet_sim::{Endpoint, LinkConfig, Network, Sim};

/// A host plus the events it produced.
pub struct Node {
    pub addr: SocketAddr,
    pub host: Host,
    pub events: Vec<Event>,
    /// Largest datagram this node sent.
    pub max_datagram: usize,
    /// Peer MTU check: every datagram must fit the destination peer's MTU.
    pub oversize: usize,
    /// Number of Receive events so far.
    pub receives: usize,
    /// Echo every received packet back to its sender, taking events the way the drivers do
    /// (only once `poll_transmit` has nothing more to send), so that
    /// `HostConfig::acks_with_replies` can hold acknowledgements for the echoes.
    pub echo: bool,
}

impl Node {
    pub fn new(addr: SocketAddr, config: HostConfig, now: Instant) -> Node {
        Node {
            addr,
            host: Host::new(config, now).expect("host"),
            events: Vec::new(),
            max_datagram: 0,
            oversize: 0,
            receives: 0,
            echo: false,
        }
    }

    fn drain(&mut self) {
        while let Some(e) = self.host.poll_event() {
            if matches!(e, Event::Receive { .. }) {
                self.receives += 1;
            }
            self.events.push(e);
        }
    }

    pub fn connected(&self) -> Vec<PeerId> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Connect { peer, .. } => Some(*peer),
                _ => None,
            })
            .collect()
    }

    pub fn received(&self) -> Vec<(u8, Vec<u8>)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Receive {
                    channel, packet, ..
                } => Some((*channel, packet.data.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn disconnects(&self) -> Vec<&Event> {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::Disconnect { .. }))
            .collect()
    }
}

impl Endpoint for Node {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.host.handle_datagram(now, from, data);
        if !self.echo {
            self.drain();
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.host.handle_timeout(now);
        if !self.echo {
            self.drain();
        }
    }
    fn poll_transmit(&mut self, now: Instant) -> Option<(SocketAddr, Vec<u8>)> {
        let mut t = self.host.poll_transmit(now);
        if self.echo {
            if t.is_none() {
                // Take the events and queue the echoes, then send (acknowledgements held
                // for them included).
                let start = self.events.len();
                self.drain();
                for e in &self.events[start..] {
                    if let Event::Receive {
                        peer,
                        channel,
                        packet,
                    } = e
                    {
                        let _ = self.host.send(*peer, *channel, packet.clone());
                    }
                }
                t = self.host.poll_transmit(now);
            }
        } else {
            self.drain();
        }
        let t = t?;
        self.max_datagram = self.max_datagram.max(t.data.len());
        let mtu = self
            .host
            .peers()
            .find(|p| p.address() == t.destination)
            .map(|p| p.mtu() as usize)
            .unwrap_or(4096);
        if t.data.len() > mtu {
            self.oversize += 1;
        }
        Some((t.destination, t.data))
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.host.poll_timeout()
    }
}

/// `Host::new` with `config` but `seed` (each test host its own, for reproducible runs).
pub fn host(now: Instant, seed: u64, config: HostConfig) -> Host {
    Host::new(HostConfig { seed, ..config }, now).expect("host")
}

/// A server host (seed 1, `server`) and a client host (seed 2, defaults) that has started
/// connecting to `server_addr` with one channel: (server, client, the client's peer id).
pub fn connecting(now: Instant, server_addr: &str, server: HostConfig) -> (Host, Host, PeerId) {
    let server = host(now, 1, server);
    let mut client = host(now, 2, HostConfig::default());
    let to_server = client
        .connect(now, addr(server_addr), 1, 0)
        .expect("connect");
    (server, client, to_server)
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub const SERVER: &str = "127.0.0.1:7777";
pub const CLIENT: &str = "127.0.0.1:40000";

/// A server (node 0) and a client (node 1) over `link`.
pub fn pair(seed: u64, link: LinkConfig, server: HostConfig, client: HostConfig) -> Sim<Node> {
    let start = Instant::now();
    let mut net = Network::new(seed, start);
    net.set_default_link(link);
    let mut sim = Sim::new(net);
    sim.nodes.push(Node::new(addr(SERVER), server, start));
    sim.nodes.push(Node::new(addr(CLIENT), client, start));
    sim
}

/// Connects node 1 to node 0; returns (server-side peer, client-side peer).
pub fn connect(sim: &mut Sim<Node>, channels: usize, data: u32) -> (PeerId, PeerId) {
    let now = sim.now();
    let cp = sim.nodes[1]
        .host
        .connect(now, addr(SERVER), channels, data)
        .expect("connect");
    let deadline = now + Duration::from_secs(30);
    let ok = sim.run_until(deadline, |n| {
        !n[0].connected().is_empty() && !n[1].connected().is_empty()
    });
    assert!(ok, "connection not established");
    (sim.nodes[0].connected()[0], cp)
}
