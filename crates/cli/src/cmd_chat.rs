//! `enet-dtls serve` and `enet-dtls connect`: a chat room on Godot 3.2's MultiplayerAPI that
//! Godot 3.2 clients can join (node `Chat`; `send_message(text)` to the server,
//! `receive_message(sender_id, text)` to every client).
//!
//! `serve` prints one line per event, the lines of the events handled together flushed at once
//! (one write):
//!
//! * `LISTENING <addr:port>` first (the real port when given port 0);
//! * `METRICS <addr:port>` next, only with `--metrics`;
//! * `JOIN <id> <addr:port>`, `LEAVE <id>`, `MSG <id>: <text>`;
//! * `SHUTDOWN` after SIGINT/SIGTERM (every client was asked to disconnect first).
//!
//! `connect` prints `CONNECTED <own id>`, then `<id>: <text>` for every message it receives,
//! and `DISCONNECTED` when the server goes away. It sends every line of its standard input as a
//! message; at the end of the input it waits until the server has sent its own messages back
//! (at most 5 s), disconnects and exits 0.
//!
//! Message text is printed with control characters escaped (`\u{a}`), so no message can forge
//! another output line.

use std::io::{BufRead, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use dtls_proto::keys::{Certificate, PrivateKey};
use dtls_proto::{ClientConfig, EndpointConfig, ServerConfig};
use enet_dtls::enet::{DtlsEnetSocket, EnetSocket, UdpEnetSocket};
use enet_dtls::godot_proto::ApiEvent;
use enet_dtls::multiplayer::{CompressionMode, ConnectionFailure, MultiplayerPeer};
use enet_dtls::rpc::{RpcPeer, RpcPeerError};

use crate::chat_room::{printable, Room, RoomEvent, RoomSocket, METHODS};
use crate::chat_rpc::{self, ChatCall, ChatEvent, ChatPeer};
use crate::metrics::{FailureTap, LastFailure, MetricsServer, ServerMetrics};
use crate::shutdown::{self, Shutdown};

/// Compression modes of Godot 3.2's `NetworkedMultiplayerENet` (both ends must agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CompressArg {
    /// No compression (Godot's COMPRESS_NONE, the default).
    None,
    /// ENet's range coder (COMPRESS_RANGE_CODER).
    RangeCoder,
    /// FastLZ (COMPRESS_FASTLZ).
    Fastlz,
    /// zlib (COMPRESS_ZLIB).
    Zlib,
    /// Zstandard (COMPRESS_ZSTD).
    Zstd,
}

impl CompressArg {
    fn mode(self) -> CompressionMode {
        match self {
            CompressArg::None => CompressionMode::None,
            CompressArg::RangeCoder => CompressionMode::RangeCoder,
            CompressArg::Fastlz => CompressionMode::FastLz,
            CompressArg::Zlib => CompressionMode::Zlib,
            CompressArg::Zstd => CompressionMode::Zstd,
        }
    }
}

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on, e.g. `127.0.0.1:7777` or `[::1]:7777` (port 0 picks a free port,
    /// printed on the `LISTENING` line).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// ENet over DTLS 1.2 (Godot's `use_dtls`); needs --key and --cert.
    #[arg(long)]
    dtls: bool,
    /// PEM private key of the server (with --dtls).
    #[arg(long, value_name = "FILE", requires = "dtls")]
    key: Option<PathBuf>,
    /// PEM certificate (chain) of the server (with --dtls).
    #[arg(long, value_name = "FILE", requires = "dtls")]
    cert: Option<PathBuf>,
    /// Most clients at once (1..=4095; Godot's `max_clients`).
    #[arg(long, value_name = "N", default_value_t = 32,
          value_parser = clap::value_parser!(u16).range(1..=4095))]
    max_clients: u16,
    /// Room name: every client that joins gets `welcome to NAME` from the server (id 1).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Compression (Godot's `compression_mode`; every client must use the same).
    #[arg(long, value_name = "MODE", value_enum, default_value_t = CompressArg::None)]
    compress: CompressArg,
    /// Serve Prometheus metrics on `http://ADDR:PORT/metrics` (port 0 picks a free port,
    /// printed on a `METRICS` line).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<SocketAddr>,
}

