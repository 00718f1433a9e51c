//! `enet-dtls enet-echo`: a plain ENet 1.3 echo host.
//!
//! Every received packet goes back to its sender on the same channel with the same reliability
//! flags. One line per event on stdout, flushed at once, so tests and scripts can wait for a line
//! instead of sleeping:
//!
//! * `LISTENING <addr:port>` (the real port when `--listen` asked for port 0)
//! * `CONNECT <addr> data=<u32>` (the connect data the peer sent)
//! * `DISCONNECT <addr>`
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use enet_dtls::enet::EnetHost;
use enet_proto::range_coder::RangeCoder;
use enet_proto::{Event, HostConfig};

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
        ..HostConfig::server()
    };
    let mut host = EnetHost::bind(a.listen, config)
        .map_err(|e| format!("cannot listen on {}: {e}", a.listen))?;
    say(format_args!("LISTENING {}", host.local_addr()?));
    loop {
        match host.service(Duration::from_secs(1))? {
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
}
