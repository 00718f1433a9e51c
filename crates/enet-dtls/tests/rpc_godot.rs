//! Godot 3.2's MultiplayerAPI against real Godot 3.2.3 (`godot3-server`), through
//! [`RpcPeer`] over the multiplayer peer.
//!
//! The Godot side is `fixtures/godot/rpc_peer.gd` with the `/root/Room` node of
//! `rpc_room.gd`; the Rust side registers the same node ([`room_api`]). One side is the
//! *caller* (every corpus value as an RPC argument, a call in each of the seven rpc modes,
//! `rset_id` of four properties, `done()`), the other the *answerer* (the values back, every
//! mode with `rpc()`, master-only methods forced on the caller, `rset()`, `finish()`):
//!
//! * a Godot client calls our server, and our server answers;
//! * our client calls a Godot server, and Godot answers;
//! * two Godot clients greet each other through our server's relay;
//! * a handler's local calls (`*sync` modes) run inside its `rpc()` / `rset()` with the sender
//!   ids Godot's see, in Godot's order (rpc_room.gd's `nest()`);
//! * both exchanges again with our side on tokio (`TokioRpcPeer`), and the first one with our
//!   server (polled) in `use_dtls` mode, the Godot client's ENet
//!   carried by Godot's own `PacketPeerDTLS` (`dtls_tunnel.gd`).
//!
//! Both sides check every value (ours against the committed Godot corpus,
//! `crates/godot-proto/tests/corpus`), which calls ran with which `get_rpc_sender_id()`, and
//! that each call its mode forbids was refused (Godot prints "... is not allowed ..."; we
//! report [`ApiEvent::Refused`]).
//!
//! With `CI=true` a missing `godot3-server` is a failure; otherwise the tests print a loud
//! `SKIP:` line and return.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use enet_dtls::godot_proto::{
    ApiEvent, MultiplayerApi, RefusalReason, RpcKind, RpcMode, TransferMode, Variant, Vector2,
};
use enet_dtls::multiplayer::MultiplayerPeer;
use enet_dtls::rpc::RpcPeer;

/// Stops a hung test; never an expectation on speed.
const DEADLINE: Duration = Duration::from_secs(40);

const MODES: [(&str, RpcMode); 7] = [
    ("disabled", RpcMode::Disabled),
    ("remote", RpcMode::Remote),
    ("master", RpcMode::Master),
    ("puppet", RpcMode::Puppet),
    ("remotesync", RpcMode::RemoteSync),
    ("mastersync", RpcMode::MasterSync),
    ("puppetsync", RpcMode::PuppetSync),
];

// ---------------------------------------------------------------------------------------------
// Real-peer plumbing (the rules of crates/cli/tests/common: in CI a missing peer fails)
// ---------------------------------------------------------------------------------------------

fn have_godot() -> bool {
    let found = Command::new("sh")
        .args(["-c", "command -v godot3-server"])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !ci,
            "required interop peer godot3-server is missing (CI=true): run scripts/test"
        );
        eprintln!("SKIP: interop peer godot3-server is missing; run scripts/test to install it");
        if let Ok(path) = std::env::var("ENET_DTLS_SKIP_LOG") {
            use std::io::Write;
            let test = std::thread::current().name().unwrap_or("?").to_owned();
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(f, "SKIP {test}: godot3-server is missing");
            }
        }
    }
    found
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A Godot peer whose stdout lines arrive on a channel; stderr is collected. Killed on drop.
struct Godot {
    child: Child,
    lines: Receiver<String>,
    stdout: Vec<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Godot {
    fn spawn(args: &[String]) -> Godot {
        Godot::spawn_script("rpc_peer.gd", args)
    }

    fn spawn_script(script: &str, args: &[String]) -> Godot {
        let mut child = Command::new("godot3-server")
            .env("LANG", "en_US.UTF-8")
            .arg("--path")
            .arg(repo().join("fixtures/godot"))
            .arg("-s")
            .arg(script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn godot3-server");
        let out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Godot {
            child,
            lines: rx,
            stdout: Vec::new(),
            stderr,
        }
    }

    /// Collects what Godot printed so far.
    fn drain(&mut self) {
        while let Ok(l) = self.lines.try_recv() {
            self.stdout.push(l);
        }
    }

    fn has_line(&mut self, prefix: &str) -> Option<String> {
        self.drain();
        self.stdout.iter().find(|l| l.starts_with(prefix)).cloned()
    }

    /// The exit code, if Godot exited.
    fn exited(&mut self) -> Option<i32> {
        match self.child.try_wait() {
            Ok(Some(st)) => Some(st.code().unwrap_or(-1)),
            _ => None,
        }
    }

    /// Waits for the exit (killing Godot after `timeout`); returns (code, stdout, stderr).
    fn finish(mut self, timeout: Duration) -> (Option<i32>, Vec<String>, String) {
        let give_up = Instant::now() + timeout;
        let code = loop {
            if let Some(code) = self.exited() {
                break Some(code);
            }
            if Instant::now() > give_up {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.stdout.push(l);
        }
        let stdout = std::mem::take(&mut self.stdout);
        let stderr = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new))
            .join()
            .unwrap_or_default();
        (code, stdout, stderr)
    }
}

impl Drop for Godot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP port for the Godot server (Godot cannot bind port 0 and report it).
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------------------------
// The Room, Rust side
// ---------------------------------------------------------------------------------------------

/// Every corpus value in `variant_values.gd` order: the committed Godot corpus decoded.
fn corpus_values() -> Vec<(String, Variant)> {
    let dir = repo().join("crates/godot-proto/tests/corpus");
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).expect("manifest.tsv");
    manifest
        .lines()
        .map(|l| {
            let name = l.split('\t').next().unwrap().to_owned();
            let bytes = std::fs::read(dir.join(format!("{name}.bin"))).unwrap();
            let v = Variant::from_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, v)
        })
        .collect()
}

