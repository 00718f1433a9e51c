//! The parts of `enet-dtls bench` beyond small messages: bulk transfer, DTLS handshakes next
//! to `openssl speed`, memory and idle CPU per connected peer, and the netsim relay.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use serde_json::{json, Value};

use super::*;
use crate::cmd_netsim::{self, NetsimArgs};

/// Packet size of the transfer part (1 MiB, fragmented by ENet).
pub(super) const TRANSFER_PACKET: usize = 1 << 20;

/// Transfer packets not yet acknowledged (both implementations).
const TRANSFER_WINDOW: u64 = 4;

// ---------------------------------------------------------------------------------------------
// Transfer

/// Our ENet: `total` bytes in 1 MiB reliable packets, each acknowledged by a 4-byte reliable
/// packet from the server; MB/s (10^6 bytes) from the first send to the last ack.
/// Also returns the CPU and datagrams of the transfer ([`cost::Cost`], in MiB).
pub(super) fn bench_transfer(total: u64, dtls: bool) -> Result<(f64, cost::Cost), BenchError> {
    if dtls {
        let (server, client) = dtls_hosts("transfer-enet+dtls")?;
        transfer_workload("transfer-enet+dtls", total, server, client, |s, a| {
            s.cipher(a)
        })
    } else {
        let (server, client) = plain_hosts("transfer-enet")?;
        transfer_workload("transfer-enet", total, server, client, |_, _| None)
    }
}

