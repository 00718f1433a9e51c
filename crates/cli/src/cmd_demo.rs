//! `enet-dtls demo`: what `use_dtls` changes on the wire, in one command.
//!
//! On loopback, with no arguments: it makes a throwaway key and certificate, starts the chat
//! room server (a Godot 3.2 multiplayer server, see `chat_room`) and a client, and makes the
//! same remote calls (`Chat.send_message(text)`, answered by `Chat.receive_message(id, text)`)
//! twice: over plaintext ENet, then over ENet inside DTLS 1.2. A capture socket under the
//! client records every datagram that crossed the wire. The demo then shows the datagram
//! that carried the first call in both runs side by side (hex and ASCII: the method name and
//! argument readable in one, only ciphertext in the other), and a summary: connection and
//! handshake times, RPC round trips, bytes of DTLS overhead per packet, the cipher suite.
//! `--pcap FILE` writes both captures as a pcap file (tshark/Wireshark show UDP for the first
//! run and DTLS records for the second).
//!
//! It exits 0 when every call came back, the plaintext capture shows the method name and the
//! encrypted one does not; 1 otherwise.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use dtls_proto::keys::{Certificate, CertificateParams, KeyType, PrivateKey, SubjectAltName};
use dtls_proto::{ClientConfig, EndpointConfig, ServerConfig};
use enet_dtls::capture::{write_pcap, Capture, CaptureSocket, CapturedDatagram, Direction};
use enet_dtls::enet::{DtlsEnetSocket, UdpEnetSocket};
use enet_dtls::godot_proto::ApiEvent;
use enet_dtls::multiplayer::MultiplayerPeer;
use enet_dtls::rpc::RpcPeer;

use crate::chat_room::{Room, RoomSocket};
use crate::chat_rpc::{self, ChatCall, ChatEvent, ChatPeer, SEND_MESSAGE};
use crate::hexview;

/// Arguments of `demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Also write every captured datagram of both runs to FILE (pcap, LINKTYPE_RAW with IPv4 and
    /// UDP headers): `tshark -r FILE` shows UDP for the plaintext run and DTLS records for the
    /// encrypted one.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// RPC round trips timed per run (1..=10000).
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    round_trips: u32,
}

/// The first call's text (its argument), readable in the plaintext capture.
const FIRST_TEXT: &str = "hello, Godot!";

/// How long any one step may take before the demo gives up (a hung run, not a benchmark).
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// DTLS content types (RFC 6347).
const CT_CHANGE_CIPHER_SPEC: u8 = 20;
const CT_ALERT: u8 = 21;
const CT_HANDSHAKE: u8 = 22;
const CT_APPLICATION_DATA: u8 = 23;

/// What one run measured.
#[derive(Debug)]
struct Run {
    /// Every datagram on the wire, seen from the client's UDP socket.
    wire: Vec<CapturedDatagram>,
    /// The ENet datagrams inside the DTLS records (DTLS run only), seen above the DTLS socket.
    inner: Vec<CapturedDatagram>,
    /// `wire[..]` and `inner[..]` index ranges of the RPC phase (connected, before closing).
    wire_rpc: std::ops::Range<usize>,
    inner_rpc: std::ops::Range<usize>,
    server: SocketAddr,
    connect: Duration,
    round_trips: Vec<Duration>,
    enet_rtt: Duration,
    cipher: Option<&'static str>,
}

fn boxed(e: impl std::fmt::Display) -> Box<dyn std::error::Error> {
    e.to_string().into()
}

