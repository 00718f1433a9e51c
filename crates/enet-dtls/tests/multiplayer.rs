//! The multiplayer peer (Godot's `NetworkedMultiplayerENet`) end to end on loopback: our
//! server and our clients over real UDP sockets, with the polled API.

mod common;

use std::time::{Duration, Instant};

use enet_dtls::enet::EnetHost;
use enet_dtls::multiplayer::{
    CompressionMode, ConnectionFailure, ConnectionStatus, MultiplayerError, MultiplayerEvent,
    MultiplayerPeer, ReceivedPacket, Target, TransferMode, SERVER_ID,
};
use enet_dtls::{Event, HostConfig, Packet};

use common::packets;

const STEP: Duration = Duration::from_secs(10);

/// Polls every peer until `done` says so; panics after [`STEP`] (only to stop a hung test).
fn run(
    peers: &mut [&mut MultiplayerPeer],
    done: impl FnMut(&[Vec<MultiplayerEvent>]) -> bool,
    log: &mut Vec<Vec<MultiplayerEvent>>,
) {
    common::run_until(peers, log, STEP, done);
}

fn server(mode: CompressionMode) -> MultiplayerPeer {
    common::loopback_server()
        .compression(mode)
        .max_clients(4)
        .create()
        .expect("server")
}

fn client(server: &MultiplayerPeer, mode: CompressionMode) -> MultiplayerPeer {
    let port = server.local_addr().unwrap().port();
    MultiplayerPeer::client("127.0.0.1", port)
        .compression(mode)
        .create()
        .expect("client")
}

fn has(events: &[MultiplayerEvent], e: &MultiplayerEvent) -> bool {
    events.contains(e)
}

