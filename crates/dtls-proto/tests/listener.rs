//! CookieListener: stateless cookie exchange (RFC 6347 section 4.2.1) through DTLSv1_listen.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dtls_proto::{ClientConfig, CookieListener, DtlsSession, ListenOutcome, ServerConfig, Status};
use support::{drive_clean, ec_identity, transfer};

fn server_config(rotation: Duration) -> ServerConfig {
    let (key, cert) = ec_identity("localhost");
    ServerConfig::builder(key, cert)
        .cookie_rotation(rotation)
        .build()
        .unwrap()
}

fn client(now: Instant) -> DtlsSession {
    let cfg = ClientConfig::builder().verify(false).build().unwrap();
    DtlsSession::client(&cfg, now).unwrap()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn expect_reply(outcome: ListenOutcome, hello_len: usize) -> Vec<u8> {
    match outcome {
        ListenOutcome::Reply(hvr) => {
            assert!(
                hvr.len() <= hello_len,
                "HVR {} > ClientHello {}",
                hvr.len(),
                hello_len
            );
            // DTLS handshake record carrying a HelloVerifyRequest (handshake type 3).
            assert_eq!((hvr[0], hvr[13]), (22, 3));
            hvr
        }
        other => panic!("expected a HelloVerifyRequest, got {other:?}"),
    }
}

/// Runs the client through the cookie exchange from `from`; returns the cookie-bearing ClientHello.
fn hello_with_cookie(
    listener: &mut CookieListener,
    client: &mut DtlsSession,
    now: Instant,
    from: SocketAddr,
) -> Vec<u8> {
    let hello = client.poll_transmit().expect("ClientHello");
    assert!(client.poll_transmit().is_none());
    let hvr = expect_reply(listener.handle_datagram(now, from, &hello), hello.len());
    client.handle_datagram(now, &hvr);
    let hello2 = client.poll_transmit().expect("ClientHello with cookie");
    assert!(
        hello2.len() > hello.len(),
        "the second ClientHello carries the cookie"
    );
    hello2
}

#[test]
fn cookie_exchange_then_handshake_and_data() {
    let now = Instant::now();
    let mut listener = CookieListener::new(&server_config(Duration::from_secs(30))).unwrap();
    let mut client = client(now);
    let hello2 = hello_with_cookie(&mut listener, &mut client, now, addr(4000));
    let ListenOutcome::Accept(mut server) = listener.handle_datagram(now, addr(4000), &hello2)
    else {
        panic!("a valid cookie must be accepted");
    };
    assert_eq!(server.status(), Status::Handshaking);
    assert_eq!(listener.pending_state().ssl_objects_created, 2);
    drive_clean(&mut client, &mut server);
    assert_eq!(client.status(), Status::Connected, "{:?}", client.error());
    assert_eq!(server.status(), Status::Connected, "{:?}", server.error());
    assert_eq!(
        transfer(&mut client, &mut server, b"hi"),
        vec![b"hi".to_vec()]
    );
    assert_eq!(
        transfer(&mut server, &mut client, b"yo"),
        vec![b"yo".to_vec()]
    );

    // The listener is ready for the next client with a fresh listening SSL.
    let mut second = self::client(now);
    let hello2 = hello_with_cookie(&mut listener, &mut second, now, addr(4001));
    let ListenOutcome::Accept(mut server2) = listener.handle_datagram(now, addr(4001), &hello2)
    else {
        panic!("second client must be accepted");
    };
    drive_clean(&mut second, &mut server2);
    assert_eq!(second.status(), Status::Connected, "{:?}", second.error());
    assert_eq!(listener.pending_state().ssl_objects_created, 3);
}

#[test]
fn ten_thousand_sources_leave_no_state() {
    let now = Instant::now();
    let mut listener = CookieListener::new(&server_config(Duration::from_secs(30))).unwrap();
    let hello = client(now).poll_transmit().unwrap();
    let mut c = client(now);
    // A cookie that is valid for port 9 only.
    let hello_cookie_for_9 = hello_with_cookie(&mut listener, &mut c, now, addr(9));
    let mut replies = 0;
    for i in 0..10_000u16 {
        let from = addr(10_000 + i);
        let datagram = if i % 2 == 0 {
            &hello
        } else {
            &hello_cookie_for_9
        };
        match listener.handle_datagram(now, from, datagram) {
            ListenOutcome::Reply(hvr) => {
                assert!(hvr.len() <= datagram.len());
                replies += 1;
            }
            ListenOutcome::Drop => {}
            ListenOutcome::Accept(_) => panic!("accepted a spoofed source {from}"),
            ListenOutcome::Refused => panic!("refused although admitted: {from}"),
        }
    }
    assert_eq!(
        replies, 10_000,
        "every ClientHello gets a (stateless) HelloVerifyRequest"
    );
    let state = listener.pending_state();
    assert_eq!(
        state.ssl_objects_created, 1,
        "no SSL object was created per source"
    );
    assert_eq!(state.queued_datagrams, 0);
}

#[test]
fn cookie_is_bound_to_the_source_address() {
    let now = Instant::now();
    let mut listener = CookieListener::new(&server_config(Duration::from_secs(30))).unwrap();
    let mut c = client(now);
    let hello2 = hello_with_cookie(&mut listener, &mut c, now, addr(5000));
    // Same IP, other port: rejected with a fresh HVR.
    expect_reply(
        listener.handle_datagram(now, addr(5001), &hello2),
        hello2.len(),
    );
    // Other IP, same port: rejected too.
    let other_ip = SocketAddr::from(([127, 0, 0, 2], 5000));
    expect_reply(
        listener.handle_datagram(now, other_ip, &hello2),
        hello2.len(),
    );
    // IPv6 source.
    let v6: SocketAddr = "[::1]:5000".parse().unwrap();
    expect_reply(listener.handle_datagram(now, v6, &hello2), hello2.len());
    // From the right source it is accepted.
    assert!(matches!(
        listener.handle_datagram(now, addr(5000), &hello2),
        ListenOutcome::Accept(_)
    ));
}

#[test]
fn secret_rotation_keeps_old_cookies_for_one_period() {
    let period = Duration::from_secs(10);
    let t0 = Instant::now();
    let mut listener = CookieListener::new(&server_config(period)).unwrap();

    // Cookie issued at t0, used after one rotation: still accepted (previous secret).
    let mut a = client(t0);
    let hello_a = hello_with_cookie(&mut listener, &mut a, t0, addr(6000));
    let t1 = t0 + period + Duration::from_secs(1);
    let ListenOutcome::Accept(mut server) = listener.handle_datagram(t1, addr(6000), &hello_a)
    else {
        panic!("a cookie one rotation old must be accepted");
    };
    assert_eq!(server.status(), Status::Handshaking);
    assert!(server.poll_transmit().is_some());

    // Cookie issued at t1, used after two more rotations: rejected.
    let mut b = client(t1);
    let hello_b = hello_with_cookie(&mut listener, &mut b, t1, addr(6001));
    let t2 = t1 + period + Duration::from_secs(1);
    let t3 = t2 + period + Duration::from_secs(1);
    // Another datagram at t2 drives the intermediate rotation.
    let mut other = client(t2);
    let h = other.poll_transmit().unwrap();
    expect_reply(listener.handle_datagram(t2, addr(6002), &h), h.len());
    expect_reply(
        listener.handle_datagram(t3, addr(6001), &hello_b),
        hello_b.len(),
    );
}

#[test]
fn garbage_truncated_and_non_handshake_input_is_dropped() {
    let now = Instant::now();
    let mut listener = CookieListener::new(&server_config(Duration::from_secs(30))).unwrap();
    let mut c = client(now);
    let hello = c.poll_transmit().unwrap();
    // Every truncation of a valid ClientHello is dropped; only the whole one is answered.
    for len in 0..hello.len() {
        assert!(
            matches!(
                listener.handle_datagram(now, addr(7000), &hello[..len]),
                ListenOutcome::Drop
            ),
            "truncated to {len} bytes was not dropped"
        );
    }
    expect_reply(
        listener.handle_datagram(now, addr(7000), &hello),
        hello.len(),
    );
    // Not handshake: application data, alert, change_cipher_spec.
    for content_type in [20u8, 21, 23, 0, 255] {
        let mut d = hello.clone();
        d[0] = content_type;
        assert!(matches!(
            listener.handle_datagram(now, addr(7001), &d),
            ListenOutcome::Drop
        ));
    }
    // Other handshake types, a non-zero fragment offset, a wrong record length, a huge length.
    let mut server_hello = hello.clone();
    server_hello[13] = 2;
    let mut fragment = hello.clone();
    fragment[21] = 1;
    let mut bad_len = hello.clone();
    bad_len[12] = bad_len[12].wrapping_add(1);
    let mut huge = hello.clone();
    huge[11] = 0xff;
    huge[14] = 0xff;
    for d in [server_hello, fragment, bad_len, huge] {
        assert!(matches!(
            listener.handle_datagram(now, addr(7002), &d),
            ListenOutcome::Drop
        ));
    }
    // Deterministic pseudo-random garbage, some of it dressed as a DTLS handshake record.
    let mut x: u32 = 0x1234_5678;
    for i in 0..2000usize {
        let len = i % 300;
        let mut d: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        if i % 2 == 0 && len > 14 {
            d[0] = 22;
            d[1] = 0xfe;
            d[2] = 0xfd;
            d[3] = 0;
            d[4] = 0;
            d[13] = 1;
        }
        assert!(!matches!(
            listener.handle_datagram(now, addr(7003), &d),
            ListenOutcome::Accept(_)
        ));
    }
    let state = listener.pending_state();
    assert_eq!(state.ssl_objects_created, 1);
    assert_eq!(state.queued_datagrams, 0);
    // Still works afterwards.
    let mut fresh = client(now);
    let hello2 = hello_with_cookie(&mut listener, &mut fresh, now, addr(7004));
    assert!(matches!(
        listener.handle_datagram(now, addr(7004), &hello2),
        ListenOutcome::Accept(_)
    ));
}