pub(crate) fn run(a: DemoArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    println!("== enet-dtls demo: the same Godot RPCs over plaintext ENet, then over ENet inside DTLS 1.2");
    let started = Instant::now();
    let key = PrivateKey::generate(KeyType::EcP256)?;
    let mut params = CertificateParams::new("localhost").validity_days(1);
    params = params.subject_alt_name(SubjectAltName::Dns("localhost".into()));
    let cert = Certificate::self_signed(&key, &params)?;
    println!(
        "throwaway P-256 key and self-signed certificate for CN=localhost ({:.1} ms)",
        ms(started.elapsed())
    );
    let server_config = ServerConfig::builder(key, cert.clone()).build()?;
    let client_config = ClientConfig::builder()
        .verify(true)
        .hostname("localhost")
        .trusted_certificate(cert)
        .build()?;

    println!("-- run 1: plaintext ENet (NetworkedMultiplayerENet, use_dtls = false)");
    let plain = run_once(None, a.round_trips)?;
    println!(
        "-- run 2: ENet over DTLS 1.2 (use_dtls = true, certificate verified, hostname localhost)"
    );
    let dtls = run_once(Some((server_config, client_config)), a.round_trips)?;

    let mut failures = Vec::new();
    let name = SEND_MESSAGE.as_bytes();
    let plain_hits = count_containing(&plain.wire, name);
    let dtls_hits = count_containing(&dtls.wire, name);
    let text_hits = count_containing(&dtls.wire, FIRST_TEXT.as_bytes());
    if plain_hits == 0 {
        failures.push(format!(
            "the plaintext capture does not show {SEND_MESSAGE:?}"
        ));
    }
    if dtls_hits > 0 || text_hits > 0 {
        failures.push("the DTLS capture shows the method name or its argument".to_string());
    }
    if count_containing(&dtls.inner, name) == 0 {
        failures.push("the ENet datagrams inside DTLS do not carry the call".to_string());
    }

    let left = first_call(&plain, true);
    let right = first_call(&dtls, false);
    println!();
    println!(
        "== the datagram that carried rpc_id(1, \"{SEND_MESSAGE}\", \"{FIRST_TEXT}\"), client -> server"
    );
    print!(
        "{}",
        hexview::side_by_side(
            &format!("plaintext ENet ({} bytes)", left.len()),
            left,
            &format!("ENet over DTLS ({} bytes)", right.len()),
            right,
        )
    );

    println!();
    println!("== summary");
    let row = |what: &str, p: String, d: String| println!("{what:<38} {p:>16} {d:>16}");
    row("", "plaintext".into(), "DTLS".into());
    row(
        "connect (create_client to connected)",
        format!("{:.1} ms", ms(plain.connect)),
        format!("{:.1} ms", ms(dtls.connect)),
    );
    let handshake = handshake_time(&dtls.wire);
    row(
        "DTLS handshake (ClientHello to Finished)",
        "-".into(),
        handshake.map_or("?".into(), |h| format!("{:.1} ms", ms(h))),
    );
    row(
        &format!("RPC round trip (median of {})", plain.round_trips.len()),
        format!("{:.3} ms", ms(median(&plain.round_trips))),
        format!("{:.3} ms", ms(median(&dtls.round_trips))),
    );
    row(
        "ENet RTT (smoothed, whole ms)",
        format!("{:.3} ms", ms(plain.enet_rtt)),
        format!("{:.3} ms", ms(dtls.enet_rtt)),
    );
    let (pd, pb) = totals(&plain.wire[plain.wire_rpc.clone()]);
    let (dd, db) = totals(&dtls.wire[dtls.wire_rpc.clone()]);
    row(
        "RPC phase on the wire (datagrams/bytes)",
        format!("{pd} / {pb}"),
        format!("{dd} / {db}"),
    );
    match overhead(&dtls) {
        Some((records, extra)) => println!(
            "DTLS overhead per packet: {extra:.1} bytes ({records} records: record header 13 + \
             the cipher's nonce/IV, tag/MAC and padding)"
        ),
        None => failures
            .push("the DTLS records and the ENet datagrams inside them do not pair up".into()),
    }
    println!(
        "cipher suite: {}",
        dtls.cipher.unwrap_or("(unknown: the session was gone)")
    );
    println!(
        "DTLS records on the wire (whole run): {}",
        record_census(&dtls.wire)
    );
    println!(
        "note: over DTLS, ENet's CONNECT is held while the handshake runs and goes out as soon \
         as it completes (Godot's DTLS-enabled ENet drops it and waits for ENet's retry, about \
         0.5 s later), so connecting takes one round trip more than the handshake."
    );
    println!();
    println!(
        "check: plaintext capture shows \"{SEND_MESSAGE}\" in {plain_hits} datagram(s); \
         DTLS capture in {dtls_hits} of {} datagrams",
        dtls.wire.len()
    );

    if let Some(path) = &a.pcap {
        let mut all = plain.wire.clone();
        all.extend(dtls.wire.iter().cloned());
        let file =
            std::fs::File::create(path).map_err(|e| format!("--pcap {}: {e}", path.display()))?;
        write_pcap(std::io::BufWriter::new(file), &all)
            .map_err(|e| format!("--pcap {}: {e}", path.display()))?;
        println!(
            "PCAP {}: {} datagrams (plaintext run: server {}; DTLS run: server {}); try: tshark -r {}",
            path.display(),
            all.len(),
            plain.server,
            dtls.server,
            path.display()
        );
    }
    if failures.is_empty() {
        println!("== demo OK");
        Ok(ExitCode::SUCCESS)
    } else {
        for f in &failures {
            println!("FAILED: {f}");
        }
        Ok(ExitCode::FAILURE)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s.get(s.len() / 2).copied().unwrap_or_default()
}

fn totals(d: &[CapturedDatagram]) -> (usize, usize) {
    (d.len(), d.iter().map(|d| d.data.len()).sum())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn count_containing(d: &[CapturedDatagram], needle: &[u8]) -> usize {
    d.iter().filter(|d| contains(&d.data, needle)).count()
}

/// The client's datagram that carried the first call: in the plaintext run the first one
/// with the method name; in the DTLS run the record that carried the same ENet datagram (the
/// capture inside the DTLS socket finds it; each ENet datagram is one application-data
/// record, in order).
fn first_call(run: &Run, plain: bool) -> &[u8] {
    let has_call = |d: &&CapturedDatagram| contains(&d.data, SEND_MESSAGE.as_bytes());
    let sent = run.wire[run.wire_rpc.clone()]
        .iter()
        .filter(|d| d.direction == Direction::Sent);
    let found = if plain {
        sent.clone().find(has_call)
    } else {
        run.inner[run.inner_rpc.clone()]
            .iter()
            .filter(|d| d.direction == Direction::Sent)
            .position(|d| has_call(&d))
            .and_then(|n| {
                sent.clone()
                    .filter(|d| d.data.first() == Some(&CT_APPLICATION_DATA))
                    .nth(n)
            })
    };
    found
        .or_else(|| sent.clone().next())
        .map_or(&[][..], |d| d.data.as_slice())
}

/// How many DTLS records of each content type the datagrams hold, as one line.
fn record_census(wire: &[CapturedDatagram]) -> String {
    let (mut handshake, mut ccs, mut data, mut alert, mut other) = (0, 0, 0, 0, 0);
    for t in wire.iter().flat_map(|d| record_types(&d.data)) {
        match t {
            CT_HANDSHAKE => handshake += 1,
            CT_CHANGE_CIPHER_SPEC => ccs += 1,
            CT_APPLICATION_DATA => data += 1,
            CT_ALERT => alert += 1,
            _ => other += 1,
        }
    }
    let mut line = format!(
        "handshake {handshake}, change_cipher_spec {ccs}, application_data {data}, alert {alert}"
    );
    if other > 0 {
        line.push_str(&format!(", other {other}"));
    }
    line
}

/// Content types of the DTLS records in one datagram (stops at a malformed header).
fn record_types(mut data: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while data.len() >= 13 {
        let len = usize::from(u16::from_be_bytes([data[11], data[12]]));
        types.push(data[0]);
        match data.get(13 + len..) {
            Some(rest) => data = rest,
            None => break,
        }
    }
    types
}

/// From the client's first ClientHello to the server's ChangeCipherSpec + Finished arriving.
fn handshake_time(wire: &[CapturedDatagram]) -> Option<Duration> {
    let hello = wire.iter().find(|d| {
        d.direction == Direction::Sent && record_types(&d.data).first() == Some(&CT_HANDSHAKE)
    })?;
    let done = wire.iter().find(|d| {
        d.direction == Direction::Received && record_types(&d.data).contains(&CT_CHANGE_CIPHER_SPEC)
    })?;
    done.time.duration_since(hello.time).ok()
}

/// Mean bytes a DTLS record adds to the ENet datagram it carries, over the RPC phase: the
/// application-data records on the wire against the ENet datagrams above the DTLS socket.
/// `None` when they do not pair up one to one.
fn overhead(run: &Run) -> Option<(usize, f64)> {
    let wire: Vec<&CapturedDatagram> = run.wire[run.wire_rpc.clone()]
        .iter()
        .filter(|d| d.data.first() == Some(&CT_APPLICATION_DATA))
        .collect();
    let inner = &run.inner[run.inner_rpc.clone()];
    if wire.is_empty() || wire.len() != inner.len() {
        return None;
    }
    let outer: usize = wire.iter().map(|d| d.data.len()).sum();
    let plain: usize = inner.iter().map(|d| d.data.len()).sum();
    Some((
        wire.len(),
        (outer as f64 - plain as f64) / wire.len() as f64,
    ))
}

/// The room server of one run, on its own thread.
struct DemoServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for DemoServer {
    /// Stops the server (it disconnects its clients) and waits for its thread.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the room server on a thread (plaintext or DTLS).
fn start_server(dtls: Option<ServerConfig>) -> Result<DemoServer, Box<dyn std::error::Error>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("demo-server".into())
        .spawn(move || {
            fn serve<S: RoomSocket>(mut room: Room<S>, flag: &AtomicBool) {
                while !flag.load(Ordering::Relaxed) {
                    if let Err(e) = room.step(Duration::from_millis(5)) {
                        eprintln!("demo server: {e}");
                        return;
                    }
                }
                room.shutdown(Duration::from_millis(300));
            }
            let builder = MultiplayerPeer::server(0).max_clients(4);
            match dtls {
                None => {
                    let started = UdpEnetSocket::bind("127.0.0.1:0")
                        .map_err(boxed)
                        .and_then(|s| builder.create_with_socket(s).map_err(boxed));
                    match started {
                        Ok(peer) => {
                            let _ = tx.send(peer.local_addr().map_err(|e| e.to_string()));
                            serve(Room::new(peer, None), &flag);
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string()));
                        }
                    }
                }
                Some(config) => {
                    let started =
                        DtlsEnetSocket::server("127.0.0.1:0", &config, EndpointConfig::default())
                            .map_err(boxed)
                            .and_then(|s| builder.create_with_socket(s).map_err(boxed));
                    match started {
                        Ok(peer) => {
                            let _ = tx.send(peer.local_addr().map_err(|e| e.to_string()));
                            serve(Room::new(peer, None), &flag);
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string()));
                        }
                    }
                }
            }
        })?;
    let addr = rx
        .recv_timeout(STEP_TIMEOUT)
        .map_err(|_| "the demo server did not start")??;
    Ok(DemoServer {
        addr,
        stop,
        thread: Some(thread),
    })
}

