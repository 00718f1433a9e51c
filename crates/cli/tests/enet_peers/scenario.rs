//! The client scenario of the ENet interop tests, run by OUR client (the library's blocking
//! `EnetHost`) against an echo host. It is the same scenario as `enet_peer.c client` and
//! `pyenet_peer.py client`:
//!
//! 1. connect with 4 channels and data `CONNECT_DATA`
//! 2. "basic": 4 messages of each kind (reliable, unreliable, unsequenced) on each channel; each
//!    echo must come back on its channel with its kind, every reliable one in order
//! 3. "big": one 1 MiB reliable packet (fragmented), echoed byte for byte
//! 4. "ordered": 10 000 small reliable messages on channel 3, echoed in order
//! 5. disconnect with data `DISCONNECT_DATA` and wait for the disconnect event
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use enet_dtls::enet::{EnetHost, EnetSocket};
use enet_proto::range_coder::RangeCoder;
use enet_proto::{Event, HostConfig, Packet, PacketFlags, PeerId};

/// Channels the client asks for.
pub const CHANNELS: usize = 4;
/// Data sent with CONNECT (0x1234ABCD).
pub const CONNECT_DATA: u32 = 0x1234_ABCD;
/// Data sent with DISCONNECT (0xD15C0).
pub const DISCONNECT_DATA: u32 = 0xD15C0;
const PER_KIND: usize = 4;
/// Size of the fragmented packet.
pub const BIG_SIZE: usize = 1024 * 1024;
/// Number of small ordered messages.
pub const ORDERED_COUNT: u32 = 10_000;
const ORDERED_CHANNEL: u8 = 3;
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
const KINDS: [&str; 3] = ["reliable", "unreliable", "unsequenced"];

/// Options both sides of a pair must agree on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// CRC32 checksum in every datagram.
    pub checksum: bool,
    /// Range coder compression.
    pub compress: bool,
}

impl Options {
    /// The matching command-line flags of the C and Python peers.
    pub fn peer_flags(self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.checksum {
            v.push("--checksum");
        }
        if self.compress {
            v.push("--compress");
        }
        v
    }

    /// The matching flags of `enet-dtls enet-echo`.
    pub fn echo_flags(self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.checksum {
            v.push("--checksum");
        }
        if self.compress {
            v.extend(["--compress", "range-coder"]);
        }
        v
    }

    /// A client host configuration with these options.
    pub fn client_config(self) -> HostConfig {
        HostConfig {
            peer_limit: 1,
            channel_limit: CHANNELS,
            checksum: self.checksum,
            compressor: if self.compress {
                Some(Box::new(RangeCoder::new()))
            } else {
                None
            },
            ..HostConfig::default()
        }
    }
}

fn kind_packet(kind: usize, data: Vec<u8>) -> Packet {
    match kind {
        0 => Packet::reliable(data),
        1 => Packet::unreliable(data),
        _ => Packet::unsequenced(data),
    }
}

fn flags_kind(flags: PacketFlags) -> usize {
    if flags.contains(PacketFlags::RELIABLE) {
        0
    } else if flags.contains(PacketFlags::UNSEQUENCED) {
        2
    } else {
        1
    }
}

/// The next packet from the server; `Err` on disconnect or after `STEP_TIMEOUT`.
fn next_packet<S: EnetSocket>(host: &mut EnetHost<S>) -> Result<(u8, Packet), String> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timed out waiting for an echo".into());
        }
        match host.service(left).map_err(|e| format!("service: {e}"))? {
            Some(Event::Receive {
                channel, packet, ..
            }) => return Ok((channel, packet)),
            Some(Event::Disconnect { data, reason, .. }) => {
                return Err(format!("unexpected disconnect ({reason:?}, data={data})"))
            }
            Some(Event::Connect { .. }) | None => {}
        }
    }
}

/// The byte pattern of the big packet (same formula as the C and Python peers).
pub fn big_payload() -> Vec<u8> {
    (0..BIG_SIZE)
        .map(|i| ((i * 31 + 7) ^ (i >> 11)) as u8)
        .collect()
}

/// Runs the scenario against the echo host at `server`, from a host bound to `bind`.
/// Returns the progress lines (`CONNECTED`, `OK basic 48`, ..., `PASS`).
pub fn run_client(
    bind: SocketAddr,
    server: SocketAddr,
    opts: Options,
) -> Result<Vec<String>, String> {
    let host = EnetHost::bind(bind, opts.client_config()).map_err(|e| e.to_string())?;
    run_client_on(host, server)
}

