//! The steady-state echo path of the host allocates nothing, per datagram or per message.
//! The payload handed to the application in `Event::Receive` is a buffer the `Packet` owns;
//! echoing that packet moves the buffer into the outgoing command (no copy, no allocation),
//! and once the echo is acknowledged the host keeps the buffer for the copy of the next
//! received payload. Datagram buffers come back through `Host::recycle`, and the queues,
//! timers and scratch buffers are reused.
//!
//! A counting global allocator counts the allocations made on this thread while the
//! server host runs; the client host's work is not counted.

use alloc_count::{counted, CountingAlloc};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use enet_proto::{Event, Host, HostConfig, Packet, PeerId};

/// Capacity of the outbox the test keeps the server's datagrams in.
const OUTBOX: usize = 4096;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// One client and one server host in memory with a virtual clock; the client keeps
/// `window` reliable messages of `size` bytes (64 to start with) in flight, the server
/// echoes each one back.
struct Echo {
    server: Host,
    client: Host,
    peer: PeerId,
    server_addr: SocketAddr,
    client_addr: SocketAddr,
    now: Instant,
    sent: u64,
    echoed: u64,
    window: u64,
    size: usize,
    /// Largest capacity of a payload buffer the server handed to the application.
    largest_received_capacity: usize,
    /// Allocations made by the server host (counted calls only).
    server_allocs: u64,
    /// Messages the server echoed.
    server_echoes: u64,
    /// Datagrams the server sent.
    server_datagrams: u64,
}

impl Echo {
    fn new(capacity: usize, window: u64) -> Echo {
        let now = Instant::now();
        let server_addr: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let client_addr: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        let server = Host::new(
            HostConfig {
                peer_limit: capacity,
                seed: 1,
                ..HostConfig::default()
            },
            now,
        )
        .unwrap();
        let mut client = Host::new(
            HostConfig {
                peer_limit: 1,
                seed: 2,
                ..HostConfig::default()
            },
            now,
        )
        .unwrap();
        let peer = client.connect(now, server_addr, 1, 0).unwrap();
        let mut echo = Echo {
            server,
            client,
            peer,
            server_addr,
            client_addr,
            now,
            sent: 0,
            echoed: 0,
            window,
            size: 64,
            largest_received_capacity: 0,
            server_allocs: 0,
            server_echoes: 0,
            server_datagrams: 0,
        };
        for _ in 0..100 {
            echo.step();
            if echo.client.peer(peer).map(|p| p.state()) == Some(enet_proto::PeerState::Connected) {
                return echo;
            }
        }
        panic!("the client did not connect");
    }

    /// One round: the client sends what its window allows, the server takes every
    /// datagram, echoes every message and sends; the client takes the answers.
    fn step(&mut self) {
        let now = self.now;
        let connected = self.client.peer(self.peer).map(|p| p.state())
            == Some(enet_proto::PeerState::Connected);
        while connected && self.sent - self.echoed < self.window {
            self.client
                .send(self.peer, 0, Packet::reliable(vec![0x5a; self.size]))
                .unwrap();
            self.sent += 1;
        }
        self.client.handle_timeout(now);
        let mut to_server = Vec::new();
        while let Some(t) = self.client.poll_transmit(now) {
            to_server.push(t.data);
        }

        // The server's work, counted: what a driver does with it, recycling included. The
        // outbox is allocated before (a driver keeps one of fixed capacity).
        let server = &mut self.server;
        let client_addr = self.client_addr;
        let mut out: Vec<Vec<u8>> = Vec::with_capacity(OUTBOX);
        let mut largest = self.largest_received_capacity;
        let (echoes, allocs) = counted(|| {
            let mut echoes = 0u64;
            for d in &to_server {
                server.handle_datagram(now, client_addr, d);
            }
            while let Some(e) = server.poll_event() {
                if let Event::Receive {
                    peer,
                    channel,
                    packet,
                } = e
                {
                    largest = largest.max(packet.data.capacity());
                    server.send(peer, channel, packet).unwrap();
                    echoes += 1;
                }
            }
            server.handle_timeout(now);
            while let Some(t) = server.poll_transmit(now) {
                out.push(t.data);
            }
            echoes
        });
        assert!(out.len() < OUTBOX, "the outbox never grows");
        self.largest_received_capacity = largest;
        self.server_allocs += allocs;
        self.server_echoes += echoes;
        self.server_datagrams += out.len() as u64;

        for d in out {
            self.client.handle_datagram(now, self.server_addr, &d);
            let server = &mut self.server;
            let ((), allocs) = counted(|| server.recycle(d));
            self.server_allocs += allocs;
        }
        while let Some(e) = self.client.poll_event() {
            if let Event::Receive { .. } = e {
                self.echoed += 1;
            }
        }
        self.now += Duration::from_millis(1);
    }

    fn run(&mut self, messages: u64) {
        let target = self.echoed + messages;
        for _ in 0..10 * messages {
            if self.echoed >= target {
                return;
            }
            self.step();
        }
        panic!("only {} of {messages} messages echoed", self.echoed);
    }
}

/// After a warm-up (queues and buffers at their working size), 20,000 echoed messages
/// with 64 in flight cost the server no allocation: not per datagram, and not per message
/// either, since each acknowledged echo gives its payload buffer back for the next one.
#[test]
fn steady_state_echo_allocates_nothing() {
    let mut echo = Echo::new(64, 64);
    echo.run(5_000);
    echo.server_allocs = 0;
    echo.server_echoes = 0;
    echo.server_datagrams = 0;
    echo.run(20_000);
    let (allocs, echoes, datagrams) = (
        echo.server_allocs,
        echo.server_echoes,
        echo.server_datagrams,
    );
    assert!(echoes >= 20_000, "{echoes} messages echoed");
    assert!(datagrams > 100, "{datagrams} datagrams sent");
    // At most a small constant: a queue that meets a new high-water mark.
    assert!(
        allocs <= 16,
        "{allocs} server allocations for {echoes} echoed messages in {datagrams} datagrams"
    );
}

/// Reused payload buffers fit what they hold: after 2,000 echoes of 1,000-byte messages
/// (whose buffers the host keeps), 16-byte messages arrive in buffers of at most 96 bytes
/// (2 x 16 + 64), so an application that keeps many small packets never holds large buffers
/// for them; and the host allocates for them until small buffers circulate.
#[test]
fn reused_payload_buffers_fit_the_payload() {
    let mut echo = Echo::new(64, 16);
    echo.size = 1000;
    echo.run(2_000);
    assert!(echo.largest_received_capacity >= 1000);
    echo.size = 16;
    echo.run(64);
    echo.largest_received_capacity = 0;
    echo.server_allocs = 0;
    echo.server_echoes = 0;
    echo.run(2_000);
    assert!(echo.server_echoes >= 2_000);
    assert!(
        echo.largest_received_capacity <= 2 * 16 + 64,
        "a 16-byte payload in a buffer of {} bytes",
        echo.largest_received_capacity
    );
    assert!(
        echo.server_allocs <= 16,
        "{} server allocations for {} echoes of 16 bytes",
        echo.server_allocs,
        echo.server_echoes
    );
}

/// The same with a server sized for 4,095 peers: capacity changes nothing per message.
#[test]
fn steady_state_allocations_do_not_depend_on_capacity() {
    let mut echo = Echo::new(4095, 16);
    echo.run(2_000);
    echo.server_allocs = 0;
    echo.server_echoes = 0;
    echo.run(10_000);
    assert!(
        echo.server_allocs <= 16,
        "{} server allocations for {} echoed messages (4,095 slots)",
        echo.server_allocs,
        echo.server_echoes
    );
}
