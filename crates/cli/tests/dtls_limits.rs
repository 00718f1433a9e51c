//! `dtls-server` limits and shutdown over loopback, against the real binary (issue 6 sections 2, 4 and 6):
//! one address (127.0.0.1, many ports) gets its share and goes idle, a client from 127.0.0.2 still gets
//! in, the idle sessions expire (`CLOSED`, close_notify to the clients); bad limits are refused at
//! start-up; SIGTERM sends close_notify to every peer and exits 0; `dtls-client` refuses an empty or
//! oversized `--send` before any handshake.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{bin, listening_addr, Proc};
use enet_dtls::dtls::{ClientConfig, PacketPeerDtls, Status};
use enet_dtls::dtls_proto::keys::{Certificate, CertificateParams, KeyFormat, KeyType, PrivateKey};
use enet_dtls::udp::PacketPeerUdp;

/// Stops a hung test only.
const T: Duration = Duration::from_secs(20);

struct Files {
    dir: tempfile::TempDir,
    cert: Certificate,
}

impl Files {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let cert = Certificate::self_signed(&key, &CertificateParams::new("localhost")).unwrap();
    key.save(dir.path().join("key.pem"), KeyFormat::Pkcs8)
        .unwrap();
    cert.save(dir.path().join("cert.pem")).unwrap();
    Files { dir, cert }
}

fn server(f: &Files, extra: &[&str]) -> (Proc, SocketAddr) {
    server_with_stderr(f, extra, Stdio::inherit())
}

fn server_with_stderr(f: &Files, extra: &[&str], stderr: Stdio) -> (Proc, SocketAddr) {
    let mut c = Command::new(bin());
    c.stderr(stderr);
    c.args([
        "dtls-server",
        "--listen",
        "127.0.0.1:0",
        "--timeout",
        "60",
        "--key",
    ])
    .arg(f.path("key.pem"))
    .arg("--cert")
    .arg(f.path("cert.pem"))
    .args(extra);
    let mut p = Proc::spawn("dtls-server", c);
    let line = p.expect_line("LISTENING", T);
    (p, listening_addr(&line))
}

fn client_config(cert: &Certificate, handshake_timeout: Duration) -> ClientConfig {
    ClientConfig::builder()
        .hostname("localhost")
        .trusted_certificate(cert.clone())
        .handshake_timeout(handshake_timeout)
        .build()
        .unwrap()
}

/// A DTLS client bound to `local` (`127.0.0.x:0`) connecting to `server`.
fn dtls_client(local: &str, server: SocketAddr, cfg: &ClientConfig) -> PacketPeerDtls {
    let mut udp = PacketPeerUdp::bind(local).unwrap();
    udp.connect_to_host(server).unwrap();
    PacketPeerDtls::connect_to_peer(udp, cfg).unwrap()
}