fn run_once(
    dtls: Option<(ServerConfig, ClientConfig)>,
    round_trips: u32,
) -> Result<Run, Box<dyn std::error::Error>> {
    let (server_config, client_config) = match dtls {
        Some((s, c)) => (Some(s), Some(c)),
        None => (None, None),
    };
    let demo_server = start_server(server_config)?;
    let server = demo_server.addr;
    let wire = Capture::new();
    let inner = Capture::new();
    let udp = CaptureSocket::new(UdpEnetSocket::bind("127.0.0.1:0")?, wire.clone())?;
    let builder = MultiplayerPeer::client("127.0.0.1", server.port());
    let started = Instant::now();
    let result = match client_config {
        None => drive(
            builder.create_with_socket(udp)?,
            started,
            server,
            &wire,
            &inner,
            round_trips,
        ),
        Some(config) => {
            let socket =
                CaptureSocket::new(DtlsEnetSocket::client_over(udp, &config)?, inner.clone())?;
            drive(
                builder.create_with_socket(socket)?,
                started,
                server,
                &wire,
                &inner,
                round_trips,
            )
        }
    };
    drop(demo_server);
    let mut run = result?;
    run.wire = wire.datagrams();
    run.inner = inner.datagrams();
    Ok(run)
}

/// Connects, makes the calls, measures; returns a [`Run`] without its captures.
fn drive<S: RoomSocket>(
    peer: MultiplayerPeer<S>,
    started: Instant,
    server: SocketAddr,
    wire: &Capture,
    inner: &Capture,
    round_trips: u32,
) -> Result<Run, Box<dyn std::error::Error>> {
    let mut peer: ChatPeer<S> = RpcPeer::new(peer, chat_rpc::client_api());
    let deadline = started + STEP_TIMEOUT;
    let connect = loop {
        match next_event(&mut peer, deadline)? {
            ChatEvent::Other(ApiEvent::ConnectedToServer) => break started.elapsed(),
            ChatEvent::Other(ApiEvent::ConnectionFailed) => {
                let why = peer
                    .connection_failure()
                    .map_or_else(|| "connection failed".to_string(), |w| w.to_string());
                return Err(format!("cannot connect: {why}").into());
            }
            _ => {}
        }
    };
    let me = i64::from(peer.peer().unique_id());
    println!("   connected as peer {me} in {:.1} ms", ms(connect));
    let rpc_start = (wire.len(), inner.len());
    let mut times = Vec::new();
    for i in 0..=round_trips {
        let text = if i == 0 {
            FIRST_TEXT.to_string()
        } else {
            format!("ping {i}")
        };
        let sent = Instant::now();
        chat_rpc::send_message(&mut peer, &text)?;
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            match next_event(&mut peer, deadline)? {
                ChatEvent::Call(ChatCall::ReceiveMessage {
                    sender_id,
                    text: got,
                }) if sender_id == me && got == text => break,
                ChatEvent::Other(ApiEvent::ServerDisconnected) => {
                    return Err("the demo server went away".into())
                }
                _ => {}
            }
        }
        if i == 0 {
            println!("   send_message({text:?}) came back as receive_message({me}, {text:?})");
        } else {
            times.push(sent.elapsed());
        }
    }
    let rpc_end = (wire.len(), inner.len());
    let enet_rtt = peer.peer().peer_stats(1).map(|s| s.rtt).unwrap_or_default();
    let cipher = peer.peer().enet().socket().cipher(server);
    peer.close()?;
    let until = Instant::now() + Duration::from_millis(100);
    while Instant::now() < until {
        if peer.service(Duration::from_millis(10)).is_err() {
            break;
        }
    }
    Ok(Run {
        wire: Vec::new(),
        inner: Vec::new(),
        wire_rpc: rpc_start.0..rpc_end.0,
        inner_rpc: rpc_start.1..rpc_end.1,
        server,
        connect,
        round_trips: times,
        enet_rtt,
        cipher,
    })
}

