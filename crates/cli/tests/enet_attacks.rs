//! Attacks on `enet-dtls enet-echo` over loopback, played as a hostile client would.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{bin, listening_addr, Proc};
use enet_dtls::enet::EnetHost;
use enet_proto::{Event, HostConfig};

fn echo(args: &[&str]) -> (Proc, SocketAddr) {
    let mut cmd = Command::new(bin());
    cmd.args(["enet-echo", "--listen", "127.0.0.1:0"])
        .args(args);
    let mut p = Proc::spawn("enet-echo", cmd);
    let addr = listening_addr(&p.expect_line("LISTENING", Duration::from_secs(10)));
    (p, addr)
}

/// A CONNECT as C ENet sends it (peer id 0xFFF, sentTime, command CONNECT).
fn connect_datagram(connect_id: u32) -> Vec<u8> {
    use enet_proto::wire::{self, Command as C, CommandHeader, WireCommand};
    let mut d = vec![0x8f, 0xff, 0x00, 0x01];
    WireCommand {
        header: CommandHeader::new(C::CONNECT | wire::COMMAND_FLAG_ACKNOWLEDGE, 0xFF, 1),
        command: C::Connect(wire::Connect {
            outgoing_peer_id: 0,
            incoming_session_id: 0xFF,
            outgoing_session_id: 0xFF,
            mtu: 1392,
            window_size: 65536,
            channel_count: 1,
            incoming_bandwidth: 0,
            outgoing_bandwidth: 0,
            packet_throttle_interval: 5000,
            packet_throttle_acceleration: 2,
            packet_throttle_deceleration: 2,
            connect_id,
            data: 0,
        }),
    }
    .emit(&mut d);
    d
}

/// Connects one of our clients from `bind` and services it until it is connected.
fn client_connects(bind: &str, server: SocketAddr, wait: Duration) -> bool {
    let mut host = EnetHost::bind(bind, HostConfig::default()).unwrap();
    host.connect(server, 1, 0).unwrap();
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        match host.service(Duration::from_millis(100)).unwrap() {
            Some(Event::Connect { .. }) => return true,
            Some(Event::Disconnect { .. }) => return false,
            _ => {}
        }
    }
    false
}

/// A flood of CONNECTs from 300 ports of 127.0.0.1 (raw, never completing the
/// handshake) and 12 real clients from further ports: the echo takes at most
/// `--max-peers-per-address` of them (it answers at most that many CONNECTs, and
/// prints at most that many CONNECT lines), and a client from 127.0.0.2 still
/// connects.
#[test]
fn connect_flood_from_many_ports_takes_at_most_the_limit() {
    let limit = 4;
    let (mut echo, server) = echo(&["--max-peers", "64", "--max-peers-per-address", "4"]);

    let raw: Vec<UdpSocket> = (0..300)
        .map(|i| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.send_to(&connect_datagram(0x100 + i), server).unwrap();
            s
        })
        .collect();
    // Count the sockets that got any reply (a VERIFY_CONNECT) within 2 s.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut answered = vec![false; raw.len()];
    for s in &raw {
        s.set_nonblocking(true).unwrap();
    }
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        for (i, s) in raw.iter().enumerate() {
            if s.recv_from(&mut buf).is_ok() {
                answered[i] = true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let answered = answered.iter().filter(|a| **a).count();
    assert_eq!(
        answered, limit,
        "the echo answered {answered} of 300 CONNECTs"
    );

    // The half-open peers hold their slots: a real client from 127.0.0.1 is refused (a
    // refused CONNECT gets no answer, so it only shows as no connection within 3 s)...
    assert!(!client_connects(
        "127.0.0.1:0",
        server,
        Duration::from_secs(3)
    ));
    // ...while a client from 127.0.0.2 gets in.
    assert!(
        client_connects("127.0.0.2:0", server, Duration::from_secs(10)),
        "127.0.0.2 refused"
    );
    let line = echo.expect_line("CONNECT 127.0.0.2:", Duration::from_secs(5));
    assert!(line.starts_with("CONNECT 127.0.0.2:"), "{line}");
    let from_flood = echo
        .drain()
        .iter()
        .filter(|l| l.starts_with("CONNECT 127.0.0.1:"))
        .count();
    assert_eq!(from_flood, 0, "no flood peer completed a handshake");
}
