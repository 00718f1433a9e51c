//! `enet-echo` on SIGTERM / SIGINT: every peer gets an ENet DISCONNECT (it sees a remote
//! disconnect, not a timeout) and the process exits 0; a second signal exits at once.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{bin, listening_addr, Proc};
use enet_dtls::enet::EnetHost;
use enet_proto::{DisconnectReason, Event, HostConfig, PeerId};

fn echo() -> (Proc, SocketAddr) {
    let mut cmd = Command::new(bin());
    cmd.args(["enet-echo", "--listen", "127.0.0.1:0"]);
    let mut p = Proc::spawn("enet-echo", cmd);
    let addr = listening_addr(&p.expect_line("LISTENING", Duration::from_secs(10)));
    (p, addr)
}

fn signal(p: &Proc, name: &str) {
    let st = Command::new("kill")
        .args([&format!("-{name}"), &p.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -{name} failed");
}

/// A client of ours, connected to `server`.
fn connected_client(server: SocketAddr) -> (EnetHost, PeerId) {
    let mut host = EnetHost::bind("127.0.0.1:0", HostConfig::default()).unwrap();
    let peer = host.connect(server, 1, 0).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(Event::Connect { .. }) = host.service(Duration::from_millis(50)).unwrap() {
            return (host, peer);
        }
    }
    panic!("no connection to the echo");
}

fn graceful(signal_name: &str) {
    let (mut echo, server) = echo();
    let (mut a, _) = connected_client(server);
    let (mut b, _) = connected_client(server);
    // The echo counts a peer as connected when the client's acknowledgement arrives, which
    // can be after the client saw its own connect: wait for both before the signal.
    echo.expect_line("CONNECT ", Duration::from_secs(5));
    echo.expect_line("CONNECT ", Duration::from_secs(5));
    signal(&echo, signal_name);
    // Both clients see the echo leave (a remote disconnect, long before any timeout).
    for client in [&mut a, &mut b] {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut reason = None;
        while reason.is_none() && Instant::now() < deadline {
            if let Some(Event::Disconnect { reason: r, .. }) =
                client.service(Duration::from_millis(50)).unwrap()
            {
                reason = Some(r);
            }
        }
        assert_eq!(reason, Some(DisconnectReason::Remote));
    }
    assert_eq!(
        echo.wait(Duration::from_secs(10)),
        Some(0),
        "{:?}",
        echo.seen
    );
    assert!(echo.seen.iter().any(|l| l == "SHUTDOWN"), "{:?}", echo.seen);
    assert_eq!(
        echo.seen
            .iter()
            .filter(|l| l.starts_with("DISCONNECT "))
            .count(),
        2,
        "{:?}",
        echo.seen
    );
}

#[test]
fn sigterm_disconnects_every_peer_and_exits_0() {
    graceful("TERM");
}

#[test]
fn sigint_disconnects_every_peer_and_exits_0() {
    graceful("INT");
}

/// A peer that never acknowledges the DISCONNECT keeps the first shutdown waiting (up to its
/// grace period); a second signal ends the process at once, with status 130.
#[test]
fn a_second_signal_exits_at_once() {
    let (mut echo, server) = echo();
    let (_silent, _) = connected_client(server); // never serviced again: never acknowledges
    echo.expect_line("CONNECT ", Duration::from_secs(5));
    signal(&echo, "TERM");
    std::thread::sleep(Duration::from_millis(100));
    signal(&echo, "INT");
    assert_eq!(
        echo.wait(Duration::from_secs(10)),
        Some(130),
        "{:?}",
        echo.seen
    );
    assert!(
        !echo.seen.iter().any(|l| l == "SHUTDOWN"),
        "{:?}",
        echo.seen
    );
}
