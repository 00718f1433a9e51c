//! `TokioEnetHost` against real C ENet 1.3.17 (`libenet-dev`), in both directions:
//!
//! * our `TokioEnetHost` client -> the C echo server (`enet_peer server`),
//! * the C client (`enet_peer client`) -> an echo loop on our `TokioEnetHost`.
//!
//! The C peer is `crates/cli/tests/enet_peers/enet_peer.c`, compiled here with
//! `gcc ... -lenet` into `CARGO_TARGET_TMPDIR`. Our client's scenario: connect with data;
//! reliable, unreliable and unsequenced packets on 3 channels; a 256 KiB fragmented reliable
//! packet; 2 000 ordered reliable messages; disconnect with data. The C client runs its own
//! (larger) scenario: 4 channels, 1 MiB, 10 000 ordered messages.
//!
//! Each direction runs plain and with CRC32 checksums + the range coder together.
//!
//! With `CI=true` a missing gcc or libenet is a failure; otherwise the tests print a loud
//! `SKIP:` line and return.
#![cfg(feature = "tokio")]

mod common;

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use enet_dtls::enet::TokioEnetHost;
use enet_dtls::enet_proto::range_coder::RangeCoder;
use enet_dtls::enet_proto::{DisconnectReason, Event, HostConfig, Packet, PacketFlags, PeerId};

use common::{have_program, require, runtime, Proc};

/// Must match `enet_peer.c`.
const C_CONNECT_DATA: u32 = 0x1234_ABCD;
const C_DISCONNECT_DATA: u32 = 0xD15C0;
const C_BIG_SIZE: usize = 1024 * 1024;
const C_ORDERED_COUNT: usize = 10_000;

/// Our client's scenario.
const CONNECT_DATA: u32 = 0x7040_C0DE;
const DISCONNECT_DATA: u32 = 0xB1E_0001;
const CHANNELS: usize = 3;
const PER_KIND: usize = 4;
const BIG_SIZE: usize = 256 * 1024;
const ORDERED_COUNT: u32 = 2_000;
const ORDERED_CHANNEL: u8 = 2;
const KINDS: [&str; 3] = ["reliable", "unreliable", "unsequenced"];

const STEP: Duration = Duration::from_secs(30);
const STARTUP: Duration = Duration::from_secs(10);
const C_CLIENT_RUN: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// Real-peer plumbing (the same rules as crates/cli/tests/common: in CI a missing peer fails)
// ---------------------------------------------------------------------------------------------

/// The C peer, compiled once per test binary, or `None` (SKIP) outside CI when gcc or
/// libenet-dev is missing.
fn c_peer() -> Option<PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if !require(have_program("gcc"), "`gcc`")
                || !require(
                    Path::new("/usr/include/enet/enet.h").exists(),
                    "libenet-dev (/usr/include/enet/enet.h)",
                )
            {
                return None;
            }
            let source = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../cli/tests/enet_peers/enet_peer.c");
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("enet_peer_tokio-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("create build dir for the C peer");
            let exe = dir.join("enet_peer");
            let out = Command::new("gcc")
                .args(["-O2", "-Wall", "-Wextra", "-o"])
                .arg(&exe)
                .arg(&source)
                .arg("-lenet")
                .output()
                .expect("run gcc");
            assert!(
                out.status.success(),
                "gcc enet_peer.c -lenet failed (is libenet-dev installed?):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(exe)
        })
        .clone()
}

/// Options both ends must agree on (ENet has no negotiation for them).
#[derive(Debug, Clone, Copy)]
struct Options {
    /// CRC32 in every datagram (`host->checksum = enet_crc32`).
    checksum: bool,
    /// The range coder (`enet_host_compress_with_range_coder`).
    compress: bool,
}

const PLAIN: Options = Options {
    checksum: false,
    compress: false,
};
const CHECKSUM_RANGE_CODER: Options = Options {
    checksum: true,
    compress: true,
};

impl Options {
    /// The matching flags of `enet_peer`.
    fn c_flags(self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.checksum {
            v.push("--checksum");
        }
        if self.compress {
            v.push("--compress");
        }
        v
    }

    /// Our host configuration with these options on top of `base`.
    fn config(self, base: HostConfig) -> HostConfig {
        HostConfig {
            checksum: self.checksum,
            compressor: if self.compress {
                Some(Box::new(RangeCoder::new()))
            } else {
                None
            },
            ..base
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

fn big_payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + 7) ^ (i >> 11)) as u8).collect()
}

// ---------------------------------------------------------------------------------------------
// Our TokioEnetHost client -> C echo server
// ---------------------------------------------------------------------------------------------

