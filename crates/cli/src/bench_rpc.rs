//! The `rpc` part of `enet-dtls bench`: Godot RPCs per second through the real `enet-dtls serve`
//! process and through Godot 3.2.3's own server doing the same work
//! (`fixtures/godot/bench_chat_server.gd`), driven by the same clients.
//!
//! The exchange is the chat room of `serve`: each client calls `Chat.send_message(text)` on the
//! server (`rpc_id(1, ..)`), and the server calls `Chat.receive_message(sender_id, text)` on
//! every client, the sender included, reliably. Both servers print one line per message
//! (`MSG <id>: <text>`) and per join and leave, into a pipe that the bench drains the same way.
//!
//! Every round starts a server process, connects `clients` clients (threads of this process,
//! [`crate::chat_rpc`]'s client API over [`RpcPeer`]), and then each client makes `calls` calls,
//! keeping at most `window` of its own calls whose `receive_message` has not come back yet. The
//! clock and the server's CPU counter run from the moment every client is connected until
//! every client has received every call's `receive_message` (`clients x calls` each): the
//! calls/s counted are calls the server handled and whose fan-out reached every client. The
//! server's CPU time is the sum over its threads of `/proc/PID/task/*/schedstat` (nanoseconds;
//! `stat`'s clock ticks as a fallback). Then the server is killed, so that no idle server
//! competes with the next one for the machine's cores.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use enet_dtls::dtls_proto::keys::{Certificate, CertificateParams, KeyType, PrivateKey};
use enet_dtls::godot_proto::ApiEvent;
use enet_dtls::multiplayer::MultiplayerPeer;
use enet_dtls::rpc::RpcPeer;
use serde_json::{json, Value};

use super::scale::{schedstat_ns, stat_ns, Proc};
use super::{fail, io_err, median_of, num, BenchError, Outcome, STALL};
use crate::chat_rpc::{self, ChatPeer, RECEIVE_MESSAGE};

const W: &str = "rpc";

/// The Godot 3.2.3 server command (Debian's `godot3-server` package).
pub(super) const GODOT: &str = "godot3-server";

/// Row names, in table order.
pub(super) const SERVE: &str = "serve";
/// Godot's row.
pub(super) const GODOT_ROW: &str = "godot-3.2.3";
/// Our server with `--dtls`.
pub(super) const SERVE_DTLS: &str = "serve+dtls";

/// The Godot project with the chat server script, as found when this binary was built.
pub(super) fn default_godot_project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/godot")
}

/// The load every server gets.
#[derive(Debug, Clone, Copy)]
pub(super) struct RpcLoad {
    /// Client connections (threads of the bench).
    pub(super) clients: usize,
    /// `send_message` calls per client and round.
    pub(super) calls: u64,
    /// Calls of one client in flight (its own `receive_message` not back yet).
    pub(super) window: u64,
}

impl RpcLoad {
    fn total_calls(&self) -> u64 {
        self.clients as u64 * self.calls
    }
}

/// The servers of the part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RpcServer {
    /// `enet-dtls serve --listen 127.0.0.1:0`.
    Serve,
    /// `enet-dtls serve --dtls` with a throwaway P-256 key and certificate.
    ServeDtls,
    /// `godot3-server -s bench_chat_server.gd` of the project dir.
    Godot,
}

impl RpcServer {
    pub(super) fn name(self) -> &'static str {
        match self {
            RpcServer::Serve => SERVE,
            RpcServer::ServeDtls => SERVE_DTLS,
            RpcServer::Godot => GODOT_ROW,
        }
    }
}

/// What one round (or the median of the rounds) measured on one server.
#[derive(Debug, Clone, Copy)]
pub(super) struct RpcFigures {
    /// `send_message` calls per second whose fan-out reached every client.
    pub(super) calls_per_s: f64,
    /// `receive_message` calls per second (clients times as many).
    pub(super) receives_per_s: f64,
    /// The server process's CPU time per `send_message`, microseconds.
    pub(super) cpu_us_per_call: f64,
    /// The server process's CPU time over the wall time of the run (1.0: one core busy).
    pub(super) server_cores: f64,
}