/// What the Rust Room saw.
#[derive(Debug, Default)]
struct Room {
    expected: Vec<(String, Variant)>,
    /// (name, sender, equal to the corpus value)
    values: Vec<(String, i32, bool)>,
    /// (method, sender, argument)
    calls: Vec<(String, i32, String)>,
    done_from: Option<i32>,
    finished_from: Option<i32>,
    greetings: Vec<(i32, i64)>,
}

/// The `/root/Room` node of `rpc_room.gd`, registered on a Rust API.
fn room_api() -> MultiplayerApi<Room> {
    let mut api = MultiplayerApi::with_state(Room {
        expected: corpus_values(),
        ..Room::default()
    });
    api.register(
        "Room",
        "value",
        RpcMode::Remote,
        |ctx, (name, v): (String, Variant)| {
            let sender = ctx.sender();
            let ok = ctx
                .state()
                .expected
                .iter()
                .any(|(n, e)| *n == name && *e == v);
            ctx.state_mut().values.push((name, sender, ok));
        },
    );
    for (name, mode) in MODES {
        let method = format!("m_{name}");
        let m = method.clone();
        api.register("Room", &method, mode, move |ctx, (arg,): (String,)| {
            let sender = ctx.sender();
            ctx.state_mut().calls.push((m.clone(), sender, arg));
        });
    }
    api.register_property("Room", "rv", RpcMode::Remote, 0);
    api.register_property("Room", "pv", RpcMode::Puppet, Vector2::default());
    api.register_property("Room", "mv", RpcMode::Master, "");
    api.register_property("Room", "dv", RpcMode::Disabled, 0);
    // The answerer's part (rpc_room.gd's done()).
    api.register("Room", "done", RpcMode::Remote, |ctx, (): ()| {
        let partner = ctx.sender();
        let me = ctx.unique_id();
        ctx.state_mut().done_from = Some(partner);
        let values = ctx.state().expected.clone();
        for (name, v) in values {
            ctx.rpc_id(partner, "Room", "value", (name, v)).unwrap();
        }
        for (name, _) in MODES {
            ctx.rpc("Room", &format!("m_{name}"), (format!("all from {me}"),))
                .unwrap();
        }
        ctx.rpc_id(partner, "Room", "m_master", ("forced",))
            .unwrap();
        ctx.rpc_id(partner, "Room", "m_mastersync", ("forced",))
            .unwrap();
        ctx.rpc_unreliable_id(partner, "Room", "m_remote", ("unreliable",))
            .unwrap();
        ctx.send_bytes(&[4, 5, 6], partner, TransferMode::Reliable)
            .unwrap();
        ctx.rset("Room", "rv", 21).unwrap();
        ctx.rset("Room", "pv", Vector2::new(3.0, 4.0)).unwrap();
        ctx.rset("Room", "mv", "answer").unwrap();
        ctx.rset("Room", "dv", 23).unwrap();
        ctx.rpc_id(partner, "Room", "finish", ()).unwrap();
    });
    api.register("Room", "finish", RpcMode::Remote, |ctx, (): ()| {
        let s = ctx.sender();
        ctx.state_mut().finished_from = Some(s);
    });
    api.register(
        "Room",
        "peer_hello",
        RpcMode::Remote,
        |ctx, (id,): (i64,)| {
            let s = ctx.sender();
            ctx.state_mut().greetings.push((s, id));
        },
    );
    api
}

