//! The multiplayer peer with `use_dtls` (ENet inside DTLS 1.2, [`DtlsEnetSocket`]) on
//! loopback: our server and our clients, polled and on tokio; verification on (pinned
//! certificate and hostname) and off; failures reported with their cause; many clients; a
//! plaintext client ignored by a DTLS server.
//!
//! [`DtlsEnetSocket`]: enet_dtls::enet::DtlsEnetSocket

mod common;

use std::time::{Duration, Instant};

use enet_dtls::keys::{Certificate, KeyType, PrivateKey};
use enet_dtls::multiplayer::{
    ClientBuilder, ConnectionFailure, ConnectionStatus, MultiplayerError, MultiplayerEvent,
    MultiplayerPeer, ServerBuilder, Target, TransferMode, SERVER_ID,
};
use enet_dtls::DtlsError;

use common::{expired_certificate, identity, packets};

/// Stops a hung test; never an expectation on speed.
const DEADLINE: Duration = Duration::from_secs(30);

/// A `use_dtls` server on loopback presenting `cert` (with `key`), to configure further.
fn dtls_server_builder(key: &PrivateKey, cert: &Certificate) -> ServerBuilder {
    common::loopback_server()
        .use_dtls(true)
        .dtls_key(key.clone())
        .dtls_certificate(cert.clone())
}

/// A `use_dtls` client of `127.0.0.1:port` that pins `cert` and expects the name `hostname`,
/// to configure further.
fn pinned_client_builder(port: u16, cert: &Certificate, hostname: &str) -> ClientBuilder {
    MultiplayerPeer::client("127.0.0.1", port)
        .use_dtls(true)
        .dtls_certificate(cert.clone())
        .dtls_hostname(hostname)
}

fn dtls_server(key: &PrivateKey, cert: &Certificate) -> MultiplayerPeer {
    dtls_server_builder(key, cert)
        .max_clients(32)
        .create()
        .expect("DTLS server")
}

/// A client that pins `cert` and expects the name `hostname`.
fn pinned_client(server: &MultiplayerPeer, cert: &Certificate, hostname: &str) -> MultiplayerPeer {
    let port = server.local_addr().unwrap().port();
    pinned_client_builder(port, cert, hostname)
        .create()
        .expect("DTLS client")
}

/// Polls every peer until `done` says so; panics after [`DEADLINE`].
fn run(
    peers: &mut [&mut MultiplayerPeer],
    log: &mut Vec<Vec<MultiplayerEvent>>,
    done: impl FnMut(&[Vec<MultiplayerEvent>]) -> bool,
) {
    common::run_until(peers, log, DEADLINE, done);
}

