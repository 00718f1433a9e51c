//! The `enet_dtls::dtls` library types in-process against real peers: the Godot-shaped
//! `UdpServer` + `DtlsServer` with Godot's own DTLS client, `PacketPeerDtls` against
//! `openssl s_server`, and `DtlsListener` reporting what a failing Godot client says.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{free_udp_port, godot, require_program, Proc};
use enet_dtls::dtls::{
    ClientConfig, DtlsError, DtlsListener, DtlsServer, ListenerEvent, PacketPeerDtls, ServerConfig,
    Status,
};
use enet_dtls::dtls_proto::keys::{Certificate, CertificateParams, KeyFormat, KeyType, PrivateKey};
use enet_dtls::udp::{PacketPeerUdp, UdpServer};

const T: Duration = Duration::from_secs(20);

/// An RSA-2048 key and a Godot-shaped self-signed certificate for CN=localhost, saved as PEM
/// (PKCS#1 key, like Godot's `CryptoKey.save`).
struct Ident {
    _dir: tempfile::TempDir,
    key: PrivateKey,
    cert: Certificate,
    cert_path: PathBuf,
    key_path: PathBuf,
}

fn ident() -> Ident {
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate(KeyType::Rsa(2048)).unwrap();
    let cert = Certificate::self_signed(&key, &CertificateParams::new("localhost")).unwrap();
    let key_path = dir.path().join("key.pem");
    let cert_path = dir.path().join("cert.pem");
    key.save(&key_path, KeyFormat::Pkcs1).unwrap();
    cert.save(&cert_path).unwrap();
    Ident {
        _dir: dir,
        key,
        cert,
        cert_path,
        key_path,
    }
}

/// Our Godot-shaped echo server (UdpServer + DtlsServer, as in examples/dtls_server.rs) in a
/// thread; every event goes to the returned channel as a line.
fn spawn_dtls_server(id: &Ident) -> (SocketAddr, mpsc::Receiver<String>, Arc<AtomicBool>) {
    let mut dtls = DtlsServer::setup(&id.key, &id.cert, &[]).unwrap();
    let mut udp = UdpServer::listen("127.0.0.1:0").unwrap();
    let addr = udp.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    std::thread::spawn(move || {
        let mut peers: Vec<(PacketPeerDtls, bool)> = Vec::new();
        while !stop2.load(Ordering::Relaxed) {
            udp.poll().unwrap();
            while let Some(conn) = udp.take_connection() {
                let p = dtls.take_connection(conn);
                let _ = tx.send(format!("NEW_UDP_PEER {:?}", p.status()));
                if p.status() == Status::Handshaking {
                    peers.push((p, false));
                }
            }
            peers.retain_mut(|(p, connected)| {
                p.poll().unwrap();
                match p.status() {
                    Status::Connected => {
                        if !*connected {
                            *connected = true;
                            let _ = tx.send(format!("CONNECTED {}", p.cipher().unwrap_or("?")));
                        }
                        while let Some(d) = p.get_packet().unwrap() {
                            let _ = tx.send(format!("ECHO {}", String::from_utf8_lossy(&d).trim()));
                            p.put_packet(&d).unwrap();
                        }
                        true
                    }
                    Status::Handshaking => true,
                    other => {
                        let _ = tx.send(format!("CLOSED {other:?} {:?}", p.error()));
                        false
                    }
                }
            });
            udp.wait(Some(Duration::from_millis(2))).unwrap();
        }
    });
    (addr, rx, stop)
}

fn expect(rx: &mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) -> String {
    let deadline = Instant::now() + T;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                seen.push(l.clone());
                if l.contains(needle) {
                    return l;
                }
            }
            Err(_) => panic!("no event containing {needle:?}; saw {seen:?}"),
        }
    }
}