/// The scenario on an existing client host (any socket: UDP, DTLS), configured like
/// [`Options::client_config`].
pub fn run_client_on<S: EnetSocket>(
    mut host: EnetHost<S>,
    server: SocketAddr,
) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    let peer: PeerId = host
        .connect(server, CHANNELS, CONNECT_DATA)
        .map_err(|e| format!("connect: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("connect timed out".into());
        }
        match host.service(left).map_err(|e| e.to_string())? {
            Some(Event::Connect { peer: p, .. }) if p == peer => break,
            Some(Event::Disconnect {
                peer: p, reason, ..
            }) => {
                let cause = host.take_failure(p).map(|f| f.to_string());
                return Err(format!("connection failed: {reason:?} {cause:?}"));
            }
            _ => {}
        }
    }
    lines.push("CONNECTED".to_string());

    // 1. basic
    let total = CHANNELS * 3 * PER_KIND;
    for ch in 0..CHANNELS {
        for (kind, name) in KINDS.iter().enumerate() {
            for i in 0..PER_KIND {
                let msg = format!("ch={ch} kind={name} i={i}").into_bytes();
                host.send(peer, ch as u8, kind_packet(kind, msg))
                    .map_err(|e| format!("send basic: {e}"))?;
            }
        }
    }
    host.flush().map_err(|e| e.to_string())?;
    let mut seen = std::collections::HashSet::new();
    let mut next_reliable = [0usize; CHANNELS];
    for got in 0..total {
        let (ch, packet) =
            next_packet(&mut host).map_err(|e| format!("basic: {e} after {got} of {total}"))?;
        let text = String::from_utf8(packet.data.clone())
            .map_err(|_| format!("basic: bad echo {:?}", packet.data))?;
        let fields: Vec<&str> = text
            .split(' ')
            .filter_map(|f| f.split_once('=').map(|x| x.1))
            .collect();
        let parsed = match fields.as_slice() {
            [c, k, i] => c
                .parse::<usize>()
                .ok()
                .zip(KINDS.iter().position(|n| n == k))
                .zip(i.parse::<usize>().ok()),
            _ => None,
        };
        let ((pch, kind), i) = parsed.ok_or_else(|| format!("basic: bad echo {text:?}"))?;
        if pch != usize::from(ch) || i >= PER_KIND {
            return Err(format!("basic: echo {text:?} on channel {ch}"));
        }
        if flags_kind(packet.flags) != kind {
            return Err(format!(
                "basic: echo {text:?} came back with flags {:?}",
                packet.flags
            ));
        }
        if !seen.insert((pch, kind, i)) {
            return Err(format!("basic: duplicate echo {text:?}"));
        }
        if kind == 0 {
            if i != next_reliable[pch] {
                return Err(format!("basic: reliable echo {text:?} out of order"));
            }
            next_reliable[pch] += 1;
        }
    }
    lines.push(format!("OK basic {total}"));

    // 2. big
    let big = big_payload();
    host.send(peer, 1, Packet::reliable(big.clone()))
        .map_err(|e| format!("send big: {e}"))?;
    let (ch, packet) = next_packet(&mut host).map_err(|e| format!("big: {e}"))?;
    if ch != 1 || packet.data != big || !packet.flags.contains(PacketFlags::RELIABLE) {
        return Err(format!(
            "big: echo differs (channel {ch}, {} bytes)",
            packet.data.len()
        ));
    }
    lines.push(format!("OK big {BIG_SIZE}"));

    // 3. ordered
    for i in 0..ORDERED_COUNT {
        let mut m = vec![0xA5u8; 16];
        m[..4].copy_from_slice(&i.to_be_bytes());
        host.send(peer, ORDERED_CHANNEL, Packet::reliable(m))
            .map_err(|e| format!("send ordered {i}: {e}"))?;
    }
    for i in 0..ORDERED_COUNT {
        let (ch, packet) =
            next_packet(&mut host).map_err(|e| format!("ordered: {e} after {i} echoes"))?;
        if ch != ORDERED_CHANNEL || packet.data.len() != 16 {
            return Err(format!("ordered: bad echo {i}"));
        }
        let got = u32::from_be_bytes([
            packet.data[0],
            packet.data[1],
            packet.data[2],
            packet.data[3],
        ]);
        if got != i {
            return Err(format!("ordered: expected {i}, got {got}"));
        }
    }
    lines.push(format!("OK ordered {ORDERED_COUNT}"));

    // 4. disconnect
    host.disconnect(peer, DISCONNECT_DATA);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("disconnect not acknowledged".into());
        }
        if let Some(Event::Disconnect { peer: p, .. }) =
            host.service(left).map_err(|e| e.to_string())?
        {
            if p == peer {
                break;
            }
        }
    }
    lines.push("DISCONNECTED".to_string());
    lines.push("PASS".to_string());
    Ok(lines)
}
