//! Feeds arbitrary datagrams to an ENet `Host` (fresh, and with a connected
//! peer so the input reaches the per-command handlers), and checks that the
//! wire codec round-trips: decode -> encode gives back the decoded bytes.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use enet_proto::wire::{Datagram, WireCommand};
use enet_proto::{Event, Host, HostConfig, Packet};
use libfuzzer_sys::fuzz_target;

const SERVER: &str = "127.0.0.1:7777";
const CLIENT: &str = "127.0.0.1:40000";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("literal address")
}

/// A server host with one connected client; returns (server, client, now).
fn connected(checksum: bool) -> (Host, Host, Instant) {
    let now = Instant::now();
    let cfg = || HostConfig {
        checksum,
        ..HostConfig::default()
    };
    let mut server = Host::new(cfg(), now).expect("server");
    let mut client = Host::new(cfg(), now).expect("client");
    client.connect(now, addr(SERVER), 4, 0).expect("connect");
    let mut t = now;
    for _ in 0..8 {
        while let Some(tx) = client.poll_transmit(t) {
            server.handle_datagram(t, addr(CLIENT), &tx.data);
        }
        while let Some(tx) = server.poll_transmit(t) {
            client.handle_datagram(t, addr(SERVER), &tx.data);
        }
        while server.poll_event().is_some() {}
        while client.poll_event().is_some() {}
        t += Duration::from_millis(5);
    }
    (server, client, t)
}

fn drain(host: &mut Host, now: Instant) {
    let mut n = 0;
    while let Some(tx) = host.poll_transmit(now) {
        assert!(tx.data.len() <= 4096);
        n += 1;
        assert!(n < 10_000, "poll_transmit does not terminate");
    }
    while let Some(ev) = host.poll_event() {
        if let Event::Receive { packet, .. } = ev {
            assert!(packet.data.len() <= 32 * 1024 * 1024);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // 1. Codec round trip.
    if let Ok((cmd, used)) = WireCommand::parse(data) {
        let mut out = Vec::new();
        cmd.emit(&mut out);
        assert_eq!(out, &data[..used]);
    }
    for checksum in [false, true] {
        if let Ok(d) = Datagram::parse(data, checksum) {
            let mut out = Vec::new();
            d.emit(&mut out);
            assert_eq!(out, data);
        }
    }

    // 2. A fresh host (CONNECT handling and header checks).
    let now = Instant::now();
    let mut fresh = Host::new(HostConfig::default(), now).expect("host");
    fresh.handle_datagram(now, addr(CLIENT), data);
    drain(&mut fresh, now);

    // 3. A connected host: make the input look like it comes from the peer
    //    (peer id 0, matching session) so every command handler is reachable.
    let checksum = data.first().is_some_and(|b| b & 1 == 1);
    let (mut server, mut client, t) = connected(checksum);
    let mut input = data.to_vec();
    if input.len() >= 2 {
        input[0] &= 0xC0; // keep the flags, peer id 0, session 0
        input[1] = 0;
    }
    server.handle_datagram(t, addr(CLIENT), &input);
    drain(&mut server, t);
    server.handle_timeout(t + Duration::from_secs(40));
    drain(&mut server, t + Duration::from_secs(40));
    // The client side too (VERIFY_CONNECT/ACK paths).
    client.handle_datagram(t, addr(SERVER), &input);
    drain(&mut client, t);
    let _ = client.send(enet_proto::PeerId::new(0, 0), 0, Packet::reliable(vec![1; 2000]));
    drain(&mut client, t);
});
