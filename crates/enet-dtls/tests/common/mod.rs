//! Helpers shared by the enet-dtls integration tests: real-peer plumbing (the same rules as
//! crates/cli/tests/common: in CI a missing peer fails, never skips), child processes read line
//! by line, DTLS identities, and the poll loop of the multiplayer tests.
//!
//! Each test binary includes it with `mod common;` and uses only part of it.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use enet_dtls::enet::EnetSocket;
use enet_dtls::keys::{Certificate, CertificateParams, KeyType, PrivateKey};
use enet_dtls::multiplayer::{MultiplayerEvent, MultiplayerPeer, ReceivedPacket, ServerBuilder};

// ---------------------------------------------------------------------------------------------
// Real peers
// ---------------------------------------------------------------------------------------------

/// Is this run in CI (`CI=true`)? Then a missing peer is a failure, never a skip.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Whether `name` is on the `PATH`.
pub fn have_program(name: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// `true` when the interop peer `what` is available (`found`); otherwise panics in CI and,
/// outside CI, prints a loud SKIP line (see [`note_skip`]) and returns `false`.
pub fn require(found: bool, what: &str) -> bool {
    if !found {
        if in_ci() {
            panic!(
                "required interop peer {what} is missing (CI=true): run scripts/test to install it"
            );
        }
        note_skip(&format!(
            "interop peer {what} is missing; run scripts/test to install it"
        ));
    }
    found
}

/// Reports a skipped test: prints `SKIP: <reason>` and, when `ENET_DTLS_SKIP_LOG` names a file
/// (scripts/test sets it), appends `SKIP <test name>: <reason>` there, so the summary counts
/// skipped tests even though cargo reports them as passed.
pub fn note_skip(reason: &str) {
    eprintln!("SKIP: {reason}");
    if let Ok(path) = std::env::var("ENET_DTLS_SKIP_LOG") {
        use std::io::Write;
        let test = std::thread::current().name().unwrap_or("?").to_string();
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "SKIP {test}: {reason}");
        }
    }
}

/// Whether godot3-server is installed; panics in CI when it is not, prints SKIP otherwise.
pub fn have_godot() -> bool {
    require(have_program("godot3-server"), "godot3-server")
}

/// The Godot project of the interop tests (`fixtures/godot` at the repository root).
pub fn godot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/godot");
    assert!(dir.join("project.godot").is_file(), "no {}", dir.display());
    dir
}

/// A free UDP port on 127.0.0.1, for peers that cannot report the port they bound (Godot 3.2).
pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process whose stdout lines arrive on a channel; killed on drop.
pub struct Proc {
    pub child: Child,
    pub lines: Receiver<String>,
    /// Every line taken so far.
    pub seen: Vec<String>,
    pub name: String,
}

impl Proc {
    /// Spawns `cmd` with piped stdout (stdin and stderr as `cmd` sets them).
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdout(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines: rx,
            seen: Vec::new(),
            name: name.to_string(),
        }
    }

    /// Runs the GDScript `script` of the [Godot project](godot_dir) with `args` in
    /// godot3-server (stdin closed).
    pub fn godot(script: &str, args: &[String]) -> Proc {
        let mut cmd = Command::new("godot3-server");
        cmd.env("LANG", "en_US.UTF-8")
            .arg("--path")
            .arg(godot_dir())
            .arg("-s")
            .arg(script)
            .args(args)
            .stdin(Stdio::null());
        Proc::spawn("godot3-server", cmd)
    }

    /// Waits for a stdout line containing `needle`; panics with everything seen after
    /// `timeout`, or at once on a `FAIL` line.
    pub fn expect_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                    assert!(
                        !line.starts_with("FAIL"),
                        "{}: {line}; saw:\n{}",
                        self.name,
                        self.seen.join("\n")
                    );
                }
                Err(_) => panic!(
                    "{}: no line containing {needle:?} within {timeout:?}; saw:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the exit status (killing the process after `timeout`).
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Takes the lines printed so far.
    pub fn drain(&mut self) {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
    }

    /// Whether a line taken so far is exactly `line`.
    pub fn has(&self, line: &str) -> bool {
        self.seen.iter().any(|l| l == line)
    }

    /// Whether a line taken so far starts with `prefix`.
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.seen.iter().any(|l| l.starts_with(prefix))
    }

    /// The id in the `<who> CONNECTED id=<id>` line.
    pub fn id_of(&self, who: &str) -> Option<u32> {
        let prefix = format!("{who} CONNECTED id=");
        self.seen
            .iter()
            .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
    }

    /// Waits for a line starting with `until`, then for the process to exit by itself (it
    /// does once its peers are done); panics with everything seen after `timeout`.
    pub fn wait_exit(&mut self, until: &str, timeout: Duration) {
        let give_up = Instant::now() + timeout;
        while !self.has_prefix(until) {
            assert!(
                Instant::now() < give_up,
                "{} did not finish; saw:\n{}",
                self.name,
                self.seen.join("\n")
            );
            if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(50)) {
                self.seen.push(l);
            }
        }
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A current-thread tokio runtime with I/O and timers.
#[cfg(feature = "tokio")]
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