/// Arguments of `connect`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConnectArgs {
    /// Server to join, `HOST:PORT`.
    #[arg(long, value_name = "HOST:PORT")]
    connect: String,
    /// ENet over DTLS 1.2 (the server must use --dtls too).
    #[arg(long)]
    dtls: bool,
    /// PEM certificate to trust: a CA, or the server's own self-signed certificate (with
    /// --dtls; without it the system trust store is used).
    #[arg(long, value_name = "FILE", requires = "dtls")]
    ca: Option<PathBuf>,
    /// Name the server certificate must carry (default: the HOST part of --connect).
    #[arg(long, value_name = "NAME", requires = "dtls")]
    hostname: Option<String>,
    /// Do not verify the server certificate at all (with --dtls).
    #[arg(long, requires = "dtls", conflicts_with_all = ["ca", "hostname"])]
    insecure: bool,
    /// Sent before every message: `NAME: text` (the room itself only knows ids, as Godot's
    /// MultiplayerAPI).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Compression (must match the server's).
    #[arg(long, value_name = "MODE", value_enum, default_value_t = CompressArg::None)]
    compress: CompressArg,
    /// Give up when not connected within this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = crate::args::seconds)]
    timeout: f64,
}

/// Prints one line on stdout and flushes it. A closed stdout must not stop the room.
fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Prints the `serve` lines of room events: one write and one flush for all of them (a busy
/// room handles many messages per step; a write per line would cost a system call each).
pub(crate) fn print_room_events(events: &[RoomEvent]) {
    use std::fmt::Write as _;
    let mut lines = String::new();
    for event in events {
        let _ = match event {
            RoomEvent::Join(id, Some(addr)) => writeln!(lines, "JOIN {id} {addr}"),
            RoomEvent::Join(id, None) => writeln!(lines, "JOIN {id} ?"),
            RoomEvent::Leave(id) => writeln!(lines, "LEAVE {id}"),
            RoomEvent::Message(id, text) => writeln!(lines, "MSG {id}: {}", printable(text)),
            RoomEvent::Refused(id, why) => {
                eprintln!("message from {id} not relayed: {why}");
                Ok(())
            }
        };
    }
    if !lines.is_empty() {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(lines.as_bytes());
        let _ = out.flush();
    }
}

fn server_config(
    key: &PathBuf,
    cert: &PathBuf,
) -> Result<ServerConfig, Box<dyn std::error::Error>> {
    let key = PrivateKey::load(key).map_err(|e| format!("--key {}: {e}", key.display()))?;
    let mut certs = Certificate::load_chain(cert)
        .map_err(|e| format!("--cert {}: {e}", cert.display()))?
        .into_iter();
    let first = certs
        .next()
        .ok_or_else(|| format!("--cert {}: no certificate in the file", cert.display()))?;
    Ok(ServerConfig::builder(key, first)
        .chain(certs.collect())
        .build()?)
}

pub(crate) fn run_serve(a: ServeArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let builder = MultiplayerPeer::server(a.listen.port())
        .bind_address(a.listen.ip())
        .max_clients(usize::from(a.max_clients))
        .compression(a.compress.mode());
    let welcome = a.name.as_ref().map(|n| format!("welcome to {n}"));
    if a.dtls {
        let (Some(key), Some(cert)) = (&a.key, &a.cert) else {
            return Err(
                "--dtls needs --key FILE and --cert FILE (enet-dtls keygen makes both)".into(),
            );
        };
        let config = server_config(key, cert)?;
        let limits = EndpointConfig::default().max_sessions(usize::from(a.max_clients).max(16) * 2);
        let socket = DtlsEnetSocket::server(a.listen, &config, limits)
            .map_err(|e| format!("cannot listen on {}: {e}", a.listen))?;
        let metrics = a.metrics.map(|_| ServerMetrics::new(METHODS));
        let socket = FailureTap::new(socket, metrics.as_ref().map(ServerMetrics::failure_counter));
        let peer = builder.create_with_socket(socket)?;
        serve_room(Room::new(peer, welcome), a.metrics, metrics)
    } else {
        let socket = UdpEnetSocket::bind(a.listen)
            .map_err(|e| format!("cannot listen on {}: {e}", a.listen))?;
        let peer = builder.create_with_socket(socket)?;
        let metrics = a.metrics.map(|_| ServerMetrics::new(METHODS));
        serve_room(Room::new(peer, welcome), a.metrics, metrics)
    }
}

fn serve_room<S: RoomSocket>(
    mut room: Room<S>,
    http_addr: Option<SocketAddr>,
    metrics: Option<ServerMetrics>,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let shutdown = Shutdown::install()?;
    let http = match (http_addr, metrics) {
        (Some(addr), Some(m)) => {
            let server = MetricsServer::start(addr, m.registry())
                .map_err(|e| format!("--metrics {addr}: {e}"))?;
            room.set_metrics(m);
            Some(server)
        }
        _ => None,
    };
    say(format_args!("LISTENING {}", room.peer().local_addr()?));
    if let Some(h) = &http {
        say(format_args!("METRICS {}", h.local_addr()));
    }
    while !shutdown.requested() {
        print_room_events(&room.step(shutdown::POLL_INTERVAL)?);
    }
    print_room_events(&room.shutdown(shutdown::GRACE));
    say(format_args!("SHUTDOWN"));
    drop(http);
    Ok(ExitCode::SUCCESS)
}

/// `HOST` and `PORT` of `HOST:PORT` (`[v6]:PORT` too).
fn split_host_port(text: &str) -> Result<(String, u16), String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} is not HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{text:?}: the port must be a number in 1..=65535"))?;
    if port == 0 {
        return Err(format!("{text:?}: the port must be in 1..=65535"));
    }
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(format!("{text:?}: the host is empty"));
    }
    Ok((host.to_string(), port))
}

