//! `enet-dtls bench`: our stack side by side with its anchors, in one run, on loopback.
//!
//! Every workload is an echo: a client sends `--messages` messages of `--size` bytes with at
//! most `--window` of them waiting for their echo (throughput, messages per second counted as
//! round trips), then `--pings` messages one at a time (mean round-trip time). The server end
//! runs on a second thread of this process; everything binds `127.0.0.1:0`.
//!
//! | workload | client and server | anchor it is compared with |
//! |---|---|---|
//! | `raw-udp` | `std::net::UdpSocket` | – (the floor every protocol pays on top of) |
//! | `enet` | [`EnetHost`] both ends, reliable packets on channel 0 | `c-enet`, `raw-udp` |
//! | `c-enet` | C ENet 1.3 both ends, in `bench_peers/enet_anchor.c` (a separate process) | – |
//! | `dtls` | [`PacketPeerDtls`] client, [`DtlsListener`] echo server | `raw-udp` |
//!
//! The C anchor runs only when its binary is named by `--c-anchor` or `ENET_DTLS_C_ANCHOR`
//! (scripts/bench builds it); otherwise its row says why it was skipped.
//!
//! Each workload runs `--rounds` times (default 3), interleaved with the others so that a burst
//! of load elsewhere on the machine hits every workload rather than one, and each row reports
//! the median of its rounds.
//!
//! Raw UDP sends one datagram per message; ENet bundles the messages (and acknowledgements)
//! queued between two services into one datagram, so with a window of messages in flight it
//! can move more messages per second than the raw UDP anchor does.
//!
//! This is a measuring tool, not a test: it reports numbers and asserts nothing about them.
//! Machines, load and the kernel move them a lot; compare ratios from the same run only.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use enet_dtls::dtls::{
    ClientConfig, DtlsListener, ListenerEvent, PacketPeerDtls, ServerConfig, Status,
};
use enet_dtls::dtls_proto::keys::{Certificate, CertificateParams, KeyType, PrivateKey};
use enet_dtls::enet::EnetHost;
use enet_dtls::enet_proto::{Event, HostConfig, Packet};
use enet_dtls::udp::PacketPeerUdp;

/// Environment variable naming the C anchor binary when `--c-anchor` is not given.
const C_ANCHOR_ENV: &str = "ENET_DTLS_C_ANCHOR";

/// A run gives up after this long without any progress (a lost peer, a broken socket).
const STALL: Duration = Duration::from_secs(10);

/// After this long without an echo, the raw UDP and DTLS clients count the messages in flight
/// as lost and refill the window (those transports do not retransmit).
const LOSS_WAIT: Duration = Duration::from_millis(200);

/// How often server threads look at their stop flag while idle.
const SERVER_TICK: Duration = Duration::from_millis(50);

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Messages per throughput run (each one is echoed back).
    #[arg(long, value_name = "N", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    messages: u64,
    /// Bytes per message (at most 1024, so a message fits one ENet datagram and one DTLS
    /// record without fragmentation).
    #[arg(long, value_name = "BYTES", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    size: u64,
    /// Messages in flight (sent, echo not yet received) during the throughput runs.
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    window: u64,
    /// Ping-pong round trips for the RTT column (default: 1000, or --messages if smaller).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pings: Option<u64>,
    /// The C ENet anchor binary (built from crates/cli/bench_peers/enet_anchor.c by
    /// scripts/bench). Default: $ENET_DTLS_C_ANCHOR; without either the C row is skipped.
    #[arg(long, value_name = "PATH")]
    c_anchor: Option<PathBuf>,
    /// Measure every workload this many times (interleaved) and report the median of each.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON object to this file (the table still goes to stdout).
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,
}

/// The parameters every workload shares.
#[derive(Debug, Clone, Copy)]
struct Params {
    messages: u64,
    size: usize,
    window: u64,
    pings: u64,
}

/// What one workload measured.
#[derive(Debug, Clone, Copy)]
struct Measure {
    /// Echoed messages per second during the windowed run.
    msgs_per_s: f64,
    /// Mean ping-pong round trip, microseconds.
    rtt_us: f64,
    /// Messages the client gave up on (raw UDP and DTLS only; ENet retransmits).
    lost: u64,
}

