//! [`RpcPeer`] and `TokioRpcPeer` on loopback, plaintext ENet and ENet over DTLS: a chat room
//! with a server and two clients (RPCs to the server and from it to everyone, a client calling
//! another through the relay, rset, unreliable calls, raw packets, a forbidden call refused,
//! sender ids, disconnect events).
//!
//! Real Godot is the peer in `rpc_godot.rs` (plaintext only: Debian's Godot ignores
//! `use_dtls`); here both ends are ours, so DTLS is covered too.

use std::time::{Duration, Instant};

use enet_dtls::godot_proto::{ApiEvent, MultiplayerApi, RefusalReason, RpcMode, TransferMode};
use enet_dtls::keys::{Certificate, CertificateParams, KeyType, PrivateKey};
use enet_dtls::multiplayer::{ClientBuilder, MultiplayerPeer, ServerBuilder};
use enet_dtls::rpc::RpcPeer;

/// Stops a hung test; never an expectation on speed.
const DEADLINE: Duration = Duration::from_secs(30);

/// What a room member saw: chat lines and whispers as "<sender>: <text>".
#[derive(Debug, Default)]
struct Chat {
    lines: Vec<String>,
    whispers: Vec<String>,
}

/// An API whose `Chat.show(line)` (remotesync) keeps the line.
fn showing_api() -> MultiplayerApi<Chat> {
    let mut api = MultiplayerApi::with_state(Chat::default());
    api.register(
        "Chat",
        "show",
        RpcMode::RemoteSync,
        |ctx, (line,): (String,)| {
            ctx.state_mut().lines.push(line);
        },
    );
    api
}

fn server_api() -> MultiplayerApi<Chat> {
    let mut api = showing_api();
    // Any client may say something; the server shows it to everyone (itself too: remotesync).
    api.register("Chat", "say", RpcMode::Remote, |ctx, (text,): (String,)| {
        let line = format!("{}: {text}", ctx.sender());
        ctx.rpc("Chat", "show", (line,)).unwrap();
    });
    // Puppet: runs only where this node is not the master, called by the master. The server
    // is the master, so a client calling it on the server is refused.
    api.register("Chat", "kick", RpcMode::Puppet, |_ctx, (_id,): (i32,)| {});
    api.register_property("Chat", "topic", RpcMode::Remote, "none");
    api
}

fn client_api() -> MultiplayerApi<Chat> {
    let mut api = showing_api();
    api.register(
        "Chat",
        "whisper",
        RpcMode::Remote,
        |ctx, (text,): (String,)| {
            let line = format!("{}: {text}", ctx.sender());
            ctx.state_mut().whispers.push(line);
        },
    );
    api.register_event("Chat", "ping", RpcMode::Remote);
    api
}

fn identity() -> (PrivateKey, Certificate) {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let cert = Certificate::self_signed(&key, &CertificateParams::new("localhost")).unwrap();
    (key, cert)
}

fn server_builder(dtls: Option<&(PrivateKey, Certificate)>) -> ServerBuilder {
    let b = MultiplayerPeer::server(0).bind_address("127.0.0.1".parse().unwrap());
    match dtls {
        Some((key, cert)) => b
            .use_dtls(true)
            .dtls_key(key.clone())
            .dtls_certificate(cert.clone()),
        None => b,
    }
}

fn client_builder(port: u16, dtls: Option<&(PrivateKey, Certificate)>) -> ClientBuilder {
    let b = MultiplayerPeer::client("127.0.0.1", port);
    match dtls {
        Some((_, cert)) => b
            .use_dtls(true)
            .dtls_certificate(cert.clone())
            .dtls_hostname("localhost"),
        None => b,
    }
}