impl RpcFigures {
    /// The per-field median of `rounds` (`None` for none).
    pub(super) fn median(rounds: &[RpcFigures]) -> Option<RpcFigures> {
        if rounds.is_empty() {
            return None;
        }
        let mid = |f: fn(&RpcFigures) -> f64| median_of(rounds.iter().map(f).collect());
        Some(RpcFigures {
            calls_per_s: mid(|r| r.calls_per_s),
            receives_per_s: mid(|r| r.receives_per_s),
            cpu_us_per_call: mid(|r| r.cpu_us_per_call),
            server_cores: mid(|r| r.server_cores),
        })
    }
}

/// Everything the part reports.
#[derive(Debug, Clone)]
pub(super) struct RpcReport {
    pub(super) load: RpcLoad,
    pub(super) rows: Vec<(&'static str, Outcome<RpcFigures>)>,
}

/// Is `program` an executable file in `$PATH`?
fn in_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let p = dir.join(program);
            p.is_file()
                && std::fs::metadata(&p)
                    .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
                    .unwrap_or(false)
        })
    })
}

/// Checks that Godot's side can run: `Err(why not)` when `godot3-server` is not in `$PATH` or
/// `project` lacks the chat server script.
pub(super) fn godot_ready(project: &Path) -> Result<(), String> {
    if !in_path(GODOT) {
        return Err(format!(
            "{GODOT} is not installed (apt-get install godot3-server; scripts/test installs it)"
        ));
    }
    for file in [
        "project.godot",
        "bench_chat_server.gd",
        "chat_server_node.gd",
    ] {
        if !project.join(file).is_file() {
            return Err(format!(
                "no {file} in the Godot project {} (--godot-project)",
                project.display()
            ));
        }
    }
    Ok(())
}

/// The sum of every thread's CPU time of process `pid`, nanoseconds
/// (`/proc/PID/task/*/schedstat`; `/proc/PID/stat`'s clock ticks when schedstat is missing).
fn process_cpu_ns(pid: u32) -> Option<u64> {
    let from_tasks = || -> Option<u64> {
        let mut sum = 0u64;
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
            sum += schedstat_ns(task.ok()?.path().join("schedstat"))?;
        }
        Some(sum)
    };
    from_tasks().or_else(|| stat_ns(format!("/proc/{pid}/stat")))
}

/// A throwaway key and certificate for `serve --dtls`, in files removed on drop.
struct DtlsFiles {
    key: PathBuf,
    cert: PathBuf,
    certificate: Certificate,
}

impl DtlsFiles {
    fn new() -> Result<DtlsFiles, BenchError> {
        let key = PrivateKey::generate(KeyType::EcP256).map_err(|e| fail(W, e))?;
        let certificate = Certificate::self_signed(&key, &CertificateParams::new("localhost"))
            .map_err(|e| fail(W, e))?;
        let dir = std::env::temp_dir();
        let stem = format!("enet-dtls-bench-rpc-{}", std::process::id());
        let files = DtlsFiles {
            key: dir.join(format!("{stem}.key.pem")),
            cert: dir.join(format!("{stem}.cert.pem")),
            certificate,
        };
        key.save(&files.key, key.default_format())
            .map_err(|e| fail(W, format!("cannot write {}: {e}", files.key.display())))?;
        files
            .certificate
            .save(&files.cert)
            .map_err(|e| fail(W, format!("cannot write {}: {e}", files.cert.display())))?;
        Ok(files)
    }
}

impl Drop for DtlsFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.key);
        let _ = std::fs::remove_file(&self.cert);
    }
}

