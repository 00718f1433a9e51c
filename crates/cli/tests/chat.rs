//! `enet-dtls serve` / `enet-dtls connect`: the Godot 3.2 chat room, plain and over DTLS, with
//! our clients and with a Godot 3.2.3 client (`fixtures/godot/chat_client.gd`).

mod common;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use common::{bin, keygen, listening_addr, Proc};

const WAIT: Duration = Duration::from_secs(20);

/// Starts `serve` with `extra` args; returns it and its address.
fn serve(extra: &[&str]) -> (Proc, String) {
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(extra);
    let mut p = Proc::spawn("serve", cmd);
    let line = p.expect_line("LISTENING", WAIT);
    assert!(line.starts_with("LISTENING "), "first line: {line}");
    (p, listening_addr(&line).to_string())
}

/// Starts `connect` and waits for `CONNECTED <id>`; returns it and its id.
fn connect(addr: &str, extra: &[&str]) -> (Proc, u32) {
    let mut cmd = Command::new(bin());
    cmd.args(["connect", "--connect", addr]).args(extra);
    let mut p = Proc::spawn("connect", cmd);
    let line = p.expect_line("CONNECTED", WAIT);
    let id = line
        .strip_prefix("CONNECTED ")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad line {line}"));
    (p, id)
}

fn type_line(p: &mut Proc, text: &str) {
    let stdin = p.child.stdin.as_mut().expect("stdin");
    writeln!(stdin, "{text}").unwrap();
    stdin.flush().unwrap();
}

fn two_clients(server_args: &[&str], client_args: &[&str]) {
    let (mut server, addr) = serve(server_args);
    let (mut a, id_a) = connect(&addr, client_args);
    let (mut b, id_b) = connect(&addr, client_args);
    assert_ne!(id_a, id_b);
    assert!(id_a >= 2 && id_b >= 2);
    server.expect_line(&format!("JOIN {id_a} 127.0.0.1:"), WAIT);
    server.expect_line(&format!("JOIN {id_b} 127.0.0.1:"), WAIT);

    type_line(&mut a, "hello from a");
    // Everyone gets it, the sender included, with the sender's id.
    b.expect_line(&format!("{id_a}: hello from a"), WAIT);
    a.expect_line(&format!("{id_a}: hello from a"), WAIT);
    server.expect_line(&format!("MSG {id_a}: hello from a"), WAIT);

    type_line(&mut b, "and back from b");
    type_line(&mut b, "line\twith a tab");
    a.expect_line(&format!("{id_b}: and back from b"), WAIT);
    a.expect_line(&format!("{id_b}: line\\u{{9}}with a tab"), WAIT);

    // End of input: b waits for its own messages, leaves, exits 0.
    drop(b.child.stdin.take());
    assert_eq!(b.wait(WAIT), Some(0), "connect b: {:?}", b.seen);
    server.expect_line(&format!("LEAVE {id_b}"), WAIT);
    drop(a.child.stdin.take());
    assert_eq!(a.wait(WAIT), Some(0), "connect a: {:?}", a.seen);
    server.expect_line(&format!("LEAVE {id_a}"), WAIT);
    // Exact forms: every serve line is one of the documented ones.
    for line in server.drain() {
        let ok = line.starts_with("LISTENING ")
            || line.starts_with("JOIN ")
            || line.starts_with("LEAVE ")
            || line.starts_with("MSG ");
        assert!(ok, "unexpected serve line {line:?}");
    }
}

#[test]
fn two_clients_exchange_messages_plain() {
    two_clients(&[], &[]);
}

#[test]
fn two_clients_exchange_messages_with_compression() {
    for mode in ["range-coder", "fastlz", "zlib", "zstd"] {
        two_clients(&["--compress", mode], &["--compress", mode]);
    }
}

#[test]
fn two_clients_exchange_messages_over_dtls() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path());
    let key = dir.path().join("key.pem");
    let cert = dir.path().join("cert.pem");
    two_clients(
        &[
            "--dtls",
            "--key",
            key.to_str().unwrap(),
            "--cert",
            cert.to_str().unwrap(),
        ],
        &[
            "--dtls",
            "--ca",
            cert.to_str().unwrap(),
            "--hostname",
            "localhost",
        ],
    );
}

/// `--insecure`: no certificate check at all (still encrypted), so no `--ca` is needed.
#[test]
fn insecure_dtls_clients_join_without_a_ca() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path());
    let key = dir.path().join("key.pem");
    let cert = dir.path().join("cert.pem");
    two_clients(
        &[
            "--dtls",
            "--key",
            key.to_str().unwrap(),
            "--cert",
            cert.to_str().unwrap(),
        ],
        &["--dtls", "--insecure"],
    );
}