/// The caller's part (rpc_room.gd's run_caller) towards `partner`, on an `RpcPeer` or a
/// `TokioRpcPeer` (the same methods).
macro_rules! run_caller {
    ($peer:expr, $partner:expr) => {{
        let me = $peer.unique_id();
        for (name, v) in $peer.api().state().expected.clone() {
            $peer.rpc_id($partner, "Room", "value", (name, v)).unwrap();
        }
        for (name, _) in MODES {
            $peer
                .rpc_id(
                    $partner,
                    "Room",
                    &format!("m_{name}"),
                    (format!("from {me}"),),
                )
                .unwrap();
        }
        $peer
            .rpc_unreliable_id($partner, "Room", "m_remote", ("unreliable",))
            .unwrap();
        $peer
            .send_bytes(&[1, 2, 3], $partner, TransferMode::Reliable)
            .unwrap();
        $peer.rset_id($partner, "Room", "rv", 11).unwrap();
        $peer
            .rset_id($partner, "Room", "pv", Vector2::new(1.0, 2.0))
            .unwrap();
        $peer
            .rset_id($partner, "Room", "mv", format!("set by {me}"))
            .unwrap();
        $peer.rset_id($partner, "Room", "dv", 13).unwrap();
        $peer.rpc_id($partner, "Room", "done", ()).unwrap();
    }};
}

/// Refusals among `events`: (kind, name, sender).
fn refusals(events: &[ApiEvent]) -> Vec<(RpcKind, String, i32)> {
    events
        .iter()
        .filter_map(|e| match e {
            ApiEvent::Refused {
                kind: Some(kind),
                name: Some(name),
                from,
                reason: RefusalReason::NotAllowed { .. },
                ..
            } => Some((*kind, name.clone(), *from)),
            _ => None,
        })
        .collect()
}

fn calls_by(room: &Room, sender: i32) -> Vec<&str> {
    room.calls
        .iter()
        .filter(|c| c.1 == sender)
        .map(|c| c.0.as_str())
        .collect()
}

/// Godot's `CALL <method> sender=<id>` lines, as (method, sender).
fn godot_calls(stdout: &[String]) -> Vec<(String, i32)> {
    stdout
        .iter()
        .filter_map(|l| l.strip_prefix("CALL "))
        .map(|l| {
            let mut f = l.split_whitespace();
            let method = f.next().unwrap().to_owned();
            let sender = f
                .next()
                .and_then(|s| s.strip_prefix("sender="))
                .unwrap()
                .parse()
                .unwrap();
            (method, sender)
        })
        .collect()
}

fn godot_id(stdout: &[String]) -> i32 {
    stdout
        .iter()
        .find_map(|l| l.strip_prefix("CONNECTED_TO_SERVER my_id="))
        .unwrap_or_else(|| panic!("no CONNECTED_TO_SERVER line: {stdout:#?}"))
        .parse()
        .unwrap()
}

fn count_values_ok(stdout: &[String], sender: i32) -> usize {
    let suffix = format!("sender={sender} ok");
    stdout
        .iter()
        .filter(|l| l.starts_with("VALUE ") && l.ends_with(&suffix))
        .count()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// Our room server (plaintext) on a free loopback port, and the port.
fn our_room_server() -> (RpcPeer<Room>, u16) {
    let peer = MultiplayerPeer::server(0)
        .bind_address("127.0.0.1".parse().unwrap())
        .create()
        .unwrap();
    let port = peer.local_addr().unwrap().port();
    (RpcPeer::new(peer, room_api()), port)
}

#[test]
fn godot_client_calls_our_server_and_we_answer() {
    if !have_godot() {
        return;
    }
    let (server, port) = our_room_server();
    godot_client_scenario(server, port);
}

/// The same exchange with our server on tokio (`TokioRpcPeer`).
#[cfg(feature = "tokio")]
#[test]
fn godot_client_calls_our_tokio_server_and_we_answer() {
    use enet_dtls::rpc::TokioRpcPeer;
    if !have_godot() {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let peer = MultiplayerPeer::server(0)
            .bind_address("127.0.0.1".parse().unwrap())
            .create_tokio()
            .await
            .unwrap();
        let port = peer.local_addr().unwrap().port();
        let mut server = TokioRpcPeer::new(peer, room_api());
        let mut godot = godot_rpc_client(port);
        let mut events = Vec::new();
        let give_up = Instant::now() + DEADLINE;
        while godot.exited().is_none() && Instant::now() < give_up {
            if let Some(e) = server.service(Duration::from_millis(5)).await.unwrap() {
                events.push(e);
            }
        }
        // Let the disconnect arrive.
        let until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < until {
            if let Some(e) = server.service(Duration::from_millis(5)).await.unwrap() {
                events.push(e);
            }
        }
        let (code, stdout, stderr) = godot.finish(Duration::from_secs(5));
        check_godot_client_exchange(server.api(), &events, code, &stdout, &stderr);
    });
}

