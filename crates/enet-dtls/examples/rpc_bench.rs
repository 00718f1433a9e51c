//! RPC throughput of a chat-style exchange through our server ([`RpcPeer`]) and through Godot
//! 3.2.3's own server (`fixtures/godot/bench_chat_server.gd`), with the same Rust clients.
//!
//! ```sh
//! cargo run --release -p enet-dtls --example rpc_bench -- [--clients 4] [--messages 5000]
//!     [--window 32] [--rounds 3] [--no-godot]
//! ```
//!
//! Each client calls `Room.say(n)` on the server `messages` times, keeping at most `window`
//! calls whose echo has not come back; the server answers every `say` with
//! `rpc("show", sender, n)` to every client. A round ends when every client has seen the
//! echoes of all its own calls. Printed: `say` RPCs per second handled by the server and
//! `show` RPCs per second delivered (`clients` times as many), the median of the rounds, and
//! the ratio ours / Godot's. Both servers run on the same machine as the clients (loopback),
//! so compare the ratio, not the absolute numbers. `scripts/bench` runs it.

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use enet_dtls::godot_proto::{ApiEvent, MultiplayerApi, RpcMode};
use enet_dtls::multiplayer::MultiplayerPeer;
use enet_dtls::rpc::RpcPeer;

struct Options {
    clients: usize,
    messages: u32,
    window: u32,
    rounds: usize,
    godot: bool,
}

fn parse() -> Result<Options, String> {
    let mut o = Options {
        clients: 4,
        messages: 5000,
        window: 32,
        rounds: 3,
        godot: true,
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
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

/// Our chat server, serving until `stop`.
fn our_server(stop: Arc<AtomicBool>) -> (u16, std::thread::JoinHandle<()>) {
    let mut api = MultiplayerApi::new();
    api.register("Room", "say", RpcMode::Remote, |ctx, (n,): (i64,)| {
        let sender = ctx.sender();
        let _ = ctx.rpc("Room", "show", (sender, n));
    });
    api.register_event("Room", "show", RpcMode::Puppet);
    let peer = MultiplayerPeer::server(0)
        .bind_address("127.0.0.1".parse().unwrap())
        .create()
        .expect("server");
    let port = peer.local_addr().unwrap().port();
    let mut server = RpcPeer::new(peer, api);
    let handle = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            while server.service(Duration::from_millis(5)).unwrap().is_some() {}
        }
    });
    (port, handle)
}

/// Godot 3.2.3's chat server (the same node and methods in GDScript).
fn godot_server(port: u16) -> Option<Child> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/godot");
    let mut child = Command::new("godot3-server")
        .env("LANG", "en_US.UTF-8")
        .args(["--path", dir, "-s", "bench_chat_server.gd"])
        .arg(format!("port={port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // Wait for its LISTENING line.
    use std::io::{BufRead, BufReader};
    let out = child.stdout.take()?;
    let mut lines = BufReader::new(out).lines();
    for line in lines.by_ref() {
        let line = line.ok()?;
        if line.starts_with("BENCH_SERVER_LISTENING") {
            std::thread::spawn(move || for _ in lines {});
            return Some(child);
        }
    }
    None
}

/// One round of the load against the server on `port`; returns the seconds it took.
fn round(port: u16, o: &Options) -> Result<f64, String> {
    // Connect every client first, then start the clock.
    let mut clients = Vec::new();
    for _ in 0..o.clients {
        let mut api = MultiplayerApi::new();
        api.register_event("Room", "show", RpcMode::Puppet);
        let peer = MultiplayerPeer::client("127.0.0.1", port)
            .create()
            .map_err(|e| e.to_string())?;
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
                    while let Some(e) = c
                        .service(Duration::from_millis(5))
                        .map_err(|e| e.to_string())?
                    {
                        if let ApiEvent::Call { args, .. } = e {
                            if args.first().and_then(|a| a.as_int()) == Some(me) {
                                echoed += 1;
                            }
                        }
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

fn measure(name: &str, port: u16, o: &Options) -> Option<f64> {
    let mut secs = Vec::new();
    for _ in 0..o.rounds {
        match round(port, o) {
            Ok(s) => secs.push(s),
            Err(e) => {
                eprintln!("{name}: {e}");
                return None;
            }
        }
    }
    let says = f64::from(o.messages) * o.clients as f64 / median(secs);
    println!("{name:<14} {says:>12.0} {:>16.0}", says * o.clients as f64);
    Some(says)
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rpc_bench: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "RPC CHAT: {} clients x {} say(n), window {}; each say -> show(sender, n) to every client; median of {} rounds",
        o.clients, o.messages, o.window, o.rounds
    );
    println!("{:<14} {:>12} {:>16}", "SERVER", "SAYS/S", "SHOWS/S");
    let stop = Arc::new(AtomicBool::new(false));
    let (port, handle) = our_server(stop.clone());
    let ours = measure("enet-dtls", port, &o);
    stop.store(true, Ordering::Relaxed);
    let _ = handle.join();

    let mut godot = None;
    if o.godot {
        let port = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .unwrap_or(0);
        match godot_server(port) {
            Some(mut child) => {
                godot = measure("godot-3.2.3", port, &o);
                let _ = child.kill();
                let _ = child.wait();
            }
            None => println!("godot-3.2.3    (skipped: godot3-server is missing or did not start)"),
        }
    }
    if let (Some(a), Some(b)) = (ours, godot) {
        println!("RATIO enet-dtls / godot-3.2.3 (says/s): {:.2}", a / b);
    }
}
