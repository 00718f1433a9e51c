//! `enet-dtls enet-echo`: an ENet 1.3 echo host, plain or (`--dtls --key FILE --cert FILE`)
//! inside DTLS 1.2 as Godot's `use_dtls` does: one DTLS record per ENet datagram, stateless
//! cookies and the DTLS session limits in front, the same lines printed.
//!
//! Every received packet goes back to its sender on the same channel with the same reliability
//! flags. One line per event on stdout, flushed at once, so tests and scripts can wait for a line
//! instead of sleeping:
//!
//! * `LISTENING <addr:port>` (the real port when `--listen` asked for port 0)
//! * `CONNECT <addr> data=<u32>` (the connect data the peer sent)
//! * `DISCONNECT <addr>`
//!
//! On SIGINT or SIGTERM it sends ENet DISCONNECT to every peer, waits for their acknowledgements
//! (at most [`shutdown::GRACE`]), prints `SHUTDOWN` and exits 0; a second signal exits at once.
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use enet_dtls::dtls_proto::keys::{Certificate, PrivateKey};
use enet_dtls::dtls_proto::{EndpointConfig, ServerConfig};
use enet_dtls::enet::{BusyPoll, DtlsEnetSocket, EnetHost, EnetSocket};
use enet_proto::range_coder::RangeCoder;
use enet_proto::{Event, HostConfig, PeerState};

use crate::shutdown::{self, Shutdown};

/// Compressors `--compress` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CompressorArg {
    /// C ENet's adaptive order-2 range coder (`enet_host_compress_with_range_coder`).
    RangeCoder,
}

/// Arguments of `enet-echo`.
#[derive(Debug, clap::Args)]
pub(crate) struct EchoArgs {
    /// Address to listen on, e.g. `127.0.0.1:7777` or `[::1]:7777` (port 0 picks a free port,
    /// printed on the `LISTENING` line).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// Add C ENet's CRC32 checksum to every datagram (both sides must agree).
    #[arg(long)]
    checksum: bool,
    /// Compress datagrams (both sides must agree).
    #[arg(long, value_name = "NAME", value_enum)]
    compress: Option<CompressorArg>,
    /// Most simultaneous peers (1..=4095).
    #[arg(long, value_name = "N", default_value_t = 32,
          value_parser = clap::value_parser!(u16).range(1..=4095))]
    max_peers: u16,
    /// Most peers from one source address (an IPv4 address, or an IPv6 /64), connected or
    /// connecting (1..=4095; C ENet's `duplicatePeers`). A CONNECT beyond it is refused, so
    /// that one machine, or a flood of CONNECTs from many ports, cannot fill the peer table.
    /// The default, 16, is safer than C ENet's 4095 (no limit); raise it when many peers share
    /// one address (carrier-grade NAT, LAN events, a load test from one machine).
    #[arg(long, value_name = "N", default_value_t = enet_proto::SERVER_DUPLICATE_PEERS as u16,
          value_parser = clap::value_parser!(u16).range(1..=4095))]
    max_peers_per_address: u16,
    /// Most channels accepted from a connecting peer (1..=255).
    #[arg(long, value_name = "N", default_value_t = 255,
          value_parser = clap::value_parser!(u16).range(1..=255))]
    channels: u16,
    /// Poll the socket for up to this many microseconds before every sleep (0: never poll).
    /// Without it, the host polls for up to 40 us only while traffic is dense (its last wait
    /// ended within 50 us): see `EnetHost::set_busy_poll` and `BusyPoll`.
    #[arg(long, value_name = "US",
          value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    busy_poll_us: Option<u64>,
    /// Carry ENet inside DTLS 1.2 (Godot's `use_dtls`): every ENet datagram is one DTLS record.
    /// Needs --key and --cert. Plaintext ENet is then ignored.
    #[arg(long, requires_all = ["key", "cert"])]
    dtls: bool,
    /// PEM private key of the DTLS server (with --dtls).
    #[arg(long, value_name = "FILE", requires = "dtls")]
    key: Option<PathBuf>,
    /// PEM certificate of the DTLS server; more certificates after the first one in the file
    /// are sent as its chain (with --dtls).
    #[arg(long, value_name = "FILE", requires = "dtls")]
    cert: Option<PathBuf>,
}

/// Prints one event line on stdout and flushes it. A closed stdout must not stop the echo.
fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