/// Debian's Godot ignores `use_dtls`, so Godot's DTLS-enabled ENet is rebuilt from Godot's own
/// parts: the Godot client (`rpc_peer.gd`) talks plain ENet to `dtls_tunnel.gd`, which carries
/// each datagram as one record of a Godot (mbedTLS) `PacketPeerDTLS` session verifying our
/// certificate, as Godot's `ENetDTLSClient` does. Our server has `use_dtls`; the whole RPC
/// exchange runs over it.
#[test]
fn godot_client_calls_our_dtls_server_through_godots_dtls() {
    use enet_dtls::keys::{Certificate, CertificateParams, KeyType, PrivateKey};
    if !have_godot() {
        return;
    }
    let key = PrivateKey::generate(KeyType::Rsa(2048)).unwrap();
    let cert = Certificate::self_signed(&key, &CertificateParams::new("localhost")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("cert.pem");
    cert.save(&ca).unwrap();
    let peer = MultiplayerPeer::server(0)
        .bind_address("127.0.0.1".parse().unwrap())
        .use_dtls(true)
        .dtls_key(key)
        .dtls_certificate(cert)
        .create()
        .unwrap();
    let mut server = RpcPeer::new(peer, room_api());
    let listen_port = free_udp_port();
    let mut tunnel = Godot::spawn_script(
        "dtls_tunnel.gd",
        &[
            format!("listen_port={listen_port}"),
            format!("port={}", server.peer().local_addr().unwrap().port()),
            "verify=1".into(),
            format!("ca={}", ca.display()),
            "hostname=localhost".into(),
            "timeout=35".into(),
        ],
    );
    let give_up = Instant::now() + DEADLINE;
    while tunnel.has_line("TUNNEL_DTLS_CONNECTED").is_none() {
        assert!(
            Instant::now() < give_up && tunnel.exited().is_none(),
            "the tunnel did not connect: {:?}",
            tunnel.stdout
        );
        while server.service(Duration::from_millis(5)).unwrap().is_some() {}
    }
    let server = godot_client_scenario(server, listen_port);
    // Every packet of the exchange crossed DTLS: the server's socket counted the records.
    let dtls = server.peer().enet().socket().dtls().expect("a DTLS socket");
    let stats = dtls.stats();
    assert!(
        // At least the 61 values from Godot, one record per RPC (its put_packet flushes); our
        // answers to the calls handled in one poll leave packed, one record per poll.
        stats.records_received > 61 && stats.records_sent > 0,
        "{stats:?}"
    );
    let (_, out, _) = tunnel.finish(Duration::from_millis(100));
    assert!(
        out.iter().any(|l| l.starts_with("TUNNEL_DTLS_CONNECTED")),
        "{out:?}"
    );
}

/// A Godot client (the caller) joins `server` at `port`; our server answers. Checks both sides.
fn godot_client_scenario(mut server: RpcPeer<Room>, port: u16) -> RpcPeer<Room> {
    let mut godot = godot_rpc_client(port);
    let mut events = Vec::new();
    let give_up = Instant::now() + DEADLINE;
    while godot.exited().is_none() && Instant::now() < give_up {
        while let Some(e) = server.service(Duration::from_millis(5)).unwrap() {
            events.push(e);
        }
    }
    // Let the disconnect arrive.
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        while let Some(e) = server.service(Duration::from_millis(5)).unwrap() {
            events.push(e);
        }
    }
    let (code, stdout, stderr) = godot.finish(Duration::from_secs(5));
    check_godot_client_exchange(server.api(), &events, code, &stdout, &stderr);
    server
}

