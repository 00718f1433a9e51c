//! Feeds arbitrary datagrams to the DTLS server side: the stateless `CookieListener` and a stateful
//! `DtlsSession::server`. Any panic, hang or unbounded growth is a bug in dtls-proto.
//!
//! Input format: a sequence of `[len: u8][len bytes]` datagrams (a short tail is one last datagram).
//! Each datagram goes to: the listener, a stateful server, a server session that a genuine client just
//! got accepted with a valid cookie (so handshake messages after the ClientHello are reached), a
//! client waiting for the ServerHello, and any session the listener accepts from fuzz input.

#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Instant;

use dtls_proto::keys::{Certificate, CertificateParams, KeyType, PrivateKey};
use dtls_proto::{ClientConfig, CookieListener, DtlsSession, ListenOutcome, ServerConfig};
use libfuzzer_sys::fuzz_target;

fn config() -> &'static ServerConfig {
    static CONFIG: OnceLock<ServerConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let key = PrivateKey::generate(KeyType::EcP256).expect("key");
        let cert = Certificate::self_signed(&key, &CertificateParams::new("fuzz")).expect("cert");
        ServerConfig::builder(key, cert).build().expect("config")
    })
}

fn client_config() -> &'static ClientConfig {
    static CONFIG: OnceLock<ClientConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        ClientConfig::builder()
            .verify(false)
            .build()
            .expect("client config")
    })
}

/// A server session accepted by `listener` for a genuine client at `from`, mid-handshake.
fn accepted_session(
    listener: &mut CookieListener,
    now: Instant,
    from: SocketAddr,
) -> Option<DtlsSession> {
    let mut client = DtlsSession::client(client_config(), now).ok()?;
    let hello = client.poll_transmit()?;
    let ListenOutcome::Reply(hvr) = listener.handle_datagram(now, from, &hello) else {
        return None;
    };
    client.handle_datagram(now, &hvr);
    let hello2 = client.poll_transmit()?;
    match listener.handle_datagram(now, from, &hello2) {
        ListenOutcome::Accept(session) => Some(session),
        _ => None,
    }
}

fn datagrams(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let Some((&len, rest)) = data.split_first() {
        let len = usize::from(len).min(rest.len());
        out.push(&rest[..len]);
        data = &rest[len..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let config = config();
    let from: SocketAddr = "192.0.2.1:4433".parse().expect("address");
    let mut listener = CookieListener::new(config).expect("listener");
    let mut server = DtlsSession::server_for_peer(config, now, from).expect("server");
    let genuine: SocketAddr = "192.0.2.2:4433".parse().expect("address");
    let mut accepted: Vec<DtlsSession> = accepted_session(&mut listener, now, genuine)
        .into_iter()
        .collect();
    assert_eq!(accepted.len(), 1, "a genuine client must be accepted");
    let mut client = DtlsSession::client(client_config(), now).expect("client");
    while client.poll_transmit().is_some() {}
    for datagram in datagrams(data) {
        match listener.handle_datagram(now, from, datagram) {
            ListenOutcome::Reply(hvr) => assert!(hvr.len() <= datagram.len()),
            ListenOutcome::Accept(session) => accepted.push(session),
            ListenOutcome::Drop => {}
        }
        server.handle_datagram(now, datagram);
        while server.poll_transmit().is_some() {}
        while server.recv().is_some() {}
        client.handle_datagram(now, datagram);
        while client.poll_transmit().is_some() {}
        while client.recv().is_some() {}
        for session in &mut accepted {
            session.handle_datagram(now, datagram);
            while session.poll_transmit().is_some() {}
        }
    }
    server.handle_timeout(now);
    let _ = server.poll_timeout();
    assert_eq!(listener.pending_state().queued_datagrams, 0);
});