/// Two clients join; each sees the server and the other client; packets in every transfer
/// mode reach the server with the right mode and channel; the server relays broadcasts,
/// targeted and all-but-one packets between the clients; a leaving client is announced.
#[test]
fn server_and_two_clients_in_every_compression_mode() {
    for mode in CompressionMode::ALL {
        let mut s = server(mode);
        let mut a = client(&s, mode);
        let mut b = client(&s, mode);
        let (ida, idb) = (a.unique_id(), b.unique_id());
        assert_ne!(ida, idb);
        let mut log = Vec::new();
        run(
            &mut [&mut s, &mut a, &mut b],
            |l| {
                has(&l[0], &MultiplayerEvent::PeerConnected(ida))
                    && has(&l[0], &MultiplayerEvent::PeerConnected(idb))
                    && has(&l[1], &MultiplayerEvent::PeerConnected(idb))
                    && has(&l[2], &MultiplayerEvent::PeerConnected(ida))
            },
            &mut log,
        );
        for (i, _) in [ida, idb].iter().enumerate() {
            let events = &log[i + 1];
            let pos = |e: &MultiplayerEvent| events.iter().position(|x| x == e);
            let joined = pos(&MultiplayerEvent::PeerConnected(SERVER_ID)).expect("server seen");
            let ok = pos(&MultiplayerEvent::ConnectionSucceeded).expect("connected");
            assert!(
                joined < ok,
                "{mode:?}: Godot's order is peer_connected(1), then connection_succeeded"
            );
        }
        assert_eq!(a.connection_status(), ConnectionStatus::Connected);
        assert_eq!(s.peer_ids(), {
            let mut v = vec![ida, idb];
            v.sort();
            v
        });
        assert_eq!(
            s.peer_address(ida).unwrap(),
            a.local_addr()
                .unwrap()
                .to_string()
                .replace("0.0.0.0", "127.0.0.1")
                .parse()
                .unwrap()
        );

        // Every transfer mode from a client to the server.
        for (n, tm) in TransferMode::ALL.into_iter().enumerate() {
            a.send(
                Target::Peer(SERVER_ID),
                tm,
                None,
                format!("mode{n}").as_bytes(),
            )
            .unwrap();
        }
        // Custom channel.
        a.send(
            Target::Peer(SERVER_ID),
            TransferMode::Reliable,
            Some(2),
            b"on2",
        )
        .unwrap();
        // Relay: broadcast, one peer, all but the server.
        a.send(Target::Broadcast, TransferMode::Reliable, None, b"to all")
            .unwrap();
        a.send(Target::Peer(idb), TransferMode::Reliable, None, b"to b")
            .unwrap();
        a.send(
            Target::AllExcept(SERVER_ID),
            TransferMode::Reliable,
            None,
            b"not server",
        )
        .unwrap();
        // The server to one client and to everyone.
        s.send(
            Target::Peer(idb),
            TransferMode::Reliable,
            None,
            b"from server",
        )
        .unwrap();
        s.set_target_peer(Target::Broadcast);
        s.set_transfer_mode(TransferMode::UnreliableOrdered);
        s.put_packet(b"server all").unwrap();

        run(
            &mut [&mut s, &mut a, &mut b],
            |l| {
                packets(&l[0]).len() >= 5 && packets(&l[2]).len() >= 5 && !packets(&l[1]).is_empty()
            },
            &mut log,
        );
        let at_server: Vec<(u32, u8, TransferMode, &[u8])> = packets(&log[0])
            .iter()
            .map(|p| (p.from, p.channel, p.mode, &p.data[..]))
            .collect();
        assert_eq!(
            at_server,
            vec![
                (ida, 2, TransferMode::Unreliable, &b"mode0"[..]),
                (ida, 2, TransferMode::UnreliableOrdered, b"mode1"),
                (ida, 1, TransferMode::Reliable, b"mode2"),
                (ida, 2, TransferMode::Reliable, b"on2"),
                (ida, 1, TransferMode::Reliable, b"to all"),
            ],
            "{mode:?}"
        );
        let at_b: Vec<(u32, &[u8])> = packets(&log[2])
            .iter()
            .map(|p| (p.from, &p.data[..]))
            .collect();
        for expected in [
            (ida, &b"to all"[..]),
            (ida, b"to b"),
            (ida, b"not server"),
            (SERVER_ID, b"from server"),
            (SERVER_ID, b"server all"),
        ] {
            assert!(at_b.contains(&expected), "{mode:?}: b got {at_b:?}");
        }
        let at_a: Vec<&[u8]> = packets(&log[1]).iter().map(|p| &p.data[..]).collect();
        assert_eq!(
            at_a,
            vec![&b"server all"[..]],
            "{mode:?}: a gets nothing of its own back"
        );
        assert!(s.framing_stats().relayed >= 3);
        let stats = s.peer_stats(ida).unwrap();
        assert!(stats.bytes_received > 0 && stats.packets_received > 0);

        // b leaves: the server and a see it.
        drop(b);
        run(
            &mut [&mut s, &mut a],
            |l| {
                has(&l[0], &MultiplayerEvent::PeerDisconnected(idb))
                    && has(&l[1], &MultiplayerEvent::PeerDisconnected(idb))
            },
            &mut log,
        );
        assert_eq!(s.peer_ids(), vec![ida]);
    }
}