/// A workload's row: measured, or skipped with a reason.
#[derive(Debug)]
enum Outcome {
    Done(Measure),
    Skipped(String),
}

impl Outcome {
    fn measure(&self) -> Option<Measure> {
        match self {
            Outcome::Done(m) => Some(*m),
            Outcome::Skipped(_) => None,
        }
    }
}

/// Errors of the bench command.
#[derive(Debug)]
#[non_exhaustive]
pub(crate) enum BenchError {
    /// A socket failed.
    Io {
        /// Which workload.
        workload: &'static str,
        /// The socket error.
        source: io::Error,
    },
    /// A workload stopped making progress or its peer misbehaved.
    Workload {
        /// Which workload.
        workload: &'static str,
        /// What went wrong.
        why: String,
    },
    /// The C anchor could not be run or its output not understood.
    Anchor {
        /// The anchor binary.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// The JSON file could not be written.
    JsonOut {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BenchError::Io { workload, source } => write!(f, "{workload}: socket error: {source}"),
            BenchError::Workload { workload, why } => write!(f, "{workload}: {why}"),
            BenchError::Anchor { path, why } => {
                write!(f, "C ENet anchor {}: {why}", path.display())
            }
            BenchError::JsonOut { path, source } => {
                write!(f, "cannot write {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for BenchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BenchError::Io { source, .. } | BenchError::JsonOut { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_err(workload: &'static str) -> impl Fn(io::Error) -> BenchError {
    move |source| BenchError::Io { workload, source }
}

fn fail(workload: &'static str, why: impl std::fmt::Display) -> BenchError {
    BenchError::Workload {
        workload,
        why: why.to_string(),
    }
}

/// Runs `bench`.
pub(crate) fn run(args: BenchArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let params = Params {
        messages: args.messages,
        size: usize::try_from(args.size)?,
        window: args.window,
        pings: args.pings.unwrap_or_else(|| args.messages.min(1000)),
    };
    let anchor = args
        .c_anchor
        .clone()
        .or_else(|| std::env::var_os(C_ANCHOR_ENV).map(PathBuf::from));
    // Fail before the other workloads run, not after.
    if let Some(path) = &anchor {
        if !path.is_file() {
            return Err(BenchError::Anchor {
                path: path.clone(),
                why: "cannot start it: no such file (build it with scripts/bench)".into(),
            }
            .into());
        }
    }

    // Rounds interleave the workloads, so a burst of load elsewhere on the machine hits all of
    // them rather than one; each row is the median of its rounds.
    let mut samples: [Vec<Measure>; 4] = Default::default();
    for round in 1..=args.rounds {
        if !args.json {
            eprintln!("bench: round {round}/{}", args.rounds);
        }
        samples[0].push(bench_raw_udp(params)?);
        samples[1].push(bench_enet(params)?);
        if let Some(path) = &anchor {
            samples[2].push(bench_c_anchor(path, params)?);
        }
        samples[3].push(bench_dtls(params)?);
    }
    let [raw, enet, c_enet, dtls] = samples.map(|s| median(&s));
    let skipped = || format!("no --c-anchor and {C_ANCHOR_ENV} is not set");
    let done = |m: Option<Measure>| m.map_or_else(|| Outcome::Skipped(skipped()), Outcome::Done);

    let report = Report {
        params,
        rounds: args.rounds,
        rows: [
            ("raw-udp", done(raw)),
            ("enet", done(enet)),
            ("c-enet", done(c_enet)),
            ("dtls", done(dtls)),
        ],
    };
    let json = report.json();
    if let Some(path) = &args.json_out {
        std::fs::write(path, format!("{json}\n")).map_err(|source| BenchError::JsonOut {
            path: path.clone(),
            source,
        })?;
    }
    let mut out = io::stdout().lock();
    if args.json {
        writeln!(out, "{json}")?;
    } else {
        write!(out, "{}", report.table())?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------------
// Report

/// The ratios printed: (numerator row, denominator row).
const RATIOS: [(&str, &str); 3] = [("enet", "c-enet"), ("enet", "raw-udp"), ("dtls", "raw-udp")];

struct Report {
    params: Params,
    rounds: u32,
    rows: [(&'static str, Outcome); 4],
}

/// A ratio between two rows: throughput and RTT (`None` when a row was skipped).
#[derive(Debug, Clone, Copy)]
struct Ratio {
    msgs_per_s: f64,
    rtt: f64,
}

impl Report {
    fn row(&self, name: &str) -> Option<Measure> {
        self.rows
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, o)| o.measure())
    }

    fn ratio(&self, num: &str, den: &str) -> Option<Ratio> {
        let (a, b) = (self.row(num)?, self.row(den)?);
        Some(Ratio {
            msgs_per_s: a.msgs_per_s / b.msgs_per_s,
            rtt: a.rtt_us / b.rtt_us,
        })
    }

    fn table(&self) -> String {
        let p = self.params;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "enet-dtls bench: loopback, {} messages of {} bytes, window {}, {} pings, \
             median of {} rounds",
            p.messages, p.size, p.window, p.pings, self.rounds
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<10} {:>14} {:>12} {:>8}",
            "WORKLOAD", "MSGS/S", "RTT_US", "LOST"
        );
        for (name, outcome) in &self.rows {
            match outcome {
                Outcome::Done(m) => {
                    let _ = writeln!(
                        s,
                        "{:<10} {:>14.1} {:>12.2} {:>8}",
                        name, m.msgs_per_s, m.rtt_us, m.lost
                    );
                }
                Outcome::Skipped(why) => {
                    let _ = writeln!(s, "{name:<10} skipped: {why}");
                }
            }
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<18} {:>10} {:>10}   (msgs/s: higher is better for us; rtt: lower is better)",
            "RATIO", "MSGS/S", "RTT"
        );
        for (num, den) in RATIOS {
            let label = format!("{num} / {den}");
            match self.ratio(num, den) {
                Some(r) => {
                    let _ = writeln!(s, "{label:<18} {:>10.3} {:>10.3}", r.msgs_per_s, r.rtt);
                }
                None => {
                    let _ = writeln!(s, "{label:<18} {:>10} {:>10}", "n/a", "n/a");
                }
            }
        }
        s
    }

    fn json(&self) -> String {
        let p = self.params;
        let mut s = String::new();
        let _ = write!(
            s,
            "{{\"messages\":{},\"size\":{},\"window\":{},\"pings\":{},\"rounds\":{},\
             \"workloads\":{{",
            p.messages, p.size, p.window, p.pings, self.rounds
        );
        for (i, (name, outcome)) in self.rows.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, "\"{name}\":");
            match outcome {
                Outcome::Done(m) => {
                    let _ = write!(
                        s,
                        "{{\"msgs_per_s\":{},\"rtt_us\":{},\"lost\":{}}}",
                        json_num(m.msgs_per_s),
                        json_num(m.rtt_us),
                        m.lost
                    );
                }
                Outcome::Skipped(why) => {
                    let _ = write!(s, "{{\"skipped\":{}}}", json_str(why));
                }
            }
        }
        s.push_str("},\"ratios\":{");
        for (i, (num, den)) in RATIOS.into_iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, "\"{num}/{den}\":");
            match self.ratio(num, den) {
                Some(r) => {
                    let _ = write!(
                        s,
                        "{{\"msgs_per_s\":{},\"rtt\":{}}}",
                        json_num(r.msgs_per_s),
                        json_num(r.rtt)
                    );
                }
                None => s.push_str("null"),
            }
        }
        s.push_str("}}");
        s
    }
}