/// Verification on, with the server's certificate pinned and its name checked: two clients
/// join, see each other, and packets in every transfer mode travel client → server and
/// client → server → client (relay), all inside DTLS records.
#[test]
fn verified_clients_join_and_relay_in_every_mode() {
    let (key, cert) = identity("localhost");
    let mut s = dtls_server(&key, &cert);
    let mut a = pinned_client(&s, &cert, "localhost");
    let mut b = pinned_client(&s, &cert, "localhost");
    let (ida, idb) = (a.unique_id(), b.unique_id());
    let mut log = Vec::new();
    run(&mut [&mut s, &mut a, &mut b], &mut log, |l| {
        l[0].contains(&MultiplayerEvent::PeerConnected(ida))
            && l[0].contains(&MultiplayerEvent::PeerConnected(idb))
            && l[1].contains(&MultiplayerEvent::PeerConnected(idb))
            && l[2].contains(&MultiplayerEvent::PeerConnected(ida))
    });
    for l in &log[1..] {
        assert!(l.contains(&MultiplayerEvent::PeerConnected(SERVER_ID)));
        assert!(l.contains(&MultiplayerEvent::ConnectionSucceeded));
    }
    for mode in TransferMode::ALL {
        a.send(
            Target::Peer(SERVER_ID),
            mode,
            None,
            format!("{mode:?} to server").as_bytes(),
        )
        .unwrap();
        a.send(
            Target::Peer(idb),
            mode,
            None,
            format!("{mode:?} to b").as_bytes(),
        )
        .unwrap();
    }
    run(&mut [&mut s, &mut a, &mut b], &mut log, |l| {
        packets(&l[0]).len() >= 3 && packets(&l[2]).len() >= 3
    });
    for (events, what) in [(&log[0], "server"), (&log[2], "b")] {
        let got = packets(events);
        assert_eq!(got.len(), 3, "{what}: {got:?}");
        for mode in TransferMode::ALL {
            assert!(
                got.iter().any(|p| p.from == ida && p.mode == mode),
                "{what}: no {mode:?} packet from a in {got:?}"
            );
        }
    }
    // Everything went through DTLS sessions.
    let server_socket = s.enet().socket().dtls().expect("a DTLS socket");
    assert_eq!(server_socket.endpoint().session_count(), 2);
    assert!(server_socket.stats().records_received >= 6);
    assert!(a.enet().socket().dtls().unwrap().stats().records_sent > 0);

    // A client that leaves: the server sees it, the other client is told, the session ends.
    drop(a);
    run(&mut [&mut s, &mut b], &mut Vec::new(), |l| {
        l[0].contains(&MultiplayerEvent::PeerDisconnected(ida))
            && l[1].contains(&MultiplayerEvent::PeerDisconnected(ida))
    });
    let give_up = Instant::now() + DEADLINE;
    while s.enet().socket().dtls().unwrap().endpoint().session_count() != 1 {
        assert!(
            Instant::now() < give_up,
            "the leaving client's session stays"
        );
        s.poll().unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `dtls_verify = false`: any certificate is accepted (here one for another name, not
/// pinned).
#[test]
fn verify_off_accepts_any_certificate() {
    let (key, cert) = identity("some-other-name.example");
    let mut s = dtls_server(&key, &cert);
    let port = s.local_addr().unwrap().port();
    let mut c = MultiplayerPeer::client("127.0.0.1", port)
        .use_dtls(true)
        .dtls_verify(false)
        .create()
        .unwrap();
    let mut log = Vec::new();
    run(&mut [&mut s, &mut c], &mut log, |l| {
        l[1].contains(&MultiplayerEvent::ConnectionSucceeded) && !l[0].is_empty()
    });
    c.put_packet(b"hi").unwrap();
    run(&mut [&mut s, &mut c], &mut log, |l| {
        !packets(&l[0]).is_empty()
    });
    assert_eq!(packets(&log[0])[0].data, b"hi");
}

/// Connects a verifying client to a server presenting `cert` and returns the failure.
fn failure(key: &PrivateKey, cert: &Certificate, trust: &Certificate, name: &str) -> DtlsError {
    let mut s = dtls_server(key, cert);
    let mut c = pinned_client(&s, trust, name);
    let mut log = Vec::new();
    run(&mut [&mut s, &mut c], &mut log, |l| {
        l[1].iter()
            .any(|e| matches!(e, MultiplayerEvent::ConnectionFailed(_)))
    });
    assert!(
        !log[0]
            .iter()
            .any(|e| matches!(e, MultiplayerEvent::PeerConnected(_))),
        "the server saw a peer: {:?}",
        log[0]
    );
    assert_eq!(c.connection_status(), ConnectionStatus::Disconnected);
    assert!(matches!(
        c.put_packet(b"x"),
        Err(MultiplayerError::NotConnected)
    ));
    match log[1].last() {
        Some(MultiplayerEvent::ConnectionFailed(ConnectionFailure::Dtls(e))) => e.clone(),
        other => panic!("expected a DTLS failure, got {other:?} in {:?}", log[1]),
    }
}

#[test]
fn a_certificate_that_is_not_the_pinned_one_fails_as_untrusted() {
    let (key, cert) = identity("localhost");
    let (_, other) = identity("localhost");
    let e = failure(&key, &cert, &other, "localhost");
    assert!(matches!(e, DtlsError::UntrustedCertificate { .. }), "{e:?}");
}

#[test]
fn a_wrong_hostname_fails_with_both_names() {
    let (key, cert) = identity("localhost");
    let e = failure(&key, &cert, &cert, "game.example.org");
    match &e {
        DtlsError::HostnameMismatch {
            expected,
            presented,
        } => {
            assert_eq!(expected, "game.example.org");
            assert!(presented.iter().any(|n| n == "localhost"), "{e:?}");
        }
        other => panic!("expected a hostname mismatch, got {other:?}"),
    }
    let text = ConnectionFailure::Dtls(e).to_string();
    assert!(text.contains("game.example.org"), "{text}");
}

#[test]
fn an_expired_certificate_fails_as_expired() {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let expired = expired_certificate(&key, "localhost");
    let e = failure(&key, &expired, &expired, "localhost");
    assert!(matches!(e, DtlsError::CertificateExpired { .. }), "{e:?}");
}

/// By default (no `dtls_hostname`) the name checked is the host given to the client, as in
/// Godot 3.2: "127.0.0.1" is not in a certificate for "localhost".
#[test]
fn the_default_hostname_is_the_address_the_client_was_given() {
    let (key, cert) = identity("localhost");
    let mut s = dtls_server(&key, &cert);
    let port = s.local_addr().unwrap().port();
    let mut by_ip = MultiplayerPeer::client("127.0.0.1", port)
        .use_dtls(true)
        .dtls_certificate(cert.clone())
        .create()
        .unwrap();
    let mut by_name = MultiplayerPeer::client("localhost", port)
        .bind_address("127.0.0.1".parse().unwrap())
        .use_dtls(true)
        .dtls_certificate(cert.clone())
        .create()
        .unwrap();
    let mut log = Vec::new();
    run(&mut [&mut s, &mut by_ip, &mut by_name], &mut log, |l| {
        l[1].iter()
            .any(|e| matches!(e, MultiplayerEvent::ConnectionFailed(_)))
            && l[2].contains(&MultiplayerEvent::ConnectionSucceeded)
    });
    assert!(
        log[1].iter().any(|e| matches!(
            e,
            MultiplayerEvent::ConnectionFailed(ConnectionFailure::Dtls(
                DtlsError::HostnameMismatch { .. }
            ))
        )),
        "{:?}",
        log[1]
    );
}

/// Many DTLS clients at once: every one joins, and every one learns of every other.
#[test]
fn many_clients_join_and_see_each_other() {
    const CLIENTS: usize = 10;
    let (key, cert) = identity("localhost");
    let mut s = dtls_server(&key, &cert);
    let mut clients: Vec<MultiplayerPeer> = (0..CLIENTS)
        .map(|_| pinned_client(&s, &cert, "localhost"))
        .collect();
    let ids: Vec<u32> = clients.iter().map(|c| c.unique_id()).collect();
    let mut log = Vec::new();
    let mut all: Vec<&mut MultiplayerPeer> = std::iter::once(&mut s).collect();
    all.extend(clients.iter_mut());
    run(&mut all, &mut log, |l| {
        (1..=CLIENTS).all(|i| {
            ids.iter()
                .filter(|id| **id != ids[i - 1])
                .all(|id| l[i].contains(&MultiplayerEvent::PeerConnected(*id)))
        }) && ids
            .iter()
            .all(|id| l[0].contains(&MultiplayerEvent::PeerConnected(*id)))
    });
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(s.peer_ids(), sorted);
    assert_eq!(
        s.enet().socket().dtls().unwrap().endpoint().session_count(),
        CLIENTS
    );
}

/// A plaintext client gets no answer from a DTLS server (its CONNECT times out) and leaves no
/// trace there; a DTLS client to a plaintext server fails too.
#[test]
fn plaintext_and_dtls_do_not_mix() {
    let (key, cert) = identity("localhost");
    let mut s = dtls_server(&key, &cert);
    let port = s.local_addr().unwrap().port();
    let mut plain = MultiplayerPeer::client("127.0.0.1", port)
        .peer_timeout(4, Duration::from_millis(300), Duration::from_millis(1500))
        .create()
        .unwrap();
    let mut log = Vec::new();
    run(&mut [&mut s, &mut plain], &mut log, |l| {
        l[1].iter()
            .any(|e| matches!(e, MultiplayerEvent::ConnectionFailed(_)))
    });
    assert_eq!(
        log[1],
        vec![MultiplayerEvent::ConnectionFailed(
            ConnectionFailure::Timeout
        )]
    );
    assert!(log[0].is_empty(), "{:?}", log[0]);
    let socket = s.enet().socket().dtls().unwrap();
    assert_eq!(socket.endpoint().session_count(), 0);
    assert!(socket.endpoint_stats().dropped > 0);
    assert_eq!(s.enet().host().stats().packets_received, 0);

    let mut plain_server = common::loopback_server().create().unwrap();
    let port = plain_server.local_addr().unwrap().port();
    let mut dtls = MultiplayerPeer::client("127.0.0.1", port)
        .use_dtls(true)
        .dtls_verify(false)
        .peer_timeout(4, Duration::from_millis(300), Duration::from_millis(1500))
        .create()
        .unwrap();
    let mut log = Vec::new();
    run(&mut [&mut plain_server, &mut dtls], &mut log, |l| {
        l[1].iter()
            .any(|e| matches!(e, MultiplayerEvent::ConnectionFailed(_)))
    });
    assert!(log[0].is_empty(), "{:?}", log[0]);
}

/// Godot's rule: `use_dtls` on a server needs a key and a certificate.
#[test]
fn a_dtls_server_needs_key_and_certificate() {
    let (_, cert) = identity("localhost");
    let e = MultiplayerPeer::server(0)
        .use_dtls(true)
        .dtls_certificate(cert)
        .create()
        .unwrap_err();
    assert!(matches!(e, MultiplayerError::InvalidArgument(_)), "{e}");
}

/// The async driver with DTLS: a server task relays between two verifying clients.
#[cfg(feature = "tokio")]
#[test]
fn tokio_server_and_clients_over_dtls() {
    let rt = common::runtime();
    rt.block_on(async {
        let (key, cert) = identity("localhost");
        let mut server = dtls_server_builder(&key, &cert)
            .create_tokio()
            .await
            .unwrap();
        let port = server.local_addr().unwrap().port();
        let server_task = tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                match server.next_event().await.unwrap() {
                    MultiplayerEvent::Packet(p) => {
                        got.push(p);
                    }
                    MultiplayerEvent::PeerDisconnected(_) if server.peer_ids().is_empty() => {
                        return got;
                    }
                    _ => {}
                }
            }
        });
        let client = |port| pinned_client_builder(port, &cert, "localhost").create_tokio();
        let mut a = client(port).await.unwrap();
        let mut b = client(port).await.unwrap();
        let idb = b.unique_id();
        // a waits until it knows b (ADD_PEER), then sends to b and to the server.
        loop {
            let e = tokio::time::timeout(DEADLINE, async {
                tokio::select! {
                    e = a.next_event() => e,
                    e = b.next_event() => e,
                }
            })
            .await
            .expect("hung")
            .unwrap();
            let _ = e;
            if a.peer_ids().contains(&idb) {
                break;
            }
        }
        a.send(Target::Peer(idb), TransferMode::Reliable, None, b"to b")
            .unwrap();
        a.send(
            Target::Peer(SERVER_ID),
            TransferMode::Reliable,
            None,
            b"to server",
        )
        .unwrap();
        let got = tokio::time::timeout(DEADLINE, async {
            loop {
                if let MultiplayerEvent::Packet(p) = b.next_event().await.unwrap() {
                    return p;
                }
            }
        })
        .await
        .expect("b got nothing");
        assert_eq!((got.from, &got.data[..]), (a.unique_id(), &b"to b"[..]));
        // a must keep servicing until its packet is acknowledged; closing flushes it.
        a.service(Duration::from_millis(200)).await.unwrap();
        drop(a);
        drop(b);
        let got = tokio::time::timeout(DEADLINE, server_task)
            .await
            .expect("server hung")
            .unwrap();
        assert!(got.iter().any(|p| p.data == b"to server"), "{got:?}");
        assert!(got.iter().all(|p| p.data != b"to b"), "{got:?}");
    });
}

