//! `enet-dtls bench`: our stack side by side with its anchors, in one run, on loopback, with
//! absolute figures and ratios (a table, or `--json`), a progress bar on stderr while it runs,
//! and `--plot FILE.svg` (RTT distributions and throughput bars).
//!
//! | part (`--parts`) | what | anchor |
//! |---|---|---|
//! | `small` | small reliable messages per second (a window of `--window` echoes in flight) and the ping-pong RTT p50/p99: `raw-udp`, `enet` ([`EnetHost`] both ends), `c-enet` (C ENet 1.3 both ends, `bench_peers/enet_anchor.c`), `dtls` (datagrams over [`PacketPeerDtls`]/[`DtlsListener`]), `enet+dtls` (ENet over DTLS: [`DtlsEnetSocket`] under both hosts) | C ENet, raw UDP |
//! | `transfer` | `--transfer-mib` MiB in 1 MiB reliable packets (fragmented), MB/s: ours vs C ENet, plain and over DTLS | C ENet |
//! | `handshake` | full DTLS handshakes per second with RSA-2048 and P-256 certificates, one client after the other and `--handshake-clients` (8) at once, and the server thread's CPU per handshake, next to `openssl speed -seconds 1 rsa2048 ecdsap256` sign rates | OpenSSL's signing rate |
//! | `peers` | `--peers` idle peers (one C ENet client host) on our `enet-echo` and on C ENet's echo host, both sized 4,095: resident memory per peer, the server's idle CPU (from `/proc/PID/stat`), time to connect them all | C ENet |
//! | `netsim` | datagrams per second through the `netsim` relay (no impairment) vs raw UDP without it | raw UDP |
//! | `rpc` | Godot RPCs per second (the chat room: `send_message` to the server, `receive_message` to every client) through the real `enet-dtls serve` process, plain and `--dtls`, and through Godot 3.2.3's own server (`fixtures/godot/bench_chat_server.gd`), the same clients for both; the server process's CPU per call from `/proc` | Godot 3.2.3 |
//!
//! The Godot row needs `godot3-server` in `$PATH` and the repository's Godot project
//! (`--godot-project`, default `fixtures/godot` of the source tree this binary was built from):
//! without them it is skipped with the reason, except with `CI=true`, where that is an error.
//!
//! The C anchor runs only when its binary is named by `--c-anchor` or `ENET_DTLS_C_ANCHOR`
//! (scripts/bench builds it); otherwise its rows say why they were skipped.
//!
//! Each workload runs `--rounds` times, interleaved with the others (the two `peers` servers
//! alternate), so that a burst of load elsewhere on the shared machine hits every workload
//! rather than one; each row reports the median of its rounds. `--quick` shrinks every part.
//!
//! This is a measuring tool, not a test: it reports numbers and asserts nothing about them.
//! Machines, load and the kernel move them a lot; compare ratios from the same run only.

#[path = "bench_cost.rs"]
mod cost;
#[path = "bench_plot.rs"]
mod plot;
#[path = "bench_rpc.rs"]
mod rpc;
#[path = "bench_scale.rs"]
mod scale;

use std::io::{self, Write as _};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use enet_dtls::dtls::{
    ClientConfig, DtlsListener, ListenerEvent, PacketPeerDtls, ServerConfig, Status,
};
use enet_dtls::dtls_proto::keys::{Certificate, CertificateParams, KeyType, PrivateKey};
use enet_dtls::dtls_proto::EndpointConfig;
use enet_dtls::enet::{DtlsEnetSocket, EnetHost, EnetSocket};
use enet_dtls::enet_proto::{Event, HostConfig, Packet};
use enet_dtls::udp::PacketPeerUdp;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

/// Environment variable naming the C anchor binary when `--c-anchor` is not given.
const C_ANCHOR_ENV: &str = "ENET_DTLS_C_ANCHOR";

/// A run gives up after this long without any progress (a lost peer, a broken socket).
const STALL: Duration = Duration::from_secs(10);

/// After this long without an echo, the raw UDP and DTLS clients count the messages in flight
/// as lost and refill the window (those transports do not retransmit).
const LOSS_WAIT: Duration = Duration::from_millis(200);

/// How often server threads look at their stop flag while idle.
const SERVER_TICK: Duration = Duration::from_millis(50);

/// The parts of the bench (`--parts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Part {
    /// Small reliable messages per second and ping-pong RTT.
    Small,
    /// Bulk transfer in 1 MiB reliable packets.
    Transfer,
    /// DTLS handshakes per second next to `openssl speed`.
    Handshake,
    /// Memory and idle CPU per connected peer.
    Peers,
    /// Datagrams per second through the netsim relay.
    Netsim,
    /// Godot RPCs per second through `serve` and through Godot 3.2.3's server.
    Rpc,
}