fn transfer_workload<S: EnetSocket + 'static, C: EnetSocket>(
    w: &'static str,
    total: u64,
    mut server_host: EnetHost<S>,
    mut client: EnetHost<C>,
    suite: fn(&C, SocketAddr) -> Option<&'static str>,
) -> Result<(f64, cost::Cost), BenchError> {
    let io = io_err(w);
    let server_addr = server_host.local_addr().map_err(&io)?;
    let server = Server::spawn("bench-transfer-sink", move |stop| -> Result<(), String> {
        while !stop.load(Ordering::Relaxed) {
            match server_host.service(SERVER_TICK) {
                Ok(Some(Event::Receive { peer, channel, .. })) => server_host
                    .send(peer, channel, Packet::reliable(vec![1, 2, 3, 4]))
                    .map_err(|e| format!("ack send: {e}"))?,
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
    match client.service(STALL).map_err(&io)? {
        Some(Event::Connect { .. }) => {}
        other => return Err(fail(w, format!("expected a connect event, got {other:?}"))),
    }
    let packets = total.div_ceil(TRANSFER_PACKET as u64);
    let data = payload(TRANSFER_PACKET);
    let (mut sent, mut acked) = (0u64, 0u64);
    let probe = cost::Probe::start(server.tid(), client.host().stats());
    let start = Instant::now();
    while acked < packets {
        while sent < packets && sent - acked < TRANSFER_WINDOW {
            client
                .send(peer, 0, Packet::reliable(data.clone()))
                .map_err(|e| fail(w, format!("send: {e}")))?;
            sent += 1;
        }
        match client.service(STALL).map_err(&io)? {
            Some(Event::Receive { .. }) => acked += 1,
            Some(Event::Disconnect { reason, .. }) => {
                return Err(fail(w, format!("disconnected during the run ({reason:?})")))
            }
            Some(_) => {}
            None => return Err(fail(w, format!("no ack for {STALL:?}"))),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut cost = probe.finish(
        (packets * TRANSFER_PACKET as u64) as f64 / f64::from(1u32 << 20),
        client.host().stats(),
    );
    cost.suite = suite(client.socket(), server_addr);
    client.disconnect(peer, 0);
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        if let Some(Event::Disconnect { .. }) = client.service(SERVER_TICK).map_err(&io)? {
            break;
        }
    }
    match server.finish() {
        Some(Ok(())) => {}
        Some(Err(e)) => return Err(fail(w, format!("sink host: {e}"))),
        None => return Err(fail(w, "sink thread panicked")),
    }
    Ok((
        (packets * TRANSFER_PACKET as u64) as f64 / elapsed / 1e6,
        cost,
    ))
}

/// C ENet: the anchor's `transfer` mode, the same workload; MB/s.
pub(super) fn bench_c_transfer(path: &Path, total: u64) -> Result<f64, BenchError> {
    let out = run_anchor(
        path,
        &[
            "transfer".into(),
            total.to_string(),
            TRANSFER_PACKET.to_string(),
            TRANSFER_WINDOW.to_string(),
        ],
        STALL * 3,
    )?;
    anchor_field(&out, "C_ENET_TRANSFER", "mb_per_s").map_err(|why| BenchError::Anchor {
        path: path.to_path_buf(),
        why,
    })
}

/// Runs the anchor to completion (killed after `limit`), returns its stdout.
fn run_anchor(path: &Path, args: &[String], limit: Duration) -> Result<String, BenchError> {
    let err = |why: String| BenchError::Anchor {
        path: path.to_path_buf(),
        why,
    };
    let mut child = Command::new(path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot start it: {e}")))?;
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
    if !out.status.success() {
        return Err(err(format!(
            "exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The number after `key=` on the line starting with `prefix `.
fn anchor_field(stdout: &str, prefix: &str, key: &str) -> Result<f64, String> {
    let line = stdout
        .lines()
        .find(|l| l.strip_prefix(prefix).is_some_and(|r| r.starts_with(' ')))
        .ok_or_else(|| format!("no `{prefix}` line in its output: {stdout:?}"))?;
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .ok_or_else(|| format!("no {key}= in {line:?}"))?
        .parse::<f64>()
        .map_err(|e| format!("bad {key} in {line:?}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// DTLS handshakes

/// Full DTLS handshakes with one certificate type.
#[derive(Debug, Clone, Copy)]
pub(super) struct Handshakes {
    /// Clients handshaking at once, each one handshake after the other.
    pub(super) clients: u64,
    /// Handshakes per second (wall clock).
    pub(super) per_s: f64,
    /// CPU time of the server thread per handshake, microseconds.
    pub(super) server_cpu_us: f64,
}

impl Handshakes {
    pub(super) fn median(v: &[Handshakes]) -> Option<Handshakes> {
        (!v.is_empty()).then(|| Handshakes {
            clients: v[0].clients,
            per_s: median_of(v.iter().map(|h| h.per_s).collect()),
            server_cpu_us: median_of(v.iter().map(|h| h.server_cpu_us).collect()),
        })
    }

    /// Handshakes per second one core of the server could do (CPU-bound).
    fn per_core(&self) -> f64 {
        1e6 / self.server_cpu_us
    }
}

/// CPU time of the calling thread, nanoseconds (`/proc/thread-self/schedstat`, or `stat`'s
/// clock ticks).
fn thread_cpu_ns() -> Option<u64> {
    schedstat_ns("/proc/thread-self/schedstat").or_else(|| stat_ns("/proc/thread-self/stat"))
}

/// The time on a CPU that a `/proc/.../schedstat` file gives (its first field), nanoseconds.
pub(super) fn schedstat_ns(path: impl AsRef<std::path::Path>) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// utime + stime of a `/proc/.../stat` file, nanoseconds (clock ticks converted).
pub(super) fn stat_ns(path: impl AsRef<std::path::Path>) -> Option<u64> {
    let ticks = proc_stat_ticks(&std::fs::read_to_string(path).ok()?)?;
    Some(ticks * 1_000_000_000 / clock_ticks())
}

/// utime + stime (clock ticks) from a `/proc/.../stat` line.
pub(super) fn proc_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces: count fields after its closing ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn clock_ticks() -> u64 {
    rustix::param::clock_ticks_per_second().max(1)
}

/// `n` full handshakes by `clients` client threads at once (each one handshake after the other),
/// against a [`DtlsListener`] on a thread of its own that measures its CPU time. One client
/// measures the server woken for every flight; several keep it busy, as a loaded server is.
pub(super) fn bench_handshakes(
    key_type: KeyType,
    n: u64,
    clients: u64,
) -> Result<Handshakes, BenchError> {
    const W: &str = "handshakes";
    let io = io_err(W);
    let key = PrivateKey::generate(key_type).map_err(|e| fail(W, e))?;
    let cert = Certificate::self_signed(&key, &CertificateParams::new("localhost"))
        .map_err(|e| fail(W, e))?;
    let config = ServerConfig::builder(key, cert)
        .build()
        .map_err(|e| fail(W, e))?;
    let mut listener = DtlsListener::bind("127.0.0.1:0", &config).map_err(|e| fail(W, e))?;
    let server_addr = listener.local_addr();
    let server = Server::spawn(
        "bench-dtls-handshakes",
        move |stop| -> Result<u64, String> {
            let cpu0 = thread_cpu_ns().unwrap_or(0);
            while !stop.load(Ordering::Relaxed) {
                if let Err(e) = listener.service(SERVER_TICK) {
                    return Err(e.to_string());
                }
            }
            Ok(thread_cpu_ns().unwrap_or(0).saturating_sub(cpu0))
        },
    )
    .map_err(&io)?;
    let client_config = ClientConfig::builder()
        .verify(false)
        .build()
        .map_err(|e| fail(W, e))?;
    let clients = clients.clamp(1, n.max(1));
    let start = Instant::now();
    let results: Vec<Result<(), BenchError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                let config = &client_config;
                let count = n / clients + u64::from(i < n % clients);
                scope.spawn(move || client_handshakes(server_addr, config, count))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(fail(W, "client thread panicked")))
            })
            .collect()
    });
    for r in results {
        r?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_ns = match server.finish() {
        Some(Ok(ns)) => ns,
        Some(Err(e)) => return Err(fail(W, format!("listener: {e}"))),
        None => return Err(fail(W, "listener thread panicked")),
    };
    Ok(Handshakes {
        clients,
        per_s: n as f64 / elapsed,
        server_cpu_us: cpu_ns as f64 / 1e3 / n as f64,
    })
}

/// `count` full handshakes with the server at `server_addr`, one after the other.
fn client_handshakes(
    server_addr: SocketAddr,
    client_config: &ClientConfig,
    count: u64,
) -> Result<(), BenchError> {
    const W: &str = "handshakes";
    let io = io_err(W);
    for _ in 0..count {
        let mut udp = PacketPeerUdp::bind("127.0.0.1:0").map_err(&io)?;
        udp.connect_to_host(server_addr).map_err(&io)?;
        let mut dtls =
            PacketPeerDtls::connect_to_peer(udp, client_config).map_err(|e| fail(W, e))?;
        let deadline = Instant::now() + STALL;
        while dtls.status() == Status::Handshaking {
            if Instant::now() > deadline {
                return Err(fail(
                    W,
                    format!("handshake did not finish within {STALL:?}"),
                ));
            }
            dtls.wait(Some(SERVER_TICK)).map_err(|e| fail(W, e))?;
            dtls.poll().map_err(|e| fail(W, e))?;
        }
        if dtls.status() != Status::Connected {
            return Err(fail(W, format!("handshake failed: {:?}", dtls.status())));
        }
        dtls.disconnect_from_peer();
    }
    Ok(())
}

/// `openssl speed` sign rates of this machine.
#[derive(Debug, Clone, Copy)]
pub(super) struct OpensslSpeed {
    pub(super) rsa2048_sign_per_s: f64,
    pub(super) p256_sign_per_s: f64,
}

/// Runs `openssl speed -seconds 1 rsa2048 ecdsap256` and parses the sign rates.
pub(super) fn openssl_speed() -> Outcome<OpensslSpeed> {
    let out = match Command::new("openssl")
        .args(["speed", "-seconds", "1", "rsa2048", "ecdsap256"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => o,
        Ok(o) => return Outcome::Skipped(format!("openssl speed exited with {}", o.status)),
        Err(e) => return Outcome::Skipped(format!("cannot run openssl: {e}")),
    };
    match parse_openssl_speed(&String::from_utf8_lossy(&out.stdout)) {
        Ok(s) => Outcome::Done(s),
        Err(why) => Outcome::Skipped(why),
    }
}

/// Parses the summary lines of `openssl speed rsa2048 ecdsap256`:
///
/// ```text
/// rsa 2048 bits 0.001261s 0.000039s    793.0  25594.0
///  256 bits ecdsa (nistp256)   0.0000s   0.0001s  25139.4   8539.4
/// ```
///
/// The first number after the times (which end in `s`) is sign/s.
pub(super) fn parse_openssl_speed(text: &str) -> Result<OpensslSpeed, String> {
    let rate = |marker: &str| -> Result<f64, String> {
        let line = text
            .lines()
            .find(|l| l.contains(marker))
            .ok_or_else(|| format!("no {marker:?} line in openssl speed's output"))?;
        let after = &line[line.find(marker).unwrap_or(0) + marker.len()..];
        after
            .split_whitespace()
            .find(|w| !w.ends_with('s'))
            .and_then(|w| w.parse::<f64>().ok())
            .filter(|x| x.is_finite() && *x > 0.0)
            .ok_or_else(|| format!("no sign/s in {line:?}"))
    };
    Ok(OpensslSpeed {
        rsa2048_sign_per_s: rate("rsa 2048 bits")?,
        p256_sign_per_s: rate("(nistp256)")?,
    })
}

fn sign_rate(o: Option<&Outcome<OpensslSpeed>>, name: &str) -> Option<f64> {
    let s = o?.done()?;
    Some(if name.starts_with("rsa2048") {
        s.rsa2048_sign_per_s
    } else {
        s.p256_sign_per_s
    })
}

pub(super) fn handshake_table(
    rows: &[(&'static str, Outcome<Handshakes>)],
    openssl: Option<&Outcome<OpensslSpeed>>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n== DTLS 1.2 full handshakes (server on its own thread; CLIENTS handshake at once, \
         each one handshake after the other)"
    );
    let _ = writeln!(
        s,
        "{:<18} {:>7} {:>8} {:>14} {:>12} {:>14} {:>13}",
        "CERT", "CLIENTS", "HS/S", "SERVER_CPU_US", "HS/S/CORE", "OPENSSL_SIGN/S", "CORE/SIGN"
    );
    write_rows(&mut s, rows, 18, |name, h| {
        let sign = sign_rate(openssl, name);
        let f = |x: Option<f64>| x.map_or_else(|| "n/a".to_string(), |x| format!("{x:.3}"));
        format!(
            "{:>7} {:>8.1} {:>14.1} {:>12.1} {:>14} {:>13}",
            h.clients,
            h.per_s,
            h.server_cpu_us,
            h.per_core(),
            sign.map_or_else(|| "n/a".to_string(), |x| format!("{x:.1}")),
            f(sign.map(|x| h.per_core() / x)),
        )
    });
    if let Some(Outcome::Skipped(why)) = openssl {
        let _ = writeln!(s, "openssl speed skipped: {why}");
    }
    s
}

pub(super) fn handshake_json(
    rows: &[(&'static str, Outcome<Handshakes>)],
    openssl: Option<&Outcome<OpensslSpeed>>,
) -> Value {
    let mut m = serde_json::Map::new();
    for (name, o) in rows {
        let v = match o {
            Outcome::Done(h) => {
                let sign = sign_rate(openssl, name);
                json!({
                    "clients": h.clients,
                    "per_s": num(h.per_s),
                    "server_cpu_us": num(h.server_cpu_us),
                    "per_core_per_s": num(h.per_core()),
                    "openssl_sign_per_s": sign.map_or(Value::Null, num),
                    "per_core_over_sign_rate": sign.map_or(Value::Null, |x| num(h.per_core() / x)),
                })
            }
            Outcome::Skipped(why) => json!({ "skipped": why }),
        };
        m.insert((*name).into(), v);
    }
    m.insert(
        "openssl_speed".into(),
        match openssl {
            Some(Outcome::Done(s)) => json!({
                "rsa2048_sign_per_s": num(s.rsa2048_sign_per_s),
                "p256_sign_per_s": num(s.p256_sign_per_s),
            }),
            Some(Outcome::Skipped(why)) => json!({ "skipped": why }),
            None => Value::Null,
        },
    );
    Value::Object(m)
}

// ---------------------------------------------------------------------------------------------
// Connected peers: memory and idle CPU

/// Which server the peers part measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PeerServer {
    /// `enet-dtls enet-echo` (this binary), sized 4,095.
    Ours,
    /// The anchor's `server` mode (C ENet's echo host), sized 4,095.
    CEnet,
}

/// One server with many idle peers.
#[derive(Debug, Clone, Copy)]
pub(super) struct PeerLoad {
    pub(super) connected: u64,
    pub(super) connect_ms: f64,
    pub(super) rss_base_kib: f64,
    pub(super) rss_kib: f64,
    pub(super) idle_cpu: f64,
}

impl PeerLoad {
    pub(super) fn median(v: &[PeerLoad]) -> Option<PeerLoad> {
        let mid = |f: fn(&PeerLoad) -> f64| median_of(v.iter().map(f).collect());
        (!v.is_empty()).then(|| PeerLoad {
            connected: v.iter().map(|p| p.connected).min().unwrap_or(0),
            connect_ms: mid(|p| p.connect_ms),
            rss_base_kib: mid(|p| p.rss_base_kib),
            rss_kib: mid(|p| p.rss_kib),
            idle_cpu: mid(|p| p.idle_cpu),
        })
    }

    /// Resident bytes added per connected peer.
    pub(super) fn bytes_per_peer(&self) -> f64 {
        (self.rss_kib - self.rss_base_kib) * 1024.0 / self.connected.max(1) as f64
    }
}

/// A child process killed (and reaped) on drop, with its stdout lines on a channel.
pub(super) struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    pub(super) fn spawn(mut cmd: Command) -> io::Result<Proc> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let out = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let (tx, lines) = mpsc::channel();
        // Drains stdout for the whole life of the process (enet-echo prints a line per peer).
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        Ok(Proc { child, lines })
    }

    /// The first line starting with `prefix`, within `wait`.
    pub(super) fn line(&self, prefix: &str, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return Some(l),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// The process id.
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn rss_kib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    }

    fn cpu_s(&self) -> Option<f64> {
        Some(stat_ns(format!("/proc/{}/stat", self.child.id()))? as f64 / 1e9)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sizes.peers` idle peers from one C ENet client host on `side`'s server: resident memory
/// before and after, time to connect them all, and the server's CPU while they idle (ENet
/// keeps pinging them) over `sizes.idle`.
pub(super) fn bench_peers(
    side: PeerServer,
    anchor: Option<&Path>,
    sizes: Sizes,
) -> Result<PeerLoad, BenchError> {
    const W: &str = "peers";
    let Some(anchor) = anchor else {
        return Err(fail(W, "needs the C anchor (its peers mode is the client)"));
    };
    let server_cmd = match side {
        PeerServer::Ours => {
            let mut c = Command::new(std::env::current_exe().map_err(io_err(W))?);
            c.args([
                "enet-echo",
                "--listen",
                "127.0.0.1:0",
                "--max-peers",
                "4095",
                "--max-peers-per-address",
                "4095",
            ]);
            c
        }
        PeerServer::CEnet => {
            let mut c = Command::new(anchor);
            c.args(["server", "4095"]);
            c
        }
    };
    let server = Proc::spawn(server_cmd).map_err(io_err(W))?;
    let listening = server
        .line("LISTENING ", STALL)
        .ok_or_else(|| fail(W, format!("{side:?} server printed no LISTENING line")))?;
    let addr: SocketAddr = listening
        .split_whitespace()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| fail(W, format!("bad LISTENING line {listening:?}")))?;
    thread::sleep(Duration::from_millis(300));
    let rss_base_kib = server
        .rss_kib()
        .ok_or_else(|| fail(W, "cannot read the server's VmRSS"))?;

    let mut client_cmd = Command::new(anchor);
    client_cmd.args([
        "peers".to_string(),
        addr.ip().to_string(),
        addr.port().to_string(),
        sizes.peers.to_string(),
    ]);
    let client = Proc::spawn(client_cmd).map_err(io_err(W))?;
    let connected_line = client
        .line("CONNECTED ", STALL * 6)
        .ok_or_else(|| fail(W, "the C client printed no CONNECTED line"))?;
    let mut f = connected_line.split_whitespace().skip(1);
    let connected: u64 = f.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let connect_ms: f64 = f.next().and_then(|x| x.parse().ok()).unwrap_or(f64::NAN);
    if connected == 0 {
        return Err(fail(W, format!("no peer connected to the {side:?} server")));
    }
    // Let the connection burst settle, then measure the idle state.
    thread::sleep(Duration::from_millis(500));
    let rss_kib = server
        .rss_kib()
        .ok_or_else(|| fail(W, "cannot read the server's VmRSS"))?;
    let cpu0 = server
        .cpu_s()
        .ok_or_else(|| fail(W, "cannot read /proc/PID/stat"))?;
    let t0 = Instant::now();
    thread::sleep(sizes.idle);
    let cpu1 = server
        .cpu_s()
        .ok_or_else(|| fail(W, "cannot read /proc/PID/stat"))?;
    let idle_cpu = (cpu1 - cpu0) / t0.elapsed().as_secs_f64();
    drop(client);
    drop(server);
    Ok(PeerLoad {
        connected,
        connect_ms,
        rss_base_kib,
        rss_kib,
        idle_cpu,
    })
}

pub(super) fn peers_table(rows: &[(&'static str, Outcome<PeerLoad>)], sizes: Sizes) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n== {} idle peers (one C ENet client host) on a server sized 4,095; idle CPU over {:?}",
        sizes.peers, sizes.idle
    );
    let _ = writeln!(
        s,
        "{:<10} {:>9} {:>11} {:>12} {:>9} {:>11} {:>9}",
        "SERVER", "CONNECTED", "CONNECT_MS", "RSS_BASE_KIB", "RSS_KIB", "BYTES/PEER", "IDLE_CPU"
    );
    write_rows(&mut s, rows, 10, |_, p| {
        format!(
            "{:>9} {:>11.1} {:>12.0} {:>9.0} {:>11.0} {:>9.3}",
            p.connected,
            p.connect_ms,
            p.rss_base_kib,
            p.rss_kib,
            p.bytes_per_peer(),
            p.idle_cpu
        )
    });
    let r = peers_ratios(rows);
    let f = |x: Option<f64>| x.map_or_else(|| "n/a".to_string(), |x| format!("{x:.3}"));
    let _ = writeln!(
        s,
        "peers enet / c-enet: bytes/peer {}, rss {}, idle cpu {}, connect time {}   (lower is better)",
        f(r[0]),
        f(r[1]),
        f(r[2]),
        f(r[3])
    );
    s
}

/// enet / c-enet: bytes per peer, total RSS, idle CPU, connect time.
fn peers_ratios(rows: &[(&'static str, Outcome<PeerLoad>)]) -> [Option<f64>; 4] {
    let (Some(a), Some(b)) = (find(rows, "enet"), find(rows, "c-enet")) else {
        return [None; 4];
    };
    [
        Some(a.bytes_per_peer() / b.bytes_per_peer()),
        Some(a.rss_kib / b.rss_kib),
        Some(a.idle_cpu / b.idle_cpu),
        Some(a.connect_ms / b.connect_ms),
    ]
}

pub(super) fn peers_json(rows: &[(&'static str, Outcome<PeerLoad>)], sizes: Sizes) -> Value {
    let mut servers = serde_json::Map::new();
    for (name, o) in rows {
        servers.insert(
            (*name).into(),
            match o {
                Outcome::Done(p) => json!({
                    "connected": p.connected,
                    "connect_ms": num(p.connect_ms),
                    "rss_base_kib": num(p.rss_base_kib),
                    "rss_kib": num(p.rss_kib),
                    "bytes_per_peer": num(p.bytes_per_peer()),
                    "idle_cpu_cores": num(p.idle_cpu),
                }),
                Outcome::Skipped(why) => json!({ "skipped": why }),
            },
        );
    }
    let r = peers_ratios(rows);
    let n = |x: Option<f64>| x.map_or(Value::Null, num);
    json!({
        "peers": sizes.peers,
        "server_capacity": 4095,
        "idle_s": num(sizes.idle.as_secs_f64()),
        "servers": servers,
        "ratios": { "enet/c-enet": {
            "bytes_per_peer": n(r[0]),
            "rss": n(r[1]),
            "idle_cpu": n(r[2]),
            "connect_time": n(r[3]),
        }},
    })
}

// ---------------------------------------------------------------------------------------------
// netsim relay

/// The relay's throughput: a windowed raw UDP echo through an in-process `netsim` relay.
#[derive(Debug, Clone, Copy)]
pub(super) struct Relay {
    /// Datagrams the relay forwarded per second (two per echoed message).
    pub(super) datagrams_per_s: f64,
    /// Messages lost (the window refilled after a silence).
    pub(super) lost: u64,
    /// CPU time of the relay thread per relayed datagram (nanoseconds): 1e9 / this is what one
    /// core of relay can forward per second, whatever the load elsewhere.
    pub(super) cpu_ns_per_datagram: f64,
}

impl Relay {
    /// Datagrams per second one core running the relay can forward.
    pub(super) fn per_core(&self) -> f64 {
        1e9 / self.cpu_ns_per_datagram
    }
}

impl Relay {
    pub(super) fn median(v: &[Relay]) -> Option<Relay> {
        (!v.is_empty()).then(|| Relay {
            datagrams_per_s: median_of(v.iter().map(|r| r.datagrams_per_s).collect()),
            lost: v.iter().map(|r| r.lost).sum(),
            cpu_ns_per_datagram: median_of(v.iter().map(|r| r.cpu_ns_per_datagram).collect()),
        })
    }
}

/// `messages` windowed raw UDP echoes through the relay (no impairment).
pub(super) fn bench_relay(messages: u64, p: Params) -> Result<Relay, BenchError> {
    const W: &str = "netsim";
    let io = io_err(W);
    let echo_socket = UdpSocket::bind("127.0.0.1:0").map_err(&io)?;
    echo_socket
        .set_read_timeout(Some(SERVER_TICK))
        .map_err(&io)?;
    let echo_addr = echo_socket.local_addr().map_err(&io)?;
    let echo = Server::spawn("bench-relay-echo", move |stop| -> io::Result<()> {
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Ordering::Relaxed) {
            match echo_socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let _ = echo_socket.send_to(&buf[..n], from);
                }
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
    .map_err(&io)?;

    let args = NetsimArgs {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        forward: echo_addr,
        loss: 0.0,
        delay: 0,
        jitter: 0,
        dup: 0.0,
        reorder: 0.0,
        reorder_delay: 0,
        rate: None,
        seed: Some(1),
        max_clients: 16,
        idle_timeout: 60.0,
    };
    let (tx, rx) = mpsc::channel();
    let relay = Server::spawn("bench-netsim", move |stop| {
        let stop_fn = || stop.load(Ordering::Relaxed);
        let cpu0 = thread_cpu_ns();
        let counters = cmd_netsim::relay(&args, &stop_fn, &mut |addr| {
            let _ = tx.send(addr);
        })?;
        let cpu = cpu0.and_then(|c0| Some(thread_cpu_ns()?.saturating_sub(c0)));
        Ok::<_, io::Error>((counters, cpu))
    })
    .map_err(&io)?;
    let relay_addr = rx
        .recv_timeout(STALL)
        .map_err(|_| fail(W, "the relay did not start"))?;

    let client = UdpSocket::bind("127.0.0.1:0").map_err(&io)?;
    client.connect(relay_addr).map_err(&io)?;
    client.set_read_timeout(Some(LOSS_WAIT)).map_err(&io)?;
    let msg = payload(p.size);
    let buf = std::cell::RefCell::new(vec![0u8; 65_536]);
    let params = Params { messages, ..p };
    let (msgs_per_s, lost) = datagram_throughput(
        W,
        params,
        || client.send(&msg).map(drop).map_err(&io),
        |_| match client.recv(&mut buf.borrow_mut()) {
            Ok(_) => Ok(true),
            Err(e) if is_timeout(&e) => Ok(false),
            Err(e) => Err(io(e)),
        },
    )?;
    let (counters, cpu_ns) = match relay.finish() {
        Some(Ok(x)) => x,
        Some(Err(e)) => return Err(fail(W, format!("relay: {e}"))),
        None => return Err(fail(W, "relay thread panicked")),
    };
    let _ = echo.finish();
    let relayed = counters.up.delivered + counters.down.delivered;
    Ok(Relay {
        datagrams_per_s: 2.0 * msgs_per_s,
        lost,
        cpu_ns_per_datagram: cpu_ns.map_or(f64::NAN, |ns| ns as f64 / relayed.max(1) as f64),
    })
}

pub(super) fn relay_table(o: &Outcome<Relay>, raw: Option<&Measure>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n== netsim relay (in-process, no impairment): windowed UDP echo through it"
    );
    match o {
        Outcome::Done(r) => {
            let raw_dps = raw.map(|m| 2.0 * m.msgs_per_s);
            let _ = writeln!(
                s,
                "netsim     relay CPU {:.0} ns per datagram: {:.0} datagrams/s per core",
                r.cpu_ns_per_datagram,
                r.per_core()
            );
            let _ = writeln!(
                s,
                "netsim     {:>12.1} datagrams/s relayed, {} lost; raw UDP echo without it: {} datagrams/s (ratio {})",
                r.datagrams_per_s,
                r.lost,
                raw_dps.map_or_else(|| "n/a".into(), |x| format!("{x:.1}")),
                raw_dps.map_or_else(|| "n/a".into(), |x| format!("{:.3}", r.datagrams_per_s / x)),
            );
        }
        Outcome::Skipped(why) => {
            let _ = writeln!(s, "netsim     skipped: {why}");
        }
    }
    s
}

pub(super) fn relay_json(o: &Outcome<Relay>, raw: Option<&Measure>) -> Value {
    match o {
        Outcome::Done(r) => {
            let raw_dps = raw.map(|m| 2.0 * m.msgs_per_s);
            json!({
                "datagrams_per_s": num(r.datagrams_per_s),
                "lost": r.lost,
                "cpu_ns_per_datagram": num(r.cpu_ns_per_datagram),
                "per_core_datagrams_per_s": num(r.per_core()),
                "raw_udp_datagrams_per_s": raw_dps.map_or(Value::Null, num),
                "ratio_to_raw_udp": raw_dps.map_or(Value::Null, |x| num(r.datagrams_per_s / x)),
            })
        }
        Outcome::Skipped(why) => json!({ "skipped": why }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_speed_output_is_parsed() {
        let text = "version: 3.0.22\n\
                    \x20                 sign    verify    sign/s verify/s\n\
                    rsa 2048 bits 0.001261s 0.000039s    793.0  25594.0\n\
                    \x20                             sign    verify    sign/s verify/s\n\
                    \x20256 bits ecdsa (nistp256)   0.0000s   0.0001s  25139.4   8539.4\n";
        let s = parse_openssl_speed(text).expect("parsed");
        assert_eq!((s.rsa2048_sign_per_s, s.p256_sign_per_s), (793.0, 25139.4));
        assert!(parse_openssl_speed("rsa 2048 bits 0.1s 0.2s\n").is_err());
        assert!(parse_openssl_speed("").is_err());
    }

    #[test]
    fn proc_stat_cpu_fields_survive_spaces_in_the_name() {
        let stat = "123 (a b) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(proc_stat_ticks(stat), Some(300));
        assert_eq!(proc_stat_ticks("garbage"), None);
    }

    #[test]
    fn peer_load_per_peer_bytes_and_ratios() {
        let p = |rss: f64, cpu: f64| PeerLoad {
            connected: 1000,
            connect_ms: 100.0,
            rss_base_kib: 1000.0,
            rss_kib: rss,
            idle_cpu: cpu,
        };
        assert_eq!(p(2000.0, 0.1).bytes_per_peer(), 1024.0);
        let rows = vec![
            ("enet", Outcome::Done(p(3000.0, 0.2))),
            ("c-enet", Outcome::Done(p(2000.0, 0.1))),
        ];
        let r = peers_ratios(&rows);
        assert_eq!(r[0], Some(2.0));
        assert_eq!(r[2], Some(2.0));
        let only = vec![("enet", Outcome::Done(p(3000.0, 0.2)))];
        assert_eq!(peers_ratios(&only), [None; 4]);
    }
}
