//! Codec and host throughput benches.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use enet_proto::wire::{Command, CommandHeader, Datagram, Header, WireCommand};
use enet_proto::{Event, Host, HostConfig, Packet, PeerId};

/// Godot's "SIMPLIFY_PATH + RPC" datagram from the captured session.
const RPC: &[u8] = &[
    0x80, 0x00, 0x56, 0x8a, 0x01, 0xff, 0x00, 0x01, 0x00, 0x01, 0x56, 0x84, 0x86, 0x01, 0x00, 0x01,
    0x00, 0x12, 0x8f, 0x55, 0xc3, 0x36, 0x01, 0x00, 0x00, 0x00, 0x02, 0x01, 0x00, 0x00, 0x00, 0x47,
    0x61, 0x6d, 0x65, 0x00,
];

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Bytes(RPC.len() as u64));
    g.bench_function("decode_datagram", |b| {
        b.iter(|| Datagram::parse(std::hint::black_box(RPC), false).unwrap())
    });
    let payload = vec![7u8; 64];
    let datagram = Datagram {
        header: Header {
            peer_id: 3,
            session_id: 1,
            compressed: false,
            sent_time: Some(1234),
        },
        checksum: None,
        commands: (0..16)
            .map(|i| WireCommand {
                header: CommandHeader::new(Command::SEND_RELIABLE | 0x80, 1, i),
                command: Command::SendReliable { data: &payload },
            })
            .collect(),
    };
    let mut out = Vec::with_capacity(2048);
    datagram.emit(&mut out);
    g.throughput(Throughput::Bytes(out.len() as u64));
    g.bench_function("encode_16_commands", |b| {
        b.iter(|| {
            out.clear();
            datagram.emit(&mut out);
            out.len()
        })
    });
    g.finish();
}

struct Pair {
    server: Host,
    client: Host,
    peer: PeerId,
    now: Instant,
}

const S: &str = "127.0.0.1:7777";
const C: &str = "127.0.0.1:40000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Moves datagrams both ways until quiet; returns Receive events at the server.
fn pump(p: &mut Pair) -> usize {
    let mut received = 0;
    loop {
        let mut moved = false;
        while let Some(t) = p.client.poll_transmit(p.now) {
            p.server.handle_datagram(p.now, addr(C), &t.data);
            moved = true;
        }
        while let Some(t) = p.server.poll_transmit(p.now) {
            p.client.handle_datagram(p.now, addr(S), &t.data);
            moved = true;
        }
        while let Some(e) = p.server.poll_event() {
            if matches!(e, Event::Receive { .. }) {
                received += 1;
            }
        }
        while p.client.poll_event().is_some() {}
        if !moved {
            return received;
        }
    }
}

fn connected_pair() -> Pair {
    let now = Instant::now();
    let mut p = Pair {
        server: Host::new(HostConfig::default(), now).unwrap(),
        client: Host::new(HostConfig::default(), now).unwrap(),
        peer: PeerId::new(0, 0),
        now,
    };
    p.peer = p.client.connect(now, addr(S), 2, 0).unwrap();
    pump(&mut p);
    p
}

fn hosts(c: &mut Criterion) {
    let mut g = c.benchmark_group("hosts");
    const N: u64 = 1000;
    g.throughput(Throughput::Elements(N));
    g.bench_function("small_reliable_messages_1000", |b| {
        b.iter_batched(
            connected_pair,
            |mut p| {
                let mut got = 0;
                for i in 0..N {
                    p.client
                        .send(p.peer, 0, Packet::reliable(i.to_be_bytes().to_vec()))
                        .unwrap();
                    if i % 32 == 31 {
                        got += pump(&mut p);
                        p.now += Duration::from_millis(1);
                    }
                }
                got += pump(&mut p);
                assert_eq!(got as u64, N);
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("small_unreliable_messages_1000", |b| {
        b.iter_batched(
            connected_pair,
            |mut p| {
                for i in 0..N {
                    p.client
                        .send(p.peer, 1, Packet::unreliable(i.to_be_bytes().to_vec()))
                        .unwrap();
                    if i % 32 == 31 {
                        pump(&mut p);
                    }
                }
                pump(&mut p)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, codec, hosts);
criterion_main!(benches);