const ALL_PARTS: [Part; 6] = [
    Part::Small,
    Part::Transfer,
    Part::Handshake,
    Part::Peers,
    Part::Netsim,
    Part::Rpc,
];

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Messages per throughput run (each one is echoed back), and calls per client and round of
    /// the rpc part. Default 20000 (--quick: 2000).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    messages: Option<u64>,
    /// Bytes per message (at most 1024, so a message fits one ENet datagram and one DTLS
    /// record without fragmentation).
    #[arg(long, value_name = "BYTES", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    size: u64,
    /// Messages in flight (sent, echo not yet received) during the throughput runs.
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    window: u64,
    /// Ping-pong round trips for the RTT columns (default: 2000, --quick 200, or --messages
    /// if smaller).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pings: Option<u64>,
    /// The C ENet anchor binary (built from crates/cli/bench_peers/enet_anchor.c by
    /// scripts/bench). Default: $ENET_DTLS_C_ANCHOR; without either the C rows are skipped.
    #[arg(long, value_name = "PATH")]
    c_anchor: Option<PathBuf>,
    /// Measure every workload this many times (interleaved) and report the median of each.
    /// Default 3 (--quick: 1).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: Option<u32>,
    /// The parts to run, comma-separated (default: all).
    #[arg(long, value_name = "PART,...", value_enum, value_delimiter = ',')]
    parts: Vec<Part>,
    /// MiB moved by the transfer part, in 1 MiB packets. Default 64 (--quick: 16).
    #[arg(long, value_name = "MIB",
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    transfer_mib: Option<u64>,
    /// Full DTLS handshakes per certificate type and round. Default 200 (--quick: 10).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    handshakes: Option<u64>,
    /// Clients handshaking at once in the handshake part's second run of each certificate type
    /// (the first runs one client after the other). Default 8 (--quick: 2).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=256))]
    handshake_clients: Option<u64>,
    /// Idle peers connected to each server by the peers part (servers are sized 4,095).
    /// Default 4000 (--quick: 500).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=4095))]
    peers: Option<u64>,
    /// Chat clients of the rpc part; each makes --messages calls (default 20000, --quick 2000)
    /// of `send_message` per round.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..=32))]
    rpc_clients: u64,
    /// Calls of one rpc client in flight (its own `receive_message` not back yet).
    #[arg(long, value_name = "N", default_value_t = 32,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    rpc_window: u64,
    /// The Godot project holding `bench_chat_server.gd` for the rpc part's Godot row.
    /// Default: `fixtures/godot` of the source tree this binary was built from.
    #[arg(long, value_name = "DIR")]
    godot_project: Option<PathBuf>,
    /// Small, fast runs of every part (well under a minute): for a smoke test, not for numbers.
    #[arg(long)]
    quick: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON object to this file (the table still goes to stdout).
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,
    /// Draw the RTT distributions and the throughput bars into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

/// The parameters every workload shares.
#[derive(Debug, Clone, Copy)]
struct Params {
    messages: u64,
    size: usize,
    window: u64,
    pings: u64,
}

/// The sizes of the other parts.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    transfer_bytes: u64,
    handshakes: u64,
    handshake_clients: u64,
    peers: u64,
    idle: Duration,
    relay_messages: u64,
}

/// What one small-message workload measured.
#[derive(Debug, Clone)]
struct Measure {
    /// Echoed messages per second during the windowed run.
    msgs_per_s: f64,
    /// Mean ping-pong round trip, microseconds.
    rtt_us: f64,
    /// Median ping-pong round trip, microseconds.
    rtt_p50_us: f64,
    /// 99th percentile ping-pong round trip, microseconds.
    rtt_p99_us: f64,
    /// Messages the client gave up on (raw UDP and DTLS only; ENet retransmits).
    lost: u64,
    /// Every ping's round trip, microseconds (for the plot).
    samples: Vec<f64>,
    /// CPU and datagrams of the windowed run (our ENet hosts only).
    cost: Option<cost::Cost>,
}

impl Measure {
    fn new(msgs_per_s: f64, lost: u64, samples: Vec<f64>) -> Measure {
        let mean = if samples.is_empty() {
            f64::NAN
        } else {
            samples.iter().sum::<f64>() / samples.len() as f64
        };
        Measure {
            msgs_per_s,
            rtt_us: mean,
            rtt_p50_us: quantile(&samples, 0.50),
            rtt_p99_us: quantile(&samples, 0.99),
            lost,
            samples,
            cost: None,
        }
    }
}

