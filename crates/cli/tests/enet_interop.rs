//! ENet interop against real peers: C ENet 1.3.17 (`libenet-dev`, a small C harness compiled
//! here with gcc) and python3-enet (pyenet over the same C library), in both directions, plain,
//! with CRC32 checksums and with the range coder.
//!
//! * C / Python client  -> `enet-dtls enet-echo` (our host, as a process)
//! * our client (library `EnetHost`) -> C / Python echo server
//!
//! Every client runs the same scenario (see `enet_peers/scenario.rs`): connect with data, every
//! reliability kind on 4 channels, a 1 MiB fragmented packet, 10 000 ordered reliable messages,
//! disconnect with data.

mod common;
#[path = "enet_peers/scenario.rs"]
mod scenario;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::{bin, listening_addr, require_program, Proc};
use scenario::{Options, CONNECT_DATA, DISCONNECT_DATA};

const PLAIN: Options = Options {
    checksum: false,
    compress: false,
};
const CHECKSUM: Options = Options {
    checksum: true,
    compress: false,
};
const RANGE_CODER: Options = Options {
    checksum: false,
    compress: true,
};

const STARTUP: Duration = Duration::from_secs(10);
const CLIENT_RUN: Duration = Duration::from_secs(90);

fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/enet_peers")
}

/// The C harness, compiled once per test run with `gcc ... -lenet`, or `None` (SKIP) when gcc is
/// missing outside CI.
fn c_peer() -> Option<PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| common::build_c_enet_program("tests/enet_peers/enet_peer.c"))
        .clone()
}