/// Polls every client until `done` holds (or the hung-test deadline).
fn pump(clients: &mut [PacketPeerDtls], mut done: impl FnMut(&[PacketPeerDtls]) -> bool) {
    let deadline = Instant::now() + T;
    while !done(clients) {
        assert!(
            Instant::now() < deadline,
            "hung: {:?}",
            clients.iter().map(|c| c.status()).collect::<Vec<_>>()
        );
        for c in clients.iter_mut() {
            c.poll().unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn count(lines: &[String], prefix: &str) -> usize {
    lines.iter().filter(|l| l.starts_with(prefix)).count()
}

#[test]
fn one_address_gets_its_share_another_gets_in_and_idle_sessions_expire() {
    let f = files();
    let log = f.path("server.log");
    let (mut srv, addr) = server_with_stderr(
        &f,
        &[
            "--max-sessions",
            "16",
            "--max-sessions-per-address",
            "4",
            "--idle-timeout",
            "3",
        ],
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    // The attacker: 10 ports on 127.0.0.1, each completing a handshake if it can, then idle.
    let cfg = client_config(&f.cert, Duration::from_millis(1500));
    let mut attackers: Vec<PacketPeerDtls> = (0..10)
        .map(|_| dtls_client("127.0.0.1:0", addr, &cfg))
        .collect();
    pump(&mut attackers, |cs| {
        cs.iter().all(|c| c.status() != Status::Handshaking)
    });
    let connected = attackers
        .iter()
        .filter(|c| c.status() == Status::Connected)
        .count();
    assert_eq!(connected, 4, "127.0.0.1 gets exactly its share");
    // The refusals are visible at the default log level, as one line for the burst.
    let deadline = Instant::now() + T;
    let warnings = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        let n = text
            .lines()
            .filter(|l| l.starts_with("warning: refused"))
            .count();
        if n > 0 || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines: Vec<&str> = warnings
        .lines()
        .filter(|l| l.starts_with("warning: refused"))
        .collect();
    assert_eq!(lines.len(), 1, "{warnings}");
    assert!(
        lines[0].contains("from an address at its share (--max-sessions-per-address 4)"),
        "{}",
        lines[0]
    );
    // A legitimate client from another address still gets in while 127.0.0.1 holds its share.
    let mut legit = vec![dtls_client("127.0.0.2:0", addr, &client_config(&f.cert, T))];
    pump(&mut legit, |cs| cs[0].status() != Status::Handshaking);
    assert_eq!(legit[0].status(), Status::Connected);
    // After the idle timeout the server closes every silent session: the clients see close_notify.
    let mut idle: Vec<PacketPeerDtls> = attackers
        .into_iter()
        .filter(|c| c.status() == Status::Connected)
        .chain(legit)
        .collect();
    pump(&mut idle, |cs| {
        cs.iter().all(|c| c.status() == Status::Disconnected)
    });
    let lines = srv.drain().to_vec();
    assert_eq!(count(&lines, "CONNECTED "), 5, "{lines:?}");
    assert_eq!(count(&lines, "CLOSED "), 5, "{lines:?}");
    // The table is free again: 127.0.0.1 connects once more.
    let mut again = vec![dtls_client("127.0.0.1:0", addr, &client_config(&f.cert, T))];
    pump(&mut again, |cs| cs[0].status() != Status::Handshaking);
    assert_eq!(again[0].status(), Status::Connected);
}

#[test]
fn sigterm_sends_close_notify_to_every_peer_and_exits_zero() {
    let f = files();
    let (mut srv, addr) = server(&f, &[]);
    let cfg = client_config(&f.cert, T);
    let mut clients = vec![
        dtls_client("127.0.0.1:0", addr, &cfg),
        dtls_client("127.0.0.2:0", addr, &cfg),
    ];
    pump(&mut clients, |cs| {
        cs.iter().all(|c| c.status() == Status::Connected)
    });
    srv.expect_line("CONNECTED", T);
    srv.expect_line("CONNECTED", T);
    let kill = Command::new("kill")
        .args(["-TERM", &srv.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());
    pump(&mut clients, |cs| {
        cs.iter().all(|c| c.status() == Status::Disconnected)
    });
    assert_eq!(
        srv.wait(T),
        Some(0),
        "exit status after SIGTERM; saw {:?}",
        srv.seen
    );
    assert_eq!(count(&srv.seen, "CLOSED "), 2, "{:?}", srv.seen);
    assert!(srv.seen.iter().any(|l| l == "SHUTDOWN"), "{:?}", srv.seen);
}

/// A second signal ends the process at once (status 130), without waiting for the clean
/// shutdown: the server is stopped, sent SIGINT then SIGTERM, and continued, so both are handled
/// back to back before its main loop can act on the first.
#[test]
fn a_second_signal_exits_at_once() {
    let f = files();
    let (mut srv, _addr) = server(&f, &[]);
    let pid = srv.child.id().to_string();
    for sig in ["-STOP", "-INT", "-TERM", "-CONT"] {
        let st = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(st.success(), "kill {sig}");
    }
    assert_eq!(srv.wait(T), Some(130), "saw {:?}", srv.seen);
    assert!(!srv.seen.iter().any(|l| l == "SHUTDOWN"), "{:?}", srv.seen);
}

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run enet-dtls")
}

#[test]
fn bad_limits_are_refused_at_start_up() {
    let f = files();
    let (key, cert) = (f.path("key.pem"), f.path("cert.pem"));
    let cases: [(&[&str], &str); 5] = [
        (
            &["--max-sessions", "0"],
            "--max-sessions must be at least 1",
        ),
        (
            &["--max-sessions-per-address", "0"],
            "--max-sessions-per-address must be at least 1",
        ),
        (
            &["--idle-timeout", "0"],
            "--idle-timeout must be greater than zero",
        ),
        (&["--idle-timeout", "nan"], "--idle-timeout"),
        (&["--idle-timeout", "-1"], "--idle-timeout"),
    ];
    for (extra, want) in cases {
        let mut args = vec![
            "dtls-server",
            "--listen",
            "127.0.0.1:0",
            "--key",
            &key,
            "--cert",
            &cert,
        ];
        args.extend_from_slice(extra);
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra:?} accepted");
        assert!(err.contains(want), "{extra:?}: {err}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("LISTENING"),
            "{extra:?} listened first"
        );
    }
}

#[test]
fn client_refuses_empty_and_oversized_send_before_the_handshake() {
    // Nothing listens there: a handshake attempt would end in a timeout error after --timeout.
    let dead = "127.0.0.1:9";
    let out = run(&[
        "dtls-client",
        "--connect",
        dead,
        "--insecure",
        "--timeout",
        "30",
        "--send",
        "",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--send must not be empty"), "{err}");
    let big = "x".repeat(2000);
    let out = run(&[
        "dtls-client",
        "--connect",
        dead,
        "--insecure",
        "--timeout",
        "30",
        "--send",
        &big,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--send is 2000 bytes; at most 1403"), "{err}");
    assert!(
        !err.contains("timeout"),
        "the handshake was attempted: {err}"
    );
}
