//! `enet-dtls enet-echo --dtls --key FILE --cert FILE`: ENet over DTLS on the command line.
//!
//! * our DTLS ENet client (the library's `DtlsEnetSocket` under `EnetHost`) runs the full interop
//!   scenario against it, and the printed lines are those of the plain echo;
//! * a plain C ENet client gets nothing from it (plaintext is ignored);
//! * C ENet (libenet-dev) carried by a DTLS tunnel made of Godot's own `PacketPeerDTLS`
//!   (`fixtures/godot/dtls_tunnel.gd`: one record per ENet datagram) connects and gets its
//!   echoes: a Godot build with DTLS-enabled ENet speaks this wire format. With `CI=true` a
//!   missing `godot3-server` or `gcc` fails the test.

mod common;
#[path = "enet_peers/scenario.rs"]
mod scenario;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    bin, build_c_enet_program, free_udp_port, godot, keygen, listening_addr, require_program, Proc,
};
use enet_dtls::dtls_proto::ClientConfig;
use enet_dtls::enet::{enet_mtu_for_dtls_mtu, DtlsEnetSocket, EnetHost};
use enet_dtls::keys::Certificate;
use scenario::{Options, CONNECT_DATA};

const LINE: Duration = Duration::from_secs(20);

/// `enet-dtls keygen` into a fresh directory: (dir guard, key.pem, cert.pem), CN localhost.
fn keys() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = keygen(dir.path());
    (dir, key, cert)
}

fn dtls_echo(key: &Path, cert: &Path) -> (Proc, std::net::SocketAddr) {
    let mut cmd = Command::new(bin());
    cmd.args(["enet-echo", "--listen", "127.0.0.1:0", "--dtls", "--key"])
        .arg(key)
        .arg("--cert")
        .arg(cert);
    let mut echo = Proc::spawn("enet-echo --dtls", cmd);
    let addr = listening_addr(&echo.expect_line("LISTENING", LINE));
    assert_ne!(addr.port(), 0, "LISTENING must print the real port");
    (echo, addr)
}

#[test]
fn our_dtls_client_runs_the_scenario_against_enet_echo_dtls() {
    let (_dir, key, cert) = keys();
    let (mut echo, addr) = dtls_echo(&key, &cert);
    let config = ClientConfig::builder()
        .trusted_certificate(Certificate::load(&cert).unwrap())
        .hostname("localhost")
        .build()
        .unwrap();
    let socket = DtlsEnetSocket::client("127.0.0.1:0", &config).unwrap();
    let host = EnetHost::with_socket(socket, Options::default().client_config()).unwrap();
    let lines = scenario::run_client_on(host, addr)
        .unwrap_or_else(|e| panic!("our DTLS client against enet-echo --dtls on {addr}: {e}"));
    assert_eq!(
        lines,
        [
            "CONNECTED",
            "OK basic 48",
            "OK big 1048576",
            "OK ordered 10000",
            "DISCONNECTED",
            "PASS"
        ]
    );
    // The same lines as the plain echo.
    let connect = echo.expect_line("CONNECT ", LINE);
    assert!(
        connect.ends_with(&format!(" data={CONNECT_DATA}")),
        "{connect}"
    );
    let client = connect.split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(
        echo.expect_line("DISCONNECT", LINE),
        format!("DISCONNECT {client}")
    );
}

#[test]
fn plaintext_c_enet_gets_nothing_from_enet_echo_dtls() {
    let Some(c) = build_c_enet_program("tests/enet_peers/dtls_tunnel_client.c") else {
        return;
    };
    let (_dir, key, cert) = keys();
    let (mut echo, addr) = dtls_echo(&key, &cert);
    let mut cmd = Command::new(c);
    cmd.arg("127.0.0.1").arg(addr.port().to_string());
    let mut client = Proc::spawn("dtls_tunnel_client (plaintext)", cmd);
    let code = client.wait(Duration::from_secs(60));
    assert_eq!(code, Some(1), "{:?}", client.drain());
    let fail = client.seen.iter().find(|l| l.starts_with("FAIL")).cloned();
    assert!(
        fail.as_deref()
            .is_some_and(|l| l.contains("connection") || l.contains("disconnected")),
        "{:?}",
        client.seen
    );
    // The echo never saw an ENet peer.
    let lines = echo.drain().to_vec();
    assert!(lines.iter().all(|l| !l.starts_with("CONNECT")), "{lines:?}");
}