/// Starts `server` and returns it with its UDP port (and, for DTLS, the certificate to trust).
fn start(
    server: RpcServer,
    godot_project: &Path,
) -> Result<(Proc, u16, Option<Certificate>), BenchError> {
    let io = io_err(W);
    match server {
        RpcServer::Serve | RpcServer::ServeDtls => {
            let mut cmd = Command::new(std::env::current_exe().map_err(&io)?);
            cmd.args(["serve", "--listen", "127.0.0.1:0"]);
            let files = if server == RpcServer::ServeDtls {
                let f = DtlsFiles::new()?;
                cmd.arg("--dtls")
                    .arg("--key")
                    .arg(&f.key)
                    .arg("--cert")
                    .arg(&f.cert);
                Some(f)
            } else {
                None
            };
            let proc = Proc::spawn(cmd).map_err(&io)?;
            // serve reads its key and certificate before it prints LISTENING.
            let line = proc
                .line("LISTENING ", STALL)
                .ok_or_else(|| fail(W, "serve printed no LISTENING line"))?;
            let port = line
                .split_whitespace()
                .nth(1)
                .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
                .map(|a| a.port())
                .ok_or_else(|| fail(W, format!("bad LISTENING line {line:?}")))?;
            Ok((proc, port, files.map(|f| f.certificate.clone())))
        }
        RpcServer::Godot => {
            // Godot cannot report a port it picked itself: take a free one.
            let port = std::net::UdpSocket::bind("127.0.0.1:0")
                .and_then(|s| s.local_addr())
                .map_err(&io)?
                .port();
            let mut cmd = Command::new(GODOT);
            cmd.env("LANG", "en_US.UTF-8")
                .arg("--path")
                .arg(godot_project)
                .args(["-s", "bench_chat_server.gd"])
                .arg(format!("port={port}"))
                .arg("timeout=600");
            let proc =
                Proc::spawn(cmd).map_err(|e| fail(W, format!("cannot start {GODOT}: {e}")))?;
            let line = proc
                .line("BENCH_SERVER_LISTENING ", STALL * 3)
                .ok_or_else(|| fail(W, "Godot's server printed no BENCH_SERVER_LISTENING line"))?;
            if !line.ends_with("err=0") {
                return Err(fail(W, format!("Godot's server did not start: {line}")));
            }
            Ok((proc, port, None))
        }
    }
}