/// Checks both sides of a Godot client's exchange with our server (`api`, with the server's
/// `events`; Godot's exit `code`, `stdout` and `stderr`).
fn check_godot_client_exchange(
    api: &MultiplayerApi<Room>,
    events: &[ApiEvent],
    code: Option<i32>,
    stdout: &[String],
    stderr: &str,
) {
    let transcript = format!("stdout:\n{}\nstderr:\n{stderr}", stdout.join("\n"));
    assert_eq!(code, Some(0), "{transcript}");
    let gid = godot_id(stdout);
    let room = api.state();

    // Godot's values, calls, sets, as our server saw them.
    let n = room.expected.len();
    assert_eq!(room.values.len(), n, "{:?}", room.values);
    for (name, sender, ok) in &room.values {
        assert!(*ok, "value {name} from Godot differs from the corpus");
        assert_eq!(*sender, gid, "get_rpc_sender_id of {name}");
    }
    assert_eq!(
        calls_by(room, gid),
        [
            "m_remote",
            "m_master",
            "m_remotesync",
            "m_mastersync",
            "m_remote"
        ]
    );
    assert!(room
        .calls
        .contains(&("m_remote".into(), gid, "unreliable".into())));
    assert!(events.contains(&ApiEvent::PeerPacket {
        from: gid,
        data: vec![1, 2, 3]
    }));
    // Our own rpc() ran these locally (sender = ourselves), as Godot does.
    assert_eq!(
        calls_by(room, 1),
        ["m_master", "m_remotesync", "m_mastersync", "m_puppetsync"]
    );
    assert_eq!(room.done_from, Some(gid));
    assert_eq!(
        refusals(events),
        [
            (RpcKind::Call, "m_disabled".into(), gid),
            (RpcKind::Call, "m_puppet".into(), gid),
            (RpcKind::Call, "m_puppetsync".into(), gid),
            (RpcKind::Set, "pv".into(), gid),
            (RpcKind::Set, "dv".into(), gid),
        ]
    );
    assert_eq!(api.property("Room", "rv"), Some(&Variant::Int(11)));
    // mv was set by Godot, then by our own rset (master: local only).
    assert_eq!(api.property("Room", "mv"), Some(&Variant::from("answer")));
    assert_eq!(api.property("Room", "dv"), Some(&Variant::Int(0)));
    // The path cache, both ways: Godot announced /root/Room once and we confirmed it; Godot
    // confirmed ours (the peer's entries are dropped when it leaves, so check the counters).
    assert_eq!(api.stats().paths_received, 1);
    assert_eq!(api.stats().paths_sent, 1);
    assert_eq!(api.stats().confirms_received, 1);
    assert!(events.contains(&ApiEvent::PeerConnected(gid)));
    assert!(events.contains(&ApiEvent::PeerDisconnected(gid)));

    // Our answers, as Godot saw them.
    has_line(
        stdout,
        &format!("FINISH sender=1 values_ok={n} values_bad=0"),
        &transcript,
    );
    assert_eq!(count_values_ok(stdout, 1), n, "{transcript}");
    let gcalls: Vec<(String, i32)> = godot_calls(stdout);
    let expected: Vec<(String, i32)> = [
        "m_remote",
        "m_puppet",
        "m_remotesync",
        "m_puppetsync",
        "m_remote",
    ]
    .iter()
    .map(|m| (m.to_string(), 1))
    .collect();
    assert_eq!(gcalls, expected, "{transcript}");
    has_line(
        stdout,
        &format!("CALL m_remote sender=1 me={gid} arg=unreliable"),
        &transcript,
    );
    has_line(stdout, "RAW sender=1 bytes=[4, 5, 6]", &transcript);
    has_line(stdout, "RSET rv=21 sender=1", &transcript);
    has_line(stdout, "RSET pv=(3, 4) sender=1", &transcript);
    for refused in [
        "RPC 'm_disabled' is not allowed",
        "RPC 'm_master' is not allowed",
        "RPC 'm_mastersync' is not allowed",
        "RSET 'dv' is not allowed",
    ] {
        assert!(
            stderr.contains(refused),
            "Godot did not refuse: {refused}\n{transcript}"
        );
    }
    assert!(!stderr.contains("Invalid packet"), "{transcript}");
}

/// Asserts that Godot printed `line` (one of the lines of `out`), showing `transcript` if not.
fn has_line(out: &[String], line: &str, transcript: &str) {
    assert!(
        out.iter().any(|l| l == line),
        "no line {line:?}\n{transcript}"
    );
}

/// A Godot RPC client (`rpc_peer.gd` with `role=client`, the caller) joining `port`.
fn godot_rpc_client(port: u16) -> Godot {
    Godot::spawn(&[
        "role=client".into(),
        format!("port={port}"),
        "timeout=30".into(),
    ])
}