/// Godot's PacketPeerDTLS (verify=1, hostname=localhost) -> our UdpServer + DtlsServer. The
/// cookie exchange shows as Godot shows it: first peer Error, the retry Handshaking.
#[test]
fn godot_client_to_library_dtls_server() {
    if !require_program("godot3-server") {
        return;
    }
    let id = ident();
    let (addr, rx, stop) = spawn_dtls_server(&id);
    let mut g = Proc::spawn(
        "godot dtls_client.gd",
        godot(
            "dtls_client.gd",
            &[
                "host=127.0.0.1".into(),
                format!("port={}", addr.port()),
                "msg=godot to library".into(),
                "count=2".into(),
                "wait_replies=2".into(),
                "verify=1".into(),
                format!("ca={}", id.cert_path.display()),
                "hostname=localhost".into(),
            ],
        ),
    );
    g.expect_line(
        "RECV len=20 hex=676f646f7420746f206c6962726172792023300a",
        T,
    );
    g.expect_line(
        "RECV len=20 hex=676f646f7420746f206c6962726172792023310a",
        T,
    );
    g.expect_line("DTLS_CLIENT_EXIT ok replies=2", T);
    assert_eq!(g.wait(T), Some(0));
    let mut seen = Vec::new();
    assert_eq!(expect(&rx, "NEW_UDP_PEER", &mut seen), "NEW_UDP_PEER Error");
    assert_eq!(
        expect(&rx, "NEW_UDP_PEER", &mut seen),
        "NEW_UDP_PEER Handshaking"
    );
    let c = expect(&rx, "CONNECTED", &mut seen);
    // mbedTLS offers ChaCha20-Poly1305 first; our server picks by its own order
    // (DEFAULT_CIPHER_LIST): AES-128-GCM, the cheapest per record.
    assert!(c.contains("AES128-GCM"), "{c}");
    expect(&rx, "ECHO godot to library #0", &mut seen);
    expect(&rx, "ECHO godot to library #1", &mut seen);
    assert_eq!(
        expect(&rx, "CLOSED", &mut seen),
        "CLOSED Disconnected None",
        "close_notify from Godot"
    );
    stop.store(true, Ordering::Relaxed);
}

/// Our PacketPeerDtls -> `openssl s_server -dtls1_2`, verifying its certificate: data both
/// ways (s_server prints what we send; what the test types into s_server arrives here).
#[test]
fn library_client_to_openssl_s_server() {
    if !require_program("openssl") {
        return;
    }
    let id = ident();
    let port = free_udp_port();
    let mut c = Command::new("openssl");
    c.args(["s_server", "-dtls1_2", "-cert"])
        .arg(&id.cert_path)
        .arg("-key")
        .arg(&id.key_path)
        .arg("-accept")
        .arg(format!("127.0.0.1:{port}"));
    let mut srv = Proc::spawn("openssl s_server", c);
    srv.expect_line("ACCEPT", T);
    let mut stdin = srv.child.stdin.take().unwrap();

    let udp = PacketPeerUdp::connect(("127.0.0.1", port)).unwrap();
    let cfg = ClientConfig::builder()
        .hostname("localhost")
        .trusted_certificate(id.cert.clone())
        .build()
        .unwrap();
    let mut dtls = PacketPeerDtls::connect_to_peer(udp, &cfg).unwrap();
    let deadline = Instant::now() + T;
    while dtls.status() == Status::Handshaking {
        dtls.wait(Some(Duration::from_millis(50))).unwrap();
        dtls.poll().unwrap();
        assert!(Instant::now() < deadline);
    }
    assert_eq!(dtls.status(), Status::Connected, "{:?}", dtls.error());
    assert!(dtls.cipher().is_some());
    dtls.put_packet(b"library to s_server\n").unwrap();
    srv.expect_line("library to s_server", T);
    stdin.write_all(b"s_server to library\n").unwrap();
    stdin.flush().unwrap();
    let got = loop {
        dtls.wait(Some(Duration::from_millis(50))).unwrap();
        dtls.poll().unwrap();
        if let Some(d) = dtls.get_packet().unwrap() {
            break d;
        }
        assert!(Instant::now() < deadline, "nothing from s_server");
    };
    assert_eq!(got, b"s_server to library\n");
    dtls.disconnect_from_peer();
    srv.expect_line("DONE", T); // s_server got our close_notify
}