// ---------------------------------------------------------------------------------------------
// DTLS identities
// ---------------------------------------------------------------------------------------------

/// A fresh P-256 key and a self-signed certificate for `name`.
pub fn identity(name: &str) -> (PrivateKey, Certificate) {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let cert = Certificate::self_signed(&key, &CertificateParams::new(name)).unwrap();
    (key, cert)
}

/// A self-signed certificate for `name` whose validity ended yesterday.
pub fn expired_certificate(key: &PrivateKey, name: &str) -> Certificate {
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::x509::{X509NameBuilder, X509};
    let mut subject = X509NameBuilder::new().unwrap();
    subject.append_entry_by_text("CN", name).unwrap();
    let subject = subject.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&subject).unwrap();
    b.set_issuer_name(&subject).unwrap();
    b.set_pubkey(key.pkey()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    b.set_not_before(&Asn1Time::from_unix(now - 10 * 86_400).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(now - 86_400).unwrap())
        .unwrap();
    let serial = openssl::bn::BigNum::from_u32(7)
        .unwrap()
        .to_asn1_integer()
        .unwrap();
    b.set_serial_number(&serial).unwrap();
    b.sign(key.pkey(), MessageDigest::sha256()).unwrap();
    Certificate::from_x509(b.build())
}

// ---------------------------------------------------------------------------------------------
// Multiplayer peers
// ---------------------------------------------------------------------------------------------

/// A multiplayer server on a free port of 127.0.0.1, to configure further.
pub fn loopback_server() -> ServerBuilder {
    MultiplayerPeer::server(0).bind_address(Ipv4Addr::LOCALHOST.into())
}

/// Polls every peer once, appending what each reports to its entry in `log`.
pub fn poll_all<S: EnetSocket>(
    peers: &mut [&mut MultiplayerPeer<S>],
    log: &mut Vec<Vec<MultiplayerEvent>>,
) {
    if log.len() < peers.len() {
        log.resize(peers.len(), Vec::new());
    }
    for (i, p) in peers.iter_mut().enumerate() {
        p.poll().expect("poll");
        while let Some(e) = p.next_event() {
            log[i].push(e);
        }
    }
}

/// Polls every peer until `done` says so; panics after `limit` (only to stop a hung test).
pub fn run_until<S: EnetSocket>(
    peers: &mut [&mut MultiplayerPeer<S>],
    log: &mut Vec<Vec<MultiplayerEvent>>,
    limit: Duration,
    mut done: impl FnMut(&[Vec<MultiplayerEvent>]) -> bool,
) {
    let give_up = Instant::now() + limit;
    loop {
        poll_all(peers, log);
        if done(log) {
            return;
        }
        assert!(
            Instant::now() < give_up,
            "timed out; events so far: {log:#?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The packets among `events`.
pub fn packets(events: &[MultiplayerEvent]) -> Vec<&ReceivedPacket> {
    events
        .iter()
        .filter_map(|e| match e {
            MultiplayerEvent::Packet(p) => Some(p),
            _ => None,
        })
        .collect()
}