/// The next event within `STEP`.
async fn next_event(host: &mut TokioEnetHost, what: &str) -> Event {
    tokio::time::timeout(STEP, host.next_event())
        .await
        .unwrap_or_else(|_| panic!("no event ({what}) within {STEP:?}"))
        .expect("next_event")
}

/// The next echoed packet; panics on anything else.
async fn next_packet(host: &mut TokioEnetHost, what: &str) -> (u8, Packet) {
    match next_event(host, what).await {
        Event::Receive {
            channel, packet, ..
        } => (channel, packet),
        other => panic!("{what}: expected an echo, got {other:?}"),
    }
}

async fn tokio_client_scenario(server: SocketAddr, opts: Options) {
    let mut host = TokioEnetHost::bind(
        "127.0.0.1:0",
        opts.config(HostConfig {
            peer_limit: 1,
            channel_limit: CHANNELS,
            ..HostConfig::default()
        }),
    )
    .await
    .expect("bind");
    let peer: PeerId = host
        .connect(server, CHANNELS, CONNECT_DATA)
        .expect("connect");
    match next_event(&mut host, "connect").await {
        Event::Connect { peer: p, .. } => assert_eq!(p, peer),
        other => panic!("expected Connect, got {other:?}"),
    }
    assert_eq!(host.peer(peer).unwrap().channel_count(), CHANNELS);

    // 1. every kind on every channel; each echo comes back on its channel with its kind,
    //    reliable ones in order per channel.
    for ch in 0..CHANNELS {
        for (kind, name) in KINDS.iter().enumerate() {
            for i in 0..PER_KIND {
                let msg = format!("{ch} {name} {i}").into_bytes();
                host.send(peer, ch as u8, kind_packet(kind, msg)).unwrap();
            }
        }
    }
    host.flush().unwrap();
    let mut seen = HashSet::new();
    let mut next_reliable = [0usize; CHANNELS];
    for _ in 0..CHANNELS * KINDS.len() * PER_KIND {
        let (ch, packet) = next_packet(&mut host, "basic").await;
        let text = String::from_utf8(packet.data).expect("utf-8 echo");
        let fields: Vec<&str> = text.split(' ').collect();
        let [pch, name, i] = fields[..] else {
            panic!("bad echo {text:?}")
        };
        let (pch, i): (usize, usize) = (pch.parse().unwrap(), i.parse().unwrap());
        let kind = KINDS.iter().position(|k| *k == name).expect("kind");
        assert_eq!(usize::from(ch), pch, "echo {text:?} on the wrong channel");
        assert_eq!(flags_kind(packet.flags), kind, "echo {text:?} flags");
        assert!(seen.insert((pch, kind, i)), "duplicate echo {text:?}");
        if kind == 0 {
            assert_eq!(i, next_reliable[pch], "reliable echo {text:?} out of order");
            next_reliable[pch] += 1;
        }
    }

    // 2. a 256 KiB reliable packet (fragmented both ways).
    let big = big_payload(BIG_SIZE);
    host.send(peer, 1, Packet::reliable(big.clone())).unwrap();
    let (ch, packet) = next_packet(&mut host, "big").await;
    assert_eq!(ch, 1);
    assert!(packet.flags.contains(PacketFlags::RELIABLE));
    assert_eq!(packet.data.len(), BIG_SIZE);
    assert!(packet.data == big, "the big echo differs");

    // 3. ordered reliable messages.
    for i in 0..ORDERED_COUNT {
        let mut m = vec![0x5Au8; 12];
        m[..4].copy_from_slice(&i.to_be_bytes());
        host.send(peer, ORDERED_CHANNEL, Packet::reliable(m))
            .unwrap();
    }
    for i in 0..ORDERED_COUNT {
        let (ch, packet) = next_packet(&mut host, "ordered").await;
        assert_eq!((ch, packet.data.len()), (ORDERED_CHANNEL, 12));
        let got = u32::from_be_bytes(packet.data[..4].try_into().unwrap());
        assert_eq!(got, i, "ordered echo out of order");
    }

    // 4. disconnect with data.
    host.disconnect(peer, DISCONNECT_DATA);
    match next_event(&mut host, "disconnect").await {
        Event::Disconnect {
            peer: p, reason, ..
        } => assert_eq!((p, reason), (peer, DisconnectReason::Local)),
        other => panic!("expected Disconnect, got {other:?}"),
    }
    assert_eq!(host.host().stats().datagrams_dropped, 0);
}