/// Ids below 2, negative as an i32, or taken are refused; a spoofed source is dropped and
/// never relayed; a valid client still gets in and through.
#[test]
fn bad_ids_and_spoofed_sources_are_refused() {
    let mut s = server(CompressionMode::None);
    let mut good = client(&s, CompressionMode::None);
    let mut log = Vec::new();
    let gid = good.unique_id();
    run(
        &mut [&mut s, &mut good],
        |l| {
            l[1].contains(&MultiplayerEvent::ConnectionSucceeded)
                && l[0].contains(&MultiplayerEvent::PeerConnected(gid))
        },
        &mut log,
    );
    let addr = s.local_addr().unwrap();

    // Raw ENet clients with bad ids.
    let mut raws: Vec<EnetHost> = Vec::new();
    for id in [0u32, 1, 0x8000_0000, gid] {
        let mut h = EnetHost::bind("127.0.0.1:0", HostConfig::default()).unwrap();
        h.connect(addr, 3, id).unwrap();
        raws.push(h);
    }
    let give_up = Instant::now() + STEP;
    while s.framing_stats().refused_connections < 4 {
        assert!(
            Instant::now() < give_up,
            "refusals: {:?}",
            s.framing_stats()
        );
        for h in &mut raws {
            let _ = h.service(Duration::ZERO).unwrap();
        }
        s.poll().unwrap();
        while let Some(e) = s.next_event() {
            assert!(!matches!(e, MultiplayerEvent::PeerConnected(_)), "{e:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(s.peer_ids(), vec![gid]);

    // A raw client with a valid id that claims to be `good`.
    let mut spoofer = EnetHost::bind("127.0.0.1:0", HostConfig::default()).unwrap();
    let sp = spoofer.connect(addr, 3, 777).unwrap();
    let give_up = Instant::now() + STEP;
    let mut log = vec![Vec::new(), Vec::new()];
    loop {
        assert!(Instant::now() < give_up);
        if let Some(Event::Connect { .. }) = spoofer.service(Duration::ZERO).unwrap() {
            break;
        }
        s.poll().unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let header = |src: u32, target: i32, body: &[u8]| {
        let mut v = src.to_le_bytes().to_vec();
        v.extend_from_slice(&target.to_le_bytes());
        v.extend_from_slice(body);
        v
    };
    spoofer
        .send(sp, 1, Packet::reliable(header(gid, 0, b"spoofed")))
        .unwrap();
    spoofer
        .send(sp, 1, Packet::reliable(header(777, 0, b"honest")))
        .unwrap();
    spoofer
        .send(sp, 1, Packet::reliable(vec![1, 2, 3]))
        .unwrap();
    spoofer.flush().unwrap();
    let give_up = Instant::now() + STEP;
    while !packets(&log[1]).iter().any(|p| p.data == b"honest") {
        assert!(Instant::now() < give_up, "{log:?}");
        let _ = spoofer.service(Duration::ZERO).unwrap();
        for (i, p) in [&mut s, &mut good].into_iter().enumerate() {
            p.poll().unwrap();
            while let Some(e) = p.next_event() {
                log[i].push(e);
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let all: Vec<&ReceivedPacket> = packets(&log[0])
        .into_iter()
        .chain(packets(&log[1]))
        .collect();
    assert!(all.iter().all(|p| p.data != b"spoofed"), "{all:?}");
    assert_eq!(s.framing_stats().dropped_spoofed, 1);
    assert_eq!(s.framing_stats().dropped_malformed, 1);
    assert!(packets(&log[1])
        .iter()
        .any(|p| p.from == 777 && p.data == b"honest"));
}

/// refuse_new_connections drops CONNECTs at the ENet level (no peer slot, no reply); when it
/// is turned off, a client gets in. max_clients holds the same way.
#[test]
fn refused_and_full_servers_take_no_peer() {
    let mut s = common::loopback_server()
        .refuse_new_connections(true)
        .max_clients(1)
        .create()
        .unwrap();
    let mut c = client(&s, CompressionMode::None);
    let until = Instant::now() + Duration::from_millis(600);
    while Instant::now() < until {
        s.poll().unwrap();
        c.poll().unwrap();
        assert_eq!(s.next_event(), None);
        assert_eq!(c.next_event(), None);
        std::thread::sleep(Duration::from_millis(2));
    }
    let host = s.enet().host();
    assert!(
        host.stats().datagrams_dropped >= 2,
        "the CONNECT and its retry were dropped: {:?}",
        host.stats()
    );
    assert_eq!(host.stats().connected_peers, 0);
    assert!(host
        .peers()
        .all(|p| p.state() == enet_dtls::PeerState::Disconnected));

    s.set_refuse_new_connections(false);
    let mut log = Vec::new();
    run(
        &mut [&mut s, &mut c],
        |l| l[1].contains(&MultiplayerEvent::ConnectionSucceeded),
        &mut log,
    );

    // Full (max_clients 1): a second client is not answered.
    let mut extra = client(&s, CompressionMode::None);
    let until = Instant::now() + Duration::from_millis(600);
    while Instant::now() < until {
        s.poll().unwrap();
        extra.poll().unwrap();
        assert_eq!(extra.next_event(), None);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(s.peer_ids(), vec![c.unique_id()]);
    assert_eq!(s.enet().host().stats().connected_peers, 1);
}

/// A client whose server never answers reports ConnectionFailed(Timeout); short ENet
/// timeouts make it quick. Bad arguments are errors that say what is wrong.
#[test]
fn connection_failure_and_bad_arguments() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut c = MultiplayerPeer::client("127.0.0.1", port)
        .peer_timeout(4, Duration::from_millis(500), Duration::from_secs(2))
        .create()
        .unwrap();
    assert_eq!(c.connection_status(), ConnectionStatus::Connecting);
    assert!(matches!(
        c.send(Target::Peer(1), TransferMode::Reliable, None, b"x"),
        Err(MultiplayerError::NotConnected)
    ));
    // ENet's CONNECT gives up after its retries (here after 2 s without an answer).
    let event = c
        .service(Duration::from_secs(60))
        .unwrap()
        .expect("no failure reported");
    assert_eq!(
        event,
        MultiplayerEvent::ConnectionFailed(ConnectionFailure::Timeout)
    );
    assert_eq!(c.connection_status(), ConnectionStatus::Disconnected);

    let e = MultiplayerPeer::server(0)
        .channel_count(2)
        .create()
        .unwrap_err();
    assert!(e.to_string().contains("at least 3"), "{e}");
    let e = MultiplayerPeer::server(0)
        .max_clients(0)
        .create()
        .unwrap_err();
    assert!(e.to_string().contains("1..=4095"), "{e}");
    let e = MultiplayerPeer::client("127.0.0.1", 0)
        .create()
        .unwrap_err();
    assert!(e.to_string().contains("port"), "{e}");
    let e = MultiplayerPeer::client("127.0.0.1", 9)
        .unique_id(1)
        .create()
        .unwrap_err();
    assert!(e.to_string().contains("2..=2147483647"), "{e}");
    let e = MultiplayerPeer::server(0)
        .transfer_channel(Some(0))
        .create()
        .unwrap_err();
    assert!(
        matches!(e, MultiplayerError::InvalidChannel { channel: 0, .. }),
        "{e}"
    );
}

/// disconnect_peer(now) announces the leave at once; disconnect_peer(later) after the
/// queued packets; close() (and Drop) tells the clients.
#[test]
fn disconnect_peer_now_and_later_and_close() {
    let mut s = server(CompressionMode::None);
    let mut a = client(&s, CompressionMode::None);
    let mut b = client(&s, CompressionMode::None);
    let (ida, idb) = (a.unique_id(), b.unique_id());
    let mut log = Vec::new();
    run(
        &mut [&mut s, &mut a, &mut b],
        |l| {
            has(&l[1], &MultiplayerEvent::PeerConnected(idb))
                && has(&l[2], &MultiplayerEvent::PeerConnected(ida))
        },
        &mut log,
    );

    s.disconnect_peer(ida, true).unwrap();
    assert_eq!(
        s.next_event(),
        Some(MultiplayerEvent::PeerDisconnected(ida))
    );
    run(
        &mut [&mut s, &mut a, &mut b],
        |l| {
            has(&l[1], &MultiplayerEvent::ServerDisconnected)
                && has(&l[2], &MultiplayerEvent::PeerDisconnected(ida))
        },
        &mut log,
    );
    assert!(matches!(
        s.disconnect_peer(ida, true),
        Err(MultiplayerError::UnknownPeer(_))
    ));

    s.send(
        Target::Peer(idb),
        TransferMode::Reliable,
        None,
        b"last words",
    )
    .unwrap();
    s.disconnect_peer(idb, false).unwrap();
    run(
        &mut [&mut s, &mut a, &mut b],
        |l| {
            has(&l[0], &MultiplayerEvent::PeerDisconnected(idb))
                && has(&l[2], &MultiplayerEvent::ServerDisconnected)
        },
        &mut log,
    );
    let got: Vec<&[u8]> = packets(&log[2]).iter().map(|p| &p.data[..]).collect();
    assert_eq!(got, vec![&b"last words"[..]]);

    let mut c = client(&s, CompressionMode::None);
    let idc = c.unique_id();
    let mut log = Vec::new();
    run(
        &mut [&mut s, &mut c],
        |l| {
            has(&l[1], &MultiplayerEvent::ConnectionSucceeded)
                && has(&l[0], &MultiplayerEvent::PeerConnected(idc))
        },
        &mut log,
    );
    assert!(matches!(
        c.disconnect_peer(1, true),
        Err(MultiplayerError::NotServer)
    ));
    drop(s);
    let give_up = Instant::now() + STEP;
    loop {
        assert!(Instant::now() < give_up);
        if c.service(Duration::from_millis(20)).unwrap()
            == Some(MultiplayerEvent::ServerDisconnected)
        {
            break;
        }
    }
    assert_eq!(c.connection_status(), ConnectionStatus::Disconnected);
}

/// Per-peer statistics count what went through; a per-peer timeout drops a client that
/// stops answering.
#[test]
fn peer_statistics_and_timeouts() {
    let mut s = server(CompressionMode::None);
    let mut a = client(&s, CompressionMode::None);
    let ida = a.unique_id();
    let mut log = Vec::new();
    run(
        &mut [&mut s, &mut a],
        |l| {
            has(&l[0], &MultiplayerEvent::PeerConnected(ida))
                && has(&l[1], &MultiplayerEvent::ConnectionSucceeded)
        },
        &mut log,
    );
    for i in 0..20u8 {
        a.send(
            Target::Peer(SERVER_ID),
            TransferMode::Reliable,
            None,
            &[i; 100],
        )
        .unwrap();
    }
    run(
        &mut [&mut s, &mut a],
        |l| packets(&l[0]).len() == 20,
        &mut log,
    );
    let on_server = s.peer_stats(ida).unwrap();
    let on_client = a.peer_stats(SERVER_ID).unwrap();
    assert!(on_server.bytes_received >= 20 * 108, "{on_server:?}");
    assert!(on_client.bytes_sent >= 20 * 108, "{on_client:?}");
    assert!(on_client.packets_sent >= 20, "{on_client:?}");
    assert_eq!(on_client.packets_lost, 0);
    assert!(on_client.rtt < Duration::from_secs(1), "{on_client:?}");
    assert!(matches!(
        s.peer_stats(12345),
        Err(MultiplayerError::UnknownPeer(12345))
    ));

    // The client stops servicing; with a 1 s limit the server drops it soon.
    s.set_peer_timeout(ida, 4, Duration::from_millis(200), Duration::from_secs(1))
        .unwrap();
    assert!(matches!(
        s.set_peer_timeout(ida, 4, Duration::from_secs(2), Duration::from_secs(1)),
        Err(MultiplayerError::InvalidArgument(_))
    ));
    s.send(
        Target::Peer(ida),
        TransferMode::Reliable,
        None,
        b"are you there",
    )
    .unwrap();
    let give_up = Instant::now() + STEP;
    loop {
        assert!(
            Instant::now() < give_up,
            "the silent client was never dropped"
        );
        if s.service(Duration::from_millis(20)).unwrap()
            == Some(MultiplayerEvent::PeerDisconnected(ida))
        {
            break;
        }
    }
    assert!(s.peer_ids().is_empty());
}

/// The async driver without DTLS: a tokio server task relays between two tokio clients;
/// a client closing is announced to the other.
#[cfg(feature = "tokio")]
#[test]
fn tokio_server_and_clients() {
    let rt = common::runtime();
    rt.block_on(async {
        let mut server = common::loopback_server()
            .compression(CompressionMode::Zstd)
            .create_tokio()
            .await
            .unwrap();
        let port = server.local_addr().unwrap().port();
        let server_task = tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let e = server.next_event().await.unwrap();
                let last = matches!(e, MultiplayerEvent::PeerDisconnected(_))
                    && server.peer_ids().is_empty();
                seen.push(e);
                if last {
                    return seen;
                }
            }
        });
        let client = || {
            MultiplayerPeer::client("127.0.0.1", port)
                .compression(CompressionMode::Zstd)
                .create_tokio()
        };
        let mut a = client().await.unwrap();
        let mut b = client().await.unwrap();
        let (ida, idb) = (a.unique_id(), b.unique_id());
        let deadline = Instant::now() + STEP;
        while !(a.peer_ids().contains(&idb) && b.peer_ids().contains(&ida)) {
            assert!(Instant::now() < deadline, "the clients never met");
            a.service(Duration::from_millis(5)).await.unwrap();
            b.service(Duration::from_millis(5)).await.unwrap();
        }
        for mode in TransferMode::ALL {
            a.send(
                Target::Peer(idb),
                mode,
                None,
                format!("{mode:?}").as_bytes(),
            )
            .unwrap();
        }
        a.send(Target::Broadcast, TransferMode::Reliable, None, b"all")
            .unwrap();
        let mut got = Vec::new();
        while got.len() < 4 {
            assert!(Instant::now() < deadline, "b got {got:?}");
            if let Some(MultiplayerEvent::Packet(p)) =
                b.service(Duration::from_millis(5)).await.unwrap()
            {
                got.push(p);
            }
            a.service(Duration::ZERO).await.unwrap();
        }
        assert!(got.iter().all(|p| p.from == ida));
        for mode in TransferMode::ALL {
            assert!(got
                .iter()
                .any(|p| p.mode == mode && p.data == format!("{mode:?}").as_bytes()));
        }
        a.close().unwrap();
        loop {
            assert!(Instant::now() < deadline, "b never saw a leave");
            if b.service(Duration::from_millis(20)).await.unwrap()
                == Some(MultiplayerEvent::PeerDisconnected(ida))
            {
                break;
            }
        }
        b.close().unwrap();
        let seen = tokio::time::timeout(STEP, server_task)
            .await
            .expect("server hung")
            .unwrap();
        assert!(seen.contains(&MultiplayerEvent::PeerConnected(ida)));
        assert!(seen.iter().any(
            |e| matches!(e, MultiplayerEvent::Packet(p) if p.from == ida && p.data == b"all")
        ));
    });
}

/// A server bound to `::` takes IPv6 and IPv4 clients (dual stack); each one's address is
/// reported in its own family.
#[test]
fn ipv6_and_ipv4_clients_on_a_dual_stack_server() {
    let mut s = MultiplayerPeer::server(0)
        .bind_address("::".parse().unwrap())
        .create()
        .unwrap();
    let port = s.local_addr().unwrap().port();
    let mut v6 = MultiplayerPeer::client("::1", port).create().unwrap();
    let mut v4 = MultiplayerPeer::client("127.0.0.1", port).create().unwrap();
    let (id6, id4) = (v6.unique_id(), v4.unique_id());
    let mut log = Vec::new();
    run(
        &mut [&mut s, &mut v6, &mut v4],
        |l| {
            has(&l[0], &MultiplayerEvent::PeerConnected(id6))
                && has(&l[0], &MultiplayerEvent::PeerConnected(id4))
                && has(&l[1], &MultiplayerEvent::PeerConnected(id4))
        },
        &mut log,
    );
    assert_eq!(
        s.peer_address(id6).unwrap().ip(),
        "::1".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(
        s.peer_address(id4).unwrap().ip(),
        "127.0.0.1".parse::<std::net::IpAddr>().unwrap()
    );
    v6.send(
        Target::Peer(id4),
        TransferMode::Reliable,
        None,
        b"across families",
    )
    .unwrap();
    run(
        &mut [&mut s, &mut v6, &mut v4],
        |l| {
            packets(&l[2])
                .iter()
                .any(|p| p.data == b"across families" && p.from == id6)
        },
        &mut log,
    );
}

/// With server relay off, clients learn of no other client and only reach the server; with
/// 5 channels, a transfer channel of 4 carries packets both ways.
#[test]
fn relay_off_and_custom_channels() {
    let mut s = common::loopback_server()
        .server_relay(false)
        .channel_count(5)
        .create()
        .unwrap();
    let port = s.local_addr().unwrap().port();
    let new_client = || {
        MultiplayerPeer::client("127.0.0.1", port)
            .channel_count(5)
            .transfer_channel(Some(4))
            .create()
            .unwrap()
    };
    let (mut a, mut b) = (new_client(), new_client());
    let (ida, idb) = (a.unique_id(), b.unique_id());
    let mut log = Vec::new();
    run(
        &mut [&mut s, &mut a, &mut b],
        |l| {
            has(&l[0], &MultiplayerEvent::PeerConnected(ida))
                && has(&l[0], &MultiplayerEvent::PeerConnected(idb))
                && has(&l[1], &MultiplayerEvent::ConnectionSucceeded)
                && has(&l[2], &MultiplayerEvent::ConnectionSucceeded)
        },
        &mut log,
    );
    a.set_target_peer(Target::Peer(idb));
    a.put_packet(b"to b").unwrap();
    a.set_target_peer(Target::Broadcast);
    a.put_packet(b"to all").unwrap();
    a.set_target_peer(Target::Peer(SERVER_ID));
    a.put_packet(b"to server").unwrap();
    s.send(Target::Peer(ida), TransferMode::Reliable, Some(4), b"on 4")
        .unwrap();
    run(
        &mut [&mut s, &mut a, &mut b],
        |l| packets(&l[0]).iter().any(|p| p.data == b"to server") && !packets(&l[1]).is_empty(),
        &mut log,
    );
    let at_server: Vec<(&[u8], u8)> = packets(&log[0])
        .iter()
        .map(|p| (&p.data[..], p.channel))
        .collect();
    assert_eq!(at_server, vec![(&b"to server"[..], 4)]);
    assert_eq!(s.framing_stats().dropped_bad_target, 2);
    assert_eq!(s.framing_stats().relayed, 0);
    assert_eq!(packets(&log[1])[0].channel, 4);
    // Nobody told the clients about each other.
    assert_eq!(a.peer_ids(), vec![SERVER_ID]);
    assert!(packets(&log[2]).is_empty());
    assert!(!has(&log[2], &MultiplayerEvent::PeerConnected(ida)));
    // Channel 5 does not exist, channel 0 is Godot's.
    for bad in [0u8, 5] {
        assert!(matches!(
            a.send(
                Target::Peer(SERVER_ID),
                TransferMode::Reliable,
                Some(bad),
                b"x"
            ),
            Err(MultiplayerError::InvalidChannel { .. })
        ));
    }
}

/// A closed server tells its clients, lets nobody in any more and sends nothing.
#[test]
fn a_closed_server_accepts_nobody() {
    let mut s = server(CompressionMode::None);
    let mut a = client(&s, CompressionMode::None);
    let ida = a.unique_id();
    let mut log = Vec::new();
    run(
        &mut [&mut s, &mut a],
        |l| has(&l[0], &MultiplayerEvent::PeerConnected(ida)),
        &mut log,
    );
    s.close().unwrap();
    assert_eq!(s.connection_status(), ConnectionStatus::Disconnected);
    assert!(s.peer_ids().is_empty());
    assert!(matches!(
        s.send(Target::Broadcast, TransferMode::Reliable, None, b"x"),
        Err(MultiplayerError::NotConnected)
    ));
    let mut late = MultiplayerPeer::client("127.0.0.1", s.local_addr().unwrap().port())
        .peer_timeout(4, Duration::from_millis(300), Duration::from_millis(1500))
        .create()
        .unwrap();
    run(
        &mut [&mut s, &mut a, &mut late],
        |l| {
            has(&l[1], &MultiplayerEvent::ServerDisconnected)
                && l[2]
                    .iter()
                    .any(|e| matches!(e, MultiplayerEvent::ConnectionFailed(_)))
        },
        &mut log,
    );
    assert!(
        !log[0]
            .iter()
            .any(|e| matches!(e, MultiplayerEvent::PeerConnected(id) if *id != ida)),
        "{:?}",
        log[0]
    );
}