/// A JSON number (JSON has no NaN or infinity: those become `null`).
fn json_num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "null".to_string()
    }
}

/// A JSON string literal.
fn json_str(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    s.push('"');
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", u32::from(c));
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

/// The per-field median of the rounds (`None` for no rounds); `lost` is the total.
fn median(rounds: &[Measure]) -> Option<Measure> {
    fn mid(mut xs: Vec<f64>) -> f64 {
        xs.sort_by(f64::total_cmp);
        let n = xs.len();
        if n % 2 == 1 {
            xs[n / 2]
        } else {
            (xs[n / 2 - 1] + xs[n / 2]) / 2.0
        }
    }
    if rounds.is_empty() {
        return None;
    }
    Some(Measure {
        msgs_per_s: mid(rounds.iter().map(|m| m.msgs_per_s).collect()),
        rtt_us: mid(rounds.iter().map(|m| m.rtt_us).collect()),
        lost: rounds.iter().map(|m| m.lost).sum(),
    })
}

/// The message every client sends.
fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i as u8).wrapping_mul(31)).collect()
}

/// A server thread and the flag that stops it.
struct Server<T> {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<T>>,
}

impl<T: Send + 'static> Server<T> {
    fn spawn(name: &str, body: impl FnOnce(&AtomicBool) -> T + Send + 'static) -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::Builder::new()
            .name(name.to_string())
            .spawn(move || body(&flag))?;
        Ok(Server {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the thread and returns what it returned (`None` if it panicked).
    fn finish(mut self) -> Option<T> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().and_then(|h| h.join().ok())
    }
}

impl<T> Drop for Server<T> {
    fn drop(&mut self) {
        // On an early return the thread must not outlive the workload.
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The windowed throughput loop shared by the datagram workloads (raw UDP and DTLS), which do
/// not retransmit: `send` sends one message, `recv(wait)` returns whether one echo arrived
/// within `wait`. After [`LOSS_WAIT`] without an echo the messages in flight count as lost.
fn datagram_throughput(
    workload: &'static str,
    p: Params,
    mut send: impl FnMut() -> Result<(), BenchError>,
    mut recv: impl FnMut(Duration) -> Result<bool, BenchError>,
) -> Result<(f64, u64), BenchError> {
    let (mut sent, mut done, mut in_flight, mut lost) = (0u64, 0u64, 0u64, 0u64);
    let start = Instant::now();
    let mut last_progress = start;
    while done < p.messages {
        while sent < p.messages && in_flight < p.window {
            send()?;
            sent += 1;
            in_flight += 1;
        }
        if recv(LOSS_WAIT)? {
            done += 1;
            in_flight = in_flight.saturating_sub(1);
            last_progress = Instant::now();
        } else if last_progress.elapsed() > STALL {
            return Err(fail(workload, format!("no echo for {STALL:?}")));
        } else {
            // Whatever is still in flight is lost; `done` counts echoes and losses.
            lost += in_flight;
            done += in_flight;
            in_flight = 0;
        }
    }
    if lost >= p.messages {
        return Err(fail(workload, "every message was lost"));
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(((p.messages - lost) as f64 / elapsed, lost))
}

/// Mean ping-pong round trip in microseconds; `ping` sends one message and waits for its echo
/// (returning `false` if it was lost, which is then retried).
fn ping_pong(
    workload: &'static str,
    pings: u64,
    mut ping: impl FnMut() -> Result<bool, BenchError>,
) -> Result<f64, BenchError> {
    let mut total = Duration::ZERO;
    let mut done = 0;
    let mut last_progress = Instant::now();
    while done < pings {
        let t0 = Instant::now();
        if ping()? {
            total += t0.elapsed();
            done += 1;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > STALL {
            return Err(fail(workload, format!("no ping echo for {STALL:?}")));
        }
    }
    Ok(total.as_secs_f64() * 1e6 / pings as f64)
}

// ---------------------------------------------------------------------------------------------
// raw UDP

fn bench_raw_udp(p: Params) -> Result<Measure, BenchError> {
    const W: &str = "raw-udp";
    let io = io_err(W);
    let server_socket = UdpSocket::bind("127.0.0.1:0").map_err(&io)?;
    server_socket
        .set_read_timeout(Some(SERVER_TICK))
        .map_err(&io)?;
    let server_addr = server_socket.local_addr().map_err(&io)?;
    let server = Server::spawn("bench-udp-echo", move |stop| -> io::Result<()> {
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Ordering::Relaxed) {
            match server_socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    // A full socket buffer drops the echo, like any UDP loss.
                    let _ = server_socket.send_to(&buf[..n], from);
                }
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
    .map_err(&io)?;

    let client = UdpSocket::bind("127.0.0.1:0").map_err(&io)?;
    client.connect(server_addr).map_err(&io)?;
    client.set_read_timeout(Some(LOSS_WAIT)).map_err(&io)?;
    let msg = payload(p.size);
    let buf = std::cell::RefCell::new(vec![0u8; 65_536]);
    // One echo within LOSS_WAIT (the socket's read timeout).
    let recv = || -> Result<bool, BenchError> {
        match client.recv(&mut buf.borrow_mut()) {
            Ok(n) if n == p.size => Ok(true),
            Ok(n) => Err(fail(W, format!("echo of {n} bytes, expected {}", p.size))),
            Err(e) if is_timeout(&e) => Ok(false),
            Err(e) => Err(io(e)),
        }
    };
    let send = || client.send(&msg).map(drop).map_err(&io);
    let (msgs_per_s, lost) = datagram_throughput(W, p, send, |_| recv())?;
    let rtt_us = ping_pong(W, p.pings, || {
        send()?;
        recv()
    })?;
    match server.finish() {
        Some(Ok(())) => {}
        Some(Err(e)) => return Err(io(e)),
        None => return Err(fail(W, "echo thread panicked")),
    }
    Ok(Measure {
        msgs_per_s,
        rtt_us,
        lost,
    })
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

// ---------------------------------------------------------------------------------------------
// our ENet

fn bench_enet(p: Params) -> Result<Measure, BenchError> {
    const W: &str = "enet";
    let io = io_err(W);
    let loopback: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut server_host =
        EnetHost::bind(loopback, HostConfig::default()).map_err(|e| fail(W, e))?;
    let server_addr = server_host.local_addr().map_err(&io)?;
    let server = Server::spawn("bench-enet-echo", move |stop| -> Result<(), String> {
        while !stop.load(Ordering::Relaxed) {
            match server_host.service(SERVER_TICK) {
                Ok(Some(Event::Receive {
                    peer,
                    channel,
                    packet,
                })) => server_host
                    .send(peer, channel, packet)
                    .map_err(|e| format!("echo send: {e}"))?,
                Ok(_) => {}
                Err(e) => return Err(format!("service: {e}")),
            }
        }
        let _ = server_host.flush();
        Ok(())
    })
    .map_err(&io)?;

    let mut client = EnetHost::bind(loopback, HostConfig::default()).map_err(|e| fail(W, e))?;
    let peer = client
        .connect(server_addr, 1, 0)
        .map_err(|e| fail(W, format!("connect: {e}")))?;
    // Waits for the next echo; errors on silence or a disconnect.
    let next_echo = |client: &mut EnetHost| -> Result<(), BenchError> {
        loop {
            match client.service(STALL).map_err(&io)? {
                Some(Event::Receive { packet, .. }) if packet.data.len() == p.size => return Ok(()),
                Some(Event::Receive { packet, .. }) => {
                    return Err(fail(
                        W,
                        format!("echo of {} bytes, expected {}", packet.data.len(), p.size),
                    ))
                }
                Some(Event::Disconnect { reason, .. }) => {
                    return Err(fail(W, format!("disconnected during the run ({reason:?})")))
                }
                Some(_) => {}
                None => return Err(fail(W, format!("no echo for {STALL:?}"))),
            }
        }
    };
    match client.service(STALL).map_err(&io)? {
        Some(Event::Connect { .. }) => {}
        other => return Err(fail(W, format!("expected a connect event, got {other:?}"))),
    }

    let msg = payload(p.size);
    let (mut sent, mut done) = (0u64, 0u64);
    let start = Instant::now();
    while done < p.messages {
        while sent < p.messages && sent - done < p.window {
            client
                .send(peer, 0, Packet::reliable(msg.clone()))
                .map_err(|e| fail(W, format!("send: {e}")))?;
            sent += 1;
        }
        next_echo(&mut client)?;
        done += 1;
    }
    let msgs_per_s = p.messages as f64 / start.elapsed().as_secs_f64();
    let rtt_us = ping_pong(W, p.pings, || {
        client
            .send(peer, 0, Packet::reliable(msg.clone()))
            .map_err(|e| fail(W, format!("send: {e}")))?;
        next_echo(&mut client)?;
        Ok(true)
    })?;

    client.disconnect(peer, 0);
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        match client.service(SERVER_TICK).map_err(&io)? {
            Some(Event::Disconnect { .. }) => break,
            _ => continue,
        }
    }
    match server.finish() {
        Some(Ok(())) => {}
        Some(Err(e)) => return Err(fail(W, format!("echo host: {e}"))),
        None => return Err(fail(W, "echo thread panicked")),
    }
    Ok(Measure {
        msgs_per_s,
        rtt_us,
        lost: 0,
    })
}

// ---------------------------------------------------------------------------------------------
// C ENet anchor

fn bench_c_anchor(path: &Path, p: Params) -> Result<Measure, BenchError> {
    let err = |why: String| BenchError::Anchor {
        path: path.to_path_buf(),
        why,
    };
    let mut child = Command::new(path)
        .arg(p.messages.to_string())
        .arg(p.size.to_string())
        .arg(p.window.to_string())
        .arg(p.pings.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot start it: {e}")))?;
    // The anchor bounds its own waits; this is the backstop against a wedged process.
    let limit = STALL * 3 + Duration::from_secs(p.messages / 10_000 + p.pings / 1_000);
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err(format!("did not finish within {limit:?}; killed")));
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(err(format!("cannot wait for it: {e}"))),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| err(format!("cannot read its output: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(err(format!(
            "exited with {}: {}",
            out.status,
            stderr.trim()
        )));
    }
    parse_anchor_line(&stdout).map_err(err)
}

/// Parses `C_ENET ... msgs_per_s=<x> rtt_us=<y>` from the anchor's stdout.
fn parse_anchor_line(stdout: &str) -> Result<Measure, String> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("C_ENET "))
        .ok_or_else(|| format!("no `C_ENET` result line in its output: {stdout:?}"))?;
    let field = |key: &str| -> Result<f64, String> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .ok_or_else(|| format!("no {key}= in {line:?}"))?
            .parse::<f64>()
            .map_err(|e| format!("bad {key} in {line:?}: {e}"))
    };
    Ok(Measure {
        msgs_per_s: field("msgs_per_s")?,
        rtt_us: field("rtt_us")?,
        lost: 0,
    })
}

// ---------------------------------------------------------------------------------------------
// DTLS

fn bench_dtls(p: Params) -> Result<Measure, BenchError> {
    const W: &str = "dtls";
    let io = io_err(W);
    let key = PrivateKey::generate(KeyType::EcP256).map_err(|e| fail(W, e))?;
    let cert = Certificate::self_signed(&key, &CertificateParams::new("localhost"))
        .map_err(|e| fail(W, e))?;
    let config = ServerConfig::builder(key, cert)
        .build()
        .map_err(|e| fail(W, e))?;
    let mut listener = DtlsListener::bind("127.0.0.1:0", &config).map_err(|e| fail(W, e))?;
    let server_addr = listener.local_addr();
    let server = Server::spawn("bench-dtls-echo", move |stop| -> Result<(), String> {
        while !stop.load(Ordering::Relaxed) {
            match listener.service(SERVER_TICK) {
                Ok(Some(ListenerEvent::Packet(from, data))) => {
                    // A refused echo is a lost datagram for the client, like UDP loss.
                    let _ = listener.send_to(from, &data);
                }
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    })
    .map_err(&io)?;

    let mut udp = PacketPeerUdp::bind("127.0.0.1:0").map_err(&io)?;
    udp.connect_to_host(server_addr).map_err(&io)?;
    let client_config = ClientConfig::builder()
        .verify(false)
        .build()
        .map_err(|e| fail(W, e))?;
    let mut dtls = PacketPeerDtls::connect_to_peer(udp, &client_config).map_err(|e| fail(W, e))?;
    let handshake_deadline = Instant::now() + STALL;
    while dtls.status() == Status::Handshaking {
        if Instant::now() > handshake_deadline {
            return Err(fail(
                W,
                format!("handshake did not finish within {STALL:?}"),
            ));
        }
        dtls.wait(Some(SERVER_TICK)).map_err(|e| fail(W, e))?;
        dtls.poll().map_err(|e| fail(W, e))?;
    }
    if dtls.status() != Status::Connected {
        let why = dtls
            .error()
            .map_or_else(|| format!("{:?}", dtls.status()), ToString::to_string);
        return Err(fail(W, format!("handshake failed: {why}")));
    }
    if let Some(mtu) = dtls.data_mtu() {
        if p.size > mtu {
            return Err(fail(
                W,
                format!("--size {} exceeds the DTLS data MTU {mtu}", p.size),
            ));
        }
    }

    let msg = payload(p.size);
    // One echo within `wait`, reading every datagram that is already there first.
    let recv = |dtls: &mut PacketPeerDtls, wait: Duration| -> Result<bool, BenchError> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(echo) = dtls.get_packet().map_err(|e| fail(W, e))? {
                if echo.len() != p.size {
                    return Err(fail(
                        W,
                        format!("echo of {} bytes, expected {}", echo.len(), p.size),
                    ));
                }
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            dtls.wait(Some(deadline - now)).map_err(|e| fail(W, e))?;
            dtls.poll().map_err(|e| fail(W, e))?;
        }
    };
    let dtls = std::cell::RefCell::new(dtls);
    let (msgs_per_s, lost) = datagram_throughput(
        W,
        p,
        || dtls.borrow_mut().put_packet(&msg).map_err(|e| fail(W, e)),
        |wait| recv(&mut dtls.borrow_mut(), wait),
    )?;
    let rtt_us = ping_pong(W, p.pings, || {
        let mut d = dtls.borrow_mut();
        d.put_packet(&msg).map_err(|e| fail(W, e))?;
        recv(&mut d, LOSS_WAIT)
    })?;
    dtls.borrow_mut().disconnect_from_peer();
    match server.finish() {
        Some(Ok(())) => {}
        Some(Err(e)) => return Err(fail(W, format!("echo listener: {e}"))),
        None => return Err(fail(W, "echo thread panicked")),
    }
    Ok(Measure {
        msgs_per_s,
        rtt_us,
        lost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let m = |x: f64, r: f64| {
            Outcome::Done(Measure {
                msgs_per_s: x,
                rtt_us: r,
                lost: 0,
            })
        };
        Report {
            params: Params {
                messages: 10,
                size: 8,
                window: 2,
                pings: 3,
            },
            rounds: 1,
            rows: [
                ("raw-udp", m(400.0, 10.0)),
                ("enet", m(100.0, 40.0)),
                ("c-enet", Outcome::Skipped("no \"anchor\"".into())),
                ("dtls", m(200.0, 20.0)),
            ],
        }
    }

    #[test]
    fn ratios_divide_the_named_rows_and_skip_missing_ones() {
        let r = sample();
        let e = r.ratio("enet", "raw-udp").expect("both rows measured");
        assert_eq!((e.msgs_per_s, e.rtt), (0.25, 4.0));
        assert!(r.ratio("enet", "c-enet").is_none());
        let json = r.json();
        assert!(json.contains("\"enet/c-enet\":null"), "{json}");
        assert!(json.contains("\"skipped\":\"no \\\"anchor\\\"\""), "{json}");
        assert!(
            json.contains("\"dtls/raw-udp\":{\"msgs_per_s\":0.500,\"rtt\":2.000}"),
            "{json}"
        );
    }

    #[test]
    fn median_is_per_field_and_lost_is_summed() {
        let m = |x: f64, r: f64, lost: u64| Measure {
            msgs_per_s: x,
            rtt_us: r,
            lost,
        };
        assert!(median(&[]).is_none());
        let odd = median(&[m(3.0, 10.0, 1), m(1.0, 30.0, 0), m(2.0, 20.0, 2)]).unwrap();
        assert_eq!((odd.msgs_per_s, odd.rtt_us, odd.lost), (2.0, 20.0, 3));
        let even = median(&[m(4.0, 1.0, 0), m(2.0, 3.0, 0)]).unwrap();
        assert_eq!((even.msgs_per_s, even.rtt_us), (3.0, 2.0));
    }

    #[test]
    fn anchor_line_is_parsed_and_garbage_is_refused() {
        let m = parse_anchor_line(
            "C_ENET messages=5 size=8 window=2 pings=1 elapsed_s=0.1 msgs_per_s=50.0 rtt_us=7.5\n",
        )
        .expect("valid line");
        assert_eq!((m.msgs_per_s, m.rtt_us), (50.0, 7.5));
        assert!(parse_anchor_line("hello\n").is_err());
        assert!(parse_anchor_line("C_ENET msgs_per_s=x rtt_us=1\n").is_err());
    }
}