/// One round on `server`: starts it, runs the load, kills it.
pub(super) fn bench_rpc(
    server: RpcServer,
    load: RpcLoad,
    godot_project: &Path,
) -> Result<RpcFigures, BenchError> {
    let (proc, port, cert) = start(server, godot_project)?;
    let pid = proc.pid();
    let mut clients: Vec<ChatPeer<_>> = Vec::with_capacity(load.clients);
    for _ in 0..load.clients {
        let mut builder = MultiplayerPeer::client("127.0.0.1", port);
        if let Some(cert) = &cert {
            builder = builder
                .use_dtls(true)
                .dtls_certificate(cert.clone())
                .dtls_hostname("localhost");
        }
        let peer = builder.create().map_err(|e| fail(W, e))?;
        clients.push(RpcPeer::new(peer, chat_rpc::client_api()));
    }
    let give_up = Instant::now() + STALL;
    for c in &mut clients {
        while !c.api().is_connected() {
            if Instant::now() > give_up {
                return Err(fail(
                    W,
                    format!("{}: clients not connected within {STALL:?}", server.name()),
                ));
            }
            c.service(Duration::from_millis(5))
                .map_err(|e| fail(W, e))?;
        }
    }
    let cpu = || {
        process_cpu_ns(pid)
            .ok_or_else(|| fail(W, format!("cannot read the CPU time of process {pid}")))
    };
    let cpu0 = cpu()?;
    let start = Instant::now();
    let threads: Vec<_> = clients
        .into_iter()
        .map(|c| thread::spawn(move || client_load(c, load)))
        .collect();
    let mut failure = None;
    for t in threads {
        let r = t
            .join()
            .unwrap_or_else(|_| Err("client thread panicked".into()));
        if let Err(e) = r {
            failure.get_or_insert(e);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu1 = cpu()?;
    drop(proc);
    if let Some(e) = failure {
        return Err(fail(W, format!("{}: {e}", server.name())));
    }
    let calls = load.total_calls() as f64;
    let cpu_s = cpu1.saturating_sub(cpu0) as f64 / 1e9;
    Ok(RpcFigures {
        calls_per_s: calls / elapsed,
        receives_per_s: calls * load.clients as f64 / elapsed,
        cpu_us_per_call: cpu_s * 1e6 / calls,
        server_cores: cpu_s / elapsed,
    })
}

/// One client's side of a round: `load.calls` calls of `send_message`, at most `load.window`
/// of them unanswered, until it has received every client's calls.
fn client_load<S: enet_dtls::enet::EnetSocket>(
    mut c: ChatPeer<S>,
    load: RpcLoad,
) -> Result<(), String> {
    let me = i64::from(c.unique_id());
    let everyone = load.total_calls();
    let (mut sent, mut own, mut received) = (0u64, 0u64, 0u64);
    let mut last_progress = Instant::now();
    while received < everyone {
        while sent < load.calls && sent - own < load.window {
            chat_rpc::send_message(&mut c, &format!("message {sent}"))
                .map_err(|e| e.to_string())?;
            sent += 1;
        }
        c.poll().map_err(|e| e.to_string())?;
        let mut progressed = false;
        while let Some(e) = c.next_event() {
            match e {
                ApiEvent::Call { method, args, .. } if method == RECEIVE_MESSAGE => {
                    received += 1;
                    if args.first().and_then(|a| a.as_int()) == Some(me) {
                        own += 1;
                    }
                    progressed = true;
                }
                ApiEvent::ServerDisconnected => return Err("the server went away".into()),
                _ => {}
            }
        }
        if progressed {
            last_progress = Instant::now();
        } else if last_progress.elapsed() > STALL {
            return Err(format!(
                "stuck at {received}/{everyone} messages received ({own}/{} own)",
                load.calls
            ));
        } else {
            c.wait(Some(Duration::from_millis(5)))
                .map_err(|e| e.to_string())?;
        }
    }
    // Leave (ENet DISCONNECT); the server is killed after the round anyway.
    let _ = c.close();
    Ok(())
}

/// The printed ratios: (ours, anchor).
pub(super) const RPC_RATIOS: [(&str, &str); 2] = [(SERVE, GODOT_ROW), (SERVE_DTLS, SERVE)];

/// `ours / anchor` of calls/s and of server CPU per call (`None` when a row was skipped).
fn ratio(rows: &[(&'static str, Outcome<RpcFigures>)], a: &str, b: &str) -> Option<(f64, f64)> {
    let (a, b) = (super::find(rows, a)?, super::find(rows, b)?);
    Some((
        a.calls_per_s / b.calls_per_s,
        a.cpu_us_per_call / b.cpu_us_per_call,
    ))
}

pub(super) fn rpc_table(r: &RpcReport) -> String {
    use std::fmt::Write as _;
    let l = r.load;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n== RPCs: chat room, {} clients x {} send_message(text), {} in flight each; every call \
         -> receive_message(sender_id, text) to every client; each server its own process",
        l.clients, l.calls, l.window
    );
    let _ = writeln!(
        s,
        "{:<12} {:>11} {:>12} {:>12} {:>12}",
        "SERVER", "CALLS/S", "RECEIVES/S", "CPU_US/CALL", "SERVER_CORES"
    );
    super::write_rows(&mut s, &r.rows, 12, |_, f| {
        format!(
            "{:>11.1} {:>12.1} {:>12.3} {:>12.2}",
            f.calls_per_s, f.receives_per_s, f.cpu_us_per_call, f.server_cores
        )
    });
    for (a, b) in RPC_RATIOS {
        match ratio(&r.rows, a, b) {
            Some((calls, cpu)) => {
                let _ = writeln!(
                    s,
                    "rpc {a} / {b}: calls/s {calls:.3}, server CPU per call {cpu:.3}"
                );
            }
            None => {
                let _ = writeln!(s, "rpc {a} / {b}: n/a");
            }
        }
    }
    s
}

pub(super) fn rpc_json(r: &RpcReport) -> Value {
    let mut servers = serde_json::Map::new();
    for (name, o) in &r.rows {
        servers.insert(
            (*name).into(),
            match o {
                Outcome::Done(f) => json!({
                    "calls_per_s": num(f.calls_per_s),
                    "receives_per_s": num(f.receives_per_s),
                    "cpu_us_per_call": num(f.cpu_us_per_call),
                    "server_cores": num(f.server_cores),
                }),
                Outcome::Skipped(why) => json!({ "skipped": why }),
            },
        );
    }
    let ratios: serde_json::Map<String, Value> = RPC_RATIOS
        .iter()
        .map(|(a, b)| {
            (
                format!("{a}/{b}"),
                ratio(&r.rows, a, b).map_or(
                    Value::Null,
                    |(calls, cpu)| json!({ "calls_per_s": num(calls), "cpu_per_call": num(cpu) }),
                ),
            )
        })
        .collect();
    json!({
        "clients": r.load.clients,
        "calls_per_client": r.load.calls,
        "window": r.load.window,
        "servers": servers,
        "ratios": ratios,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(calls: f64, cpu: f64) -> Outcome<RpcFigures> {
        Outcome::Done(RpcFigures {
            calls_per_s: calls,
            receives_per_s: calls * 4.0,
            cpu_us_per_call: cpu,
            server_cores: 0.5,
        })
    }

    #[test]
    fn ratios_are_ours_over_the_anchor_and_skips_are_na() {
        let r = RpcReport {
            load: RpcLoad {
                clients: 4,
                calls: 10,
                window: 2,
            },
            rows: vec![
                (SERVE, figures(200.0, 2.0)),
                (GODOT_ROW, figures(20.0, 16.0)),
                (SERVE_DTLS, Outcome::Skipped("no \"key\"".into())),
            ],
        };
        let t = rpc_table(&r);
        assert!(
            t.contains("rpc serve / godot-3.2.3: calls/s 10.000, server CPU per call 0.125"),
            "{t}"
        );
        assert!(t.contains("rpc serve+dtls / serve: n/a"), "{t}");
        assert!(t.contains("serve+dtls   skipped: no \"key\""), "{t}");
        let j = rpc_json(&r);
        assert_eq!(j["servers"]["serve"]["calls_per_s"], json!(200.0));
        assert_eq!(
            j["ratios"]["serve/godot-3.2.3"]["cpu_per_call"],
            json!(0.125)
        );
        assert_eq!(j["ratios"]["serve+dtls/serve"], Value::Null);
        assert_eq!(j["servers"]["serve+dtls"]["skipped"], json!("no \"key\""));
    }

    #[test]
    fn medians_are_per_field() {
        let f = |c: f64, u: f64| RpcFigures {
            calls_per_s: c,
            receives_per_s: c,
            cpu_us_per_call: u,
            server_cores: 1.0,
        };
        assert!(RpcFigures::median(&[]).is_none());
        let m = RpcFigures::median(&[f(1.0, 30.0), f(3.0, 10.0), f(2.0, 20.0)]).unwrap();
        assert_eq!((m.calls_per_s, m.cpu_us_per_call), (2.0, 20.0));
    }

    #[test]
    fn own_process_cpu_is_readable_and_grows() {
        let pid = std::process::id();
        let a = process_cpu_ns(pid).expect("CPU time of this process");
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(30) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        std::hint::black_box(x);
        let b = process_cpu_ns(pid).expect("CPU time of this process");
        assert!(b > a, "{a} -> {b}");
    }
}
