//! The ENet socket layer over real loopback sockets: batched send/receive (GSO runs, mixed
//! sizes), IPv4, IPv6 and dual-stack addressing, readiness waits, and unreachable peers.

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
    let mut a = UdpEnetSocket::bind(bind.parse().unwrap()).unwrap();
    let mut b = UdpEnetSocket::bind(bind.parse().unwrap()).unwrap();
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
    let mut server = UdpEnetSocket::bind("[::]:0".parse().unwrap()).unwrap();
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
    let mut s = UdpEnetSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
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
    let mut s = UdpEnetSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
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
        let s = UdpEnetSocket::bind(bind.parse().unwrap()).unwrap();
        assert_eq!(
            ip_mtu_discover(s.get_ref()).unwrap(),
            Ipv4PathMtuDiscovery::WANT,
            "{bind}"
        );
    }
}

#[test]
fn empty_and_maximum_size_datagrams_are_delivered() {
    let mut s = UdpEnetSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
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