#[test]
fn dtls_client_with_the_wrong_hostname_fails_with_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path());
    let key = dir.path().join("key.pem");
    let cert = dir.path().join("cert.pem");
    let (_server, addr) = serve(&[
        "--dtls",
        "--key",
        key.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
    ]);
    let out = Command::new(bin())
        .args([
            "connect",
            "--connect",
            &addr,
            "--dtls",
            "--hostname",
            "example.org",
        ])
        .arg("--ca")
        .arg(&cert)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("example.org"), "{err}");
    // The room is still fine for a legitimate client.
    let (mut c, id) = connect(
        &addr,
        &[
            "--dtls",
            "--ca",
            cert.to_str().unwrap(),
            "--hostname",
            "localhost",
        ],
    );
    type_line(&mut c, "still here");
    c.expect_line(&format!("{id}: still here"), WAIT);
}

#[test]
fn max_clients_is_held_and_a_member_still_chats() {
    let (mut server, addr) = serve(&["--max-clients", "1"]);
    let (mut a, id_a) = connect(&addr, &[]);
    server.expect_line(&format!("JOIN {id_a}"), WAIT);
    // The attacker: more clients than the room holds. Each is refused (exit 3, no JOIN).
    for _ in 0..3 {
        let out = Command::new(bin())
            .args(["connect", "--connect", &addr, "--timeout", "3"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{out:?}");
    }
    type_line(&mut a, "alone");
    a.expect_line(&format!("{id_a}: alone"), WAIT);
    let joins = server
        .drain()
        .iter()
        .filter(|l| l.starts_with("JOIN "))
        .count();
    assert_eq!(joins, 1, "{:?}", server.seen);
}

#[test]
fn room_name_welcomes_each_client() {
    let (_server, addr) = serve(&["--name", "lobby"]);
    let (mut a, _) = connect(&addr, &["--name", "ann"]);
    a.expect_line("1: welcome to lobby", WAIT);
    type_line(&mut a, "hi");
    a.expect_line(": ann: hi", WAIT);
}

#[test]
fn sigterm_disconnects_every_client_then_exits_0() {
    let (mut server, addr) = serve(&[]);
    let (mut a, id_a) = connect(&addr, &[]);
    let (mut b, id_b) = connect(&addr, &[]);
    server.expect_line(&format!("JOIN {id_a}"), WAIT);
    server.expect_line(&format!("JOIN {id_b}"), WAIT);
    let st = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    server.expect_line("SHUTDOWN", WAIT);
    assert_eq!(server.wait(WAIT), Some(0));
    // The clients were told (ENet DISCONNECT), not left to time out.
    a.expect_line("DISCONNECTED", Duration::from_secs(3));
    b.expect_line("DISCONNECTED", Duration::from_secs(3));
    assert_eq!(a.wait(WAIT), Some(0));
    assert_eq!(b.wait(WAIT), Some(0));
    let leaves = server
        .seen
        .iter()
        .filter(|l| l.starts_with("LEAVE "))
        .count();
    assert_eq!(leaves, 2, "{:?}", server.seen);
}

#[test]
fn bad_arguments_are_refused_with_the_reason() {
    let out = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--dtls"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--key"), "{err}");
    let out = Command::new(bin())
        .args(["connect", "--connect", "127.0.0.1"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HOST:PORT"));
    let out = Command::new(bin())
        .args(["connect", "--connect", "127.0.0.1:1", "--insecure"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "--insecure needs --dtls");
}

#[test]
fn godot_client_and_ours_chat_through_serve() {
    if !common::require_program("godot3-server") {
        return;
    }
    // Godot's compression_mode values: NONE 0, RANGE_CODER 1, FASTLZ 2, ZLIB 3, ZSTD 4.
    for (godot_mode, compress) in ["none", "range-coder", "fastlz", "zlib", "zstd"]
        .into_iter()
        .enumerate()
    {
        let (mut server, addr) = serve(&["--compress", compress]);
        let port = addr.rsplit(':').next().unwrap().to_string();
        let (mut ours, our_id) = connect(&addr, &["--compress", compress]);
        let mut godot = Proc::spawn(
            "godot chat_client",
            common::godot(
                "chat_client.gd",
                &[
                    format!("port={port}"),
                    "send=hello from godot".into(),
                    "expect=hello from rust".into(),
                    format!("compression={godot_mode}"),
                    "timeout=20".into(),
                ],
            ),
        );
        let line = godot.expect_line("CHAT_CONNECTED my_id=", WAIT);
        let godot_id: u32 = line
            .rsplit('=')
            .next()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        server.expect_line(&format!("JOIN {godot_id}"), WAIT);
        // Godot's message reaches our client (and the server's log) with Godot's id...
        ours.expect_line(&format!("{godot_id}: hello from godot"), WAIT);
        server.expect_line(&format!("MSG {godot_id}: hello from godot"), WAIT);
        // ...and ours reaches Godot, which runs receive_message(sender_id, text).
        type_line(&mut ours, "hello from rust");
        godot.expect_line(&format!("MSG {our_id}: hello from rust rpc_from=1"), WAIT);
        godot.expect_line("CHAT_EXIT ok", WAIT);
        assert_eq!(godot.wait(WAIT), Some(0), "{:?}", godot.seen);
        server.expect_line(&format!("LEAVE {godot_id}"), WAIT);
    }
}

/// SIGTERM on a DTLS room whose client does not answer (it stops servicing its socket): `serve`
/// still exits 0 after its grace period, and the client, once it reads its socket again, finds
/// the ENet DISCONNECT inside DTLS and the server's close_notify (an alert record encrypted
/// under epoch 1; the client sent none, it was not running). The test's client is our library
/// over a capturing UDP socket, so the test sees the records on the wire.
#[test]
fn sigterm_over_dtls_ends_a_silent_clients_session_with_close_notify() {
    use dtls_proto::keys::Certificate;
    use dtls_proto::ClientConfig;
    use enet_dtls::capture::{Capture, CaptureSocket, Direction};
    use enet_dtls::enet::{DtlsEnetSocket, UdpEnetSocket};
    use enet_dtls::multiplayer::{MultiplayerEvent, MultiplayerPeer};
    use std::time::Instant;

    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path());
    let key = dir.path().join("key.pem");
    let cert = dir.path().join("cert.pem");
    let (mut server, addr) = serve(&[
        "--dtls",
        "--key",
        key.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
    ]);
    let port: u16 = addr.rsplit_once(':').unwrap().1.parse().unwrap();
    let config = ClientConfig::builder()
        .hostname("localhost")
        .trusted_certificate(Certificate::load(&cert).unwrap())
        .build()
        .unwrap();
    let wire = Capture::new();
    let udp =
        CaptureSocket::new(UdpEnetSocket::bind("127.0.0.1:0").unwrap(), wire.clone()).unwrap();
    let socket = DtlsEnetSocket::client_over(udp, &config).unwrap();
    let mut client = MultiplayerPeer::client("127.0.0.1", port)
        .create_with_socket(socket)
        .unwrap();

    let next = |client: &mut MultiplayerPeer<_>, want: &MultiplayerEvent| {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(e) = client.service(Duration::from_millis(20)).unwrap() {
                assert!(!matches!(e, MultiplayerEvent::ConnectionFailed(_)), "{e:?}");
                if &e == want {
                    return;
                }
            }
        }
        panic!("no {want:?}");
    };
    next(&mut client, &MultiplayerEvent::ConnectionSucceeded);
    server.expect_line(&format!("JOIN {}", client.unique_id()), WAIT);

    let st = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    server.expect_line("SHUTDOWN", WAIT);
    assert_eq!(server.wait(WAIT), Some(0));
    let sent_alerts = |wire: &Capture| {
        wire.datagrams()
            .into_iter()
            .filter(|d| d.direction == Direction::Sent && d.data.first() == Some(&21))
            .count()
    };
    assert_eq!(sent_alerts(&wire), 0);
    next(&mut client, &MultiplayerEvent::ServerDisconnected);
    // Read whatever else is queued (the close_notify follows the DISCONNECT).
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        let _ = client.service(Duration::from_millis(20));
    }
    let alerts = wire
        .datagrams()
        .into_iter()
        .filter(|d| d.direction == Direction::Received)
        // DTLS record header: type 21 (alert), version DTLS 1.2, epoch 1 (encrypted).
        .filter(|d| d.data.len() > 13 && d.data[..5] == [21, 0xfe, 0xfd, 0, 1])
        .count();
    assert!(alerts >= 1, "no encrypted alert from the server");
}

