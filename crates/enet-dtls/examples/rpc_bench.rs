//! RPC throughput and server CPU of a chat-style exchange through our server ([`RpcPeer`]) and
//! through Godot 3.2.3's own server (`fixtures/godot/bench_chat_server.gd`), with the same Rust
//! clients.
//!
//! ```sh
//! cargo run --release -p enet-dtls --example rpc_bench -- [--clients 4] [--messages 20000]
//!     [--window 32] [--rounds 5] [--no-godot] [--no-dtls]
//! ```
//!
//! Each client calls `Room.say(n)` on the server `messages` times, keeping at most `window`
//! calls whose echo has not come back; the server answers every `say` with
//! `rpc("show", sender, n)` to every client. A round ends when every client has seen the
//! echoes of all its own calls.
//!
//! Every server runs in its own process (ours is this program with `--serve`), so its CPU time
//! can be read from `/proc/PID/stat` (user + system) before and after each round: on a machine
//! whose cores are shared by the clients and the server, the clients can bound the calls per
//! second, while the server's CPU time per call measures the server alone. The servers take
//! turns round by round (ours, Godot's, ours with DTLS, ours, ...). Printed, as medians of the
//! rounds: `say` calls per second, `show` calls per second (`clients` times as many), and the
//! server's CPU microseconds per `say` (one `say` in, `clients` `show`s out); then the same CPU
//! over all rounds together (`/proc` counts CPU in 10 ms ticks, so a short round's figure is
//! coarse); then the ratios ours / Godot's (the CPU ratio from the all-rounds figures). The DTLS row is our server and clients with `use_dtls` (Godot's Debian build
//! has no DTLS-enabled ENet to compare with). `scripts/bench` runs it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use enet_dtls::godot_proto::{ApiEvent, MultiplayerApi, RpcMode};
use enet_dtls::keys::{Certificate, CertificateParams, KeyType, PrivateKey};
use enet_dtls::multiplayer::MultiplayerPeer;
use enet_dtls::rpc::RpcPeer;

struct Options {
    clients: usize,
    messages: u32,
    window: u32,
    rounds: usize,
    godot: bool,
    dtls: bool,
    /// `--serve [KEY CERT]`: be our chat server (with DTLS when a key and certificate are given).
    serve: Option<Option<(PathBuf, PathBuf)>>,
}