/// Plays a DTLS client by hand against `server`: a real ClientHello from a fresh UDP socket,
/// then polls the server for a while. Returns whether anything at all came back (a working
/// server answers with a HelloVerifyRequest at once).
fn hello_is_answered(server: &mut MultiplayerPeer) -> bool {
    use enet_dtls::dtls_proto::{ClientConfig, DtlsSession};
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let config = ClientConfig::builder().verify(false).build().unwrap();
    let mut session = DtlsSession::client(&config, Instant::now()).unwrap();
    let hello = session.poll_transmit().expect("a ClientHello");
    udp.send_to(&hello, server.local_addr().unwrap()).unwrap();
    let until = Instant::now() + Duration::from_millis(300);
    let mut buf = [0u8; 2048];
    while Instant::now() < until {
        server.poll().unwrap();
        while server.next_event().is_some() {}
        if udp.recv_from(&mut buf).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// The DTLS counters of a `use_dtls` peer.
fn dtls_stats(peer: &MultiplayerPeer) -> enet_dtls::dtls_proto::EndpointStats {
    peer.enet().socket().dtls().expect("DTLS").endpoint_stats()
}

/// A DTLS server refusing new connections turns clients away before DTLS, as Godot's server
/// does: a new address gets no answer at all (no cookie, no session, no handshake), so the
/// client fails (here quickly, with short ENet timeouts), ENet never sees its CONNECT and the
/// server sees nobody; a hand-made ClientHello gets nothing either. Turned off, the same probe
/// gets its cookie and the next client gets in.
#[test]
fn a_refusing_dtls_server_lets_nobody_in() {
    let (key, cert) = identity("localhost");
    let mut s = dtls_server_builder(&key, &cert)
        .refuse_new_connections(true)
        .create()
        .unwrap();
    let port = s.local_addr().unwrap().port();
    let client = || {
        pinned_client_builder(port, &cert, "localhost")
            .peer_timeout(4, Duration::from_millis(300), Duration::from_millis(2000))
            .create()
            .unwrap()
    };
    let mut c = client();
    let mut log = Vec::new();
    run(&mut [&mut s, &mut c], &mut log, |l| {
        l[1].iter()
            .any(|e| matches!(e, MultiplayerEvent::ConnectionFailed(_)))
    });
    assert!(log[0].is_empty(), "{:?}", log[0]);
    assert!(
        !hello_is_answered(&mut s),
        "a refusing server answers nothing"
    );
    let st = dtls_stats(&s);
    assert_eq!(
        (
            st.sessions_created,
            st.server_handshakes_started,
            st.cookies_sent
        ),
        (0, 0, 0),
        "{st:?}"
    );
    assert!(st.ignored_refusing >= 2, "{st:?}");
    assert_eq!(
        s.enet().host().stats().connects_refused,
        0,
        "ENet saw nothing"
    );
    s.set_refuse_new_connections(false);
    assert!(
        hello_is_answered(&mut s),
        "the probe works: a cookie comes back"
    );
    let mut d = client();
    let mut log = Vec::new();
    run(&mut [&mut s, &mut d], &mut log, |l| {
        l[1].contains(&MultiplayerEvent::ConnectionSucceeded)
    });
    assert_eq!(dtls_stats(&s).sessions_created, 1);
}

/// A full DTLS server (max_clients connected) refuses new DTLS sessions the same way, while
/// its connected client keeps talking through its established session; once that client
/// leaves, the next one gets in.
#[test]
fn a_full_dtls_server_refuses_new_sessions_before_the_handshake() {
    let (key, cert) = identity("localhost");
    let mut s = dtls_server_builder(&key, &cert)
        .max_clients(1)
        .create()
        .unwrap();
    let port = s.local_addr().unwrap().port();
    let client = || {
        pinned_client_builder(port, &cert, "localhost")
            .peer_timeout(4, Duration::from_millis(300), Duration::from_millis(2000))
            .create()
            .unwrap()
    };
    let mut a = client();
    let ida = a.unique_id();
    let mut log = Vec::new();
    run(&mut [&mut s, &mut a], &mut log, |l| {
        l[0].contains(&MultiplayerEvent::PeerConnected(ida))
            && l[1].contains(&MultiplayerEvent::ConnectionSucceeded)
    });
    let mut b = client();
    let mut log = Vec::new();
    run(&mut [&mut s, &mut a, &mut b], &mut log, |l| {
        l[2].iter()
            .any(|e| matches!(e, MultiplayerEvent::ConnectionFailed(_)))
    });
    assert!(!hello_is_answered(&mut s), "a full server answers nothing");
    let st = dtls_stats(&s);
    assert_eq!(
        (
            st.sessions,
            st.sessions_created,
            st.server_handshakes_started
        ),
        (1, 1, 1),
        "only a's session: {st:?}"
    );
    assert!(st.ignored_refusing >= 2, "{st:?}");
    // a's established session is unaffected.
    a.send(
        Target::Peer(SERVER_ID),
        TransferMode::Reliable,
        None,
        b"still in",
    )
    .unwrap();
    run(&mut [&mut s, &mut a], &mut log, |l| {
        packets(&l[0])
            .iter()
            .any(|p| p.from == ida && p.data == b"still in")
    });
    // a leaves: there is room again.
    a.close().unwrap();
    run(&mut [&mut s, &mut a], &mut log, |l| {
        l[0].contains(&MultiplayerEvent::PeerDisconnected(ida))
    });
    let mut c = client();
    let mut log = Vec::new();
    run(&mut [&mut s, &mut c], &mut log, |l| {
        l[1].contains(&MultiplayerEvent::ConnectionSucceeded)
    });
    assert_eq!(dtls_stats(&s).sessions_created, 2);
}

/// The async driver reports DTLS failures with their cause too: an untrusted certificate
/// and a hostname mismatch; verify off gets in.
#[cfg(feature = "tokio")]
#[test]
fn tokio_clients_report_dtls_failures() {
    let rt = common::runtime();
    rt.block_on(async {
        let (key, cert) = identity("localhost");
        let (_, stranger) = identity("localhost");
        let mut server = dtls_server_builder(&key, &cert)
            .create_tokio()
            .await
            .unwrap();
        let port = server.local_addr().unwrap().port();
        let server_task = tokio::spawn(async move {
            let mut joined = Vec::new();
            while joined.is_empty() {
                if let MultiplayerEvent::PeerConnected(id) = server.next_event().await.unwrap() {
                    joined.push(id);
                }
            }
            joined
        });
        let outcome = |builder: enet_dtls::multiplayer::ClientBuilder| async move {
            let mut c = builder.create_tokio().await.unwrap();
            let id = c.unique_id();
            loop {
                match tokio::time::timeout(DEADLINE, c.next_event())
                    .await
                    .expect("no outcome")
                    .unwrap()
                {
                    MultiplayerEvent::ConnectionSucceeded => return (id, None),
                    MultiplayerEvent::ConnectionFailed(f) => return (id, Some(f)),
                    _ => {}
                }
            }
        };
        let base = || MultiplayerPeer::client("127.0.0.1", port).use_dtls(true);
        let (_, untrusted) =
            outcome(base().dtls_certificate(stranger).dtls_hostname("localhost")).await;
        assert!(
            matches!(
                untrusted,
                Some(ConnectionFailure::Dtls(
                    DtlsError::UntrustedCertificate { .. }
                ))
            ),
            "{untrusted:?}"
        );
        let (_, mismatch) =
            outcome(base().dtls_certificate(cert).dtls_hostname("other.example")).await;
        assert!(
            matches!(
                mismatch,
                Some(ConnectionFailure::Dtls(DtlsError::HostnameMismatch { .. }))
            ),
            "{mismatch:?}"
        );
        let (id, ok) = outcome(base().dtls_verify(false)).await;
        assert_eq!(ok, None);
        let joined = tokio::time::timeout(DEADLINE, server_task)
            .await
            .expect("server hung")
            .unwrap();
        assert_eq!(joined, vec![id]);
    });
}