pub(crate) fn run_echo(a: EchoArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let config = HostConfig {
        peer_limit: usize::from(a.max_peers),
        duplicate_peers: usize::from(a.max_peers_per_address),
        channel_limit: usize::from(a.channels),
        checksum: a.checksum,
        compressor: match a.compress {
            Some(CompressorArg::RangeCoder) => Some(Box::new(RangeCoder::new())),
            None => None,
        },
        // The echo takes its events in a loop and services again at once: each batch's
        // acknowledgements leave in the datagram that carries its echoes.
        acks_with_replies: true,
        ..HostConfig::server()
    };
    let busy_poll = match a.busy_poll_us {
        None => BusyPoll::default(),
        Some(0) => BusyPoll::Off,
        Some(us) => BusyPoll::Always(Duration::from_micros(us)),
    };
    if a.dtls {
        let (Some(key), Some(cert)) = (&a.key, &a.cert) else {
            return Err("--dtls needs --key FILE and --cert FILE".into());
        };
        let dtls = dtls_config(key, cert)?;
        let socket = DtlsEnetSocket::server(a.listen, &dtls, EndpointConfig::default())
            .map_err(|e| format!("cannot listen on {}: {e}", a.listen))?;
        let mut host = EnetHost::with_socket(socket, config)
            .map_err(|e| format!("cannot listen on {}: {e}", a.listen))?;
        host.set_busy_poll(busy_poll);
        return serve(host);
    }
    let mut host = EnetHost::bind(a.listen, config)
        .map_err(|e| format!("cannot listen on {}: {e}", a.listen))?;
    host.set_busy_poll(busy_poll);
    serve(host)
}

/// The DTLS server configuration from PEM files (the key, the certificate and its chain).
fn dtls_config(key: &Path, cert: &Path) -> Result<ServerConfig, Box<dyn std::error::Error>> {
    let key = PrivateKey::load(key)?;
    let mut certs = Certificate::load_chain(cert)?.into_iter();
    let leaf = certs
        .next()
        .ok_or_else(|| format!("{}: no certificate in the file", cert.display()))?;
    Ok(ServerConfig::builder(key, leaf)
        .chain(certs.collect())
        .build()?)
}

/// Runs the echo until SIGINT/SIGTERM, printing one line per event.
fn serve<S: EnetSocket>(mut host: EnetHost<S>) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let stop = Shutdown::install().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    say(format_args!("LISTENING {}", host.local_addr()?));
    while !stop.requested() {
        match host.service(shutdown::POLL_INTERVAL)? {
            Some(Event::Connect { address, data, .. }) => {
                say(format_args!("CONNECT {address} data={data}"))
            }
            Some(Event::Disconnect { address, .. }) => say(format_args!("DISCONNECT {address}")),
            Some(Event::Receive {
                peer,
                channel,
                packet,
            }) => {
                // Same data, same flags (reliable / unsequenced / unreliable fragment).
                if let Err(e) = host.send(peer, channel, packet) {
                    // The peer may be going away; an echo that cannot be queued is not fatal.
                    tracing::debug!(%e, "echo not sent");
                }
            }
            None => {}
        }
    }
    say_goodbye(&mut host)?;
    say(format_args!("SHUTDOWN"));
    Ok(ExitCode::SUCCESS)
}

/// Sends DISCONNECT to every peer and services the host until each has acknowledged it (its
/// `DISCONNECT` line is printed) or [`shutdown::GRACE`] has passed; then forgets the rest.
fn say_goodbye<S: EnetSocket>(host: &mut EnetHost<S>) -> std::io::Result<()> {
    let peers: Vec<_> = host
        .host()
        .peers()
        .filter(|p| !matches!(p.state(), PeerState::Disconnected | PeerState::Zombie))
        .map(|p| p.id())
        .collect();
    for &peer in &peers {
        host.disconnect(peer, 0);
    }
    host.flush()?;
    let deadline = Instant::now() + shutdown::GRACE;
    let busy = |host: &EnetHost<S>| {
        host.host()
            .peers()
            .any(|p| !matches!(p.state(), PeerState::Disconnected | PeerState::Zombie))
    };
    while busy(host) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if let Some(Event::Disconnect { address, .. }) = host.service(left)? {
            say(format_args!("DISCONNECT {address}"));
        }
    }
    // Disconnects acknowledged in the last round may still be queued as events (the peer's slot
    // is already free): report them too.
    while let Some(event) = host.check_events() {
        if let Event::Disconnect { address, .. } = event {
            say(format_args!("DISCONNECT {address}"));
        }
    }
    // Peers that did not answer in time: one more unacknowledged DISCONNECT each, then gone.
    for &peer in &peers {
        if host
            .peer(peer)
            .is_some_and(|p| !matches!(p.state(), PeerState::Disconnected | PeerState::Zombie))
        {
            host.disconnect_now(peer, 0)?;
        }
    }
    host.flush()
}
