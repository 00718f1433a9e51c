//! DTLS interop over real sockets: our `dtls-server`/`dtls-client` against `openssl s_server`,
//! `openssl s_client` and Godot 3.2.3 (`godot3-server`, mbedTLS inside), plus the negative cases
//! (untrusted, wrong hostname, expired, garbage datagrams).
//!
//! Every peer is a real program; a missing one is a loud SKIP outside CI and a failure with
//! `CI=true` (see `common::require_program`).

mod common;

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{bin, free_udp_port, godot, listening_addr, require_program, Proc};

const T: Duration = Duration::from_secs(20);

/// A key + self-signed certificate made by the `openssl` CLI.
struct Pair {
    key: PathBuf,
    cert: PathBuf,
}

fn run_ok(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=<cn>` into `dir/<name>-{key,cert}.pem`.
fn openssl_pair(dir: &Path, name: &str, cn: &str) -> Pair {
    let key = dir.join(format!("{name}-key.pem"));
    let cert = dir.join(format!("{name}-cert.pem"));
    let mut c = Command::new("openssl");
    c.args([
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-keyout",
    ])
    .arg(&key)
    .arg("-out")
    .arg(&cert)
    .arg("-subj")
    .arg(format!("/CN={cn}"));
    run_ok(c, "openssl req -x509");
    Pair { key, cert }
}

/// A self-signed certificate for CN=localhost that expired on 2021-01-01 (`openssl ca -selfsign`
/// with explicit -startdate/-enddate, since `-days` cannot go negative).
fn openssl_expired_pair(dir: &Path) -> Pair {
    let d = dir.join("expired-ca");
    std::fs::create_dir_all(d.join("db")).unwrap();
    std::fs::write(d.join("db/index.txt"), "").unwrap();
    std::fs::write(d.join("db/serial"), "01\n").unwrap();
    let cnf = d.join("ca.cnf");
    std::fs::write(
        &cnf,
        format!(
            "[ca]\ndefault_ca = d\n[d]\ndatabase = {db}/index.txt\nnew_certs_dir = {db}\nserial = {db}/serial\n\
             default_md = sha256\npolicy = p\nunique_subject = no\ncopy_extensions = none\n\
             [p]\ncommonName = supplied\n[ext]\nbasicConstraints = CA:TRUE\n",
            db = d.join("db").display()
        ),
    )
    .unwrap();
    let key = d.join("key.pem");
    let csr = d.join("req.csr");
    let cert = d.join("cert.pem");
    let mut c = Command::new("openssl");
    c.args([
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
    ])
    .arg(&key)
    .arg("-out")
    .arg(&csr);
    run_ok(c, "openssl req -new");
    let mut c = Command::new("openssl");
    c.args(["ca", "-batch", "-notext", "-selfsign", "-config"])
        .arg(&cnf)
        .arg("-keyfile")
        .arg(&key)
        .arg("-in")
        .arg(&csr)
        .arg("-out")
        .arg(&cert)
        .args([
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20210101000000Z",
            "-extensions",
            "ext",
        ]);
    run_ok(c, "openssl ca -selfsign (expired)");
    Pair { key, cert }
}

/// Starts `enet-dtls dtls-server --listen 127.0.0.1:0` and returns it with its real address.
fn start_server(p: &Pair) -> (Proc, SocketAddr) {
    let mut c = Command::new(bin());
    c.args([
        "dtls-server",
        "--listen",
        "127.0.0.1:0",
        "--timeout",
        "60",
        "--key",
    ])
    .arg(&p.key)
    .arg("--cert")
    .arg(&p.cert);
    let mut s = Proc::spawn("dtls-server", c);
    let line = s.expect_line("LISTENING", T);
    (s, listening_addr(&line))
}

/// Runs `enet-dtls dtls-client` to completion (it has its own `--timeout`).
fn run_client(addr: &str, extra: &[&str]) -> Output {
    let mut c = Command::new(bin());
    c.args(["dtls-client", "--connect", addr, "--timeout", "10"])
        .args(extra)
        .stdin(Stdio::null());
    // Our test certificates are for CN=localhost while we connect to 127.0.0.1.
    if !extra.contains(&"--hostname") && !extra.contains(&"--insecure") {
        c.args(["--hostname", "localhost"]);
    }
    let out = c.output().expect("run dtls-client");
    eprintln!(
        "dtls-client {extra:?} -> {:?}\nstdout:\n{}stderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn peers(names: &[&str]) -> bool {
    names.iter().all(|n| require_program(n))
}

// ---------------------------------------------------------------------------------------------
// openssl peers
// ---------------------------------------------------------------------------------------------

/// Our CLI client -> `openssl s_server -dtls1_2`. s_server does not echo DTLS (`-rev` is TLS
/// only), so the test plays the echo: it waits for our datagram on s_server's stdout and types
/// the same line into s_server's stdin, which s_server sends back as one record.
#[test]
fn cli_client_to_openssl_s_server_both_directions() {
    if !peers(&["openssl"]) {
        return;
    }
    let dir = tmp();
    let p = openssl_pair(dir.path(), "srv", "localhost");
    let port = free_udp_port();
    let mut c = Command::new("openssl");
    c.args(["s_server", "-dtls1_2", "-cert"])
        .arg(&p.cert)
        .arg("-key")
        .arg(&p.key)
        .arg("-accept")
        .arg(format!("127.0.0.1:{port}"));
    let mut srv = Proc::spawn("openssl s_server", c);
    srv.expect_line("ACCEPT", T);
    let mut stdin = srv.child.stdin.take().expect("s_server stdin");

    let addr = format!("127.0.0.1:{port}");
    let ca = p.cert.display().to_string();
    let text = "ping from rust to s_server\n";
    let client = std::thread::spawn(move || {
        run_client(
            &addr,
            &[
                "--ca",
                &ca,
                "--hostname",
                "localhost",
                "--send",
                text,
                "--count",
                "1",
            ],
        )
    });
    // client -> s_server: our datagram shows up on s_server's stdout
    srv.expect_line("ping from rust to s_server", T);
    // s_server -> client: type the echo (no trailing newline from write_all buffering issues:
    // one write, one record)
    stdin.write_all(text.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let out = client.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "client failed: {}",
        stderr(&out)
    );
    let so = stdout(&out);
    let first = so.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("CONNECTED "),
        "first line must name the cipher: {so}"
    );
    assert!(first.len() > "CONNECTED ".len(), "empty cipher name: {so}");
    assert!(
        so.contains("RECV ping from rust to s_server"),
        "echo missing: {so}"
    );
}

/// `openssl s_client -dtls1_2 -verify_hostname localhost -CAfile cert.pem` -> our dtls-server:
/// the verification succeeds (code 0) and the echo comes back.
#[test]
fn openssl_s_client_to_cli_server_verifies_and_echoes() {
    if !peers(&["openssl"]) {
        return;
    }
    let dir = tmp();
    let p = openssl_pair(dir.path(), "srv", "localhost");
    let (mut srv, addr) = start_server(&p);
    let mut c = Command::new("openssl");
    c.args(["s_client", "-dtls1_2", "-connect"])
        .arg(addr.to_string())
        .args(["-verify_hostname", "localhost", "-CAfile"])
        .arg(&p.cert);
    let mut cl = Proc::spawn("openssl s_client", c);
    cl.expect_line("Verify return code: 0 (ok)", T);
    let mut stdin = cl.child.stdin.take().unwrap();
    stdin.write_all(b"echo me from s_client\n").unwrap();
    stdin.flush().unwrap();
    let connected = srv.expect_line("CONNECTED", T);
    let recv = srv.expect_line("RECV", T);
    assert!(
        recv.ends_with(" 22"),
        "server saw a 22-byte datagram: {recv}"
    );
    let peer = connected.split_whitespace().nth(1).unwrap().to_string();
    assert!(
        recv.contains(&peer),
        "RECV names the same peer as CONNECTED: {connected} / {recv}"
    );
    cl.expect_line("echo me from s_client", T);
    drop(stdin); // EOF: s_client sends close_notify and exits
    srv.expect_line(&format!("CLOSED {peer}"), T);
}

// ---------------------------------------------------------------------------------------------
// Godot 3.2.3 peers
// ---------------------------------------------------------------------------------------------

/// Godot's PacketPeerDTLS client with verification on (`verify=1 ca=<cert> hostname=localhost`)
/// -> our dtls-server.
#[test]
fn godot_client_verifies_cli_server() {
    if !peers(&["openssl", "godot3-server"]) {
        return;
    }
    let dir = tmp();
    let p = openssl_pair(dir.path(), "srv", "localhost");
    let (mut srv, addr) = start_server(&p);
    let mut g = Proc::spawn(
        "godot dtls_client.gd",
        godot(
            "dtls_client.gd",
            &[
                "host=127.0.0.1".into(),
                format!("port={}", addr.port()),
                "msg=hello from godot".into(),
                "count=2".into(),
                "wait_replies=2".into(),
                "timeout=15".into(),
                "verify=1".into(),
                format!("ca={}", p.cert.display()),
                "hostname=localhost".into(),
            ],
        ),
    );
    g.expect_line("DTLS_CONNECTED", T);
    // dtls_client.gd sends "<msg> #<i>\n"; the echo must come back byte for byte
    g.expect_line(
        "RECV len=20 hex=68656c6c6f2066726f6d20676f646f742023300a",
        T,
    );
    g.expect_line(
        "RECV len=20 hex=68656c6c6f2066726f6d20676f646f742023310a",
        T,
    );
    g.expect_line("DTLS_CLIENT_EXIT ok replies=2", T);
    assert_eq!(g.wait(T), Some(0), "godot client exit code");
    let c = srv.expect_line("CONNECTED", T);
    let peer = c.split_whitespace().nth(1).unwrap().to_string();
    srv.expect_line(&format!("RECV {peer} 20"), T);
    srv.expect_line(&format!("CLOSED {peer}"), T);
}

/// Our CLI client -> Godot's DTLSServer echo (UDPServer + cookie exchange), verifying its cert.
#[test]
fn cli_client_to_godot_echo_server() {
    if !peers(&["openssl", "godot3-server"]) {
        return;
    }
    let dir = tmp();
    let p = openssl_pair(dir.path(), "gd", "localhost");
    let port = free_udp_port();
    let mut g = Proc::spawn(
        "godot dtls_echo_server.gd",
        godot(
            "dtls_echo_server.gd",
            &[
                format!("port={port}"),
                format!("key={}", p.key.display()),
                format!("cert={}", p.cert.display()),
                "timeout=30".into(),
            ],
        ),
    );
    g.expect_line("DTLS_SERVER_LISTENING", T);
    let out = run_client(
        &format!("127.0.0.1:{port}"),
        &[
            "--ca",
            &p.cert.display().to_string(),
            "--send",
            "hi godot",
            "--count",
            "3",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "client: {}", stderr(&out));
    let so = stdout(&out);
    assert!(so.starts_with("CONNECTED "), "{so}");
    assert_eq!(
        so.lines().filter(|l| *l == "RECV hi godot").count(),
        3,
        "{so}"
    );
    // Godot saw our cookie-less hello (status 3), then the real one, then our 3 datagrams
    g.expect_line("DTLS_CONNECTED", T);
    let echo = g.expect_line("ECHO", T);
    assert!(echo.contains("text=hi godot"), "{echo}");
    g.expect_line("PEER_CLOSED", T);
}

/// Keys and certificates made by Godot's own Crypto (gen_cert.gd: PKCS#1 RSA key, Godot-shaped
/// self-signed cert) load in our server, and a verifying Godot client connects to it.
#[test]
fn godot_generated_cert_loads_in_cli_server() {
    if !peers(&["godot3-server"]) {
        return;
    }
    let dir = tmp();
    let mut gen = Proc::spawn(
        "godot gen_cert.gd",
        godot(
            "gen_cert.gd",
            &[
                format!("out={}", dir.path().display()),
                "bits=2048".into(),
                "cn=localhost".into(),
            ],
        ),
    );
    gen.expect_line("GEN_OK", T);
    assert_eq!(gen.wait(T), Some(0));
    let p = Pair {
        key: dir.path().join("godot.key"),
        cert: dir.path().join("godot.crt"),
    };
    let head = std::fs::read_to_string(&p.key).unwrap();
    assert!(
        head.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "Godot writes PKCS#1"
    );
    let (mut srv, addr) = start_server(&p);
    let mut g = Proc::spawn(
        "godot dtls_client.gd",
        godot(
            "dtls_client.gd",
            &[
                "host=127.0.0.1".into(),
                format!("port={}", addr.port()),
                "verify=1".into(),
                format!("ca={}", p.cert.display()),
                "hostname=localhost".into(),
            ],
        ),
    );
    g.expect_line("DTLS_CLIENT_EXIT ok replies=1", T);
    srv.expect_line("CONNECTED", T);
    // and our own client accepts the Godot-shaped certificate too
    let out = run_client(
        &addr.to_string(),
        &["--ca", &p.cert.display().to_string(), "--send", "x"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------------------
// negative cases over sockets
// ---------------------------------------------------------------------------------------------

#[test]
fn wrong_ca_is_untrusted() {
    if !peers(&["openssl"]) {
        return;
    }
    let dir = tmp();
    let p = openssl_pair(dir.path(), "srv", "localhost");
    let other = openssl_pair(dir.path(), "other", "localhost");
    let (mut srv, addr) = start_server(&p);
    let out = run_client(
        &addr.to_string(),
        &["--ca", &other.cert.display().to_string(), "--send", "x"],
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(!stdout(&out).contains("CONNECTED"), "{}", stdout(&out));
    let e = stderr(&out).to_lowercase();
    assert!(
        e.contains("untrusted"),
        "stderr must name the untrusted certificate: {e}"
    );
    // the server survives and still serves a good client
    let ok = run_client(
        &addr.to_string(),
        &["--ca", &p.cert.display().to_string(), "--send", "after"],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    srv.expect_line("RECV", T);
}

#[test]
fn wrong_hostname_names_both_names() {
    if !peers(&["openssl"]) {
        return;
    }
    let dir = tmp();
    let p = openssl_pair(dir.path(), "srv", "localhost");
    let (_srv, addr) = start_server(&p);
    let ca = p.cert.display().to_string();
    let out = run_client(
        &addr.to_string(),
        &[
            "--ca",
            &ca,
            "--hostname",
            "wronghost.example",
            "--send",
            "x",
        ],
    );
    let untrusted = run_client(
        &addr.to_string(),
        &[
            "--ca",
            &openssl_pair(dir.path(), "o", "localhost")
                .cert
                .display()
                .to_string(),
            "--send",
            "x",
        ],
    );
    assert_ne!(out.status.code(), Some(0));
    assert_ne!(
        out.status.code(),
        untrusted.status.code(),
        "hostname mismatch has its own exit status"
    );
    let e = stderr(&out);
    assert!(e.to_lowercase().contains("hostname"), "{e}");
    assert!(
        e.contains("wronghost.example"),
        "expected name missing: {e}"
    );
    assert!(e.contains("localhost"), "presented name missing: {e}");
}

#[test]
fn expired_certificate_is_reported_as_expired() {
    if !peers(&["openssl"]) {
        return;
    }
    let dir = tmp();
    let p = openssl_expired_pair(dir.path());
    let (_srv, addr) = start_server(&p);
    let out = run_client(
        &addr.to_string(),
        &["--ca", &p.cert.display().to_string(), "--send", "x"],
    );
    assert_ne!(out.status.code(), Some(0));
    let e = stderr(&out).to_lowercase();
    assert!(e.contains("expired"), "{e}");
}

#[test]
fn insecure_client_accepts_any_certificate() {
    if !peers(&["openssl"]) {
        return;
    }
    let dir = tmp();
    let p = openssl_pair(dir.path(), "srv", "not-the-host");
    let (_srv, addr) = start_server(&p);
    let out = run_client(
        &addr.to_string(),
        &["--insecure", "--send", "anything", "--count", "2"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out)
            .lines()
            .filter(|l| *l == "RECV anything")
            .count(),
        2
    );
}

#[test]
fn client_times_out_without_server() {
    // A bound socket that never answers: the handshake must time out with a clear line.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let mut c = Command::new(bin());
    c.args([
        "dtls-client",
        "--connect",
        &addr.to_string(),
        "--insecure",
        "--send",
        "x",
        "--timeout",
        "1.5",
    ]);
    let out = c.output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    let e = stderr(&out).to_lowercase();
    assert!(e.starts_with("error: timeout:"), "{e}");
    let mut buf = [0u8; 2048];
    silent.set_nonblocking(true).unwrap();
    let (n, _) = silent
        .recv_from(&mut buf)
        .expect("the client did send a ClientHello");
    assert_eq!(buf[0], 22, "first datagram is a handshake record");
    assert!(n > 13);
}

/// Garbage, truncated records and a bare ClientHello header sent at the server port leave it
/// serving real clients.
#[test]
fn garbage_datagrams_leave_server_serving() {
    if !peers(&["openssl"]) {
        return;
    }
    let dir = tmp();
    let p = openssl_pair(dir.path(), "srv", "localhost");
    let (mut srv, addr) = start_server(&p);
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut junk: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![22],
        vec![22, 0xfe, 0xfd],
        vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff], // length far beyond the datagram
        vec![23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 5, 0, 3, 1, 2, 3], // app data, no session
        vec![21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 40], // alert, no session
        vec![0xff; 1500],
    ];
    // truncated ClientHellos: a handshake header claiming more than it carries
    let mut hello = vec![
        22, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 60, 1, 0, 0, 200, 0, 0, 0, 0, 0, 0, 0, 200,
    ];
    hello.extend_from_slice(&[0xfe, 0xfd]);
    hello.extend_from_slice(&[7u8; 33]);
    for cut in (0..hello.len()).step_by(3) {
        junk.push(hello[..cut].to_vec());
    }
    let mut x: u32 = 0x1234_5678;
    for len in [13usize, 14, 25, 64, 200, 1200] {
        let mut d = vec![22, 0xfe, 0xfd];
        while d.len() < len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            d.push(x as u8);
        }
        junk.push(d);
    }
    for d in &junk {
        s.send_to(d, addr).unwrap();
    }
    let ok = run_client(
        &addr.to_string(),
        &[
            "--ca",
            &p.cert.display().to_string(),
            "--send",
            "still alive",
        ],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("RECV still alive"));
    // The junk was queued before the client's hello, so the server had handled all of it by
    // the time the client connected: not one event names the junk source.
    srv.expect_line("CONNECTED", T);
    srv.expect_line("RECV", T);
    let junk_src = s.local_addr().unwrap().to_string();
    let lines = srv.drain().to_vec();
    assert!(
        lines.iter().all(|l| !l.contains(&junk_src)),
        "junk source got a session or an event: {lines:?}"
    );
    assert!(
        srv.child.try_wait().unwrap().is_none(),
        "server still running"
    );
}
