//! The ENet drivers over real loopback sockets, in process: the blocking `EnetHost` (IPv4 and
//! IPv6) and, with the `tokio` feature, `TokioEnetHost`, each talking to an echo host.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use enet_dtls::enet::EnetHost;
use enet_dtls::enet_proto::{DisconnectReason, Event, HostConfig, Packet, PacketFlags, PeerId};

const CONNECT_DATA: u32 = 77;
const DISCONNECT_DATA: u32 = 99;

/// What the echo host saw: (connect data, disconnect data, disconnect reason, packets echoed).
type EchoLog = (u32, u32, DisconnectReason, usize);

/// Runs a blocking echo host on `bind` in a thread until its first peer disconnects.
fn spawn_echo(bind: &str) -> (SocketAddr, thread::JoinHandle<EchoLog>) {
    let mut host = EnetHost::bind(bind.parse().unwrap(), HostConfig::default()).unwrap();
    let addr = host.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut connect_data = None;
        let mut echoed = 0;
        while Instant::now() < deadline {
            match host.service(Duration::from_millis(100)).unwrap() {
                Some(Event::Connect { data, .. }) => connect_data = Some(data),
                Some(Event::Receive {
                    peer,
                    channel,
                    packet,
                }) => {
                    host.send(peer, channel, packet).unwrap();
                    echoed += 1;
                }
                Some(Event::Disconnect { data, reason, .. }) => {
                    return (
                        connect_data.expect("connect before disconnect"),
                        data,
                        reason,
                        echoed,
                    )
                }
                None => {}
            }
        }
        panic!("echo host: no disconnect within 60 s");
    });
    (addr, handle)
}

fn wait_event(host: &mut EnetHost, what: &str, mut pick: impl FnMut(&Event) -> bool) -> Event {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no {what} within 20 s");
        if let Some(ev) = host.service(left).unwrap() {
            if pick(&ev) {
                return ev;
            }
            panic!("unexpected event while waiting for {what}: {ev:?}");
        }
    }
}

fn blocking_pair(bind: &str) {
    let (server, echo) = spawn_echo(bind);
    let mut client = EnetHost::bind(bind.parse().unwrap(), HostConfig::default()).unwrap();
    let peer: PeerId = client.connect(server, 3, CONNECT_DATA).unwrap();
    let ev = wait_event(&mut client, "connect", |e| {
        matches!(e, Event::Connect { .. })
    });
    assert!(
        matches!(ev, Event::Connect { peer: p, address, .. } if p == peer && address == server)
    );

    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 1000) as u8).collect();
    let sent = vec![
        (0u8, Packet::reliable(b"reliable".to_vec())),
        (1, Packet::unsequenced(b"unsequenced".to_vec())),
        (2, Packet::unreliable(b"unreliable".to_vec())),
        (2, Packet::reliable(big.clone())),
    ];
    for (ch, p) in &sent {
        client.send(peer, *ch, p.clone()).unwrap();
    }
    let mut got = Vec::new();
    while got.len() < sent.len() {
        if let Event::Receive {
            channel, packet, ..
        } = wait_event(&mut client, "echo", |e| matches!(e, Event::Receive { .. }))
        {
            got.push((channel, packet));
        }
    }
    for (ch, p) in &sent {
        let echo = got
            .iter()
            .find(|(_, e)| e.data == p.data)
            .expect("every packet is echoed");
        assert_eq!(echo.0, *ch, "same channel");
        for flag in [PacketFlags::RELIABLE, PacketFlags::UNSEQUENCED] {
            assert_eq!(
                echo.1.flags.contains(flag),
                p.flags.contains(flag),
                "same reliability"
            );
        }
    }
    let stats = client.peer(peer).expect("connected peer").stats();
    assert!(stats.bytes_sent >= big.len() as u64, "{stats:?}");

    client.disconnect(peer, DISCONNECT_DATA);
    let ev = wait_event(&mut client, "disconnect", |e| {
        matches!(e, Event::Disconnect { .. })
    });
    assert!(
        matches!(
            ev,
            Event::Disconnect {
                reason: DisconnectReason::Local,
                ..
            }
        ),
        "{ev:?}"
    );
    let (connect_data, disconnect_data, reason, echoed) = echo.join().unwrap();
    assert_eq!(
        (connect_data, disconnect_data, reason, echoed),
        (CONNECT_DATA, DISCONNECT_DATA, DisconnectReason::Remote, 4)
    );
}

#[test]
fn blocking_pair_ipv4() {
    blocking_pair("127.0.0.1:0");
}

#[test]
fn blocking_pair_ipv6() {
    blocking_pair("[::1]:0");
}

