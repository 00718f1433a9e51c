//! Drives the ENet-over-DTLS server path (`DtlsEnetSocket::server_over` with an ENet `Host` on
//! top, as the drivers run it) with arbitrary input, next to a genuine DTLS ENet client that the
//! input can let progress, delay or corrupt, and that can carry arbitrary ENet datagrams inside
//! its (genuine, encrypted) records. Any panic, hang, unbounded growth, a datagram above the DTLS
//! MTU or a session table above its cap is a bug.
//!
//! Input: a sequence of operations, each starting with one byte `op`; `op & 7` is the operation,
//! `op >> 3` its argument:
//! * 0: a raw datagram `[len: u16 big-endian][len bytes]` to the server from one of eight source
//!   addresses (`arg & 7`), plaintext ENet included.
//! * 1: deliver the client's next datagram to the server, corrupted by `[pos: u16][xor: u8]`
//!   (xor 0 keeps it intact).
//! * 2: advance the virtual clock by `arg * 40` ms and run every timer.
//! * 3: deliver the server's next datagram for the client to it, corrupted the same way.
//! * 4: an arbitrary ENet datagram `[len: u16][bytes]` sent by the client's DTLS socket as one
//!   record (reaches the server's ENet host decrypted once the session is up).
//! * 5: the server's driver reports the client's ENet peer gone (`peer_gone`).
//! * 6: the client's ENet host sends a reliable packet of `[len: u16][bytes]` (fragmented when
//!   large), or connects again when it has no peer.
//! * 7: drop the client's next datagram.

#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dtls_proto::EndpointConfig;
use enet_dtls::enet::testing::WireSocket;
use enet_dtls::enet::{DtlsEnetSocket, EnetSocket};
use enet_proto::{Event, Host, HostConfig, Packet, PeerId, PeerState, Transmit};
use libfuzzer_sys::fuzz_target;

#[path = "common/dtls.rs"]
mod common;
use common::{addr, client_config, corrupt, server_config, Input};

const MAX_SESSIONS: usize = 4;
const DTLS_MTU: usize = 1440;

/// An ENet host on a DTLS socket, driven like `driver::Core` does (minus the clock).
struct Node {
    host: Host,
    socket: DtlsEnetSocket<WireSocket>,
    peer: Option<PeerId>,
}

impl Node {
    fn new(socket: DtlsEnetSocket<WireSocket>, now: Instant, seed: u64) -> Node {
        let config = HostConfig {
            mtu: socket.max_datagram_size() as u32,
            peer_limit: 8,
            seed,
            ..HostConfig::default()
        };
        Node {
            host: Host::new(config, now).expect("host"),
            socket,
            peer: None,
        }
    }

    fn deliver(&mut self, now: Instant, from: SocketAddr, data: Vec<u8>) {
        self.socket.transport_mut().inbox.push_back((from, data));
        let host = &mut self.host;
        for _ in 0..8 {
            let n = self
                .socket
                .recv_batch(now, &mut |from, data| host.handle_datagram(now, from, data))
                .expect("recv");
            if n == 0 || self.socket.recv_drained() {
                break;
            }
        }
        self.pump(now);
    }

    fn timers(&mut self, now: Instant) {
        if self.socket.poll_timeout().is_some_and(|t| t <= now) {
            self.socket.handle_timeout(now).expect("timeout");
        }
        if self.host.poll_timeout().is_some_and(|t| t <= now) {
            self.host.handle_timeout(now);
        }
        self.pump(now);
    }