/// The `q` quantile (0..=1, nearest rank) of `xs` (`NaN` for none).
pub(crate) fn quantile(xs: &[f64], q: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = (q * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// A row: measured, or skipped with a reason.
#[derive(Debug, Clone)]
enum Outcome<T> {
    Done(T),
    Skipped(String),
}

impl<T> Outcome<T> {
    fn done(&self) -> Option<&T> {
        match self {
            Outcome::Done(m) => Some(m),
            Outcome::Skipped(_) => None,
        }
    }
}

/// Writes one table row per workload into `s`: its name padded to `width`, then what `done`
/// makes of its figures (given the name too), or `skipped: <why>`.
fn write_rows<T>(
    s: &mut String,
    rows: &[(&str, Outcome<T>)],
    width: usize,
    done: impl Fn(&str, &T) -> String,
) {
    use std::fmt::Write as _;
    for (name, o) in rows {
        let _ = match o {
            Outcome::Done(x) => writeln!(s, "{name:<width$} {}", done(name, x)),
            Outcome::Skipped(why) => writeln!(s, "{name:<width$} skipped: {why}"),
        };
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
    /// An output file could not be written.
    Output {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
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
            BenchError::Output { path, why } => {
                write!(f, "cannot write {}: {why}", path.display())
            }
        }
    }
}

impl std::error::Error for BenchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BenchError::Io { source, .. } => Some(source),
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

/// The machine the run is on (the numbers mean nothing without it).
#[derive(Debug, Clone)]
struct Machine {
    cpus: usize,
    cpu_model: String,
    loadavg: String,
}

impl Machine {
    fn probe() -> Machine {
        let cpus = thread::available_parallelism().map_or(0, |n| n.get());
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let loadavg = std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "?".into());
        Machine {
            cpus,
            cpu_model,
            loadavg,
        }
    }
}

/// Everything one run measured.
struct Report {
    params: Params,
    sizes: Sizes,
    rounds: u32,
    quick: bool,
    machine: Machine,
    small: Vec<(&'static str, Outcome<Measure>)>,
    transfer: Vec<(&'static str, Outcome<f64>)>,
    handshakes: Vec<(&'static str, Outcome<scale::Handshakes>)>,
    openssl: Option<Outcome<scale::OpensslSpeed>>,
    peers: Vec<(&'static str, Outcome<scale::PeerLoad>)>,
    netsim: Option<Outcome<scale::Relay>>,
    rpc: Option<rpc::RpcReport>,
    /// "small" and "transfer": CPU per unit of work, plain ENet vs over DTLS, cipher bound.
    dtls_cost: Vec<(&'static str, cost::PartCost)>,
}

/// Runs `bench`.
pub(crate) fn run(args: BenchArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let q = args.quick;
    let messages = args.messages.unwrap_or(if q { 2000 } else { 20_000 });
    let params = Params {
        messages,
        size: usize::try_from(args.size)?,
        window: args.window,
        pings: args
            .pings
            .unwrap_or_else(|| messages.min(if q { 200 } else { 2000 })),
    };
    let sizes = Sizes {
        transfer_bytes: args.transfer_mib.unwrap_or(if q { 16 } else { 64 }) << 20,
        handshakes: args.handshakes.unwrap_or(if q { 10 } else { 200 }),
        handshake_clients: args.handshake_clients.unwrap_or(if q { 2 } else { 8 }),
        peers: args.peers.unwrap_or(if q { 500 } else { 4000 }),
        idle: if q {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(3)
        },
        relay_messages: if q { 5000 } else { 50_000 },
    };
    let rounds = args.rounds.unwrap_or(if q { 1 } else { 3 });
    let parts = if args.parts.is_empty() {
        ALL_PARTS.to_vec()
    } else {
        args.parts.clone()
    };
    let has = |p: Part| parts.contains(&p);
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
    // The rpc part's Godot row: skipped with the reason when Godot cannot run, an error in CI.
    let godot_project = args
        .godot_project
        .clone()
        .unwrap_or_else(rpc::default_godot_project);
    let godot = if has(Part::Rpc) {
        match rpc::godot_ready(&godot_project) {
            Ok(()) => Ok(()),
            Err(why) if in_ci() => {
                return Err(fail(
                    "rpc",
                    format!("{why} (CI=true: a missing anchor is a failure)"),
                )
                .into())
            }
            Err(why) => Err(why),
        }
    } else {
        Ok(())
    };
    let rpc_load = rpc::RpcLoad {
        clients: usize::try_from(args.rpc_clients)?,
        calls: messages,
        window: args.rpc_window,
    };
    let machine = Machine::probe();

    // Progress: one step per workload and round.
    let c = u64::from(anchor.is_some());
    let per_round = if has(Part::Small) { 4 + c } else { 0 }
        + if has(Part::Transfer) { 2 + c } else { 0 }
        + if has(Part::Handshake) { 4 } else { 0 }
        + if has(Part::Peers) { 1 + c } else { 0 }
        + if has(Part::Netsim) { 1 } else { 0 }
        + if has(Part::Rpc) {
            2 + u64::from(godot.is_ok())
        } else {
            0
        };
    let steps = per_round * u64::from(rounds) + u64::from(has(Part::Handshake));
    let bar = ProgressBar::new(steps);
    bar.set_style(
        ProgressStyle::with_template("bench [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let step = |name: &str| bar.set_message(name.to_string());

    let no_anchor = || format!("no --c-anchor and {C_ANCHOR_ENV} is not set");
    let mut small: [Vec<Measure>; 5] = Default::default();
    let mut transfer: [Vec<f64>; 3] = Default::default();
    let mut hs: [Vec<scale::Handshakes>; 4] = Default::default();
    let mut peers: [Vec<scale::PeerLoad>; 2] = Default::default();
    let mut relay: Vec<scale::Relay> = Vec::new();
    let mut rpcs: [Vec<rpc::RpcFigures>; 3] = Default::default();
    let rpc_servers = [
        rpc::RpcServer::Serve,
        rpc::RpcServer::Godot,
        rpc::RpcServer::ServeDtls,
    ];
    // Each certificate type twice: one client after the other, then several at once.
    let key_types = [
        ("rsa2048", KeyType::Rsa(2048), 1),
        ("p256", KeyType::EcP256, 1),
        (
            "rsa2048-concurrent",
            KeyType::Rsa(2048),
            sizes.handshake_clients,
        ),
        ("p256-concurrent", KeyType::EcP256, sizes.handshake_clients),
    ];
    // CPU and datagrams of our ENet runs, plain [0] and over DTLS [1] (bench_cost.rs).
    let mut small_cost: [Vec<cost::Cost>; 2] = Default::default();
    let mut transfer_cost: [Vec<cost::Cost>; 2] = Default::default();
    for round in 1..=rounds {
        bar.println(format!("bench: round {round}/{rounds}"));
        // Plain ENet and ENet over DTLS swap places every other round, so that neither
        // always runs first (or right after the same workload).
        let dtls_first = round % 2 == 0;
        if has(Part::Small) {
            // Our ENet (plain or over DTLS) runs twice a round, around the other workloads.
            let ours = |dtls: bool,
                        small: &mut [Vec<Measure>; 5],
                        small_cost: &mut [Vec<cost::Cost>; 2]|
             -> Result<(), BenchError> {
                step(if dtls {
                    "small: enet+dtls"
                } else {
                    "small: enet"
                });
                let m = bench_enet(params, dtls)?;
                small_cost[usize::from(dtls)].extend(m.cost);
                small[if dtls { 4 } else { 1 }].push(m);
                bar.inc(1);
                Ok(())
            };
            step("small: raw-udp");
            small[0].push(bench_raw_udp(params)?);
            bar.inc(1);
            ours(dtls_first, &mut small, &mut small_cost)?;
            if let Some(path) = &anchor {
                step("small: c-enet");
                small[2].push(bench_c_anchor(path, params)?);
                bar.inc(1);
            }
            step("small: dtls");
            small[3].push(bench_dtls(params)?);
            bar.inc(1);
            ours(!dtls_first, &mut small, &mut small_cost)?;
        }
        if has(Part::Transfer) {
            for dtls in [dtls_first, !dtls_first] {
                step(if dtls {
                    "transfer: enet+dtls"
                } else {
                    "transfer: enet"
                });
                let (mb_s, c) = scale::bench_transfer(sizes.transfer_bytes, dtls)?;
                transfer[if dtls { 2 } else { 0 }].push(mb_s);
                transfer_cost[usize::from(dtls)].push(c);
                bar.inc(1);
            }
            if let Some(path) = &anchor {
                step("transfer: c-enet");
                transfer[1].push(scale::bench_c_transfer(path, sizes.transfer_bytes)?);
                bar.inc(1);
            }
        }
        if has(Part::Handshake) {
            for (i, (name, kt, clients)) in key_types.iter().enumerate() {
                step(&format!("handshakes: {name}"));
                hs[i].push(scale::bench_handshakes(*kt, sizes.handshakes, *clients)?);
                bar.inc(1);
            }
        }
        if has(Part::Peers) {
            // Alternate which server goes first, round by round.
            let mut order = vec![0usize];
            if anchor.is_some() {
                order.push(1);
            }
            if round % 2 == 0 {
                order.reverse();
            }
            for side in order {
                let load = if side == 0 {
                    step("peers: enet-echo");
                    scale::bench_peers(scale::PeerServer::Ours, anchor.as_deref(), sizes)?
                } else {
                    step("peers: c-enet");
                    scale::bench_peers(scale::PeerServer::CEnet, anchor.as_deref(), sizes)?
                };
                peers[side].push(load);
                bar.inc(1);
            }
        }
        if has(Part::Netsim) {
            step("netsim relay");
            relay.push(scale::bench_relay(sizes.relay_messages, params)?);
            bar.inc(1);
        }
        if has(Part::Rpc) {
            // Take turns, and alternate who goes first, round by round.
            let mut order = vec![0usize, 1, 2];
            if round % 2 == 0 {
                order.reverse();
            }
            for i in order {
                let server = rpc_servers[i];
                if server == rpc::RpcServer::Godot && godot.is_err() {
                    continue;
                }
                step(&format!("rpc: {}", server.name()));
                rpcs[i].push(rpc::bench_rpc(server, rpc_load, &godot_project)?);
                bar.inc(1);
            }
        }
    }
    let openssl = if has(Part::Handshake) {
        step("openssl speed");
        let o = scale::openssl_speed();
        bar.inc(1);
        Some(o)
    } else {
        None
    };
    bar.finish_and_clear();

    let anchored =
        |v: Option<Measure>| v.map_or_else(|| Outcome::Skipped(no_anchor()), Outcome::Done);
    let [raw, enet, c_enet, dtls, enet_dtls] = small.map(|s| median(&s));
    let small = if has(Part::Small) {
        vec![
            ("raw-udp", anchored(raw)),
            ("enet", anchored(enet)),
            ("c-enet", anchored(c_enet)),
            ("dtls", anchored(dtls)),
            ("enet+dtls", anchored(enet_dtls)),
        ]
    } else {
        Vec::new()
    };
    let med = |v: &[f64]| (!v.is_empty()).then(|| median_of(v.to_vec()));
    let transfer = if has(Part::Transfer) {
        vec![
            (
                "enet",
                med(&transfer[0]).map_or_else(|| Outcome::Skipped(no_anchor()), Outcome::Done),
            ),
            (
                "c-enet",
                med(&transfer[1]).map_or_else(|| Outcome::Skipped(no_anchor()), Outcome::Done),
            ),
            (
                "enet+dtls",
                med(&transfer[2])
                    .map_or_else(|| Outcome::Skipped("no round".into()), Outcome::Done),
            ),
        ]
    } else {
        Vec::new()
    };
    let handshakes = if has(Part::Handshake) {
        key_types
            .iter()
            .zip(&hs)
            .map(|((name, _, _), v)| {
                let m = scale::Handshakes::median(v);
                (
                    *name,
                    m.map_or_else(|| Outcome::Skipped("no round".into()), Outcome::Done),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let peers = if has(Part::Peers) {
        vec![
            (
                "enet",
                scale::PeerLoad::median(&peers[0])
                    .map_or_else(|| Outcome::Skipped("no round".into()), Outcome::Done),
            ),
            (
                "c-enet",
                scale::PeerLoad::median(&peers[1])
                    .map_or_else(|| Outcome::Skipped(no_anchor()), Outcome::Done),
            ),
        ]
    } else {
        Vec::new()
    };
    let netsim = has(Part::Netsim).then(|| {
        scale::Relay::median(&relay)
            .map_or_else(|| Outcome::Skipped("no round".into()), Outcome::Done)
    });

    let rpc = has(Part::Rpc).then(|| rpc::RpcReport {
        load: rpc_load,
        rows: rpc_servers
            .iter()
            .zip(&rpcs)
            .map(|(server, rounds)| {
                let outcome = match (rpc::RpcFigures::median(rounds), &godot) {
                    (Some(f), _) => Outcome::Done(f),
                    (None, Err(why)) if *server == rpc::RpcServer::Godot => {
                        Outcome::Skipped(why.clone())
                    }
                    (None, _) => Outcome::Skipped("no round".into()),
                };
                (server.name(), outcome)
            })
            .collect(),
    });
    let part_cost = |c: &[Vec<cost::Cost>; 2]| {
        Some(cost::PartCost::new(
            cost::Cost::median(&c[0])?,
            cost::Cost::median(&c[1])?,
        ))
    };
    let mut dtls_cost = Vec::new();
    if has(Part::Small) {
        step("openssl speed (AEAD)");
        dtls_cost.extend(part_cost(&small_cost).map(|c| ("small", c)));
    }
    if has(Part::Transfer) {
        step("openssl speed (AEAD)");
        dtls_cost.extend(part_cost(&transfer_cost).map(|c| ("transfer", c)));
    }

    let report = Report {
        params,
        sizes,
        rounds,
        quick: q,
        machine,
        small,
        transfer,
        handshakes,
        openssl,
        peers,
        netsim,
        rpc,
        dtls_cost,
    };
    let json = report.json().to_string();
    if let Some(path) = &args.json_out {
        std::fs::write(path, format!("{json}\n")).map_err(|e| BenchError::Output {
            path: path.clone(),
            why: e.to_string(),
        })?;
    }
    if let Some(path) = &args.plot {
        plot::draw(&report, path).map_err(|why| BenchError::Output {
            path: path.clone(),
            why,
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

/// The small-message ratios printed: (numerator row, denominator row).
const RATIOS: [(&str, &str); 4] = [
    ("enet", "c-enet"),
    ("enet", "raw-udp"),
    ("dtls", "raw-udp"),
    ("enet+dtls", "enet"),
];

/// The transfer ratios printed.
const TRANSFER_RATIOS: [(&str, &str); 2] = [("enet", "c-enet"), ("enet+dtls", "enet")];

/// A ratio between two small-message rows (`None` when a row was skipped).
#[derive(Debug, Clone, Copy)]
struct Ratio {
    msgs_per_s: f64,
    rtt: f64,
    rtt_p50: f64,
    rtt_p99: f64,
}

/// A JSON number (JSON has no NaN or infinity: those become `null`), rounded to 3 decimals.
fn num(x: f64) -> Value {
    if x.is_finite() {
        json!((x * 1000.0).round() / 1000.0)
    } else {
        Value::Null
    }
}

fn find<'a, T>(rows: &'a [(&'static str, Outcome<T>)], name: &str) -> Option<&'a T> {
    rows.iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, o)| o.done())
}

impl Report {
    fn ratio(&self, a: &str, b: &str) -> Option<Ratio> {
        let (a, b) = (find(&self.small, a)?, find(&self.small, b)?);
        Some(Ratio {
            msgs_per_s: a.msgs_per_s / b.msgs_per_s,
            rtt: a.rtt_us / b.rtt_us,
            rtt_p50: a.rtt_p50_us / b.rtt_p50_us,
            rtt_p99: a.rtt_p99_us / b.rtt_p99_us,
        })
    }

    fn transfer_ratio(&self, a: &str, b: &str) -> Option<f64> {
        Some(find(&self.transfer, a)? / find(&self.transfer, b)?)
    }

    fn table(&self) -> String {
        use std::fmt::Write as _;
        let p = self.params;
        let m = &self.machine;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "enet-dtls bench: loopback, {} messages of {} bytes, window {}, {} pings, \
             median of {} rounds{}",
            p.messages,
            p.size,
            p.window,
            p.pings,
            self.rounds,
            if self.quick { " (--quick)" } else { "" }
        );
        let _ = writeln!(
            s,
            "machine: {} CPUs, {}; load average at start {} (a shared machine: rounds \
             interleave the workloads, figures are medians)",
            m.cpus, m.cpu_model, m.loadavg
        );
        if !self.small.is_empty() {
            let _ = writeln!(s, "\n== small reliable messages, ping-pong RTT");
            let _ = writeln!(
                s,
                "{:<10} {:>12} {:>11} {:>11} {:>6}",
                "WORKLOAD", "MSGS/S", "RTT_P50_US", "RTT_P99_US", "LOST"
            );
            write_rows(&mut s, &self.small, 10, |_, m| {
                format!(
                    "{:>12.1} {:>11.2} {:>11.2} {:>6}",
                    m.msgs_per_s, m.rtt_p50_us, m.rtt_p99_us, m.lost
                )
            });
            let _ = writeln!(
                s,
                "\n{:<18} {:>9} {:>9} {:>9}   (msgs/s: higher is better for the first; rtt: lower)",
                "RATIO", "MSGS/S", "RTT_P50", "RTT_P99"
            );
            for (a, b) in RATIOS {
                let label = format!("{a} / {b}");
                match self.ratio(a, b) {
                    Some(r) => {
                        let _ = writeln!(
                            s,
                            "{label:<18} {:>9.3} {:>9.3} {:>9.3}",
                            r.msgs_per_s, r.rtt_p50, r.rtt_p99
                        );
                    }
                    None => {
                        let _ = writeln!(s, "{label:<18} {:>9} {:>9} {:>9}", "n/a", "n/a", "n/a");
                    }
                }
            }
        }
        if !self.transfer.is_empty() {
            let _ = writeln!(
                s,
                "\n== transfer: {} MiB in 1 MiB reliable packets (fragmented), one client",
                self.sizes.transfer_bytes >> 20
            );
            let _ = writeln!(s, "{:<10} {:>10}", "WORKLOAD", "MB/S");
            write_rows(&mut s, &self.transfer, 10, |_, x| format!("{x:>10.1}"));
            for (a, b) in TRANSFER_RATIOS {
                let r = self
                    .transfer_ratio(a, b)
                    .map_or_else(|| "n/a".to_string(), |r| format!("{r:.3}"));
                let _ = writeln!(s, "transfer {a} / {b} MB/s: {r}");
            }
        }
        for (part, c) in &self.dtls_cost {
            s += &match *part {
                "small" => cost::table(
                    "ENet over DTLS vs plain ENet, small messages",
                    c,
                    "msg",
                    "MSGS/S",
                    1e6,
                    "us",
                ),
                _ => cost::table(
                    "ENet over DTLS vs plain ENet, transfer",
                    c,
                    "MiB",
                    "MIB/S",
                    1e3,
                    "ms",
                ),
            };
        }
        if !self.handshakes.is_empty() {
            s += &scale::handshake_table(&self.handshakes, self.openssl.as_ref());
        }
        if !self.peers.is_empty() {
            s += &scale::peers_table(&self.peers, self.sizes);
        }
        if let Some(o) = &self.netsim {
            s += &scale::relay_table(o, find(&self.small, "raw-udp"));
        }
        if let Some(r) = &self.rpc {
            s += &rpc::rpc_table(r);
        }
        s
    }

    fn json(&self) -> Value {
        let p = self.params;
        let mut top = json!({
            "messages": p.messages,
            "size": p.size,
            "window": p.window,
            "pings": p.pings,
            "rounds": self.rounds,
            "quick": self.quick,
            "machine": {
                "cpus": self.machine.cpus,
                "cpu_model": self.machine.cpu_model,
                "loadavg": self.machine.loadavg,
            },
        });
        let skipped = |why: &str| json!({ "skipped": why });
        if !self.small.is_empty() {
            let mut w = serde_json::Map::new();
            for (name, o) in &self.small {
                w.insert(
                    (*name).into(),
                    match o {
                        Outcome::Done(m) => json!({
                            "msgs_per_s": num(m.msgs_per_s),
                            "rtt_us": num(m.rtt_us),
                            "rtt_p50_us": num(m.rtt_p50_us),
                            "rtt_p99_us": num(m.rtt_p99_us),
                            "lost": m.lost,
                        }),
                        Outcome::Skipped(why) => skipped(why),
                    },
                );
            }
            top["workloads"] = Value::Object(w);
            let mut r = serde_json::Map::new();
            for (a, b) in RATIOS {
                r.insert(
                    format!("{a}/{b}"),
                    self.ratio(a, b).map_or(Value::Null, |x| {
                        json!({
                            "msgs_per_s": num(x.msgs_per_s),
                            "rtt": num(x.rtt),
                            "rtt_p50": num(x.rtt_p50),
                            "rtt_p99": num(x.rtt_p99),
                        })
                    }),
                );
            }
            top["ratios"] = Value::Object(r);
        }
        if !self.transfer.is_empty() {
            let mut w = serde_json::Map::new();
            for (name, o) in &self.transfer {
                w.insert(
                    (*name).into(),
                    match o {
                        Outcome::Done(x) => json!({ "mb_per_s": num(*x) }),
                        Outcome::Skipped(why) => skipped(why),
                    },
                );
            }
            top["transfer"] = json!({
                "total_bytes": self.sizes.transfer_bytes,
                "packet_bytes": scale::TRANSFER_PACKET,
                "workloads": w,
                "ratios": TRANSFER_RATIOS
                    .iter()
                    .map(|(a, b)| {
                        (format!("{a}/{b}"), self.transfer_ratio(a, b).map_or(Value::Null, num))
                    })
                    .collect::<serde_json::Map<String, Value>>(),
            });
        }
        if !self.dtls_cost.is_empty() {
            top["dtls_cost"] = self
                .dtls_cost
                .iter()
                .map(|(part, c)| ((*part).to_string(), cost::json(c)))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        if !self.handshakes.is_empty() {
            top["handshakes"] = scale::handshake_json(&self.handshakes, self.openssl.as_ref());
        }
        if !self.peers.is_empty() {
            top["peers"] = scale::peers_json(&self.peers, self.sizes);
        }
        if let Some(o) = &self.netsim {
            top["netsim"] = scale::relay_json(o, find(&self.small, "raw-udp"));
        }
        if let Some(r) = &self.rpc {
            top["rpc"] = rpc::rpc_json(r);
        }
        top
    }
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

// ---------------------------------------------------------------------------------------------
// Shared pieces

/// Is this run in CI (`CI=true` or `CI=1`)? Then a missing anchor is an error, not a skip.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The median of `xs` (`NaN` for none).
fn median_of(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => xs[n / 2],
        _ => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// The per-field median of the rounds (`None` for no rounds); `lost` is the total and the RTT
/// samples of every round are kept together (for the plot).
fn median(rounds: &[Measure]) -> Option<Measure> {
    if rounds.is_empty() {
        return None;
    }
    let mid = |f: fn(&Measure) -> f64| median_of(rounds.iter().map(f).collect());
    Some(Measure {
        msgs_per_s: mid(|m| m.msgs_per_s),
        rtt_us: mid(|m| m.rtt_us),
        rtt_p50_us: mid(|m| m.rtt_p50_us),
        rtt_p99_us: mid(|m| m.rtt_p99_us),
        lost: rounds.iter().map(|m| m.lost).sum(),
        samples: rounds
            .iter()
            .flat_map(|m| m.samples.iter().copied())
            .collect(),
        // Reported separately (dtls_cost), from the rounds' costs.
        cost: None,
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
    /// The thread's id once it runs (0 before, or where Linux's `/proc` is missing).
    tid: Arc<AtomicU64>,
}

impl<T: Send + 'static> Server<T> {
    fn spawn(name: &str, body: impl FnOnce(&AtomicBool) -> T + Send + 'static) -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let tid = Arc::new(AtomicU64::new(0));
        let own_tid = Arc::clone(&tid);
        let handle = thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                own_tid.store(cost::current_tid().unwrap_or(0), Ordering::Relaxed);
                body(&flag)
            })?;
        Ok(Server {
            stop,
            handle: Some(handle),
            tid,
        })
    }

    /// The server thread's id, for its CPU time (`None` until it runs, or without `/proc`).
    fn tid(&self) -> Option<u64> {
        Some(self.tid.load(Ordering::Relaxed)).filter(|&t| t != 0)
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

/// Ping-pong round trips in microseconds, one per ping; `ping` sends one message and waits for
/// its echo (returning `false` if it was lost, which is then retried).
fn ping_pong(
    workload: &'static str,
    pings: u64,
    mut ping: impl FnMut() -> Result<bool, BenchError>,
) -> Result<Vec<f64>, BenchError> {
    let mut samples = Vec::with_capacity(usize::try_from(pings).unwrap_or(0).min(1 << 20));
    let mut last_progress = Instant::now();
    while (samples.len() as u64) < pings {
        let t0 = Instant::now();
        if ping()? {
            samples.push(t0.elapsed().as_secs_f64() * 1e6);
            last_progress = Instant::now();
        } else if last_progress.elapsed() > STALL {
            return Err(fail(workload, format!("no ping echo for {STALL:?}")));
        }
    }
    Ok(samples)
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
    let samples = ping_pong(W, p.pings, || {
        send()?;
        recv()
    })?;
    match server.finish() {
        Some(Ok(())) => {}
        Some(Err(e)) => return Err(io(e)),
        None => return Err(fail(W, "echo thread panicked")),
    }
    Ok(Measure::new(msgs_per_s, lost, samples))
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

// ---------------------------------------------------------------------------------------------
// our ENet

/// Two ENet hosts on loopback, server first: plain UDP.
fn plain_hosts(w: &'static str) -> Result<(EnetHost, EnetHost), BenchError> {
    let loopback: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let server = EnetHost::bind(loopback, HostConfig::default()).map_err(|e| fail(w, e))?;
    let client = EnetHost::bind(loopback, HostConfig::default()).map_err(|e| fail(w, e))?;
    Ok((server, client))
}

/// Two ENet hosts on loopback over DTLS ([`DtlsEnetSocket`], one DTLS record per ENet
/// datagram), server first: a fresh P-256 certificate, the client does not verify it.
fn dtls_hosts(
    w: &'static str,
) -> Result<(EnetHost<DtlsEnetSocket>, EnetHost<DtlsEnetSocket>), BenchError> {
    let key = PrivateKey::generate(KeyType::EcP256).map_err(|e| fail(w, e))?;
    let cert = Certificate::self_signed(&key, &CertificateParams::new("localhost"))
        .map_err(|e| fail(w, e))?;
    let config = ServerConfig::builder(key, cert)
        .build()
        .map_err(|e| fail(w, e))?;
    let server_socket = DtlsEnetSocket::server("127.0.0.1:0", &config, EndpointConfig::default())
        .map_err(io_err(w))?;
    let client_config = ClientConfig::builder()
        .verify(false)
        .build()
        .map_err(|e| fail(w, e))?;
    let client_socket = DtlsEnetSocket::client("127.0.0.1:0", &client_config).map_err(io_err(w))?;
    let server =
        EnetHost::with_socket(server_socket, HostConfig::default()).map_err(|e| fail(w, e))?;
    let client =
        EnetHost::with_socket(client_socket, HostConfig::default()).map_err(|e| fail(w, e))?;
    Ok((server, client))
}

/// Our ENet, plain (`enet`) or over DTLS (`enet+dtls`).
fn bench_enet(p: Params, dtls: bool) -> Result<Measure, BenchError> {
    if dtls {
        let (server, client) = dtls_hosts("enet+dtls")?;
        enet_echo_workload("enet+dtls", p, server, client, |s, a| s.cipher(a))
    } else {
        let (server, client) = plain_hosts("enet")?;
        enet_echo_workload("enet", p, server, client, |_, _| None)
    }
}

fn enet_echo_workload<S: EnetSocket + 'static, C: EnetSocket>(
    w: &'static str,
    p: Params,
    mut server_host: EnetHost<S>,
    mut client: EnetHost<C>,
    suite: fn(&C, SocketAddr) -> Option<&'static str>,
) -> Result<Measure, BenchError> {
    let io = io_err(w);
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

    let peer = client
        .connect(server_addr, 1, 0)
        .map_err(|e| fail(w, format!("connect: {e}")))?;
    // Waits for the next echo; errors on silence or a disconnect.
    let next_echo = |client: &mut EnetHost<C>| -> Result<(), BenchError> {
        loop {
            match client.service(STALL).map_err(&io)? {
                Some(Event::Receive { packet, .. }) if packet.data.len() == p.size => return Ok(()),
                Some(Event::Receive { packet, .. }) => {
                    return Err(fail(
                        w,
                        format!("echo of {} bytes, expected {}", packet.data.len(), p.size),
                    ))
                }
                Some(Event::Disconnect { reason, .. }) => {
                    return Err(fail(w, format!("disconnected during the run ({reason:?})")))
                }
                Some(_) => {}
                None => return Err(fail(w, format!("no echo for {STALL:?}"))),
            }
        }
    };
    match client.service(STALL).map_err(&io)? {
        Some(Event::Connect { .. }) => {}
        other => return Err(fail(w, format!("expected a connect event, got {other:?}"))),
    }

    let msg = payload(p.size);
    let (mut sent, mut done) = (0u64, 0u64);
    let probe = cost::Probe::start(server.tid(), client.host().stats());
    let start = Instant::now();
    while done < p.messages {
        while sent < p.messages && sent - done < p.window {
            client
                .send(peer, 0, Packet::reliable(msg.clone()))
                .map_err(|e| fail(w, format!("send: {e}")))?;
            sent += 1;
        }
        next_echo(&mut client)?;
        done += 1;
    }
    let msgs_per_s = p.messages as f64 / start.elapsed().as_secs_f64();
    let mut cost = probe.finish(p.messages as f64, client.host().stats());
    cost.suite = suite(client.socket(), server_addr);
    let samples = ping_pong(w, p.pings, || {
        client
            .send(peer, 0, Packet::reliable(msg.clone()))
            .map_err(|e| fail(w, format!("send: {e}")))?;
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
        Some(Err(e)) => return Err(fail(w, format!("echo host: {e}"))),
        None => return Err(fail(w, "echo thread panicked")),
    }
    Ok(Measure {
        cost: Some(cost),
        ..Measure::new(msgs_per_s, 0, samples)
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

/// Parses `C_ENET ... msgs_per_s=<x> rtt_us=<y> [rtt_p50_us=.. rtt_p99_us=..]` and the
/// optional `C_ENET_RTT <us>...` line (every ping) from the anchor's stdout.
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
    let msgs_per_s = field("msgs_per_s")?;
    let rtt_us = field("rtt_us")?;
    let samples = match stdout.lines().find_map(|l| l.strip_prefix("C_ENET_RTT")) {
        Some(rest) => rest
            .split_whitespace()
            .map(|x| {
                x.parse::<f64>()
                    .map_err(|e| format!("bad RTT sample {x:?}: {e}"))
            })
            .collect::<Result<Vec<f64>, String>>()?,
        None => Vec::new(),
    };
    let mut m = Measure::new(msgs_per_s, 0, samples);
    m.rtt_us = rtt_us;
    if m.samples.is_empty() {
        m.rtt_p50_us = field("rtt_p50_us").unwrap_or(rtt_us);
        m.rtt_p99_us = field("rtt_p99_us").unwrap_or(rtt_us);
    }
    Ok(m)
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
    let samples = ping_pong(W, p.pings, || {
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
    Ok(Measure::new(msgs_per_s, lost, samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let m = |x: f64, r: f64| Outcome::Done(Measure::new(x, 0, vec![r; 3]));
        Report {
            params: Params {
                messages: 10,
                size: 8,
                window: 2,
                pings: 3,
            },
            sizes: Sizes {
                transfer_bytes: 1 << 20,
                handshakes: 1,
                handshake_clients: 1,
                peers: 1,
                idle: Duration::from_millis(1),
                relay_messages: 1,
            },
            rounds: 1,
            quick: true,
            machine: Machine {
                cpus: 2,
                cpu_model: "test".into(),
                loadavg: "0 0 0".into(),
            },
            small: vec![
                ("raw-udp", m(400.0, 10.0)),
                ("enet", m(100.0, 40.0)),
                ("c-enet", Outcome::Skipped("no \"anchor\"".into())),
                ("dtls", m(200.0, 20.0)),
            ],
            transfer: vec![
                ("enet", Outcome::Done(300.0)),
                ("c-enet", Outcome::Done(200.0)),
            ],
            handshakes: Vec::new(),
            openssl: None,
            peers: Vec::new(),
            netsim: None,
            rpc: None,
            dtls_cost: Vec::new(),
        }
    }

    #[test]
    fn ratios_divide_the_named_rows_and_skip_missing_ones() {
        let r = sample();
        let e = r.ratio("enet", "raw-udp").expect("both rows measured");
        assert_eq!((e.msgs_per_s, e.rtt, e.rtt_p99), (0.25, 4.0, 4.0));
        assert!(r.ratio("enet", "c-enet").is_none());
        let json = r.json();
        assert_eq!(json["ratios"]["enet/c-enet"], Value::Null);
        assert_eq!(
            json["workloads"]["c-enet"]["skipped"],
            json!("no \"anchor\"")
        );
        assert_eq!(json["ratios"]["dtls/raw-udp"]["msgs_per_s"], json!(0.5));
        assert_eq!(json["transfer"]["ratios"]["enet/c-enet"], json!(1.5));
        assert!(json.get("rpc").is_none());
        let table = r.table();
        assert!(
            table.contains("transfer enet / c-enet MB/s: 1.500"),
            "{table}"
        );
    }

    #[test]
    fn median_is_per_field_and_lost_is_summed() {
        let m = |x: f64, r: f64, lost: u64| Measure::new(x, lost, vec![r]);
        assert!(median(&[]).is_none());
        let odd = median(&[m(3.0, 10.0, 1), m(1.0, 30.0, 0), m(2.0, 20.0, 2)]).unwrap();
        assert_eq!((odd.msgs_per_s, odd.rtt_us, odd.lost), (2.0, 20.0, 3));
        assert_eq!(odd.samples.len(), 3, "samples of every round kept");
        let even = median(&[m(4.0, 1.0, 0), m(2.0, 3.0, 0)]).unwrap();
        assert_eq!((even.msgs_per_s, even.rtt_us), (3.0, 2.0));
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&xs, 0.5), 50.0);
        assert_eq!(quantile(&xs, 0.99), 99.0);
        assert_eq!(quantile(&xs, 1.0), 100.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn anchor_line_is_parsed_and_garbage_is_refused() {
        let m = parse_anchor_line(
            "C_ENET_RTT 5.0 10.0\nC_ENET messages=5 size=8 window=2 pings=2 elapsed_s=0.1 \
             msgs_per_s=50.0 rtt_us=7.5 rtt_p50_us=5.0 rtt_p99_us=10.0\n",
        )
        .expect("valid line");
        assert_eq!((m.msgs_per_s, m.rtt_us), (50.0, 7.5));
        assert_eq!((m.rtt_p50_us, m.rtt_p99_us), (5.0, 10.0));
        assert_eq!(m.samples, [5.0, 10.0]);
        assert!(parse_anchor_line("hello\n").is_err());
        assert!(parse_anchor_line("C_ENET msgs_per_s=x rtt_us=1\n").is_err());
    }
}