/// Our `connect` joins a Godot 3.2.3 server running the same room in GDScript
/// (`fixtures/godot/chat_server.gd`): two of our clients exchange messages through it, and
/// each sees its own message come back from Godot's `rpc("receive_message", ...)`.
#[test]
fn our_clients_chat_through_a_godot_server() {
    if !common::require_program("godot3-server") {
        return;
    }
    for (godot_mode, compress) in [(0, "none"), (1, "range-coder"), (4, "zstd")] {
        let port = common::free_udp_port();
        let mut godot = Proc::spawn(
            "godot chat_server",
            common::godot(
                "chat_server.gd",
                &[
                    format!("port={port}"),
                    format!("compression={godot_mode}"),
                    "messages=2".into(),
                    "timeout=30".into(),
                ],
            ),
        );
        let line = godot.expect_line("CHAT_SERVER_LISTENING", WAIT);
        assert!(line.ends_with("err=0"), "{line}");
        let addr = format!("127.0.0.1:{port}");
        let (mut a, id_a) = connect(&addr, &["--compress", compress]);
        let (mut b, id_b) = connect(&addr, &["--compress", compress]);
        godot.expect_line(&format!("JOIN {id_a}"), WAIT);
        godot.expect_line(&format!("JOIN {id_b}"), WAIT);
        type_line(&mut a, "from a to godot");
        godot.expect_line(&format!("MSG {id_a}: from a to godot"), WAIT);
        a.expect_line(&format!("{id_a}: from a to godot"), WAIT);
        b.expect_line(&format!("{id_a}: from a to godot"), WAIT);
        type_line(&mut b, "from b");
        a.expect_line(&format!("{id_b}: from b"), WAIT);
        b.expect_line(&format!("{id_b}: from b"), WAIT);
        // End of input: each waits for its own message, leaves and exits 0.
        drop(a.child.stdin.take());
        drop(b.child.stdin.take());
        assert_eq!(a.wait(WAIT), Some(0), "{:?}", a.seen);
        assert_eq!(b.wait(WAIT), Some(0), "{:?}", b.seen);
        // Godot exits once both left (in either order).
        godot.expect_line("CHAT_SERVER_EXIT ok", WAIT);
        for id in [id_a, id_b] {
            let leave = format!("LEAVE {id}");
            assert!(godot.seen.contains(&leave), "{:?}", godot.seen);
        }
        assert_eq!(godot.wait(WAIT), Some(0), "{:?}", godot.seen);
    }
}

