//! The ENet socket layer over real loopback sockets: batched send/receive (GSO runs, mixed
//! sizes, `sendmmsg` to many destinations), IPv4, IPv6 and dual-stack addressing, readiness
//! waits, refused datagrams inside a batch, overflowing receivers, and unreachable peers.

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use enet_dtls::enet::{EnetSocket, UdpEnetSocket};
use enet_dtls::enet_proto::Transmit;

/// A batch mixing GSO-able runs (equal sizes to one destination) and odd sizes.
fn batch(to: SocketAddr, count: usize) -> Vec<Transmit> {
    (0..count)
        .map(|i| {
            let len = match i % 10 {
                0..=6 => 1200,
                7 => 1100,
                8 => 17,
                _ => 4000,
            };
            let mut data = vec![(i % 251) as u8; len];
            data[..4].copy_from_slice(&(i as u32).to_be_bytes());
            Transmit {
                destination: to,
                data,
            }
        })
        .collect()
}

/// Receives until `count` datagrams arrived (or 10 s passed); returns (source, data) pairs.
fn recv_all(sock: &mut UdpEnetSocket, count: usize) -> Vec<(SocketAddr, Vec<u8>)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < count && Instant::now() < deadline {
        sock.wait_readable(Some(Duration::from_millis(200)))
            .unwrap();
        sock.recv_batch(Instant::now(), &mut |from, data| {
            got.push((from, data.to_vec()))
        })
        .unwrap();
    }
    got
}

fn round_trip(bind: &str) {
    let mut a = UdpEnetSocket::bind(bind).unwrap();
    let mut b = UdpEnetSocket::bind(bind).unwrap();
    let a_addr = a.local_addr().unwrap();
    let b_addr = b.local_addr().unwrap();
    assert_ne!(b_addr.port(), 0);
    let sent = batch(b_addr, 200);
    // Send in a few batches so the kernel buffer (256 KiB) is never the limit.
    let mut n = 0;
    for chunk in sent.chunks(50) {
        n += a.send_batch(Instant::now(), chunk).unwrap();
        let got = recv_all(&mut b, chunk.len());
        assert_eq!(
            got.len(),
            chunk.len(),
            "every datagram of the chunk arrives"
        );
        for ((from, data), t) in got.iter().zip(chunk) {
            assert_eq!(*from, a_addr);
            assert_eq!(
                data, &t.data,
                "datagram boundaries and contents survive batching"
            );
        }
    }
    assert_eq!(n, 200);
    assert_eq!(a.stats().datagrams_sent, 200);
    assert_eq!(a.stats().datagrams_dropped, 0);
    assert_eq!(b.stats().datagrams_received, 200);
    if a.max_gso_segments() > 1 {
        assert!(
            a.stats().gso_batches > 0,
            "runs of equal-size datagrams go out as GSO batches"
        );
    }
}

#[test]
fn batches_round_trip_ipv4() {
    round_trip("127.0.0.1:0");
}

#[test]
fn batches_round_trip_ipv6() {
    round_trip("[::1]:0");
}

#[test]
fn dual_stack_reports_plain_ipv4_peers() {
    let mut server = UdpEnetSocket::bind("[::]:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"ping", ("127.0.0.1", port)).unwrap();
    let got = recv_all(&mut server, 1);
    assert_eq!(got, vec![(client.local_addr().unwrap(), b"ping".to_vec())]);
    // Replying to the plain IPv4 address works on the IPv6 socket.
    let reply = Transmit {
        destination: client.local_addr().unwrap(),
        data: b"pong".to_vec(),
    };
    assert_eq!(server.send_batch(Instant::now(), &[reply]).unwrap(), 1);
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"pong");
    assert_eq!(from.port(), port);
}

#[test]
fn wait_readable_times_out_when_idle() {
    let mut s = UdpEnetSocket::bind("127.0.0.1:0").unwrap();
    assert!(!s.wait_readable(Some(Duration::from_millis(20))).unwrap());
    assert!(!s.wait_readable(Some(Duration::ZERO)).unwrap());
    let mut none = VecDeque::new();
    assert_eq!(
        s.recv_batch(Instant::now(), &mut |f, d| none.push_back((f, d.to_vec())))
            .unwrap(),
        0
    );
    assert!(none.is_empty());
}

