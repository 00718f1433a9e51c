//! The ENet drivers over real loopback sockets, in process: the blocking `EnetHost` (IPv4 and
//! IPv6) and, with the `tokio` feature, `TokioEnetHost`, each talking to an echo host.

mod common;

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
    let mut host = EnetHost::bind(bind, HostConfig::default()).unwrap();
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
    let mut client = EnetHost::bind(bind, HostConfig::default()).unwrap();
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
    let mut client = EnetHost::bind("127.0.0.1:0", HostConfig::default()).unwrap();
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

    let rt = crate::common::runtime();
    rt.block_on(async {
        let mut server = TokioEnetHost::bind("127.0.0.1:0", HostConfig::default())
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
        let mut client = TokioEnetHost::bind("[::]:0", HostConfig::default())
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
        // The tokio driver batches UDP sends like the blocking one (sendmmsg / GSO).
        let stats = client.socket_stats();
        assert!(
            stats.datagrams_sent > stats.send_calls && stats.datagrams_received > 0,
            "no batching: {stats:?}"
        );
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
    let mut client = EnetHost::bind("127.0.0.1:0", HostConfig::default()).unwrap();
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

// ---------------------------------------------------------------------------------------------
// Any socket, both drivers: the in-memory socket and a socket with timers of its own.

mod any_socket {
    use std::collections::VecDeque;
    use std::io;
    use std::net::SocketAddr;
    use std::sync::mpsc;
    use std::thread;
    use std::time::{Duration, Instant};

    use enet_dtls::enet::testing::MemorySocket;
    use enet_dtls::enet::{EnetHost, EnetSocket};
    use enet_dtls::enet_proto::{Event, HostConfig, Packet};

    use super::{CONNECT_DATA, DISCONNECT_DATA};

    const HANG_GUARD: Duration = Duration::from_secs(30);

    fn addrs() -> (SocketAddr, SocketAddr) {
        (
            "10.0.0.1:7777".parse().unwrap(),
            "10.0.0.2:5555".parse().unwrap(),
        )
    }

    /// The client's scenario over any driver: connect, a 100 kB reliable packet (fragments)
    /// and 200 small reliable packets that must come back in order, then disconnect.
    fn payloads() -> Vec<Vec<u8>> {
        let mut p = vec![(0..100_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>()];
        p.extend((0..200u32).map(|i| i.to_be_bytes().to_vec()));
        p
    }

    /// A blocking echo host on `socket`, in a thread, until its peer disconnects; returns the
    /// number of packets echoed and the disconnect data.
    fn spawn_blocking_echo(socket: MemorySocket) -> thread::JoinHandle<(usize, u32)> {
        thread::spawn(move || {
            let mut host = EnetHost::with_socket(socket, HostConfig::default()).unwrap();
            let deadline = Instant::now() + HANG_GUARD;
            let mut echoed = 0;
            while Instant::now() < deadline {
                match host.service(Duration::from_millis(50)).unwrap() {
                    Some(Event::Receive {
                        peer,
                        channel,
                        packet,
                    }) => {
                        host.send(peer, channel, packet).unwrap();
                        echoed += 1;
                    }
                    Some(Event::Disconnect { data, .. }) => return (echoed, data),
                    _ => {}
                }
            }
            panic!("blocking echo: no disconnect in time");
        })
    }

    #[test]
    fn memory_socket_with_the_blocking_driver() {
        let (a, b) = addrs();
        let (server_socket, client_socket) = MemorySocket::pair(a, b);
        let echo = spawn_blocking_echo(server_socket);
        let mut client = EnetHost::with_socket(client_socket, HostConfig::default()).unwrap();
        let peer = client.connect(a, 2, CONNECT_DATA).unwrap();
        let deadline = Instant::now() + HANG_GUARD;
        let next = |client: &mut EnetHost<MemorySocket>| loop {
            assert!(Instant::now() < deadline, "blocking client: hung");
            if let Some(ev) = client.service(Duration::from_millis(50)).unwrap() {
                return ev;
            }
        };
        assert!(matches!(next(&mut client), Event::Connect { .. }));
        let sent = payloads();
        for p in &sent {
            client.send(peer, 1, Packet::reliable(p.clone())).unwrap();
        }
        let mut got = Vec::new();
        while got.len() < sent.len() {
            match next(&mut client) {
                Event::Receive { packet, .. } => got.push(packet.data),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, sent);
        // The same batching as UDP: the host hands the socket batches, not single datagrams.
        let stats = client.socket().stats();
        assert!(
            stats.datagrams_sent > stats.send_calls,
            "no batching: {stats:?}"
        );
        client.disconnect(peer, DISCONNECT_DATA);
        assert!(matches!(next(&mut client), Event::Disconnect { .. }));
        assert_eq!(echo.join().unwrap(), (sent.len(), DISCONNECT_DATA));
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn memory_socket_with_the_tokio_driver_against_both_drivers() {
        use enet_dtls::enet::TokioEnetHost;

        let rt = crate::common::runtime();
        // Tokio client against a tokio echo task (same runtime), then against a blocking echo
        // thread: the drivers interoperate over one socket type.
        for blocking_server in [false, true] {
            let (a, b) = addrs();
            let (server_socket, client_socket) = MemorySocket::pair(a, b);
            rt.block_on(async {
                let (tokio_echo, blocking_echo) = if blocking_server {
                    (None, Some(spawn_blocking_echo(server_socket)))
                } else {
                    let mut server =
                        TokioEnetHost::with_socket(server_socket, HostConfig::default()).unwrap();
                    let task = tokio::spawn(async move {
                        let mut echoed = 0;
                        loop {
                            match server.next_event().await.unwrap() {
                                Event::Receive {
                                    peer,
                                    channel,
                                    packet,
                                } => {
                                    server.send(peer, channel, packet).unwrap();
                                    echoed += 1;
                                }
                                Event::Disconnect { data, .. } => return (echoed, data),
                                Event::Connect { .. } => {}
                            }
                        }
                    });
                    (Some(task), None)
                };
                let mut client =
                    TokioEnetHost::with_socket(client_socket, HostConfig::default()).unwrap();
                let peer = client.connect(a, 2, CONNECT_DATA).unwrap();
                let ev = tokio::time::timeout(HANG_GUARD, client.next_event())
                    .await
                    .unwrap()
                    .unwrap();
                assert!(matches!(ev, Event::Connect { .. }), "{ev:?}");
                let sent = payloads();
                for p in &sent {
                    client.send(peer, 1, Packet::reliable(p.clone())).unwrap();
                }
                let mut got = Vec::new();
                while got.len() < sent.len() {
                    match tokio::time::timeout(HANG_GUARD, client.next_event())
                        .await
                        .unwrap()
                        .unwrap()
                    {
                        Event::Receive { packet, .. } => got.push(packet.data),
                        other => panic!("unexpected {other:?}"),
                    }
                }
                assert_eq!(got, sent);
                let stats = client.socket().stats();
                assert!(
                    stats.datagrams_sent > stats.send_calls,
                    "no batching: {stats:?}"
                );
                client.disconnect(peer, DISCONNECT_DATA);
                let ev = tokio::time::timeout(HANG_GUARD, client.next_event())
                    .await
                    .unwrap()
                    .unwrap();
                assert!(matches!(ev, Event::Disconnect { .. }), "{ev:?}");
                let log = match (tokio_echo, blocking_echo) {
                    (Some(task), _) => tokio::time::timeout(HANG_GUARD, task)
                        .await
                        .unwrap()
                        .unwrap(),
                    (_, Some(thread)) => thread.join().unwrap(),
                    _ => unreachable!(),
                };
                assert_eq!(log, (sent.len(), DISCONNECT_DATA));
            });
        }
    }

    /// One call of `handle_timeout`: the deadline the socket had asked for, and the `now` the
    /// driver passed.
    type TimerCall = (Instant, Instant);

    /// A socket with timers of its own (as a DTLS socket has): it asks for wake-ups at the
    /// given instants, one after the other, and reports every `handle_timeout` call.
    struct TimerSocket {
        inner: MemorySocket,
        deadlines: VecDeque<Instant>,
        calls: mpsc::Sender<TimerCall>,
        early: mpsc::Sender<Instant>,
    }

    impl EnetSocket for TimerSocket {
        enet_dtls::forward_enet_socket!(field: inner, except: [poll_timeout, handle_timeout]);

        fn poll_timeout(&self) -> Option<Instant> {
            self.deadlines.front().copied()
        }

        fn handle_timeout(&mut self, now: Instant) -> io::Result<()> {
            match self.deadlines.front() {
                Some(&due) if due <= now => {
                    self.deadlines.pop_front();
                    let _ = self.calls.send((due, now));
                }
                _ => {
                    let _ = self.early.send(now);
                }
            }
            Ok(())
        }
    }

    /// Runs `serve` (a host on a [`TimerSocket`] that asks for three wake-ups, servicing with
    /// a 60 s timeout, in a thread) and checks that the socket's `handle_timeout` ran for each
    /// deadline, at or after it, while the host slept with no traffic; then a client connects
    /// through the other end so that `serve` returns (with the connect event).
    fn check_timer_hooks(serve: impl FnOnce(TimerSocket) -> Option<Event> + Send + 'static) {
        let (a, b) = addrs();
        let (server_end, client_end) = MemorySocket::pair(a, b);
        let start = Instant::now();
        let deadlines: VecDeque<Instant> = [20, 50, 90]
            .iter()
            .map(|ms| start + Duration::from_millis(*ms))
            .collect();
        let (calls_tx, calls) = mpsc::channel();
        let (early_tx, early) = mpsc::channel();
        let socket = TimerSocket {
            inner: server_end,
            deadlines: deadlines.clone(),
            calls: calls_tx,
            early: early_tx,
        };
        let server = thread::spawn(move || serve(socket));
        for due in &deadlines {
            let (asked, now) = calls
                .recv_timeout(HANG_GUARD)
                .expect("handle_timeout was not called while the host slept");
            assert_eq!(asked, *due);
            assert!(now >= asked, "handle_timeout before its deadline");
        }
        // The host is still inside its 60 s service call: only a connect ends it.
        let mut client = EnetHost::with_socket(client_end, HostConfig::default()).unwrap();
        client.connect(a, 1, CONNECT_DATA).unwrap();
        let deadline = Instant::now() + HANG_GUARD;
        while !server.is_finished() {
            assert!(Instant::now() < deadline, "server did not see the connect");
            client.service(Duration::from_millis(10)).unwrap();
        }
        let ev = server.join().unwrap();
        assert!(
            matches!(
                ev,
                Some(Event::Connect {
                    data: CONNECT_DATA,
                    ..
                })
            ),
            "{ev:?}"
        );
        assert!(early.try_recv().is_err(), "handle_timeout called early");
    }

    #[test]
    fn socket_timers_wake_the_blocking_driver() {
        check_timer_hooks(|socket| {
            let mut host = EnetHost::with_socket(socket, HostConfig::default()).unwrap();
            host.service(Duration::from_secs(60)).unwrap()
        });
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn socket_timers_wake_the_tokio_driver() {
        use enet_dtls::enet::TokioEnetHost;
        check_timer_hooks(|socket| {
            let rt = crate::common::runtime();
            rt.block_on(async {
                let mut host = TokioEnetHost::with_socket(socket, HostConfig::default()).unwrap();
                host.service(Duration::from_secs(60)).await.unwrap()
            })
        });
    }

    /// `wait(Some(long))` on a host that is idle but whose socket asked for a wake-up returns
    /// `true` once that deadline has passed (no datagram was sent), under both drivers.
    #[test]
    fn wait_returns_for_a_socket_timer() {
        let (a, b) = addrs();
        let make = |end: MemorySocket, due: Instant| {
            let (calls, _) = mpsc::channel();
            let (early, _) = mpsc::channel();
            TimerSocket {
                inner: end,
                deadlines: VecDeque::from([due]),
                calls,
                early,
            }
        };
        let (end, _other) = MemorySocket::pair(a, b);
        let due = Instant::now() + Duration::from_millis(30);
        let mut host = EnetHost::with_socket(make(end, due), HostConfig::default()).unwrap();
        assert!(host.wait(Some(HANG_GUARD)).unwrap());
        assert!(Instant::now() >= due);
        // Idle and nothing asked for: the wait runs out.
        host.service(Duration::ZERO).unwrap();
        assert!(!host.wait(Some(Duration::from_millis(5))).unwrap());

        #[cfg(feature = "tokio")]
        {
            use enet_dtls::enet::TokioEnetHost;
            use enet_dtls::enet_proto::Transmit;
            let rt = crate::common::runtime();
            let (end, other) = MemorySocket::pair(a, b);
            let due = Instant::now() + Duration::from_millis(30);
            rt.block_on(async {
                let mut host =
                    TokioEnetHost::with_socket(make(end, due), HostConfig::default()).unwrap();
                assert!(host.wait(Some(HANG_GUARD)).await.unwrap());
                assert!(Instant::now() >= due);
                host.service(Duration::ZERO).await.unwrap();
                assert!(!host.wait(Some(Duration::from_millis(5))).await.unwrap());
                // A datagram from the other end makes it ready.
                let mut other = other;
                other
                    .send_batch(
                        Instant::now(),
                        &[Transmit {
                            destination: a,
                            data: b"x".to_vec(),
                        }],
                    )
                    .unwrap();
                let ready = tokio::time::timeout(HANG_GUARD, host.wait(None)).await;
                assert!(ready.expect("hung").unwrap());
            });
        }
    }
}

/// An idle host sleeps instead of polling its socket: over a 200 ms service call (plus one
/// stray datagram), both drivers make a handful of receive system calls, not thousands.
#[test]
fn idle_hosts_sleep_instead_of_spinning() {
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut host = EnetHost::bind("127.0.0.1:0", HostConfig::default()).unwrap();
    junk.send_to(b"stray", host.local_addr().unwrap()).unwrap();
    assert!(host.service(Duration::from_millis(200)).unwrap().is_none());
    let calls = host.socket().stats().recv_calls;
    assert!(
        (1..=8).contains(&calls),
        "blocking driver: {calls} receive calls"
    );

    #[cfg(feature = "tokio")]
    {
        use enet_dtls::enet::TokioEnetHost;
        let rt = crate::common::runtime();
        rt.block_on(async {
            let mut host = TokioEnetHost::bind("127.0.0.1:0", HostConfig::default())
                .await
                .unwrap();
            // One round first, so that the socket is registered with the reactor.
            assert!(host.service(Duration::ZERO).await.unwrap().is_none());
            junk.send_to(b"stray", host.local_addr().unwrap()).unwrap();
            assert!(host
                .service(Duration::from_millis(200))
                .await
                .unwrap()
                .is_none());
            let stats = host.socket_stats();
            assert!(
                (1..=8).contains(&stats.recv_calls) && stats.datagrams_received == 1,
                "tokio driver: {stats:?}"
            );
        });
    }
}
