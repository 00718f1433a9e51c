//! Criterion benches: Variant encode/decode and MultiplayerAPI dispatch (decode + handler).
//!
//! `cargo bench -p godot-proto --bench godot_proto`

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use godot_proto::{DecodeLimits, MultiplayerApi, RpcMode, Variant, Vector3};

fn sample() -> Variant {
    Variant::Array(vec![
        Variant::Int(42),
        Variant::Real(1.5),
        Variant::from("hello world"),
        Variant::Vector3(Vector3::new(1.0, 2.0, 3.0)),
        Variant::PoolByteArray(vec![7; 64]),
    ])
}

fn variant(c: &mut Criterion) {
    let v = sample();
    let bytes = v.to_bytes();
    let mut g = c.benchmark_group("variant");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    let mut out = Vec::with_capacity(256);
    g.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            black_box(&v).encode(&mut out);
            black_box(out.len())
        })
    });
    let limits = DecodeLimits::default();
    g.bench_function("decode", |b| {
        b.iter(|| Variant::decode(black_box(&bytes), &limits).unwrap())
    });
    g.finish();
}

fn dispatch(c: &mut Criterion) {
    // A server with a chat-style handler; a client's call packet (cached path id) is fed in.
    let mut server = MultiplayerApi::with_state(0u64);
    server.register(
        "Chat",
        "say",
        RpcMode::Remote,
        |ctx, (n, _text): (i64, String)| {
            *ctx.state_mut() += n as u64;
        },
    );
    server.start_server();
    server.on_peer_connected(7);
    let mut client = MultiplayerApi::new();
    client.start_client(7);
    client.on_peer_connected(1);
    client.on_connected_to_server();
    client.rpc_id(1, "Chat", "say", (1i64, "hello")).unwrap();
    while let Some(o) = client.poll_outgoing() {
        server.handle_packet(7, &o.data);
    }
    while let Some(o) = server.poll_outgoing() {
        client.handle_packet(1, &o.data);
    }
    // Now the path is confirmed: the next call is the short, cached form.
    client.rpc_id(1, "Chat", "say", (1i64, "hello")).unwrap();
    let packet = client.poll_outgoing().unwrap().data;
    let mut g = c.benchmark_group("rpc");
    g.bench_function("dispatch", |b| {
        b.iter(|| server.handle_packet(7, black_box(&packet)))
    });
    g.bench_function("send", |b| {
        b.iter(|| {
            client.rpc_id(1, "Chat", "say", (1i64, "hello")).unwrap();
            black_box(client.poll_outgoing())
        })
    });
    g.finish();
}

criterion_group!(benches, variant, dispatch);
criterion_main!(benches);