#[test]
fn unreachable_destinations_are_not_errors() {
    let mut s = UdpEnetSocket::bind("127.0.0.1:0").unwrap();
    // A port nobody listens on: Linux answers with ICMP port unreachable, which later surfaces
    // as ECONNREFUSED; an ENet host must shrug that off (peers come and go).
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for _ in 0..3 {
        let t = Transmit {
            destination: closed,
            data: vec![1, 2, 3],
        };
        s.send_batch(Instant::now(), &[t]).unwrap();
        s.wait_readable(Some(Duration::from_millis(20))).unwrap();
        assert_eq!(
            s.recv_batch(Instant::now(), &mut |_, _| panic!("nothing to receive"))
                .unwrap(),
            0
        );
    }
    // An IPv6 destination on an IPv4 socket is dropped, not an error.
    let v6 = Transmit {
        destination: "[::1]:9".parse().unwrap(),
        data: vec![0],
    };
    assert_eq!(s.send_batch(Instant::now(), &[v6]).unwrap(), 0);
    assert_eq!(s.stats().datagrams_dropped, 1);
}

#[cfg(target_os = "linux")]
#[test]
fn ipv4_keeps_the_default_fragmentation_policy_of_c_enet() {
    use rustix::net::sockopt::{ip_mtu_discover, Ipv4PathMtuDiscovery};
    for bind in ["127.0.0.1:0", "[::]:0"] {
        let s = UdpEnetSocket::bind(bind).unwrap();
        assert_eq!(
            ip_mtu_discover(s.get_ref()).unwrap(),
            Ipv4PathMtuDiscovery::WANT,
            "{bind}"
        );
    }
}

#[test]
fn empty_and_maximum_size_datagrams_are_delivered() {
    let mut s = UdpEnetSocket::bind("127.0.0.1:0").unwrap();
    let to = s.local_addr().unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let big = vec![7u8; enet_dtls::enet::MAX_UDP_PAYLOAD];
    client.send_to(&[], to).unwrap();
    client.send_to(&big, to).unwrap();
    let got = recv_all(&mut s, 2);
    let sizes: Vec<usize> = got.iter().map(|(_, d)| d.len()).collect();
    assert_eq!(sizes, vec![0, big.len()]);
    assert_eq!(got[1].1, big);
}

/// Datagram `i` of a mixed batch: 100..=1200 bytes, no two neighbours of equal size, carrying
/// its index and a byte pattern that depends on it.
fn mixed_datagram(i: usize, to: SocketAddr) -> Transmit {
    let len = 100 + (i * 389) % 1101;
    let mut data: Vec<u8> = (0..len).map(|k| (k * 7 + i) as u8).collect();
    data[..4].copy_from_slice(&(i as u32).to_be_bytes());
    Transmit {
        destination: to,
        data,
    }
}

/// 64 datagrams of mixed sizes, round robin to 4 receivers, in one `send_batch`: every one
/// arrives intact and in order per receiver, with fewer send system calls than datagrams.
fn mixed_batch_to_four_receivers(sender_bind: &str, receiver_binds: [&str; 4]) {
    let mut sender = UdpEnetSocket::bind(sender_bind).unwrap();
    let sender_port = sender.local_addr().unwrap().port();
    let mut receivers: Vec<UdpEnetSocket> = receiver_binds
        .iter()
        .map(|b| UdpEnetSocket::bind(b).unwrap())
        .collect();
    let addrs: Vec<SocketAddr> = receivers.iter().map(|r| r.local_addr().unwrap()).collect();
    let batch: Vec<Transmit> = (0..64).map(|i| mixed_datagram(i, addrs[i % 4])).collect();

    assert_eq!(sender.send_batch(Instant::now(), &batch).unwrap(), 64);
    let stats = sender.stats();
    assert_eq!(stats.datagrams_sent, 64);
    assert_eq!(stats.datagrams_dropped, 0);
    assert!(
        stats.send_calls < 64,
        "batched: {} send calls for 64 datagrams",
        stats.send_calls
    );
    #[cfg(target_os = "linux")]
    assert!(
        stats.mmsg_batches >= 1,
        "mixed destinations go out with sendmmsg: {stats:?}"
    );

    for (r, receiver) in receivers.iter_mut().enumerate() {
        let expected: Vec<&Transmit> = batch.iter().skip(r).step_by(4).collect();
        let got = recv_all(receiver, expected.len());
        assert_eq!(got.len(), expected.len(), "receiver {r} got every datagram");
        for ((from, data), t) in got.iter().zip(&expected) {
            assert_eq!(from.port(), sender_port);
            assert_eq!(from.is_ipv4(), t.destination.is_ipv4(), "plain family");
            assert_eq!(data, &t.data, "receiver {r}: intact and in order");
        }
    }
}

#[test]
fn mixed_batch_to_four_ipv4_receivers() {
    mixed_batch_to_four_receivers("127.0.0.1:0", ["127.0.0.1:0"; 4]);
}

#[test]
fn mixed_batch_to_four_ipv6_receivers() {
    mixed_batch_to_four_receivers("[::1]:0", ["[::1]:0"; 4]);
}