/// `connect --dtls` joins a Godot 3.2.3 chat server (`chat_server.gd`) over Godot's own DTLS:
/// Debian's Godot ignores `use_dtls`, so Godot's DTLS server side is `dtls_server_tunnel.gd`
/// (Godot's `DTLSServer`, each record relayed as one datagram to the Godot ENet server). Two
/// of our clients, verifying the certificate (`--ca`, `--hostname`), chat through it.
#[test]
fn our_dtls_clients_chat_through_a_godot_server_over_godots_dtls() {
    if !common::require_program("godot3-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path());
    let key = dir.path().join("key.pem");
    let cert = dir.path().join("cert.pem");
    let port = common::free_udp_port();
    let mut godot = Proc::spawn(
        "godot chat_server",
        common::godot(
            "chat_server.gd",
            &[
                format!("port={port}"),
                "messages=2".into(),
                "timeout=30".into(),
            ],
        ),
    );
    let line = godot.expect_line("CHAT_SERVER_LISTENING", WAIT);
    assert!(line.ends_with("err=0"), "{line}");
    let tunnel_port = common::free_udp_port();
    let mut tunnel = Proc::spawn(
        "dtls_server_tunnel.gd",
        common::godot(
            "dtls_server_tunnel.gd",
            &[
                format!("port={tunnel_port}"),
                format!("backend_port={port}"),
                format!("key={}", key.display()),
                format!("cert={}", cert.display()),
                "sessions=2".into(),
                "timeout=30".into(),
            ],
        ),
    );
    tunnel.expect_line("SERVER_TUNNEL_LISTENING", WAIT);
    let addr = format!("127.0.0.1:{tunnel_port}");
    let args = [
        "--dtls",
        "--ca",
        cert.to_str().unwrap(),
        "--hostname",
        "localhost",
    ];
    let (mut a, id_a) = connect(&addr, &args);
    let (mut b, id_b) = connect(&addr, &args);
    godot.expect_line(&format!("JOIN {id_a}"), WAIT);
    godot.expect_line(&format!("JOIN {id_b}"), WAIT);
    type_line(&mut a, "from a over dtls");
    godot.expect_line(&format!("MSG {id_a}: from a over dtls"), WAIT);
    a.expect_line(&format!("{id_a}: from a over dtls"), WAIT);
    b.expect_line(&format!("{id_a}: from a over dtls"), WAIT);
    type_line(&mut b, "from b over dtls");
    a.expect_line(&format!("{id_b}: from b over dtls"), WAIT);
    b.expect_line(&format!("{id_b}: from b over dtls"), WAIT);
    drop(a.child.stdin.take());
    drop(b.child.stdin.take());
    assert_eq!(a.wait(WAIT), Some(0), "{:?}", a.seen);
    assert_eq!(b.wait(WAIT), Some(0), "{:?}", b.seen);
    godot.expect_line("CHAT_SERVER_EXIT ok", WAIT);
    // Both sessions were Godot's DTLS sessions, and both ended with their client.
    let exit = tunnel.seen_or_expect_line("SERVER_TUNNEL_EXIT", WAIT);
    assert!(
        exit.starts_with("SERVER_TUNNEL_EXIT done sessions=2 "),
        "{exit}"
    );
    let connected = tunnel
        .seen
        .iter()
        .filter(|l| l.starts_with("SERVER_TUNNEL_CONNECTED"))
        .count();
    assert_eq!(connected, 2, "{:?}", tunnel.seen);
}