fn tokio_client_to_c_echo_server(opts: Options) {
    let Some(exe) = c_peer() else { return };
    let mut cmd = Command::new(exe);
    cmd.args(["server", "--port", "0"])
        .args(opts.c_flags())
        .stdin(Stdio::piped()); // the C peer exits when its stdin closes
    let mut server = Proc::spawn("enet_peer server", cmd);
    let line = server.expect_line("LISTENING", STARTUP);
    let addr: SocketAddr = line
        .split_whitespace()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("bad LISTENING line {line:?}"));

    runtime().block_on(tokio_client_scenario(addr, opts));

    let connect = server.expect_line("CONNECT ", STEP);
    assert!(
        connect.ends_with(&format!(" data={CONNECT_DATA}")),
        "{connect}"
    );
    let disconnect = server.expect_line("DISCONNECT ", STEP);
    assert!(
        disconnect.ends_with(&format!(" data={DISCONNECT_DATA}")),
        "{disconnect}"
    );
}

#[test]
fn tokio_client_to_c_echo_server_plain() {
    tokio_client_to_c_echo_server(PLAIN);
}

#[test]
fn tokio_client_to_c_echo_server_checksum_range_coder() {
    tokio_client_to_c_echo_server(CHECKSUM_RANGE_CODER);
}

// ---------------------------------------------------------------------------------------------
// C client -> our TokioEnetHost echo loop
// ---------------------------------------------------------------------------------------------

/// What the echo loop saw.
#[derive(Debug)]
struct EchoLog {
    connect_data: Vec<u32>,
    disconnect: Option<(u32, DisconnectReason)>,
    echoed: usize,
    /// Datagrams our host dropped as malformed, when the peer disconnected.
    datagrams_dropped: u64,
}

/// Echoes every packet back on its channel with its reliability flags until the first peer
/// disconnects (or `C_CLIENT_RUN` passes).
async fn echo_loop(socket: UdpSocket, opts: Options) -> EchoLog {
    let mut host =
        TokioEnetHost::from_std(socket, opts.config(HostConfig::default())).expect("host");
    let mut log = EchoLog {
        connect_data: Vec::new(),
        disconnect: None,
        echoed: 0,
        datagrams_dropped: u64::MAX,
    };
    let keep = PacketFlags::RELIABLE | PacketFlags::UNSEQUENCED | PacketFlags::UNRELIABLE_FRAGMENT;
    let deadline = tokio::time::Instant::now() + C_CLIENT_RUN;
    loop {
        let ev = match tokio::time::timeout_at(deadline, host.next_event()).await {
            Ok(ev) => ev.expect("next_event"),
            Err(_) => return log,
        };
        match ev {
            Event::Connect { data, .. } => log.connect_data.push(data),
            Event::Receive {
                peer,
                channel,
                packet,
            } => {
                let flags = PacketFlags::from_bits(packet.flags.bits() & keep.bits());
                host.send(peer, channel, Packet::new(packet.data, flags))
                    .expect("echo send");
                log.echoed += 1;
            }
            Event::Disconnect { data, reason, .. } => {
                log.disconnect = Some((data, reason));
                log.datagrams_dropped = host.host().stats().datagrams_dropped;
                return log;
            }
        }
    }
}

fn c_client_to_tokio_echo(opts: Options) {
    let Some(exe) = c_peer() else { return };
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let log = runtime().block_on(echo_loop(socket, opts));
        let _ = tx.send(log);
    });

    let mut cmd = Command::new(exe);
    cmd.args(["client", &addr.ip().to_string(), &addr.port().to_string()])
        .args(opts.c_flags())
        .stdin(Stdio::piped()); // the C peer exits when its stdin closes
    let mut client = Proc::spawn("enet_peer client", cmd);
    for step in [
        "CONNECTED channels=4".to_string(),
        "OK basic 48".to_string(),
        format!("OK big {C_BIG_SIZE}"),
        format!("OK ordered {C_ORDERED_COUNT}"),
        "DISCONNECTED".to_string(),
        "PASS".to_string(),
    ] {
        client.expect_line(&step, C_CLIENT_RUN);
    }
    assert_eq!(client.wait(STEP), Some(0), "{:?}", client.seen);

    let log = rx.recv_timeout(STEP).expect("the echo loop ended");
    assert_eq!(log.connect_data, [C_CONNECT_DATA]);
    assert_eq!(
        log.disconnect,
        Some((C_DISCONNECT_DATA, DisconnectReason::Remote))
    );
    assert_eq!(log.echoed, 48 + 1 + C_ORDERED_COUNT);
    assert_eq!(log.datagrams_dropped, 0);
}

#[test]
fn c_client_to_tokio_echo_plain() {
    c_client_to_tokio_echo(PLAIN);
}

#[test]
fn c_client_to_tokio_echo_checksum_range_coder() {
    c_client_to_tokio_echo(CHECKSUM_RANGE_CODER);
}