#[test]
fn c_enet_through_a_godot_dtls_tunnel() {
    if !require_program("godot3-server") {
        return;
    }
    let Some(c) = build_c_enet_program("tests/enet_peers/dtls_tunnel_client.c") else {
        return;
    };
    let (_dir, key, cert) = keys();
    let (mut echo, addr) = dtls_echo(&key, &cert);
    let local_port = free_udp_port();
    let mut tunnel = Proc::spawn(
        "dtls_tunnel.gd",
        godot(
            "dtls_tunnel.gd",
            &[
                format!("listen_port={local_port}"),
                format!("port={}", addr.port()),
                "verify=1".into(),
                format!("ca={}", cert.display()),
                "hostname=localhost".into(),
                "timeout=60".into(),
            ],
        ),
    );
    tunnel.expect_line("TUNNEL_LISTENING", LINE);
    let mut cmd = Command::new(c);
    cmd.arg("127.0.0.1").arg(local_port.to_string());
    let mut client = Proc::spawn("dtls_tunnel_client", cmd);
    let code = client.wait(Duration::from_secs(90));
    let tunnel_lines = tunnel.drain().to_vec();
    assert_eq!(
        code,
        Some(0),
        "C client: {:?}\ntunnel: {tunnel_lines:?}\necho: {:?}",
        client.seen,
        echo.drain()
    );
    // The ENet MTU was lowered for the DTLS record overhead, and the C client took it.
    assert!(
        client
            .seen
            .contains(&format!("CONNECTED mtu={}", enet_mtu_for_dtls_mtu(1440))),
        "{:?}",
        client.seen
    );
    assert!(
        client.seen.contains(&"BIG_OK".to_string()),
        "{:?}",
        client.seen
    );
    // The echo only understands DTLS: it saw the C client's CONNECT (its data) coming from the
    // tunnel's DTLS session, and its disconnect.
    let connect = echo.expect_line("CONNECT ", LINE);
    assert!(connect.ends_with(" data=3608477697"), "{connect}");
    let from = connect.split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(
        echo.expect_line("DISCONNECT", LINE),
        format!("DISCONNECT {from}")
    );
    // The tunnel ran a verified DTLS session, relayed records both ways, and stopped when the
    // echo closed the session (close_notify) once the C client's ENet peer was gone.
    // (The drain above may already have taken the exit line in.)
    let exit = tunnel.seen_or_expect_line("TUNNEL_EXIT", LINE);
    let all = tunnel.drain().to_vec();
    assert!(all.iter().any(|l| l == "TUNNEL_DTLS_CONNECTED"), "{all:?}");
    assert!(exit.starts_with("TUNNEL_EXIT closed "), "{exit}");
    let count = |key: &str| -> u64 {
        exit.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    // 50 small messages, the fragments of 64 KiB, the connect and disconnect exchanges.
    assert!(count("up=") >= 52 && count("down=") >= 52, "{exit}");
}

/// The other direction: Godot's DTLS *server* (`DTLSServer` + `UDPServer`, mbedTLS, with its
/// cookie exchange: what Godot's `ENetDTLSServer` runs) in `fixtures/godot/dtls_server_tunnel.gd`,
/// relaying each record as one datagram to a plain C ENet echo (`enet_peer.c server`). Our DTLS
/// ENet client (`DtlsEnetSocket` under `EnetHost`, the certificate pinned and the hostname
/// checked) runs the full scenario through it, the 1 MiB fragmented packet included. A client
/// expecting another hostname is refused by its own verification.
#[test]
fn our_dtls_client_runs_the_scenario_through_godots_dtls_server() {
    if !require_program("godot3-server") {
        return;
    }
    let Some(c) = build_c_enet_program("tests/enet_peers/enet_peer.c") else {
        return;
    };
    let (_dir, key, cert) = keys();
    let mut cmd = Command::new(c);
    cmd.args(["server", "--port", "0"]);
    let mut backend = Proc::spawn("enet_peer.c server", cmd);
    let backend_addr = listening_addr(&backend.expect_line("LISTENING", LINE));
    let port = free_udp_port();
    let mut tunnel = Proc::spawn(
        "dtls_server_tunnel.gd",
        godot(
            "dtls_server_tunnel.gd",
            &[
                format!("port={port}"),
                format!("backend_port={}", backend_addr.port()),
                format!("key={}", key.display()),
                format!("cert={}", cert.display()),
                "sessions=1".into(),
                "timeout=90".into(),
            ],
        ),
    );
    tunnel.expect_line("SERVER_TUNNEL_LISTENING", LINE);
    let server: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let pinned = Certificate::load(&cert).unwrap();

    // Verification is on: the wrong hostname fails the handshake, nothing reaches the backend.
    let wrong = ClientConfig::builder()
        .trusted_certificate(pinned.clone())
        .hostname("not-localhost.example")
        .build()
        .unwrap();
    let socket = DtlsEnetSocket::client("127.0.0.1:0", &wrong).unwrap();
    let host = EnetHost::with_socket(socket, Options::default().client_config()).unwrap();
    let err =
        scenario::run_client_on(host, server).expect_err("a hostname mismatch must not connect");
    assert!(err.contains("connection failed"), "{err}");

    let config = ClientConfig::builder()
        .trusted_certificate(pinned)
        .hostname("localhost")
        .build()
        .unwrap();
    let socket = DtlsEnetSocket::client("127.0.0.1:0", &config).unwrap();
    let host = EnetHost::with_socket(socket, Options::default().client_config()).unwrap();
    let lines = scenario::run_client_on(host, server).unwrap_or_else(|e| {
        panic!(
            "our DTLS client through Godot's DTLS server: {e}\ntunnel: {:?}\nbackend: {:?}",
            tunnel.drain(),
            backend.drain()
        )
    });
    assert_eq!(
        lines,
        [
            "CONNECTED",
            "OK basic 48",
            "OK big 1048576",
            "OK ordered 10000",
            "DISCONNECTED",
            "PASS"
        ]
    );
    // The C echo saw one client, the tunnel's socket for our session, with our CONNECT data.
    let connect = backend.expect_line("CONNECT ", LINE);
    assert!(
        connect.ends_with(&format!(" data={CONNECT_DATA}")),
        "{connect}"
    );
    let from = connect.split_whitespace().nth(1).unwrap().to_string();
    assert!(backend
        .expect_line("DISCONNECT", LINE)
        .starts_with(&format!("DISCONNECT {from} ")));
    // Godot's side: one verified session (the mismatched client never completed one), records
    // relayed both ways, closed by our close_notify when the host was dropped.
    let exit = tunnel.seen_or_expect_line("SERVER_TUNNEL_EXIT", LINE);
    let all = tunnel.drain().to_vec();
    assert_eq!(
        all.iter()
            .filter(|l| l.starts_with("SERVER_TUNNEL_CONNECTED"))
            .count(),
        1,
        "{all:?}"
    );
    assert!(
        exit.starts_with("SERVER_TUNNEL_EXIT done sessions=1 "),
        "{exit}"
    );
    let count = |key: &str| -> u64 {
        exit.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    // At least the fragments of 1 MiB went each way (about 770 at ENet's MTU of 1359).
    assert!(count("up=") > 770 && count("down=") > 770, "{exit}");
}