    fn pump(&mut self, now: Instant) {
        for _ in 0..64 {
            let batch: Vec<Transmit> = std::iter::from_fn(|| self.host.poll_transmit(now))
                .take(256)
                .collect();
            if !batch.is_empty() {
                self.socket.send_batch(now, &batch).expect("send");
            }
            // The drivers' failure handling: reset the ENet peers of a failed address.
            while let Some(failure) = self.socket.poll_failure() {
                let peers: Vec<PeerId> = self
                    .host
                    .peers()
                    .filter(|p| {
                        p.address() == failure.address
                            && !matches!(p.state(), PeerState::Disconnected | PeerState::Zombie)
                    })
                    .map(|p| p.id())
                    .collect();
                for p in peers {
                    self.host.reset_peer(p);
                }
            }
            let mut events = 0;
            while let Some(event) = self.host.poll_event() {
                events += 1;
                match event {
                    Event::Connect { peer, .. } => self.peer = Some(peer),
                    Event::Receive {
                        peer,
                        channel,
                        packet,
                    } => {
                        let _ = self.host.send(peer, channel, packet);
                    }
                    Event::Disconnect { address, .. } => {
                        self.peer = None;
                        self.socket.peer_gone(now, address);
                    }
                }
            }
            if batch.is_empty() && events == 0 {
                break;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut now = start;
    let s_addr = addr("10.0.0.1:7777");
    let c_addr = addr("10.0.0.2:5000");
    let sources = [
        c_addr,
        addr("10.0.0.2:5001"),
        addr("10.0.0.3:5000"),
        addr("10.0.0.3:5001"),
        addr("10.0.0.4:1"),
        addr("[::ffff:10.0.0.2]:5000"),
        addr("[2001:db8::1]:5000"),
        addr("[2001:db8::2]:5000"),
    ];
    let limits = EndpointConfig::default()
        .max_sessions(MAX_SESSIONS)
        .max_sessions_per_address(2);
    let server_socket =
        DtlsEnetSocket::server_over(WireSocket::new(s_addr), server_config(), limits)
            .expect("server");
    let client_socket =
        DtlsEnetSocket::client_over(WireSocket::new(c_addr), client_config()).expect("client");
    let mut server = Node::new(server_socket, now, 1);
    let mut client = Node::new(client_socket, now, 2);
    let _ = client.host.connect(now, s_addr, 2, 0);
    client.pump(now);

    let mut input = Input(data);
    let mut ops = 0;
    while let Some(op) = input.byte() {
        ops += 1;
        if ops > 2000 {
            break;
        }
        let arg = usize::from(op >> 3);
        match op & 7 {
            0 => {
                let len = input.u16();
                let datagram = input.bytes(len).to_vec();
                server.deliver(now, sources[arg & 7], datagram);
            }
            1 => {
                if let Some((_, d)) = client.socket.transport_mut().outbox.pop_front() {
                    let d = corrupt(&mut input, d);
                    server.deliver(now, c_addr, d);
                }
            }
            2 => {
                now += Duration::from_millis(arg as u64 * 40);
                server.timers(now);
                client.timers(now);
            }
            3 => {
                let next = server
                    .socket
                    .transport_mut()
                    .outbox
                    .iter()
                    .position(|(to, _)| *to == c_addr);
                if let Some(i) = next {
                    if let Some((_, d)) = server.socket.transport_mut().outbox.remove(i) {
                        let d = corrupt(&mut input, d);
                        client.deliver(now, s_addr, d);
                    }
                }
            }
            4 => {
                let len = input.u16();
                let datagram = input.bytes(len).to_vec();
                if !datagram.is_empty() {
                    let t = Transmit {
                        destination: s_addr,
                        data: datagram,
                    };
                    client.socket.send_batch(now, &[t]).expect("send");
                }
            }
            5 => {
                server.socket.peer_gone(now, c_addr);
                server.pump(now);
            }
            6 => {
                let len = input.u16();
                let bytes = input.bytes(len).to_vec();
                match client.peer {
                    Some(peer) => {
                        let _ = client
                            .host
                            .send(peer, (arg & 1) as u8, Packet::reliable(bytes));
                    }
                    None => {
                        let _ = client.host.connect(now, s_addr, 2, 0);
                    }
                }
                client.pump(now);
            }
            _ => {
                client.socket.transport_mut().outbox.pop_front();
            }
        }
        assert!(server.socket.session_count() <= MAX_SESSIONS);
        for node in [&server, &client] {
            let largest = node.socket.transport().largest_sent();
            assert!(largest <= DTLS_MTU, "datagram of {largest} bytes");
        }
        // Datagrams for other addresses than the genuine client go nowhere.
        server
            .socket
            .transport_mut()
            .outbox
            .retain(|(to, _)| *to == c_addr);
    }
});
