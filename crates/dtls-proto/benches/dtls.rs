//! DTLS costs through the sans-IO API (in memory, no sockets):
//! * `record`: encrypt one 1200-byte application datagram on one side and decrypt it on the other;
//! * `handshake`: a full handshake (cookie exchange included) per iteration, RSA-2048 and P-256.
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dtls_proto::keys::{Certificate, CertificateParams, KeyType, PrivateKey};
use dtls_proto::{ClientConfig, DtlsSession, ServerConfig, Status};

fn configs(kind: KeyType) -> (ServerConfig, ClientConfig) {
    let key = PrivateKey::generate(kind).expect("key");
    let cert = Certificate::self_signed(&key, &CertificateParams::new("localhost")).expect("cert");
    let server = ServerConfig::builder(key, cert.clone())
        .build()
        .expect("server config");
    let client = ClientConfig::builder()
        .hostname("localhost")
        .trusted_certificate(cert)
        .build()
        .expect("client config");
    (server, client)
}

/// A complete handshake over a perfect in-memory link.
fn handshake(server_cfg: &ServerConfig, client_cfg: &ClientConfig) -> (DtlsSession, DtlsSession) {
    let now = Instant::now();
    let mut client = DtlsSession::client(client_cfg, now).expect("client");
    let mut server = DtlsSession::server(server_cfg, now).expect("server");
    for _ in 0..16 {
        while let Some(d) = client.poll_transmit() {
            server.handle_datagram(now, &d);
        }
        while let Some(d) = server.poll_transmit() {
            client.handle_datagram(now, &d);
        }
        if client.status() == Status::Connected && server.status() == Status::Connected {
            return (client, server);
        }
    }
    panic!(
        "handshake did not complete: {:?} {:?}",
        client.error(),
        server.error()
    );
}

/// One record from `client` to `server` with both buffers handed back (what `DtlsEnetSocket`
/// does): no allocation per record.
fn recycled_round_trip(
    client: &mut DtlsSession,
    server: &mut DtlsSession,
    payload: &[u8],
    now: Instant,
) {
    client.send(black_box(payload)).expect("send");
    let datagram = client.poll_transmit().expect("datagram");
    server.handle_datagram(now, &datagram);
    DtlsSession::recycle(datagram);
    let plain = server.recv().expect("decrypted");
    DtlsSession::recycle(black_box(plain));
}

fn record(c: &mut Criterion) {
    let (server_cfg, client_cfg) = configs(KeyType::EcP256);
    let (mut client, mut server) = handshake(&server_cfg, &client_cfg);
    let cipher = client.cipher_name().unwrap_or("?").to_string();
    let payload = vec![0x5au8; 1200];
    let now = Instant::now();
    let mut group = c.benchmark_group("record");
    group.throughput(Throughput::Bytes(payload.len() as u64));
    group.bench_function(format!("encrypt+decrypt 1200B {cipher}"), |b| {
        b.iter(|| {
            client.send(black_box(&payload)).expect("send");
            let datagram = client.poll_transmit().expect("datagram");
            server.handle_datagram(now, &datagram);
            black_box(server.recv().expect("decrypted"))
        })
    });
    // The same with both buffers handed back (what `DtlsEnetSocket` does): no allocation per record.
    group.bench_function(format!("encrypt+decrypt 1200B {cipher} recycled"), |b| {
        b.iter(|| recycled_round_trip(&mut client, &mut server, &payload, now))
    });
    // Each AEAD suite a server may pick, recycled, at a full ENet datagram and a small one.
    for suite in [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ] {
        let key = PrivateKey::generate(KeyType::EcP256).expect("key");
        let cert =
            Certificate::self_signed(&key, &CertificateParams::new("localhost")).expect("cert");
        let server_cfg = ServerConfig::builder(key, cert)
            .cipher_list(suite)
            .build()
            .expect("server config");
        let client_cfg = ClientConfig::builder()
            .verify(false)
            .build()
            .expect("client");
        let (mut client, mut server) = handshake(&server_cfg, &client_cfg);
        assert_eq!(client.cipher_name(), Some(suite));
        for size in [1200usize, 200] {
            let payload = vec![0x5au8; size];
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(format!("suite {suite} {size}B recycled"), |b| {
                b.iter(|| recycled_round_trip(&mut client, &mut server, &payload, now))
            });
        }
    }
    group.finish();
}

fn handshakes(c: &mut Criterion) {
    let mut group = c.benchmark_group("handshake");
    group.sample_size(20);
    for (name, kind) in [("rsa2048", KeyType::Rsa(2048)), ("p256", KeyType::EcP256)] {
        let (server_cfg, client_cfg) = configs(kind);
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| {
            b.iter(|| black_box(handshake(&server_cfg, &client_cfg)))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = record, handshakes
}
criterion_main!(benches);