/// Exit statuses of `connect`.
mod exit {
    /// Could not connect (refused, timed out, DTLS failure).
    pub(super) const CONNECT_FAILED: u8 = 3;
}

/// Reads stdin lines on a thread (a blocking read cannot be polled), bounded by the channel
/// consumer; `None` on the channel means end of input.
fn stdin_lines() -> Receiver<Option<String>> {
    let (tx, rx) = mpsc::sync_channel(256);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            match line {
                Ok(l) => {
                    if tx.send(Some(l)).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = tx.send(None);
    });
    rx
}

pub(crate) fn run_connect(a: ConnectArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let (host, port) = split_host_port(&a.connect)?;
    let timeout = Duration::try_from_secs_f64(a.timeout).map_err(|e| format!("--timeout: {e}"))?;
    // One address, IPv4 first (a name such as `localhost` may resolve to ::1 before
    // 127.0.0.1, while most servers listen on IPv4 only).
    let addrs: Vec<SocketAddr> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", a.connect))?
        .collect();
    let server = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("{} resolves to no address", a.connect))?;
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let builder =
        MultiplayerPeer::client(server.ip().to_string(), port).compression(a.compress.mode());
    if a.dtls {
        let mut config = ClientConfig::builder().verify(!a.insecure);
        if !a.insecure {
            config = config.hostname(a.hostname.clone().unwrap_or(host));
        }
        if let Some(ca) = &a.ca {
            config = config.trusted_certificates(
                Certificate::load_chain(ca).map_err(|e| format!("--ca {}: {e}", ca.display()))?,
            );
        }
        let config = config.build()?;
        let socket = FailureTap::new(DtlsEnetSocket::client(local, &config)?, None);
        let last = socket.last_failure();
        chat_client(builder.create_with_socket(socket)?, &a, timeout, Some(last))
    } else {
        let socket = UdpEnetSocket::bind(local)?;
        chat_client(builder.create_with_socket(socket)?, &a, timeout, None)
    }
}

/// How long `connect` waits, after its input ended, for its own messages to come back.
const DRAIN: Duration = Duration::from_secs(5);

