//! Costs of the Godot-shaped UDP layer over real loopback sockets:
//! * `udp/pingpong`: one datagram from a connected client to its `UdpServer` peer and back;
//! * `udp/server_routing`: 8 clients send 32 datagrams of 1200 bytes each (the server polls after
//!   each burst), the server routes them by source and every taken peer drains its queue.
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use enet_dtls::udp::{PacketPeerUdp, UdpServer};

const WAIT: Option<Duration> = Some(Duration::from_secs(5));

fn recv(peer: &mut PacketPeerUdp) -> Vec<u8> {
    loop {
        if let Some(d) = peer.get_packet().expect("get_packet") {
            return d;
        }
        assert!(peer.wait(WAIT).expect("wait"), "datagram lost on loopback");
    }
}

/// A server with `n` connected clients and the peer it handed out for each.
fn setup(n: usize) -> (UdpServer, Vec<PacketPeerUdp>, Vec<PacketPeerUdp>) {
    let mut server = UdpServer::listen("127.0.0.1:0").expect("listen");
    server.set_max_pending_connections(n);
    let addr = server.local_addr().expect("local_addr");
    let mut clients = Vec::new();
    let mut peers = Vec::new();
    for _ in 0..n {
        let mut c = PacketPeerUdp::connect(addr).expect("connect");
        c.put_packet(b"hello").expect("put_packet");
        loop {
            server.poll().expect("poll");
            if let Some(mut p) = server.take_connection() {
                recv(&mut p);
                peers.push(p);
                break;
            }
            server.wait(WAIT).expect("wait");
        }
        clients.push(c);
    }
    (server, clients, peers)
}

fn pingpong(c: &mut Criterion) {
    let (_server, mut clients, mut peers) = setup(1);
    let payload = [0x5au8; 64];
    c.bench_function("udp/pingpong", |b| {
        b.iter(|| {
            clients[0].put_packet(&payload).unwrap();
            let got = recv(&mut peers[0]);
            peers[0].put_packet(&got).unwrap();
            black_box(recv(&mut clients[0]));
        })
    });
}

fn server_routing(c: &mut Criterion) {
    const CLIENTS: usize = 8;
    const PER_CLIENT: usize = 32;
    let (mut server, mut clients, mut peers) = setup(CLIENTS);
    let payload = [0xa5u8; 1200];
    let mut group = c.benchmark_group("udp");
    group.throughput(Throughput::Bytes(
        (CLIENTS * PER_CLIENT * payload.len()) as u64,
    ));
    group.bench_function("server_routing", |b| {
        b.iter(|| {
            // Poll after each client's burst so the kernel's receive buffer never overflows.
            for client in clients.iter_mut() {
                for _ in 0..PER_CLIENT {
                    client.put_packet(&payload).unwrap();
                }
                server.poll().unwrap();
            }
            for peer in peers.iter_mut() {
                for _ in 0..PER_CLIENT {
                    black_box(recv(peer));
                }
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).sample_size(30);
    targets = pingpong, server_routing
}
criterion_main!(benches);