/// `/usr/bin/python3` when python3-enet is importable; `None` (SKIP) outside CI otherwise.
fn pyenet() -> Option<PathBuf> {
    let python = Path::new("/usr/bin/python3");
    if !require_program("/usr/bin/python3") {
        return None;
    }
    let ok = Command::new(python)
        .args(["-c", "import enet"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if common::in_ci() {
            panic!("python3-enet is missing (CI=true): run scripts/test to install it");
        }
        common::note_skip("python3-enet is missing; run scripts/test to install it");
        return None;
    }
    Some(python.to_path_buf())
}

/// Starts `enet-dtls enet-echo` on `listen` with `opts`; returns it and its address.
fn our_echo(listen: &str, opts: Options) -> (Proc, SocketAddr) {
    let mut cmd = Command::new(bin());
    cmd.args(["enet-echo", "--listen", listen])
        .args(opts.echo_flags());
    let mut p = Proc::spawn("enet-echo", cmd);
    let line = p.expect_line("LISTENING", STARTUP);
    let addr = listening_addr(&line);
    (p, addr)
}

/// Starts a C or Python echo server; returns it and its address.
fn peer_server(name: &str, mut cmd: Command, opts: Options) -> (Proc, SocketAddr) {
    cmd.args(["server", "--port", "0"]).args(opts.peer_flags());
    let mut p = Proc::spawn(name, cmd);
    let line = p.expect_line("LISTENING", STARTUP);
    let addr = listening_addr(&line);
    (p, addr)
}

/// Runs a C or Python client against `server` and checks every step line and its exit status.
fn peer_client(name: &str, mut cmd: Command, server: SocketAddr, opts: Options) {
    cmd.args([
        "client",
        &server.ip().to_string(),
        &server.port().to_string(),
    ])
    .args(opts.peer_flags());
    let mut p = Proc::spawn(name, cmd);
    for step in [
        "CONNECTED channels=4",
        "OK basic 48",
        "OK big 1048576",
        "OK ordered 10000",
        "DISCONNECTED",
        "PASS",
    ] {
        p.expect_line(step, CLIENT_RUN);
    }
    assert_eq!(
        p.wait(STARTUP),
        Some(0),
        "{name} client exit status; output:\n{}",
        p.seen.join("\n")
    );
}

/// Checks that our echo logged the client's connect (with its data) and disconnect.
fn check_echo_log(echo: &mut Proc) {
    let connect = echo.expect_line("CONNECT ", STARTUP);
    assert!(
        connect.ends_with(&format!(" data={CONNECT_DATA}")),
        "connect data not passed on: {connect}"
    );
    let client = connect
        .split_whitespace()
        .nth(1)
        .expect("CONNECT <addr>")
        .to_string();
    let disconnect = echo.expect_line("DISCONNECT", STARTUP);
    assert_eq!(disconnect, format!("DISCONNECT {client}"));
}

/// Runs our client scenario against a C or Python server and checks the server's log.
fn our_client_against(server_proc: &mut Proc, server: SocketAddr, opts: Options) {
    let lines = scenario::run_client("127.0.0.1:0".parse().unwrap(), server, opts)
        .unwrap_or_else(|e| panic!("our client against {}: {e}", server_proc.name));
    assert_eq!(lines.last().map(String::as_str), Some("PASS"), "{lines:?}");
    let connect = server_proc.expect_line("CONNECT ", STARTUP);
    assert!(
        connect.ends_with(&format!(" data={CONNECT_DATA}")),
        "{connect}"
    );
    let disconnect = server_proc.expect_line("DISCONNECT ", STARTUP);
    assert!(
        disconnect.ends_with(&format!(" data={DISCONNECT_DATA}")),
        "{disconnect}"
    );
}

fn c_client_to_our_echo(opts: Options) {
    let Some(c) = c_peer() else { return };
    let (mut echo, addr) = our_echo("127.0.0.1:0", opts);
    peer_client("enet_peer.c", Command::new(c), addr, opts);
    check_echo_log(&mut echo);
}

fn our_client_to_c_server(opts: Options) {
    let Some(c) = c_peer() else { return };
    let (mut server, addr) = peer_server("enet_peer.c", Command::new(c), opts);
    our_client_against(&mut server, addr, opts);
}

fn python_command(python: &Path) -> Command {
    let mut cmd = Command::new(python);
    cmd.arg(peers_dir().join("pyenet_peer.py"));
    cmd
}

fn python_client_to_our_echo(opts: Options) {
    let Some(py) = pyenet() else { return };
    let (mut echo, addr) = our_echo("127.0.0.1:0", opts);
    peer_client("pyenet_peer.py", python_command(&py), addr, opts);
    check_echo_log(&mut echo);
}

fn our_client_to_python_server(opts: Options) {
    let Some(py) = pyenet() else { return };
    let (mut server, addr) = peer_server("pyenet_peer.py", python_command(&py), opts);
    our_client_against(&mut server, addr, opts);
}

// --- The harnesses against each other (C ENet on both ends): proves the peers are sound. ---

#[test]
fn harness_c_client_to_c_server() {
    let Some(c) = c_peer() else { return };
    for opts in [PLAIN, CHECKSUM, RANGE_CODER] {
        let (_server, addr) = peer_server("enet_peer.c server", Command::new(&c), opts);
        peer_client("enet_peer.c client", Command::new(&c), addr, opts);
    }
}

#[test]
fn harness_python_client_to_c_server() {
    let (Some(c), Some(py)) = (c_peer(), pyenet()) else {
        return;
    };
    for opts in [PLAIN, CHECKSUM] {
        let (_server, addr) = peer_server("enet_peer.c server", Command::new(&c), opts);
        peer_client("pyenet_peer.py client", python_command(&py), addr, opts);
    }
}

// --- C ENet <-> ours ---

#[test]
fn c_client_to_our_echo_plain() {
    c_client_to_our_echo(PLAIN);
}

#[test]
fn c_client_to_our_echo_checksum() {
    c_client_to_our_echo(CHECKSUM);
}

#[test]
fn c_client_to_our_echo_range_coder() {
    c_client_to_our_echo(RANGE_CODER);
}

#[test]
fn our_client_to_c_server_plain() {
    our_client_to_c_server(PLAIN);
}

#[test]
fn our_client_to_c_server_checksum() {
    our_client_to_c_server(CHECKSUM);
}

#[test]
fn our_client_to_c_server_range_coder() {
    our_client_to_c_server(RANGE_CODER);
}

// --- python3-enet <-> ours ---

#[test]
fn python_client_to_our_echo_plain() {
    python_client_to_our_echo(PLAIN);
}

#[test]
fn python_client_to_our_echo_checksum() {
    python_client_to_our_echo(CHECKSUM);
}

#[test]
fn python_client_to_our_echo_range_coder() {
    python_client_to_our_echo(RANGE_CODER);
}

#[test]
fn python_client_to_our_echo_checksum_and_range_coder() {
    python_client_to_our_echo(Options {
        checksum: true,
        compress: true,
    });
}

#[test]
fn our_client_to_python_server_plain() {
    our_client_to_python_server(PLAIN);
}

#[test]
fn our_client_to_python_server_checksum() {
    our_client_to_python_server(CHECKSUM);
}

#[test]
fn our_client_to_python_server_range_coder() {
    our_client_to_python_server(RANGE_CODER);
}

#[test]
fn our_client_to_python_server_checksum_and_range_coder() {
    our_client_to_python_server(Options {
        checksum: true,
        compress: true,
    });
}

// --- A checksum mismatch must not connect: proves --checksum really changes the wire. ---

#[test]
fn checksum_mismatch_does_not_connect() {
    let Some(c) = c_peer() else { return };
    let (mut echo, addr) = our_echo("127.0.0.1:0", PLAIN);
    let mut cmd = Command::new(c);
    cmd.args([
        "client",
        &addr.ip().to_string(),
        &addr.port().to_string(),
        "--checksum",
    ]);
    let mut p = Proc::spawn("enet_peer.c client --checksum", cmd);
    p.expect_line("FAIL connect timed out", Duration::from_secs(20));
    assert_eq!(p.wait(STARTUP), Some(1));
    assert!(
        !echo.drain().iter().any(|l| l.starts_with("CONNECT ")),
        "echo without checksum accepted a checksummed client: {:?}",
        echo.seen
    );
}

// --- A dual-stack echo (`[::]`) serves an IPv4-only C ENet client and reports it as IPv4. ---

#[test]
fn c_client_to_our_dual_stack_echo() {
    let Some(c) = c_peer() else { return };
    let (mut echo, addr) = our_echo("[::]:0", PLAIN);
    assert!(addr.ip().is_unspecified() && addr.is_ipv6(), "{addr}");
    let v4: SocketAddr = ([127, 0, 0, 1], addr.port()).into();
    peer_client("enet_peer.c", Command::new(c), v4, PLAIN);
    let connect = echo.expect_line("CONNECT ", STARTUP);
    assert!(
        connect.starts_with("CONNECT 127.0.0.1:"),
        "IPv4 peers are shown as IPv4: {connect}"
    );
}