#[test]
fn service_with_zero_timeout_does_not_block_and_flush_sends() {
    let (server, echo) = spawn_echo("127.0.0.1:0");
    let mut client = EnetHost::bind("127.0.0.1:0".parse().unwrap(), HostConfig::default()).unwrap();
    let peer = client.connect(server, 1, CONNECT_DATA).unwrap();
    // Poll with zero timeouts only: the connect must still complete.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (tx, rx) = mpsc::channel();
    while Instant::now() < deadline {
        client.flush().unwrap();
        if let Some(ev) = client.service(Duration::ZERO).unwrap() {
            tx.send(ev).unwrap();
            break;
        }
        thread::yield_now();
    }
    assert!(matches!(rx.try_recv(), Ok(Event::Connect { .. })));
    client.disconnect_now(peer, DISCONNECT_DATA).unwrap();
    let (_, data, reason, _) = echo.join().unwrap();
    assert_eq!((data, reason), (DISCONNECT_DATA, DisconnectReason::Remote));
}

#[cfg(feature = "tokio")]
#[test]
fn tokio_pair() {
    use enet_dtls::enet::TokioEnetHost;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut server = TokioEnetHost::bind("127.0.0.1:0".parse().unwrap(), HostConfig::default())
            .await
            .unwrap();
        let server_addr = server.local_addr().unwrap();
        let echo = tokio::spawn(async move {
            loop {
                match server.next_event().await.unwrap() {
                    Event::Receive {
                        peer,
                        channel,
                        packet,
                    } => server.send(peer, channel, packet).unwrap(),
                    Event::Disconnect { data, .. } => return data,
                    Event::Connect { .. } => {}
                }
            }
        });
        let mut client = TokioEnetHost::bind("[::]:0".parse().unwrap(), HostConfig::default())
            .await
            .unwrap();
        let peer = client.connect(server_addr, 2, CONNECT_DATA).unwrap();
        let timeout = Duration::from_secs(20);
        let ev = tokio::time::timeout(timeout, client.next_event())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(ev, Event::Connect { .. }), "{ev:?}");
        let big = vec![0x5Au8; 100_000];
        client.send(peer, 1, Packet::reliable(big.clone())).unwrap();
        let ev = tokio::time::timeout(timeout, client.next_event())
            .await
            .unwrap()
            .unwrap();
        match ev {
            Event::Receive {
                channel, packet, ..
            } => {
                assert_eq!(channel, 1);
                assert_eq!(packet.data, big);
            }
            other => panic!("expected the echo, got {other:?}"),
        }
        // service() with a short timeout and nothing to do returns None.
        assert!(client
            .service(Duration::from_millis(10))
            .await
            .unwrap()
            .is_none());
        client.disconnect(peer, DISCONNECT_DATA);
        let ev = tokio::time::timeout(timeout, client.next_event())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(ev, Event::Disconnect { .. }), "{ev:?}");
        assert_eq!(
            tokio::time::timeout(timeout, echo).await.unwrap().unwrap(),
            DISCONNECT_DATA
        );
    });
}

#[test]
fn garbage_datagrams_do_not_disturb_the_host() {
    let (server, echo) = spawn_echo("127.0.0.1:0");
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // Truncated headers, a CONNECT-looking prefix, random bytes, an oversized datagram.
    let mut x: u32 = 0x1234_5678;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let mut garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xFF],
        vec![0x8F, 0xFF, 0, 0],
        vec![0xFF, 0xFF, 0x82, 0xFF, 0, 1],
        vec![0; 60_000],
    ];
    for len in 1..200 {
        garbage.push((0..len).map(|_| next() as u8).collect());
    }
    for g in &garbage {
        junk.send_to(g, server).unwrap();
    }
    let mut client = EnetHost::bind("127.0.0.1:0".parse().unwrap(), HostConfig::default()).unwrap();
    let peer = client.connect(server, 1, CONNECT_DATA).unwrap();
    wait_event(&mut client, "connect", |e| {
        matches!(e, Event::Connect { .. })
    });
    client
        .send(peer, 0, Packet::reliable(b"still alive".to_vec()))
        .unwrap();
    let ev = wait_event(&mut client, "echo", |e| matches!(e, Event::Receive { .. }));
    assert!(matches!(ev, Event::Receive { packet, .. } if packet.data == b"still alive"));
    client.disconnect(peer, DISCONNECT_DATA);
    wait_event(&mut client, "disconnect", |e| {
        matches!(e, Event::Disconnect { .. })
    });
    let (connect_data, disconnect_data, _, echoed) = echo.join().unwrap();
    assert_eq!(
        (connect_data, disconnect_data, echoed),
        (CONNECT_DATA, DISCONNECT_DATA, 1)
    );
}