/// Polls every peer (collecting events per peer) until `done` holds.
fn run(
    peers: &mut [&mut RpcPeer<Chat>],
    events: &mut [Vec<ApiEvent>],
    mut done: impl FnMut(&[&mut RpcPeer<Chat>], &[Vec<ApiEvent>]) -> bool,
) {
    let give_up = Instant::now() + DEADLINE;
    loop {
        for (i, p) in peers.iter_mut().enumerate() {
            p.poll().unwrap();
            while let Some(e) = p.next_event() {
                events[i].push(e);
            }
        }
        if done(peers, events) {
            return;
        }
        if Instant::now() >= give_up {
            let stats: Vec<_> = peers
                .iter()
                .map(|p| (p.api().stats(), p.stats(), format!("{:?}", p.api().state())))
                .collect();
            panic!("timed out: {events:#?}\n{stats:#?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn chat_room_polled(dtls: bool) {
    let id = dtls.then(identity);
    let mut server = RpcPeer::new(server_builder(id.as_ref()).create().unwrap(), server_api());
    let port = server.peer().local_addr().unwrap().port();
    let mut a = RpcPeer::new(
        client_builder(port, id.as_ref()).create().unwrap(),
        client_api(),
    );
    let mut b = RpcPeer::new(
        client_builder(port, id.as_ref()).create().unwrap(),
        client_api(),
    );
    let (ida, idb) = (a.unique_id(), b.unique_id());
    let mut ev = vec![Vec::new(), Vec::new(), Vec::new()];
    // Everyone connected and knows everyone.
    run(&mut [&mut server, &mut a, &mut b], &mut ev, |p, _| {
        p[1].api().peers().count() == 2 && p[2].api().peers().count() == 2
    });
    assert!(ev[1].contains(&ApiEvent::ConnectedToServer));
    assert!(ev[1].contains(&ApiEvent::PeerConnected(idb)));
    assert!(ev[0].contains(&ApiEvent::PeerConnected(ida)));

    a.rpc_id(1, "Chat", "say", ("hello",)).unwrap();
    b.rpc_id(ida, "Chat", "whisper", ("psst",)).unwrap();
    a.rset_id(1, "Chat", "topic", "rust").unwrap();
    a.rpc_id(1, "Chat", "kick", (idb,)).unwrap(); // puppet on the server (the master): refused
    b.rpc_unreliable_id(ida, "Chat", "ping", (7,)).unwrap();
    b.send_bytes(b"raw", 0, TransferMode::Reliable).unwrap();
    let line = format!("{ida}: hello");
    run(&mut [&mut server, &mut a, &mut b], &mut ev, |p, ev| {
        p.iter().all(|p| p.api().state().lines.contains(&line))
            && !p[1].api().state().whispers.is_empty()
            && ev[0].iter().any(|e| matches!(e, ApiEvent::Refused { .. }))
            && ev[1]
                .iter()
                .any(|e| matches!(e, ApiEvent::PeerPacket { .. }))
            && ev[0]
                .iter()
                .any(|e| matches!(e, ApiEvent::PeerPacket { .. }))
    });
    assert_eq!(a.api().state().whispers, [format!("{idb}: psst")]);
    assert_eq!(server.api().property("Chat", "topic"), Some(&"rust".into()));
    assert!(ev[0].contains(&ApiEvent::PropertySet {
        from: ida,
        path: "Chat".into(),
        property: "topic".into()
    }));
    let refused: Vec<_> = ev[0]
        .iter()
        .filter_map(|e| match e {
            ApiEvent::Refused {
                from, name, reason, ..
            } => Some((*from, name.clone(), reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        refused,
        [(
            ida,
            Some("kick".into()),
            RefusalReason::NotAllowed {
                mode: RpcMode::Puppet,
                master: 1
            }
        )]
    );
    // Raw packets reach everyone but the sender, with the sender's id.
    for e in [&ev[0], &ev[1]] {
        assert!(e.contains(&ApiEvent::PeerPacket {
            from: idb,
            data: b"raw".to_vec()
        }));
    }
    assert!(!ev[2]
        .iter()
        .any(|e| matches!(e, ApiEvent::PeerPacket { .. })));
    // The unreliable ping is best effort; on loopback it arrives, as an event.
    let pinged = ev[1].iter().any(
        |e| matches!(e, ApiEvent::Call { from, method, .. } if *from == idb && method == "ping"),
    );
    assert!(pinged, "{:#?}", ev[1]);

    // B leaves: the server and A see it.
    b.close().unwrap();
    drop(b);
    run(&mut [&mut server, &mut a], &mut ev[..2], |_, ev| {
        ev[0].contains(&ApiEvent::PeerDisconnected(idb))
            && ev[1].contains(&ApiEvent::PeerDisconnected(idb))
    });
    // The server leaves: A sees server_disconnected.
    server.close().unwrap();
    drop(server);
    let give_up = Instant::now() + DEADLINE;
    loop {
        if let Some(e) = a.service(Duration::from_millis(10)).unwrap() {
            if e == ApiEvent::ServerDisconnected {
                break;
            }
        }
        assert!(Instant::now() < give_up, "no server_disconnected");
    }
    assert!(!a.api().is_connected());
    assert!(a.rpc_id(1, "Chat", "say", ("gone",)).is_err());
    assert_eq!(a.stats().send_failures, 0);
}

#[test]
fn chat_room_plaintext() {
    chat_room_polled(false);
}

#[test]
fn chat_room_over_dtls() {
    chat_room_polled(true);
}

#[test]
fn connection_failure_is_an_event_with_its_cause() {
    // Nothing listens on this port (bound and released).
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let peer = MultiplayerPeer::client("127.0.0.1", port)
        .peer_timeout(2, Duration::from_millis(100), Duration::from_millis(300))
        .create()
        .unwrap();
    let mut c = RpcPeer::new(peer, client_api());
    let give_up = Instant::now() + DEADLINE;
    loop {
        if let Some(e) = c.service(Duration::from_millis(20)).unwrap() {
            assert_eq!(e, ApiEvent::ConnectionFailed);
            break;
        }
        assert!(Instant::now() < give_up, "no connection_failed");
    }
    assert!(c.connection_failure().is_some());
}

#[cfg(feature = "tokio")]
#[test]
fn chat_room_on_tokio_over_dtls() {
    chat_room_tokio(true);
}

#[cfg(feature = "tokio")]
#[test]
fn chat_room_on_tokio_plaintext() {
    chat_room_tokio(false);
}

#[cfg(feature = "tokio")]
fn chat_room_tokio(dtls: bool) {
    use enet_dtls::rpc::TokioRpcPeer;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let id = dtls.then(identity);
        let peer = server_builder(id.as_ref()).create_tokio().await.unwrap();
        let port = peer.local_addr().unwrap().port();
        let mut server = TokioRpcPeer::new(peer, server_api());
        // The server runs in its own task until both clients have come and gone. Handlers
        // run inside service() and make no events, so everyone polls with a timeout.
        let server_task = tokio::spawn(async move {
            let mut seen = 0;
            loop {
                match server.service(Duration::from_millis(20)).await.unwrap() {
                    Some(ApiEvent::PeerConnected(_)) => seen += 1,
                    Some(ApiEvent::PeerDisconnected(_)) if server.api().peers().count() == 0 => {
                        break;
                    }
                    _ => {}
                }
            }
            assert_eq!(seen, 2);
            server.api().state().lines.clone()
        });
        let mut clients = Vec::new();
        for _ in 0..2 {
            let peer = client_builder(port, id.as_ref())
                .create_tokio()
                .await
                .unwrap();
            clients.push(TokioRpcPeer::new(peer, client_api()));
        }
        let tasks: Vec<_> = clients
            .into_iter()
            .map(|mut c| {
                tokio::spawn(async move {
                    let mut said = false;
                    // Say hi once both are in, then wait for both lines.
                    while c.api().state().lines.len() < 2 {
                        c.service(Duration::from_millis(20)).await.unwrap();
                        if !said && c.api().is_connected() && c.api().peers().count() == 2 {
                            c.rpc_id(1, "Chat", "say", ("hi",)).unwrap();
                            said = true;
                        }
                    }
                    // Our own line has reached the server; leave.
                    c.close().unwrap();
                    (c.unique_id(), c.api().state().lines.clone())
                })
            })
            .collect();
        let mut ids = Vec::new();
        let mut seen = Vec::new();
        for t in tasks {
            let (id, lines) = tokio::time::timeout(DEADLINE, t).await.unwrap().unwrap();
            ids.push(id);
            seen.push(lines);
        }
        let server_lines = tokio::time::timeout(DEADLINE, server_task)
            .await
            .unwrap()
            .unwrap();
        let mut expected: Vec<String> = ids.iter().map(|id| format!("{id}: hi")).collect();
        expected.sort();
        for mut lines in seen.into_iter().chain([server_lines]) {
            lines.sort();
            assert_eq!(lines, expected);
        }
    });
}

/// One turn of the garbage test: polls the bad client, the good one and the server (keeping the
/// server's events); returns whether the bad client saw its connection succeed.
fn step(
    bad: &mut MultiplayerPeer,
    good: &mut RpcPeer<Chat>,
    server: &mut RpcPeer<Chat>,
    server_events: &mut Vec<ApiEvent>,
) -> bool {
    let mut connected = false;
    bad.poll().unwrap();
    while let Some(e) = bad.next_event() {
        connected |= e == enet_dtls::multiplayer::MultiplayerEvent::ConnectionSucceeded;
    }
    good.poll().unwrap();
    while good.next_event().is_some() {}
    server.poll().unwrap();
    server_events.extend(std::iter::from_fn(|| server.next_event()));
    std::thread::sleep(Duration::from_millis(1));
    connected
}

/// A client that sends garbage instead of MultiplayerAPI packets: every packet is refused
/// (visible as events), nothing runs, and a good client in the room is served as before.
#[test]
fn garbage_from_a_peer_is_refused_and_the_room_goes_on() {
    use enet_dtls::multiplayer::{Target, TransferMode as Mode};

    let mut server = RpcPeer::new(server_builder(None).create().unwrap(), server_api());
    let port = server.peer().local_addr().unwrap().port();
    let mut good = RpcPeer::new(client_builder(port, None).create().unwrap(), client_api());
    let mut bad = MultiplayerPeer::client("127.0.0.1", port).create().unwrap();
    let give_up = Instant::now() + DEADLINE;
    let mut bad_connected = false;
    let mut server_events = Vec::new();
    while !(bad_connected && good.api().is_connected()) {
        assert!(Instant::now() < give_up, "no connection");
        bad_connected |= step(&mut bad, &mut good, &mut server, &mut server_events);
    }
    // Deterministic garbage: short packets, unknown commands, calls to unknown path ids,
    // inline paths past the end, arguments with hostile lengths.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut sent = 0;
    for i in 0..300 {
        let len = (next() % 48) as usize + 1;
        let mut p: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        p[0] = (i % 6) as u8; // every command, and one unknown
        bad.send(Target::Peer(1), Mode::Reliable, None, &p).unwrap();
        sent += 1;
    }
    good.rpc_id(1, "Chat", "say", ("still here",)).unwrap();
    let line = format!("{}: still here", good.unique_id());
    while !good.api().state().lines.contains(&line) {
        assert!(Instant::now() < give_up, "the good client was not served");
        step(&mut bad, &mut good, &mut server, &mut server_events);
    }
    let stats = server.api().stats();
    // Only the good client's call ran; garbage never did (a RAW packet is delivered as an
    // event, which is what Godot does with it too).
    assert_eq!(stats.calls_executed, 1, "{stats:?}");
    let raw = server_events
        .iter()
        .filter(|e| matches!(e, ApiEvent::PeerPacket { .. }))
        .count() as u64;
    let refused = server_events
        .iter()
        .filter(|e| matches!(e, ApiEvent::Refused { .. }))
        .count() as u64;
    // SIMPLIFY_PATH garbage is stored and answered (as Godot does); everything else that is
    // not RAW is refused.
    assert!(
        refused + raw + stats.paths_received >= sent - 5,
        "{stats:?} raw={raw}"
    );
    assert_eq!(stats.refused, refused);
    assert!(refused > 150, "{stats:?}");
}

/// `RpcPeer::defer_flushes`: the calls an application makes while flushes are deferred stay
/// queued, and leave together (one datagram to the client) when it turns them back on, in
/// their order.
#[test]
fn deferred_flushes_send_the_calls_together_in_order() {
    let mut server = RpcPeer::new(server_builder(None).create().unwrap(), server_api());
    let port = server.peer().local_addr().unwrap().port();
    let mut a = RpcPeer::new(client_builder(port, None).create().unwrap(), client_api());
    let ida = a.unique_id();
    let mut ev = vec![Vec::new(), Vec::new()];
    run(&mut [&mut server, &mut a], &mut ev, |p, _| {
        p[1].api().peers().count() == 1 && p[0].api().peers().count() == 1
    });
    let sent = |s: &RpcPeer<Chat>| s.peer().enet().host().stats().packets_sent;
    let before = sent(&server);
    server.defer_flushes(true).unwrap();
    let lines: Vec<String> = (0..5).map(|i| format!("line {i}")).collect();
    for line in &lines {
        server
            .rpc_id(ida, "Chat", "show", (line.as_str(),))
            .unwrap();
    }
    assert_eq!(sent(&server), before, "nothing left while deferred");
    server.defer_flushes(false).unwrap();
    assert_eq!(
        sent(&server),
        before + 1,
        "the five calls left in one datagram"
    );
    run(&mut [&mut server, &mut a], &mut ev, |p, _| {
        p[1].api().state().lines.len() == lines.len()
    });
    assert_eq!(a.api().state().lines, lines);
}