fn next_event<S: RoomSocket>(
    peer: &mut ChatPeer<S>,
    deadline: Instant,
) -> Result<ChatEvent, Box<dyn std::error::Error>> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("the demo timed out waiting for the other side".into());
        }
        if let Some(e) = peer.service(left.min(Duration::from_millis(50)))? {
            return Ok(ChatEvent::from_api(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_types_walks_the_headers() {
        let mut d = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2];
        d.extend_from_slice(&[20, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1]);
        assert_eq!(record_types(&d), vec![22, 20]);
        // A length past the end stops the walk after that header.
        assert_eq!(
            record_types(&[23, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]),
            vec![23]
        );
        assert!(record_types(&[1, 2, 3]).is_empty());
    }

    #[test]
    fn record_census_counts_each_content_type() {
        let datagram = |data: Vec<u8>| CapturedDatagram {
            time: std::time::SystemTime::UNIX_EPOCH,
            direction: Direction::Sent,
            local: "127.0.0.1:1".parse().unwrap(),
            remote: "127.0.0.1:2".parse().unwrap(),
            data,
        };
        let record = |t: u8| vec![t, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 9];
        let mut two = record(CT_HANDSHAKE);
        two.extend(record(CT_CHANGE_CIPHER_SPEC));
        let wire = [
            datagram(two),
            datagram(record(CT_APPLICATION_DATA)),
            datagram(record(CT_ALERT)),
            datagram(record(CT_APPLICATION_DATA)),
        ];
        assert_eq!(
            record_census(&wire),
            "handshake 1, change_cipher_spec 1, application_data 2, alert 1"
        );
    }
}