#[test]
fn mixed_batch_from_dual_stack_to_ipv4_and_ipv6_receivers() {
    // IPv4 destinations go out as v4-mapped addresses in the same sendmmsg as the IPv6 ones.
    mixed_batch_to_four_receivers(
        "[::]:0",
        ["127.0.0.1:0", "[::1]:0", "127.0.0.1:0", "[::1]:0"],
    );
}

/// A datagram the kernel refuses in the middle of a batch (wrong address family, too large)
/// cuts `sendmmsg` short; it alone is dropped, and the datagrams after it still go out.
#[test]
fn refused_datagrams_inside_a_batch_are_dropped_alone() {
    let mut sender = UdpEnetSocket::bind("127.0.0.1:0").unwrap();
    let mut receiver = UdpEnetSocket::bind("127.0.0.1:0").unwrap();
    let to = receiver.local_addr().unwrap();
    let mut batch: Vec<Transmit> = (0..12).map(|i| mixed_datagram(i, to)).collect();
    batch[3].destination = "[::1]:9".parse().unwrap();
    batch[7].data = vec![0; enet_dtls::enet::MAX_UDP_PAYLOAD + 1];
    batch[8].destination = "[::1]:9".parse().unwrap();

    assert_eq!(sender.send_batch(Instant::now(), &batch).unwrap(), 9);
    let stats = sender.stats();
    assert_eq!(stats.datagrams_sent, 9);
    assert_eq!(stats.datagrams_dropped, 3);
    #[cfg(target_os = "linux")]
    assert!(
        stats.send_calls < 12,
        "batching goes on after a refused datagram: {stats:?}"
    );

    let expected: Vec<&Vec<u8>> = batch
        .iter()
        .enumerate()
        .filter(|(i, _)| ![3, 7, 8].contains(i))
        .map(|(_, t)| &t.data)
        .collect();
    let got: Vec<Vec<u8>> = recv_all(&mut receiver, expected.len())
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    assert_eq!(got.iter().collect::<Vec<_>>(), expected);
}

/// A receiver with a tiny kernel buffer overflows: its datagrams are lost, but sending never
/// fails, the counters add up, and a healthy receiver in the same batches gets everything.
#[test]
fn overflowing_receiver_is_not_an_error() {
    let tiny = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .unwrap();
    tiny.set_recv_buffer_size(1).unwrap(); // the kernel rounds up to its minimum (a few KiB)
    tiny.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let mut tiny = UdpEnetSocket::from_std(tiny.into()).unwrap();
    let tiny_addr = tiny.local_addr().unwrap();
    let mut healthy = UdpEnetSocket::bind("127.0.0.1:0").unwrap();
    let healthy_addr = healthy.local_addr().unwrap();
    let mut sender = UdpEnetSocket::bind("127.0.0.1:0").unwrap();

    let rounds = 8;
    let mut to_healthy = Vec::new();
    for round in 0..rounds {
        // 60 datagrams to the tiny receiver, 4 to the healthy one, interleaved.
        let batch: Vec<Transmit> = (0..64)
            .map(|i| {
                let to = if i % 16 == 15 {
                    healthy_addr
                } else {
                    tiny_addr
                };
                mixed_datagram(round * 64 + i, to)
            })
            .collect();
        let sent = sender.send_batch(Instant::now(), &batch).unwrap();
        assert!(sent <= batch.len());
        let healthy_part: Vec<Vec<u8>> = batch
            .iter()
            .filter(|t| t.destination == healthy_addr)
            .map(|t| t.data.clone())
            .collect();
        let got = recv_all(&mut healthy, healthy_part.len());
        assert_eq!(
            got.into_iter().map(|(_, d)| d).collect::<Vec<_>>(),
            healthy_part
        );
        to_healthy.extend(healthy_part);
    }
    let stats = sender.stats();
    assert_eq!(
        stats.datagrams_sent + stats.datagrams_dropped,
        (rounds * 64) as u64
    );

    // The tiny receiver holds what fitted (far less than the 60 × 8 datagrams sent to it);
    // whatever it holds is intact.
    let mut got = Vec::new();
    while tiny
        .recv_batch(Instant::now(), &mut |_, d| got.push(d.to_vec()))
        .unwrap()
        > 0
    {}
    assert!(!got.is_empty(), "the first datagrams fit");
    assert!(got.len() < rounds * 60, "the tiny buffer overflowed");
    for d in &got {
        let i = u32::from_be_bytes(d[..4].try_into().unwrap()) as usize;
        assert_eq!(d, &mixed_datagram(i, tiny_addr).data);
    }
    assert_eq!(to_healthy.len(), rounds * 4);
}
