//! The steady-state record path of an [`Endpoint`] allocates nothing per datagram on our side:
//! sealing (`send`, `poll_transmit`), opening straight into the caller's sink (`handle_with`)
//! and handing the sent buffer back (`recycle`) reuse the per-thread buffer pool, the BIO's
//! spare buffers, the queues and the timer heap. (OpenSSL's own allocations, if any, go
//! through libc's `malloc`, not Rust's allocator, and are not counted here.)
//!
//! A counting global allocator counts the allocations made on this thread.

use alloc_count::{counted, CountingAlloc};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dtls_proto::keys::{Certificate, CertificateParams, KeyType, PrivateKey};
use dtls_proto::{ClientConfig, Endpoint, EndpointConfig, Event, ServerConfig};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// One datagram from `from` (address `from_addr`) to `to`: sealed, moved, opened into a sink
/// that checks its length, the sent buffer recycled. Returns the bytes delivered.
fn one_way(
    from: &mut Endpoint,
    to: &mut Endpoint,
    from_addr: SocketAddr,
    to_addr: SocketAddr,
    now: Instant,
    payload: &[u8],
) -> usize {
    let h = from.handle_of(to_addr).expect("session");
    from.send(h, payload).expect("send");
    let mut delivered = 0;
    while let Some(t) = from.poll_transmit() {
        to.handle_with(now, from_addr, &t.contents, &mut |_, _, plain| {
            delivered += plain.len();
        });
        from.recycle(t.contents);
    }
    delivered
}

#[test]
fn records_cost_no_allocation_in_the_steady_state() {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let cert = Certificate::self_signed(&key, &CertificateParams::new("localhost")).unwrap();
    let server_cfg = ServerConfig::builder(key, cert).build().unwrap();
    let client_cfg = ClientConfig::builder().verify(false).build().unwrap();
    let mut server = Endpoint::server(EndpointConfig::default(), &server_cfg).unwrap();
    let mut client = Endpoint::client(EndpointConfig::default()).unwrap();
    let s_addr: SocketAddr = "10.0.0.1:4433".parse().unwrap();
    let c_addr: SocketAddr = "10.0.0.2:5000".parse().unwrap();
    let mut now = Instant::now();
    client.connect(now, s_addr, &client_cfg).unwrap();
    for _ in 0..10 {
        while let Some(t) = client.poll_transmit() {
            server.handle(now, c_addr, &t.contents);
        }
        while let Some(t) = server.poll_transmit() {
            client.handle(now, s_addr, &t.contents);
        }
    }
    let connected = |ep: &mut Endpoint| {
        std::iter::from_fn(|| ep.poll_event()).any(|e| matches!(e, Event::Connected { .. }))
    };
    assert!(connected(&mut client) && connected(&mut server));

    let big = vec![0xA5u8; 1200];
    let small = vec![0x5Au8; 64];
    let mut round = |now: Instant| {
        let mut n = one_way(&mut client, &mut server, c_addr, s_addr, now, &big);
        n += one_way(&mut server, &mut client, s_addr, c_addr, now, &small);
        n
    };
    // Warm-up: the pools, spare buffers and queues reach their working size.
    for _ in 0..200 {
        now += Duration::from_millis(1);
        assert_eq!(round(now), 1264);
    }
    let mut bytes = 0;
    let ((), allocations) = counted(|| {
        for _ in 0..2000 {
            now += Duration::from_millis(1);
            bytes += round(now);
        }
    });
    assert_eq!(bytes, 2000 * 1264, "every record arrived");
    assert_eq!(
        allocations, 0,
        "allocations for 4000 records through the endpoints"
    );
}