fn parse() -> Result<Options, String> {
    let mut o = Options {
        clients: 4,
        messages: 20000,
        window: 32,
        rounds: 5,
        godot: true,
        dtls: true,
        serve: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or(format!("{name} needs a number"))
        };
        match a.as_str() {
            "--clients" => o.clients = num("--clients")? as usize,
            "--messages" => o.messages = num("--messages")? as u32,
            "--window" => o.window = num("--window")?.max(1) as u32,
            "--rounds" => o.rounds = num("--rounds")?.max(1) as usize,
            "--no-godot" => o.godot = false,
            "--no-dtls" => o.dtls = false,
            "--serve" => {
                let files: Vec<PathBuf> = args.by_ref().map(PathBuf::from).collect();
                o.serve = Some(match files.as_slice() {
                    [] => None,
                    [key, cert] => Some((key.clone(), cert.clone())),
                    _ => return Err("--serve takes nothing or KEY CERT, last".into()),
                });
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

/// A key and certificate for the DTLS rows.
type Identity = (PrivateKey, Certificate);

/// `--serve`: our chat server on a free loopback port (with DTLS when `dtls` is given); prints
/// `BENCH_SERVER_LISTENING port=P` and serves until killed.
fn serve(dtls: Option<&Identity>) -> ! {
    let mut api = MultiplayerApi::new();
    api.register("Room", "say", RpcMode::Remote, |ctx, (n,): (i64,)| {
        let sender = ctx.sender();
        let _ = ctx.rpc("Room", "show", (sender, n));
    });
    api.register_event("Room", "show", RpcMode::Puppet);
    let mut builder = MultiplayerPeer::server(0).bind_address("127.0.0.1".parse().unwrap());
    if let Some((key, cert)) = dtls {
        builder = builder
            .use_dtls(true)
            .dtls_key(key.clone())
            .dtls_certificate(cert.clone());
    }
    let peer = builder.create().expect("server");
    let port = peer.local_addr().unwrap().port();
    let mut server = RpcPeer::new(peer, api);
    println!("BENCH_SERVER_LISTENING port={port} err=0");
    loop {
        while server.service(Duration::from_secs(1)).unwrap().is_some() {}
    }
}

/// A chat server in its own process, killed when dropped.
struct Server {
    name: &'static str,
    child: Child,
    port: u16,
    /// Clients connect with DTLS, trusting this certificate.
    dtls: Option<Certificate>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `command` and waits for its `BENCH_SERVER_LISTENING port=P` line.
    fn start(name: &'static str, mut command: Command, dtls: Option<Certificate>) -> Option<Self> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut lines = BufReader::new(child.stdout.take()?).lines();
        for line in lines.by_ref() {
            let line = line.ok()?;
            if let Some(rest) = line.strip_prefix("BENCH_SERVER_LISTENING port=") {
                let port = rest.split_whitespace().next()?.parse().ok()?;
                std::thread::spawn(move || for _ in lines {});
                return Some(Server {
                    name,
                    child,
                    port,
                    dtls,
                });
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// The process's CPU time so far (user + system), from `/proc/PID/stat`.
    fn cpu(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(Duration::from_secs_f64(ticks as f64 / clock_ticks()))
    }
}

/// Clock ticks per second of `/proc/PID/stat` (`getconf CLK_TCK`, 100 on Linux).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Our chat server: this program with `--serve`.
fn our_server(name: &'static str, dtls: Option<&Identity>) -> Option<Server> {
    let mut command = Command::new(std::env::current_exe().ok()?);
    command.arg("--serve");
    let Some((key, cert)) = dtls else {
        return Server::start(name, command, None);
    };
    // The throwaway key and certificate go to the server through files, removed once it has
    // read them (it prints its LISTENING line after).
    let dir = std::env::temp_dir();
    let key_path = dir.join(format!("rpc_bench_{}.key", std::process::id()));
    let cert_path = dir.join(format!("rpc_bench_{}.crt", std::process::id()));
    let saved = key.save(&key_path, key.default_format()).is_ok() && cert.save(&cert_path).is_ok();
    command.arg(&key_path).arg(&cert_path);
    let server = saved.then(|| Server::start(name, command, Some(cert.clone())));
    let _ = std::fs::remove_file(&key_path);
    let _ = std::fs::remove_file(&cert_path);
    server.flatten()
}

/// Godot 3.2.3's chat server (the same node and methods in GDScript).
fn godot_server() -> Option<Server> {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .ok()?
        .port();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/godot");
    let mut command = Command::new("godot3-server");
    command
        .env("LANG", "en_US.UTF-8")
        .args(["--path", dir, "-s", "bench_chat_server.gd"])
        .arg(format!("port={port}"));
    Server::start("godot-3.2.3", command, None)
}

/// One round of the load against `server`; returns the seconds it took.
fn round(server: &Server, o: &Options) -> Result<f64, String> {
    let port = server.port;
    // Connect every client first, then start the clock.
    let mut clients = Vec::new();
    for _ in 0..o.clients {
        let mut api = MultiplayerApi::new();
        api.register_event("Room", "show", RpcMode::Puppet);
        let mut builder = MultiplayerPeer::client("127.0.0.1", port);
        if let Some(cert) = &server.dtls {
            builder = builder
                .use_dtls(true)
                .dtls_certificate(cert.clone())
                .dtls_hostname("localhost");
        }
        let peer = builder.create().map_err(|e| e.to_string())?;
        clients.push(RpcPeer::new(peer, api));
    }
    let give_up = Instant::now() + Duration::from_secs(60);
    for c in &mut clients {
        while !c.api().is_connected() {
            if Instant::now() > give_up {
                return Err("clients did not connect".into());
            }
            c.service(Duration::from_millis(5))
                .map_err(|e| e.to_string())?;
        }
    }
    let start = Instant::now();
    let (messages, window) = (o.messages, o.window);
    let threads: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            std::thread::spawn(move || -> Result<(), String> {
                let me = i64::from(c.unique_id());
                let (mut sent, mut echoed) = (0u32, 0u32);
                while echoed < messages {
                    while sent < messages && sent - echoed < window {
                        c.rpc_id(1, "Room", "say", (i64::from(sent),))
                            .map_err(|e| e.to_string())?;
                        sent += 1;
                    }
                    if Instant::now() > give_up {
                        return Err(format!("stuck at {echoed}/{messages}"));
                    }
                    c.poll().map_err(|e| e.to_string())?;
                    let mut progressed = false;
                    while let Some(e) = c.next_event() {
                        if let ApiEvent::Call { args, .. } = e {
                            if args.first().and_then(|a| a.as_int()) == Some(me) {
                                echoed += 1;
                                progressed = true;
                            }
                        }
                    }
                    if !progressed {
                        c.wait(Some(Duration::from_millis(5)))
                            .map_err(|e| e.to_string())?;
                    }
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| "client panicked".to_owned())??;
    }
    Ok(start.elapsed().as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One server's figures: says per second (median of the rounds) and server CPU microseconds
/// per say (all rounds together).
struct Figures {
    says: f64,
    cpu_us: Option<f64>,
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rpc_bench: {e}");
            std::process::exit(2);
        }
    };
    if let Some(files) = &o.serve {
        let identity = files.as_ref().map(|(key, cert)| {
            (
                PrivateKey::load(key).expect("key"),
                Certificate::load(cert).expect("certificate"),
            )
        });
        serve(identity.as_ref());
    }
    println!(
        "RPC CHAT: {} clients x {} say(n), window {}; each say -> show(sender, n) to every client; \
         servers in their own processes, taking turns; median of {} rounds",
        o.clients, o.messages, o.window, o.rounds
    );
    let mut servers = Vec::new();
    match our_server("enet-dtls", None) {
        Some(s) => servers.push(s),
        None => println!("enet-dtls      (skipped: our server did not start)"),
    }
    if o.godot {
        match godot_server() {
            Some(s) => servers.push(s),
            None => println!("godot-3.2.3    (skipped: godot3-server is missing or did not start)"),
        }
    }
    if o.dtls {
        let key = PrivateKey::generate(KeyType::EcP256).expect("key");
        let cert =
            Certificate::self_signed(&key, &CertificateParams::new("localhost")).expect("cert");
        match our_server("enet-dtls+dtls", Some(&(key, cert))) {
            Some(s) => servers.push(s),
            None => println!("enet-dtls+dtls (skipped: our DTLS server did not start)"),
        }
    }
    let mut secs: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    let mut cpus: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    let mut failed = vec![false; servers.len()];
    for _ in 0..o.rounds {
        for (i, server) in servers.iter().enumerate() {
            if failed[i] {
                continue;
            }
            let before = server.cpu();
            match round(server, &o) {
                Ok(s) => {
                    secs[i].push(s);
                    if let (Some(a), Some(b)) = (before, server.cpu()) {
                        cpus[i].push((b - a).as_secs_f64());
                    }
                }
                Err(e) => {
                    eprintln!("{}: {e}", server.name);
                    failed[i] = true;
                }
            }
        }
    }
    println!(
        "{:<14} {:>10} {:>10} {:>14} {:>14}",
        "SERVER", "SAYS/S", "SHOWS/S", "CPU US/SAY", "(ALL ROUNDS)"
    );
    let says_per_round = f64::from(o.messages) * o.clients as f64;
    let mut figures = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        if failed[i] || secs[i].is_empty() {
            figures.push(None);
            continue;
        }
        let says = says_per_round / median(secs[i].clone());
        // Below 20 ticks of CPU in all (a --quick run), the CPU figures are too coarse to print.
        let measured =
            cpus[i].len() == secs[i].len() && cpus[i].iter().sum::<f64>() * clock_ticks() >= 20.0;
        let cpu_us = measured.then(|| median(cpus[i].clone()) * 1e6 / says_per_round);
        let pooled = measured
            .then(|| cpus[i].iter().sum::<f64>() * 1e6 / (says_per_round * cpus[i].len() as f64));
        let text = |c: Option<f64>| c.map_or("(coarse)".to_owned(), |c| format!("{c:.2}"));
        println!(
            "{:<14} {says:>10.0} {:>10.0} {:>14} {:>14}",
            server.name,
            says * o.clients as f64,
            text(cpu_us),
            text(pooled)
        );
        figures.push(Some(Figures {
            says,
            cpu_us: pooled,
        }));
    }
    let find = |name: &str| {
        servers
            .iter()
            .position(|s| s.name == name)
            .and_then(|i| figures[i].as_ref())
    };
    let ratios = |a: &str, b: &str| {
        if let (Some(x), Some(y)) = (find(a), find(b)) {
            print!("RATIO {a} / {b}: says/s {:.2}", x.says / y.says);
            if let (Some(cx), Some(cy)) = (x.cpu_us, y.cpu_us) {
                print!(", server CPU per say {b} / {a}: {:.2}", cy / cx);
            }
            println!();
        }
    };
    ratios("enet-dtls", "godot-3.2.3");
    ratios("enet-dtls+dtls", "enet-dtls");
}
