//! Drives the DTLS server side with arbitrary input: the sans-IO `Endpoint` (stateless cookie
//! listener, session table, limits, timers) next to a genuine client that the input can let progress,
//! delay or corrupt, plus a stateful `DtlsSession::server` and a client waiting for its ServerHello.
//! Any panic, hang or unbounded growth is a bug in dtls-proto.
//!
//! Input: a sequence of operations, each starting with one byte `op`:
//! * `op & 3 == 0`: a raw datagram `[len: u16 big-endian][len bytes]` (a short tail is the datagram)
//!   from one of eight source addresses (`(op >> 2) & 7`: several IPv4 ports and hosts, the genuine
//!   client's own address, an IPv4-mapped IPv6 address, an IPv6 address). Two length bytes, so full-size
//!   records (up to the 1440-byte MTU and beyond) are reachable.
//! * `op & 3 == 1`: deliver the genuine client's next datagram to the endpoint, corrupted by
//!   `[pos: u16][xor: u8]` (xor 0 keeps it intact): whole handshake flights, full-size, reach the server.
//! * `op & 3 == 2`: advance the virtual clock by `(op >> 2) * 40` ms and run every timer.
//! * `op & 3 == 3`: deliver the endpoint's next datagram for the genuine client to it, corrupted the same
//!   way, so the handshake can complete and application data flow.

#![no_main]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use dtls_proto::{DtlsSession, Endpoint, EndpointConfig, Event, MAX_DATAGRAM_SIZE};
use libfuzzer_sys::fuzz_target;

#[path = "common/dtls.rs"]
mod common;
use common::{addr, client_config, corrupt, server_config, Input};

const MAX_SESSIONS: usize = 4;

fn drain_events(ep: &mut Endpoint) {
    while let Some(ev) = ep.poll_event() {
        if let Event::Data { handle, .. } = ev {
            // Echo like a server would; errors (too large, closed) are fine.
            let _ = ep.send(handle, b"echo");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut now = start;
    let server_addr = addr("192.0.2.100:4433");
    let genuine = addr("192.0.2.2:4433");
    let sources = [
        addr("192.0.2.1:4433"),
        addr("192.0.2.1:4434"),
        addr("192.0.2.1:4435"),
        addr("192.0.2.3:1"),
        genuine,
        addr("[::ffff:192.0.2.2]:4433"),
        addr("[::ffff:192.0.2.9]:9"),
        addr("[2001:db8::1]:4433"),
    ];
    let limits = EndpointConfig::default()
        .max_sessions(MAX_SESSIONS)
        .max_sessions_per_address(2)
        .idle_timeout(Some(Duration::from_secs(5)));
    let mut ep = Endpoint::server(limits, server_config()).expect("endpoint");
    let mut client = Endpoint::client(EndpointConfig::default()).expect("client endpoint");
    client
        .connect(now, server_addr, client_config())
        .expect("connect");
    let mut to_server: VecDeque<Vec<u8>> = VecDeque::new();
    let mut to_client: VecDeque<Vec<u8>> = VecDeque::new();
    let mut stateful =
        DtlsSession::server_for_peer(server_config(), now, sources[0]).expect("server");
    let mut waiting = DtlsSession::client(client_config(), now).expect("client");
    while waiting.poll_transmit().is_some() {}

    let mut input = Input(data);
    while let Some(op) = input.byte() {
        match op & 3 {
            0 => {
                let from = sources[usize::from((op >> 2) & 7)];
                let len = input.u16();
                let datagram = input.bytes(len);
                ep.handle(now, from, datagram);
                stateful.handle_datagram(now, datagram);
                while stateful.poll_transmit().is_some() {}
                while stateful.recv().is_some() {}
                waiting.handle_datagram(now, datagram);
                while waiting.poll_transmit().is_some() {}
                while waiting.recv().is_some() {}
            }
            1 => {
                if let Some(d) = to_server.pop_front() {
                    let d = corrupt(&mut input, d);
                    ep.handle(now, genuine, &d);
                }
            }
            2 => {
                now += Duration::from_millis(u64::from(op >> 2) * 40);
                ep.handle_timeout(now);
                client.handle_timeout(now);
                stateful.handle_timeout(now);
                let _ = stateful.poll_timeout();
            }
            _ => {
                if let Some(d) = to_client.pop_front() {
                    let d = corrupt(&mut input, d);
                    client.handle(now, server_addr, &d);
                }
            }
        }
        while let Some(t) = ep.poll_transmit() {
            assert!(t.contents.len() <= MAX_DATAGRAM_SIZE);
            assert!(
                t.destination.is_ipv4() || t.destination.ip().to_string().starts_with("2001:db8")
            );
            if t.destination == genuine && to_client.len() < 64 {
                to_client.push_back(t.contents);
            }
        }
        while let Some(t) = client.poll_transmit() {
            if to_server.len() < 64 {
                to_server.push_back(t.contents);
            }
        }
        drain_events(&mut ep);
        while let Some(ev) = client.poll_event() {
            if let Event::Connected { handle, .. } = ev {
                let _ = client.send(handle, &[0x42; 1000]);
            }
        }
        assert!(ep.session_count() <= MAX_SESSIONS);
        assert_eq!(ep.pending_state().queued_datagrams, 0);
        let _ = ep.poll_timeout();
    }
});
