//! Thousands of C ENet peers on one `enet-echo` (issue 6 §5): one C ENet client host
//! (`enet_peers/many_peers.c`, C ENet's own service loop) connects 2,000 peers in one burst,
//! then every peer sends a reliable packet at the same instant, again and again; every peer
//! connects, every packet is echoed and no peer is dropped. Before the fix (timers recomputed
//! over all peers after every datagram) the echo fell behind its socket under these bursts
//! and timed peers out.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{bin, build_c_enet_program, listening_addr, Proc};

const PEERS: u32 = 2000;

fn field(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in {line}"))
}

#[test]
fn two_thousand_c_enet_peers_burst_without_drops() {
    let Some(many) = build_c_enet_program("tests/enet_peers/many_peers.c") else {
        return;
    };
    let n = PEERS.to_string();
    let mut cmd = Command::new(bin());
    cmd.args(["enet-echo", "--listen", "127.0.0.1:0", "--max-peers", &n])
        .args(["--max-peers-per-address", &n]);
    let mut echo = Proc::spawn("enet-echo", cmd);
    let addr = listening_addr(&echo.expect_line("LISTENING", Duration::from_secs(10)));
    let mut c = Command::new(many);
    c.args(["127.0.0.1", &addr.port().to_string(), &n, "10", "3000"]);
    let mut client = Proc::spawn("many_peers", c);
    let result = client.expect_line("RESULT", Duration::from_secs(120));
    assert_eq!(client.wait(Duration::from_secs(10)), Some(0));
    assert_eq!(field(&result, "connected"), u64::from(PEERS), "{result}");
    assert_eq!(field(&result, "refused"), 0, "{result}");
    assert_eq!(field(&result, "dropped"), 0, "{result}");
    let sent = field(&result, "sent");
    assert!(sent >= 4 * u64::from(PEERS), "{result}");
    assert_eq!(field(&result, "echoes"), sent, "{result}");
    let disconnects = echo
        .drain()
        .iter()
        .filter(|l| l.starts_with("DISCONNECT "))
        .count();
    assert_eq!(disconnects, 0, "the echo dropped peers");
}