/// `openssl s_client -dtls1_2` ends the session with close_notify (at the end of its input);
/// our server (UdpServer + DtlsServer) reports a clean close and answers with its own
/// close_notify. A relay in the test between the two logs who sent which record: after
/// s_client's encrypted alert comes exactly one from our server (s_client's shutdown is
/// one-way, so it does not wait for the answer).
#[test]
fn library_server_answers_openssl_s_client_close_notify() {
    if !require_program("openssl") {
        return;
    }
    let id = ident();
    let (server_addr, rx, stop) = spawn_dtls_server(&id);

    // The relay: s_client talks to `front`, `back` talks to our server; every datagram is
    // logged as (from our server?, record content type, epoch).
    let front = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let back = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    back.connect(server_addr).unwrap();
    front
        .set_read_timeout(Some(Duration::from_millis(2)))
        .unwrap();
    back.set_read_timeout(Some(Duration::from_millis(2)))
        .unwrap();
    let front_addr = front.local_addr().unwrap();
    let log: Arc<std::sync::Mutex<Vec<(bool, u8, u16)>>> = Arc::default();
    let relay_stop = Arc::new(AtomicBool::new(false));
    let relay = {
        let (log, relay_stop) = (Arc::clone(&log), Arc::clone(&relay_stop));
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut client = None;
            let record = |d: &[u8]| (d[0], u16::from_be_bytes([d[3], d[4]]));
            while !relay_stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = front.recv_from(&mut buf) {
                    client = Some(from);
                    if n >= 13 {
                        let (ty, epoch) = record(&buf[..n]);
                        log.lock().unwrap().push((false, ty, epoch));
                    }
                    let _ = back.send(&buf[..n]);
                }
                if let (Ok(n), Some(to)) = (back.recv(&mut buf), client) {
                    if n >= 13 {
                        let (ty, epoch) = record(&buf[..n]);
                        log.lock().unwrap().push((true, ty, epoch));
                    }
                    let _ = front.send_to(&buf[..n], to);
                }
            }
        })
    };

    let mut c = Command::new("openssl");
    c.args(["s_client", "-dtls1_2", "-connect"])
        .arg(front_addr.to_string())
        .args(["-CAfile"])
        .arg(&id.cert_path)
        .args(["-verify_hostname", "localhost", "-verify_return_error"]);
    let mut cli = Proc::spawn("openssl s_client", c);
    let mut seen = Vec::new();
    expect(&rx, "CONNECTED", &mut seen);
    let mut stdin = cli.child.stdin.take().unwrap();
    stdin.write_all(b"hello from s_client\n").unwrap();
    stdin.flush().unwrap();
    expect(&rx, "ECHO hello from s_client", &mut seen);
    drop(stdin); // end of input: s_client sends close_notify and exits
    assert_eq!(
        expect(&rx, "CLOSED", &mut seen),
        "CLOSED Disconnected None",
        "close_notify from s_client"
    );
    let deadline = Instant::now() + T;
    let answered = || {
        let log = log.lock().unwrap();
        let theirs = log
            .iter()
            .position(|&(ours, ty, epoch)| !ours && ty == 21 && epoch == 1);
        theirs.is_some_and(|i| {
            log[i..]
                .iter()
                .filter(|&&(ours, ty, epoch)| ours && ty == 21 && epoch == 1)
                .count()
                == 1
        })
    };
    while !answered() {
        assert!(
            Instant::now() < deadline,
            "no close_notify answer: {:?}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    relay_stop.store(true, Ordering::Relaxed);
    relay.join().unwrap();
    stop.store(true, Ordering::Relaxed);
}

/// A Godot client asked to verify a name the certificate does not carry fails (status 3 or 4
/// in Godot) and our listener reports the alert mbedTLS sent for that session.
#[test]
fn listener_reports_godot_client_rejecting_the_certificate() {
    if !require_program("godot3-server") {
        return;
    }
    let id = ident();
    let cfg = ServerConfig::builder(id.key.clone(), id.cert.clone())
        .build()
        .unwrap();
    let mut l = DtlsListener::bind("127.0.0.1:0", &cfg).unwrap();
    let mut g = Proc::spawn(
        "godot dtls_client.gd",
        godot(
            "dtls_client.gd",
            &[
                "host=127.0.0.1".into(),
                format!("port={}", l.local_addr().port()),
                "verify=1".into(),
                format!("ca={}", id.cert_path.display()),
                "hostname=wronghost".into(),
                "timeout=10".into(),
            ],
        ),
    );
    let deadline = Instant::now() + T;
    let ev = loop {
        if let Some(ev) = l.service(Duration::from_millis(20)).unwrap() {
            break ev;
        }
        assert!(Instant::now() < deadline, "no listener event");
    };
    match ev {
        ListenerEvent::Error(_, DtlsError::PeerAlert { code, .. }) => {
            // mbedTLS sends bad_certificate (42) for a name mismatch
            assert_eq!(code, 42, "alert code");
        }
        other => panic!("expected the peer's alert, got {other:?}"),
    }
    // Godot reports STATUS_ERROR (3) when the failure happens in poll(), and
    // STATUS_ERROR_HOSTNAME_MISMATCH (4) when our server answered so fast that the handshake
    // already failed inside connect_to_peer().
    let exit = g.expect_line("DTLS_CLIENT_EXIT error status=", T);
    assert!(
        exit.ends_with("status=3") || exit.ends_with("status=4"),
        "{exit}"
    );
    assert_eq!(g.wait(T), Some(1));
    assert_eq!(l.session_count(), 0);
}
