//! Sending one ENet flush worth of datagrams over real loopback sockets, through
//! [`UdpEnetSocket::send_batch`] against the anchor of one `send_to(2)` per datagram on a plain
//! `std::net::UdpSocket`, in the same run:
//! * `enet_socket/mixed_64x4`: 64 datagrams of 100..=1200 bytes (no two neighbours of equal
//!   size) round robin to 4 receivers, a server answering many peers (`sendmmsg(2)` on Linux);
//! * `enet_socket/pairs_64x4`: 64 datagrams in pairs of equal size to one receiver, the pairs
//!   round robin to 4 receivers (GSO runs of 2 between `sendmmsg(2)` stretches, the tuning case
//!   for `MIN_GSO_RUN`);
//! * `enet_socket/runs_64x1`: 64 datagrams of 1200 bytes to one receiver, a bulk transfer (GSO).
//!
//! Only the send is timed; the receivers are drained between iterations, untimed.
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use enet_dtls::enet::{EnetSocket, UdpEnetSocket};
use enet_dtls::enet_proto::Transmit;

const BATCH: usize = 64;

fn receivers(n: usize) -> Vec<UdpEnetSocket> {
    (0..n)
        .map(|_| UdpEnetSocket::bind("127.0.0.1:0").expect("bind receiver"))
        .collect()
}

fn drain(receivers: &mut [UdpEnetSocket]) {
    for r in receivers {
        while r
            .recv_batch(Instant::now(), &mut |_, d| {
                std::hint::black_box(d);
            })
            .expect("recv")
            > 0
        {}
    }
}

/// The batches of the three cases, addressed to `to`.
fn mixed(to: &[SocketAddr]) -> Vec<Transmit> {
    (0..BATCH)
        .map(|i| Transmit {
            destination: to[i % to.len()],
            data: vec![i as u8; 100 + (i * 389) % 1101],
        })
        .collect()
}

fn pairs(to: &[SocketAddr]) -> Vec<Transmit> {
    (0..BATCH)
        .map(|i| Transmit {
            destination: to[(i / 2) % to.len()],
            data: vec![i as u8; 100 + (i / 2 * 389) % 1101],
        })
        .collect()
}

fn runs(to: &[SocketAddr]) -> Vec<Transmit> {
    (0..BATCH)
        .map(|i| Transmit {
            destination: to[0],
            data: vec![i as u8; 1200],
        })
        .collect()
}

fn bench_case(
    c: &mut Criterion,
    name: &str,
    destinations: usize,
    make: fn(&[SocketAddr]) -> Vec<Transmit>,
) {
    let mut rx = receivers(destinations);
    let to: Vec<SocketAddr> = rx.iter().map(|r| r.local_addr().unwrap()).collect();
    let batch = make(&to);
    let bytes: usize = batch.iter().map(|t| t.data.len()).sum();

    let mut group = c.benchmark_group(format!("enet_socket/{name}"));
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(40);
    group.measurement_time(Duration::from_secs(4));
    group.warm_up_time(Duration::from_secs(1));

    let mut sock = UdpEnetSocket::bind("127.0.0.1:0").expect("bind");
    group.bench_function(BenchmarkId::new("send_batch", bytes), |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let sent = sock.send_batch(Instant::now(), &batch).expect("send_batch");
                timed += start.elapsed();
                assert_eq!(sent, BATCH, "loopback send buffer never fills here");
                drain(&mut rx);
            }
            timed
        })
    });
    let stats = sock.stats();
    if stats.datagrams_sent > 0 {
        eprintln!(
            "{name}: send_batch made {:.2} send calls per batch of {BATCH} ({stats:?})",
            stats.send_calls as f64 * BATCH as f64 / stats.datagrams_sent as f64
        );
    }

    let plain = UdpSocket::bind("127.0.0.1:0").expect("bind");
    group.bench_function(BenchmarkId::new("std_send_to", bytes), |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                for t in &batch {
                    plain.send_to(&t.data, t.destination).expect("send_to");
                }
                timed += start.elapsed();
                drain(&mut rx);
            }
            timed
        })
    });
    group.finish();
}

fn sends(c: &mut Criterion) {
    bench_case(c, "mixed_64x4", 4, mixed);
    bench_case(c, "pairs_64x4", 4, pairs);
    bench_case(c, "runs_64x1", 1, runs);
}

criterion_group!(benches, sends);
criterion_main!(benches);