/// A Godot RPC server (`rpc_peer.gd` with `role=server`) that is listening: the process, its
/// port and the test's deadline.
fn godot_rpc_server() -> (Godot, u16, Instant) {
    let port = free_udp_port();
    let mut godot = Godot::spawn(&[
        "role=server".into(),
        format!("port={port}"),
        "timeout=30".into(),
    ]);
    let give_up = Instant::now() + DEADLINE;
    while godot.has_line("RPC_SERVER_LISTENING").is_none() {
        assert!(
            Instant::now() < give_up && godot.exited().is_none(),
            "Godot did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    (godot, port, give_up)
}

#[test]
fn our_client_calls_a_godot_server_which_answers() {
    if !have_godot() {
        return;
    }
    let (godot, port, give_up) = godot_rpc_server();
    let peer = MultiplayerPeer::client("127.0.0.1", port).create().unwrap();
    let mut client = RpcPeer::new(peer, room_api());
    let mut events = Vec::new();
    loop {
        assert!(Instant::now() < give_up, "no finish(); events: {events:#?}");
        if let Some(e) = client.service(Duration::from_millis(5)).unwrap() {
            if e == ApiEvent::ConnectedToServer {
                run_caller!(client, 1);
            }
            events.push(e);
        }
        if client.api().state().finished_from.is_some() {
            break;
        }
    }
    // Events queued by the packets handled with finish().
    while let Some(e) = client.next_event() {
        events.push(e);
    }
    // Everything before finish() has arrived (reliable, in order). Before leaving, let Godot
    // take our last packets (the CONFIRM_PATH answering its last SIMPLIFY_PATH): Godot drops a
    // peer's path cache as soon as it sees the disconnect, before it handles packets that came
    // in the same frame, and would then log the confirmation as invalid.
    client.flush().unwrap();
    let settle = Instant::now() + Duration::from_secs(5);
    while in_transit(client.peer().peer_stats(1)) && Instant::now() < settle {
        if let Some(e) = client.service(Duration::from_millis(5)).unwrap() {
            events.push(e);
        }
    }
    client.close().unwrap();
    let (code, stdout, stderr) = godot.finish(Duration::from_secs(10));
    check_our_client_exchange(client.api(), &events, code, &stdout, &stderr);
}

/// The same with our client on tokio (`TokioRpcPeer`).
#[cfg(feature = "tokio")]
#[test]
fn our_tokio_client_calls_a_godot_server_which_answers() {
    use enet_dtls::rpc::TokioRpcPeer;
    if !have_godot() {
        return;
    }
    let (godot, port, give_up) = godot_rpc_server();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (client, events) = rt.block_on(async {
        let peer = MultiplayerPeer::client("127.0.0.1", port)
            .create_tokio()
            .await
            .unwrap();
        let mut client = TokioRpcPeer::new(peer, room_api());
        let mut events = Vec::new();
        while client.api().state().finished_from.is_none() {
            assert!(Instant::now() < give_up, "no finish(); events: {events:#?}");
            if let Some(e) = client.service(Duration::from_millis(5)).await.unwrap() {
                if e == ApiEvent::ConnectedToServer {
                    run_caller!(client, 1);
                }
                events.push(e);
            }
        }
        while let Some(e) = client.try_next_event() {
            events.push(e);
        }
        // As above: Godot takes our last packets before it sees us leave.
        client.flush().unwrap();
        let settle = Instant::now() + Duration::from_secs(5);
        while in_transit(client.peer().peer_stats(1)) && Instant::now() < settle {
            if let Some(e) = client.service(Duration::from_millis(5)).await.unwrap() {
                events.push(e);
            }
        }
        client.close().unwrap();
        (client, events)
    });
    let (code, stdout, stderr) = godot.finish(Duration::from_secs(10));
    check_our_client_exchange(client.api(), &events, code, &stdout, &stderr);
}

/// Whether reliable data sent to the server still waits for its acknowledgement.
fn in_transit(
    stats: Result<enet_dtls::enet_proto::PeerStats, enet_dtls::multiplayer::MultiplayerError>,
) -> bool {
    stats.is_ok_and(|s| s.reliable_data_in_transit > 0)
}

/// Checks both sides of our client's exchange with a Godot server (`api`, with the client's
/// `events`; Godot's exit `code`, `stdout` and `stderr`).
fn check_our_client_exchange(
    api: &MultiplayerApi<Room>,
    events: &[ApiEvent],
    code: Option<i32>,
    stdout: &[String],
    stderr: &str,
) {
    let me = api.unique_id();
    let transcript = format!("stdout:\n{}\nstderr:\n{stderr}", stdout.join("\n"));
    assert_eq!(code, Some(0), "{transcript}");
    let room = api.state();
    let n = room.expected.len();

    // Godot's side of our calls.
    assert_eq!(count_values_ok(stdout, me), n, "{transcript}");
    assert!(!stdout.iter().any(|l| l.contains(" BAD ")), "{transcript}");
    let gcalls: Vec<(String, i32)> = godot_calls(stdout);
    let mut from_us: Vec<&str> = gcalls
        .iter()
        .filter(|c| c.1 == me)
        .map(|c| c.0.as_str())
        .collect();
    from_us.sort_unstable();
    assert_eq!(
        from_us,
        [
            "m_master",
            "m_mastersync",
            "m_remote",
            "m_remote",
            "m_remotesync"
        ],
        "{transcript}"
    );
    has_line(
        stdout,
        &format!("CALL m_remote sender={me} me=1 arg=unreliable"),
        &transcript,
    );
    has_line(
        stdout,
        &format!("RAW sender={me} bytes=[1, 2, 3]"),
        &transcript,
    );
    has_line(stdout, &format!("RSET rv=11 sender={me}"), &transcript);
    has_line(
        stdout,
        &format!("RSET mv=set by {me} sender={me}"),
        &transcript,
    );
    has_line(stdout, &format!("DONE sender={me}"), &transcript);
    for refused in [
        "RPC 'm_disabled' is not allowed",
        "RPC 'm_puppet' is not allowed",
        "RPC 'm_puppetsync' is not allowed",
        "RSET 'pv' is not allowed",
        "RSET 'dv' is not allowed",
    ] {
        assert!(
            stderr.contains(refused),
            "Godot did not refuse: {refused}\n{transcript}"
        );
    }
    assert!(!stderr.contains("Invalid packet"), "{transcript}");

    // Godot's answers, as our client saw them.
    assert_eq!(room.values.len(), n);
    for (name, sender, ok) in &room.values {
        assert!(*ok, "value {name} from Godot differs from the corpus");
        assert_eq!(*sender, 1, "get_rpc_sender_id of {name}");
    }
    assert_eq!(
        calls_by(room, 1),
        [
            "m_remote",
            "m_puppet",
            "m_remotesync",
            "m_puppetsync",
            "m_remote"
        ]
    );
    assert!(room
        .calls
        .contains(&("m_remote".into(), 1, "unreliable".into())));
    assert!(events.contains(&ApiEvent::PeerPacket {
        from: 1,
        data: vec![4, 5, 6]
    }));
    assert_eq!(room.finished_from, Some(1));
    assert_eq!(
        refusals(events),
        [
            (RpcKind::Call, "m_disabled".into(), 1),
            (RpcKind::Call, "m_master".into(), 1),
            (RpcKind::Call, "m_mastersync".into(), 1),
            (RpcKind::Set, "dv".into(), 1),
        ]
    );
    assert_eq!(api.property("Room", "rv"), Some(&Variant::Int(21)));
    assert_eq!(
        api.property("Room", "pv"),
        Some(&Variant::Vector2(Vector2::new(3.0, 4.0)))
    );
    assert_eq!(api.property("Room", "dv"), Some(&Variant::Int(0)));
    // The path cache, both ways: Godot confirmed our path, and announced its own (one path,
    // /root/Room) which we confirmed.
    assert!(api.path_confirmed_by("Room", 1));
    assert_eq!(api.cached_paths(1), 1);
    assert_eq!(api.stats().paths_received, 1);
}

#[test]
fn two_godot_clients_call_each_other_through_our_server() {
    if !have_godot() {
        return;
    }
    let (mut server, port) = our_room_server();
    let args = [
        "role=client".to_owned(),
        "relay=1".into(),
        format!("port={port}"),
        "timeout=30".into(),
    ];
    let mut a = Godot::spawn(&args);
    let mut b = Godot::spawn(&args);
    let give_up = Instant::now() + DEADLINE;
    let mut events = Vec::new();
    while (a.exited().is_none() || b.exited().is_none()) && Instant::now() < give_up {
        while let Some(e) = server.service(Duration::from_millis(5)).unwrap() {
            events.push(e);
        }
    }
    let (code_a, out_a, err_a) = a.finish(Duration::from_secs(5));
    let (code_b, out_b, err_b) = b.finish(Duration::from_secs(5));
    let transcript = format!(
        "A:\n{}\n{err_a}\nB:\n{}\n{err_b}",
        out_a.join("\n"),
        out_b.join("\n")
    );
    assert_eq!((code_a, code_b), (Some(0), Some(0)), "{transcript}");
    let (id_a, id_b) = (godot_id(&out_a), godot_id(&out_b));
    // Each greeted the other by rpc_id through our relay; the sender id is the original one.
    has_line(
        &out_a,
        &format!("PEER_HELLO sender={id_b} arg={id_b}"),
        &transcript,
    );
    has_line(
        &out_b,
        &format!("PEER_HELLO sender={id_a} arg={id_a}"),
        &transcript,
    );
    // Both learnt about each other from our server (ADD_PEER).
    has_line(&out_a, &format!("PEER_CONNECTED id={id_b}"), &transcript);
    has_line(&out_b, &format!("PEER_CONNECTED id={id_a}"), &transcript);
    // The server relayed the greetings without running them itself ...
    assert!(server.api().state().greetings.is_empty());
    // ... and ran each client's rpc() to everyone, which also reached the other client.
    let room = server.api().state();
    for (id, out_other) in [(id_a, &out_b), (id_b, &out_a)] {
        let arg = format!("all from {id}");
        assert!(
            room.calls.contains(&("m_remote".into(), id, arg.clone())),
            "{:?}",
            room.calls
        );
        let other = if id == id_a { id_b } else { id_a };
        has_line(
            out_other,
            &format!("CALL m_remote sender={id} me={other} arg={arg}"),
            &transcript,
        );
    }
    assert!(events.contains(&ApiEvent::PeerConnected(id_a)));
    assert!(events.contains(&ApiEvent::PeerConnected(id_b)));
    // SIMPLIFY_PATH + the call, each way, went through the relay.
    let relayed = server.peer().framing_stats().relayed;
    assert!(relayed >= 4, "relayed {relayed}");
}

/// For the record: the Godot fixtures run this Godot<->Godot too (rpc_peer.gd both sides); the
/// transcript there is what the tests above expect from us.
#[test]
fn corpus_values_are_the_fixture_values() {
    let values = corpus_values();
    let names: BTreeMap<&str, &Variant> = values.iter().map(|(n, v)| (n.as_str(), v)).collect();
    assert_eq!(names.len(), values.len(), "unique names");
    let gd = std::fs::read_to_string(repo().join("fixtures/godot/variant_values.gd")).unwrap();
    for (name, _) in &values {
        assert!(
            gd.contains(&format!("[\"{name}\", ")),
            "{name} is not in variant_values.gd"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Local calls inside a handler
// ---------------------------------------------------------------------------------------------

/// rpc_room.gd's nest / nested / nested_inner / sv, printing into the state what Godot prints.
fn nest_api() -> MultiplayerApi<Vec<String>> {
    let mut api = MultiplayerApi::with_state(Vec::new());
    api.register_property("Room", "sv", RpcMode::RemoteSync, 0);
    api.register("Room", "nest", RpcMode::Remote, |ctx, (n,): (i64,)| {
        let line = format!("NEST enter n={n} sender={}", ctx.sender());
        ctx.state_mut().push(line);
        ctx.rpc("Room", "nested", (n * 10,)).unwrap();
        let line = format!("NEST after_rpc sender={}", ctx.sender());
        ctx.state_mut().push(line);
        ctx.rset("Room", "sv", n).unwrap();
        let sv = ctx.property("Room", "sv").and_then(Variant::as_int);
        let line = format!("NEST after_rset sv={} sender={}", sv.unwrap(), ctx.sender());
        ctx.state_mut().push(line);
    });
    api.register(
        "Room",
        "nested",
        RpcMode::RemoteSync,
        |ctx, (n,): (i64,)| {
            let line = format!("NESTED n={n} sender={}", ctx.sender());
            ctx.state_mut().push(line);
            if ctx.network_master("Room") == ctx.unique_id() {
                ctx.rpc("Room", "nested_inner", ()).unwrap();
            }
            let line = format!("NESTED done sender={}", ctx.sender());
            ctx.state_mut().push(line);
        },
    );
    api.register(
        "Room",
        "nested_inner",
        RpcMode::MasterSync,
        |ctx, (): ()| {
            let line = format!("NESTED_INNER sender={}", ctx.sender());
            ctx.state_mut().push(line);
        },
    );
    api
}

/// Connects a client with [`nest_api`] to `port`, calls nest(7) on the server once connected
/// and services it until `done()` (or `give_up`). Returns the client.
fn call_nest(port: u16, give_up: Instant, mut done: impl FnMut() -> bool) -> RpcPeer<Vec<String>> {
    let peer = MultiplayerPeer::client("127.0.0.1", port).create().unwrap();
    let mut client = RpcPeer::new(peer, nest_api());
    while !done() {
        assert!(Instant::now() < give_up, "no NEST lines");
        if let Some(ApiEvent::ConnectedToServer) = client.service(Duration::from_millis(5)).unwrap()
        {
            client.rpc_id(1, "Room", "nest", (7,)).unwrap();
        }
    }
    client
}

/// A local call made inside a handler runs inside `rpc()` / `rset()`, with the caller's own
/// id as the sender, and the handler's sender is back afterwards: the lines Godot 3.2.3 prints
/// for rpc_room.gd's nest() are the lines our server's handlers log, in the same order.
#[test]
fn local_calls_inside_a_handler_run_in_godots_order() {
    if !have_godot() {
        return;
    }
    let expected = |caller: i32| {
        [
            format!("NEST enter n=7 sender={caller}"),
            "NESTED n=70 sender=1".to_owned(),
            "NESTED_INNER sender=1".to_owned(),
            "NESTED done sender=1".to_owned(),
            format!("NEST after_rpc sender={caller}"),
            format!("NEST after_rset sv=7 sender={caller}"),
        ]
    };
    // Godot's server.
    let (mut godot, port, give_up) = godot_rpc_server();
    let mut client = call_nest(port, give_up, || {
        godot.has_line("NEST after_rset").is_some()
    });
    let caller = client.unique_id();
    client.close().unwrap();
    let (_, stdout, stderr) = godot.finish(Duration::from_secs(10));
    let godots: Vec<String> = stdout
        .iter()
        .filter(|l| l.starts_with("NEST"))
        .cloned()
        .collect();
    assert_eq!(godots, expected(caller), "stderr:\n{stderr}");
    // Ours.
    let peer = MultiplayerPeer::server(0)
        .bind_address("127.0.0.1".parse().unwrap())
        .create()
        .unwrap();
    let port = peer.local_addr().unwrap().port();
    let server = std::cell::RefCell::new(RpcPeer::new(peer, nest_api()));
    let give_up = Instant::now() + DEADLINE;
    let client = call_nest(port, give_up, || {
        let mut server = server.borrow_mut();
        server.service(Duration::from_millis(1)).unwrap();
        server.api().state().len() >= 6
    });
    let ours = server.borrow().api().state().clone();
    assert_eq!(ours, expected(client.unique_id()));
}