fn chat_client<S: EnetSocket>(
    peer: MultiplayerPeer<S>,
    a: &ConnectArgs,
    timeout: Duration,
    dtls_failure: Option<LastFailure>,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let shutdown = Shutdown::install()?;
    let input = stdin_lines();
    // The DTLS cause of a failed join, when the socket reported one.
    let dtls_cause = || {
        dtls_failure
            .as_ref()
            .and_then(|l| l.lock().ok().and_then(|f| f.clone()))
    };
    let mut peer: ChatPeer<S> = RpcPeer::new(peer, chat_rpc::client_api());
    let me = peer.peer().unique_id();
    let connect_deadline = Instant::now() + timeout;
    let mut connected = false;
    let mut input_done = false;
    let mut drain_deadline: Option<Instant> = None;
    // Our own messages sent and seen back (the server sends every message to its sender too).
    let mut sent = 0u64;
    let mut echoed = 0u64;
    let prefix = a
        .name
        .as_ref()
        .map(|n| format!("{n}: "))
        .unwrap_or_default();
    loop {
        if shutdown.requested() {
            break;
        }
        if !connected && Instant::now() >= connect_deadline {
            match dtls_cause() {
                Some(f) => eprintln!("error: cannot join {}: {f}", a.connect),
                None => eprintln!("error: not connected to {} within {:?}", a.connect, timeout),
            }
            return Ok(ExitCode::from(exit::CONNECT_FAILED));
        }
        if let Some(d) = drain_deadline {
            if echoed >= sent || Instant::now() >= d {
                break;
            }
        }
        // Read input only once connected (the channel holds what was typed meanwhile).
        while connected && !input_done {
            match input.try_recv() {
                Ok(Some(line)) => {
                    match chat_rpc::send_message(&mut peer, &format!("{prefix}{line}")) {
                        Ok(()) => sent += 1,
                        Err(RpcPeerError::Peer(e)) => return Err(e.into()),
                        Err(e) => eprintln!("message not sent: {e}"),
                    }
                }
                Ok(None) | Err(TryRecvError::Disconnected) => {
                    input_done = true;
                    drain_deadline = Some(Instant::now() + DRAIN);
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        let mut next = peer.service(Duration::from_millis(20))?;
        while let Some(event) = next.take() {
            match ChatEvent::from_api(event) {
                ChatEvent::Other(ApiEvent::ConnectedToServer) => {
                    connected = true;
                    say(format_args!("CONNECTED {me}"));
                }
                ChatEvent::Other(ApiEvent::ConnectionFailed) => {
                    let why = peer
                        .connection_failure()
                        .map_or_else(|| "connection failed".to_string(), |w| w.to_string());
                    match dtls_cause() {
                        Some(f)
                            if !matches!(
                                peer.connection_failure(),
                                Some(ConnectionFailure::Dtls(_))
                            ) =>
                        {
                            eprintln!("error: cannot join {}: {why}; {f}", a.connect)
                        }
                        _ => eprintln!("error: cannot join {}: {why}", a.connect),
                    }
                    return Ok(ExitCode::from(exit::CONNECT_FAILED));
                }
                ChatEvent::Other(ApiEvent::ServerDisconnected) => {
                    say(format_args!("DISCONNECTED"));
                    return Ok(ExitCode::SUCCESS);
                }
                ChatEvent::Call(ChatCall::ReceiveMessage { sender_id, text }) => {
                    if sender_id == i64::from(me) {
                        echoed += 1;
                    }
                    say(format_args!("{sender_id}: {}", printable(&text)));
                }
                ChatEvent::Refused {
                    from,
                    method,
                    reason,
                } => tracing::debug!(from, ?method, %reason, "packet refused"),
                ChatEvent::Call(ChatCall::SendMessage { .. }) | ChatEvent::Other(_) => {}
            }
            next = peer.next_event();
        }
    }
    // Leave cleanly: ENet DISCONNECT (and, under DTLS, close_notify), give it a moment to go.
    peer.close()?;
    let until = Instant::now() + Duration::from_millis(200);
    while Instant::now() < until {
        if peer.service(Duration::from_millis(20)).is_err() {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_is_split_and_checked() {
        assert_eq!(
            split_host_port("localhost:7").unwrap(),
            ("localhost".into(), 7)
        );
        assert_eq!(split_host_port("[::1]:9").unwrap(), ("::1".into(), 9));
        assert!(split_host_port("x").is_err());
        assert!(split_host_port("x:0").is_err());
        assert!(split_host_port(":5").is_err());
        assert!(split_host_port("x:70000").is_err());
    }
}
