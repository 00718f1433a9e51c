//! ENet-level interop with real Godot 3.2.3 (`godot3-server`, whose `NetworkedMultiplayerENet`
//! runs on the system C ENet 1.3.17), in both directions, plain and with the range coder
//! (Godot's `compression_mode` 1 = RANGE_CODER, our `HostConfig::compressor` = `RangeCoder`).
//!
//! We have no multiplayer layer yet, so these tests speak Godot's packets by hand at the raw
//! byte level (Godot 3.2's `NetworkedMultiplayerENet` and `MultiplayerAPI`): every packet on channel >= 1 is
//! `u32 source id | i32 target id` (little-endian) followed by a MultiplayerAPI packet
//! (`0` REMOTE_CALL, `2` SIMPLIFY_PATH, `3` CONFIRM_PATH, ...).
//!
//! * Godot `enet_client.gd` -> our library `EnetHost` as the server (a plain loop in the test),
//!   which answers like a Godot server would (SIMPLIFY_PATH, CONFIRM_PATH, `answer` RPC).
//! * our `EnetHost` client -> Godot `enet_server.gd`, sending a hand-made `Lobby.greet("rust", 7)`
//!   RPC that Godot executes and answers.
//! * our host disconnecting a Godot client (Godot reports `server_disconnected`).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{free_udp_port, godot, require_program, Proc};
use enet_dtls::enet::EnetHost;
use enet_proto::range_coder::RangeCoder;
use enet_proto::{DisconnectReason, Event, HostConfig, Packet, PacketFlags, PeerId};

/// How long one ENet step (connect, an RPC, a disconnect) may take before the test fails.
const STEP: Duration = Duration::from_secs(15);
/// Godot's channels: 1 = SYSCH_RELIABLE (RPCs), 2 = SYSCH_UNRELIABLE.
const CH_RELIABLE: u8 = 1;
const CH_UNRELIABLE: u8 = 2;
/// Godot's server peer id.
const SERVER_ID: u32 = 1;
/// The unique id our client announces in its CONNECT data.
const OUR_ID: u32 = 4242;
/// The path id we use for `/root/Lobby` in our SIMPLIFY_PATH.
///
/// The node and its methods are the ones `fixtures/godot/lobby.gd` defines.
const OUR_PATH_ID: u32 = 1;

// ---------------------------------------------------------------------------------------------
// Godot 3.2 wire format (hand-made; little-endian, 4-byte aligned)
// ---------------------------------------------------------------------------------------------

const CMD_REMOTE_CALL: u8 = 0;
const CMD_SIMPLIFY_PATH: u8 = 2;
const CMD_CONFIRM_PATH: u8 = 3;
const VARIANT_INT: u32 = 2;
const VARIANT_STRING: u32 = 4;
const VARIANT_FLAG_64: u32 = 1 << 16;
const PATH_INLINE: u32 = 0x8000_0000;

/// A decoded Variant argument (only the types these fixtures use).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Arg {
    Int(i64),
    Str(String),
}

/// A decoded MultiplayerAPI packet.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mp {
    SimplifyPath {
        id: u32,
        path: String,
    },
    ConfirmPath {
        path: String,
    },
    RemoteCall {
        /// The cached path id, or `None` when the path is appended inline.
        path_id: Option<u32>,
        /// The inline path, if any.
        path: Option<String>,
        method: String,
        args: Vec<Arg>,
    },
}

/// A decoded Godot application packet (channel >= 1).
#[derive(Debug, Clone, PartialEq, Eq)]
struct GodotPacket {
    source: u32,
    target: i32,
    mp: Mp,
}

fn cstring(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn v_string(s: &str) -> Vec<u8> {
    let mut v = VARIANT_STRING.to_le_bytes().to_vec();
    v.extend_from_slice(&u32::try_from(s.len()).unwrap().to_le_bytes());
    v.extend_from_slice(s.as_bytes());
    v.resize(v.len() + (4 - s.len() % 4) % 4, 0);
    v
}

fn v_int(i: i32) -> Vec<u8> {
    let mut v = VARIANT_INT.to_le_bytes().to_vec();
    v.extend_from_slice(&i.to_le_bytes());
    v
}

/// `u32 source | i32 target | payload`.
fn with_header(source: u32, target: i32, payload: &[u8]) -> Vec<u8> {
    let mut v = source.to_le_bytes().to_vec();
    v.extend_from_slice(&target.to_le_bytes());
    v.extend_from_slice(payload);
    v
}

fn simplify_path(id: u32, path: &str) -> Vec<u8> {
    let mut v = vec![CMD_SIMPLIFY_PATH];
    v.extend_from_slice(&id.to_le_bytes());
    v.extend(cstring(path));
    v
}

fn confirm_path(path: &str) -> Vec<u8> {
    let mut v = vec![CMD_CONFIRM_PATH];
    v.extend(cstring(path));
    v
}

/// REMOTE_CALL with the node path appended (a path the receiver has not confirmed).
fn remote_call_inline(method: &str, args: &[Vec<u8>], path: &str) -> Vec<u8> {
    let mut body = cstring(method);
    body.push(u8::try_from(args.len()).unwrap());
    for a in args {
        body.extend_from_slice(a);
    }
    let offset = 1 + 4 + u32::try_from(body.len()).unwrap();
    let mut v = vec![CMD_REMOTE_CALL];
    v.extend_from_slice(&(PATH_INLINE | offset).to_le_bytes());
    v.extend(body);
    v.extend(cstring(path));
    v
}

/// A little-endian reader that reports malformed input as `Err`.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| format!("truncated at byte {} (+{n})", self.pos))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn cstring(&mut self) -> Result<String, String> {
        let rest = &self.data[self.pos..];
        let nul = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| format!("no NUL after byte {}", self.pos))?;
        let s = String::from_utf8(rest[..nul].to_vec()).map_err(|e| e.to_string())?;
        self.pos += nul + 1;
        Ok(s)
    }

    fn variant(&mut self) -> Result<Arg, String> {
        let header = self.u32()?;
        match (header & 0xFF, header & VARIANT_FLAG_64 != 0) {
            (VARIANT_INT, false) => Ok(Arg::Int(i64::from(self.u32()? as i32))),
            (VARIANT_INT, true) => Ok(Arg::Int(i64::from_le_bytes(
                self.take(8)?.try_into().unwrap(),
            ))),
            (VARIANT_STRING, _) => {
                let len = self.u32()? as usize;
                let s = String::from_utf8(self.take(len)?.to_vec()).map_err(|e| e.to_string())?;
                self.take((4 - len % 4) % 4)?;
                Ok(Arg::Str(s))
            }
            _ => Err(format!("unexpected Variant header {header:#x}")),
        }
    }

    fn at_end(&self) -> Result<(), String> {
        if self.pos == self.data.len() {
            Ok(())
        } else {
            Err(format!("{} trailing bytes", self.data.len() - self.pos))
        }
    }
}

/// Decodes a Godot application packet (8-byte header + MultiplayerAPI packet).
fn decode(data: &[u8]) -> Result<GodotPacket, String> {
    let mut r = Reader { data, pos: 0 };
    let source = r.u32()?;
    let target = r.u32()? as i32;
    let mp = match r.u8()? {
        CMD_SIMPLIFY_PATH => {
            let id = r.u32()?;
            let path = r.cstring()?;
            Mp::SimplifyPath { id, path }
        }
        CMD_CONFIRM_PATH => Mp::ConfirmPath { path: r.cstring()? },
        CMD_REMOTE_CALL => {
            let target_field = r.u32()?;
            let method = r.cstring()?;
            let argc = r.u8()?;
            let args = (0..argc).map(|_| r.variant()).collect::<Result<_, _>>()?;
            let (path_id, path) = if target_field & PATH_INLINE != 0 {
                // The offset is counted from the MultiplayerAPI packet, after the 8-byte header.
                let offset = (target_field & !PATH_INLINE) as usize;
                if offset + 8 != r.pos {
                    return Err(format!(
                        "inline path offset {offset} does not follow the arguments (at {})",
                        r.pos - 8
                    ));
                }
                (None, Some(r.cstring()?))
            } else {
                (Some(target_field), None)
            };
            Mp::RemoteCall {
                path_id,
                path,
                method,
                args,
            }
        }
        other => return Err(format!("unexpected MultiplayerAPI command {other}")),
    };
    r.at_end()?;
    Ok(GodotPacket { source, target, mp })
}

/// Decodes `data`, panicking with the bytes when it is not a well-formed Godot packet.
fn decode_or_panic(channel: u8, data: &[u8]) -> GodotPacket {
    decode(data)
        .unwrap_or_else(|e| panic!("channel {channel}: bad Godot packet ({e}): {data:02x?}"))
}

// ---------------------------------------------------------------------------------------------
// Driving our host
// ---------------------------------------------------------------------------------------------

fn config(compress: bool) -> HostConfig {
    HostConfig {
        compressor: if compress {
            Some(Box::new(RangeCoder::new()))
        } else {
            None
        },
        ..HostConfig::default()
    }
}

/// The next event within `STEP`; panics (showing Godot's output) otherwise.
fn next_event(host: &mut EnetHost, godot: &mut Proc, what: &str) -> Event {
    let deadline = Instant::now() + STEP;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            panic!(
                "no ENet event ({what}) within {STEP:?}; Godot printed:\n{}",
                godot.drain().join("\n")
            );
        }
        if let Some(ev) = host.service(left).expect("service") {
            return ev;
        }
    }
}

fn compression_arg(compress: bool) -> String {
    format!("compression={}", u8::from(compress))
}

// ---------------------------------------------------------------------------------------------
// a) Godot client -> our host as the server
// ---------------------------------------------------------------------------------------------

fn godot_client_to_our_server(compress: bool) {
    if !require_program("godot3-server") {
        return;
    }
    let mut host = EnetHost::bind("127.0.0.1:0", config(compress)).expect("bind");
    let port = host.local_addr().unwrap().port();
    let mut client = Proc::spawn(
        "enet_client.gd",
        godot(
            "enet_client.gd",
            &[
                "host=127.0.0.1".into(),
                format!("port={port}"),
                "timeout=15".into(),
                compression_arg(compress),
            ],
        ),
    );

    // CONNECT: data = the client's random 31-bit unique id, 3 channels.
    let (peer, godot_id) = match next_event(&mut host, &mut client, "connect") {
        Event::Connect { peer, data, .. } => (peer, data),
        other => panic!("expected Connect, got {other:?}"),
    };
    assert!(
        (2..=0x7FFF_FFFF).contains(&godot_id),
        "Godot's unique id {godot_id} is not a 31-bit id >= 2"
    );
    assert_eq!(host.peer(peer).expect("peer").channel_count(), 3);
    let line = client.expect_line("CONNECTED_TO_SERVER", STEP);
    assert_eq!(
        line,
        format!("CONNECTED_TO_SERVER my_id={godot_id}"),
        "connect data is not Godot's unique id"
    );

    // Like a Godot server: announce our path for /root/Lobby (the client must confirm it).
    host.send(
        peer,
        CH_RELIABLE,
        Packet::reliable(with_header(
            SERVER_ID,
            godot_id as i32,
            &simplify_path(OUR_PATH_ID, "Lobby"),
        )),
    )
    .unwrap();

    // The client's RPCs: SIMPLIFY_PATH, then greet / to_server / ping_all, all on channel 1,
    // reliable, from its id to the server (1). We answer the SIMPLIFY_PATH with CONFIRM_PATH
    // and greet with `answer`, as enet_server.gd does; the client then lingers and disconnects.
    let mut client_path_id = None;
    let mut calls = Vec::new();
    let mut confirmed_by_client = false;
    let (disconnect_data, reason) = loop {
        match next_event(&mut host, &mut client, "RPCs or disconnect") {
            Event::Receive {
                peer: p,
                channel,
                packet,
            } => {
                assert_eq!(p, peer);
                assert_eq!(channel, CH_RELIABLE, "Godot's RPCs use SYSCH_RELIABLE");
                assert!(packet.flags.contains(PacketFlags::RELIABLE));
                let gp = decode_or_panic(channel, &packet.data);
                assert_eq!(gp.source, godot_id, "source id in {gp:?}");
                assert_eq!(gp.target, SERVER_ID as i32, "target in {gp:?}");
                match gp.mp {
                    Mp::SimplifyPath { id, path } => {
                        assert!(calls.is_empty(), "SIMPLIFY_PATH must come first");
                        assert_eq!(path, "Lobby");
                        client_path_id = Some(id);
                        host.send(
                            peer,
                            CH_RELIABLE,
                            Packet::reliable(with_header(
                                SERVER_ID,
                                godot_id as i32,
                                &confirm_path("Lobby"),
                            )),
                        )
                        .unwrap();
                    }
                    Mp::ConfirmPath { path } => {
                        assert_eq!(path, "Lobby");
                        confirmed_by_client = true;
                    }
                    Mp::RemoteCall {
                        path_id,
                        path,
                        method,
                        args,
                    } => {
                        assert!(client_path_id.is_some(), "RPC before SIMPLIFY_PATH");
                        // Either the path inline or the id the client announced.
                        match (path_id, path) {
                            (None, Some(path)) => assert_eq!(path, "Lobby"),
                            (Some(id), None) => assert_eq!(Some(id), client_path_id),
                            other => panic!("bad RPC target {other:?}"),
                        }
                        if method == "greet" {
                            assert_eq!(args, [Arg::Str("client".into()), Arg::Int(2)]);
                            let reply = remote_call_inline(
                                "answer",
                                &[v_string("hi rust"), v_int(3)],
                                "Lobby",
                            );
                            host.send(
                                peer,
                                CH_RELIABLE,
                                Packet::reliable(with_header(SERVER_ID, godot_id as i32, &reply)),
                            )
                            .unwrap();
                        }
                        calls.push((method, args));
                    }
                }
            }
            Event::Disconnect {
                peer: p,
                data,
                reason,
                ..
            } => {
                assert_eq!(p, peer);
                break (data, reason);
            }
            Event::Connect { .. } => panic!("a second connect"),
        }
    };

    // What Godot really does on close_connection(): enet_peer_disconnect_now(peer, unique_id),
    // an unsequenced DISCONNECT carrying its id (the last datagram of the capture in
    // enet-proto's golden test).
    assert_eq!(reason, DisconnectReason::Remote);
    assert_eq!(disconnect_data, godot_id, "disconnect data = Godot's id");
    assert_eq!(
        calls,
        [
            (
                "greet".to_string(),
                vec![Arg::Str("client".into()), Arg::Int(2)]
            ),
            ("to_server".to_string(), vec![Arg::Str("m".into())]),
            ("ping_all".to_string(), vec![Arg::Int(43)]),
        ],
        "the client's RPCs, in order"
    );
    assert!(
        confirmed_by_client,
        "the client never confirmed our SIMPLIFY_PATH"
    );
    assert_eq!(
        host.host().stats().datagrams_dropped,
        0,
        "datagrams from Godot dropped as malformed"
    );

    // Godot executed our hand-made answer and exited cleanly.
    client.expect_line(&format!("RPC answer[hi rust, 3] from={SERVER_ID}"), STEP);
    let exit = client.expect_line("ENET_CLIENT_EXIT", STEP);
    assert!(exit.starts_with("ENET_CLIENT_EXIT ok "), "{exit}");
    assert_eq!(client.wait(STEP), Some(0), "{:?}", client.seen);
}

#[test]
fn godot_client_to_our_host() {
    godot_client_to_our_server(false);
}

#[test]
fn godot_client_to_our_host_range_coder() {
    godot_client_to_our_server(true);
}

// ---------------------------------------------------------------------------------------------
// b) our client -> Godot enet_server.gd
// ---------------------------------------------------------------------------------------------

fn our_client_to_godot_server(compress: bool) {
    if !require_program("godot3-server") {
        return;
    }
    let port = free_udp_port();
    let mut server = Proc::spawn(
        "enet_server.gd",
        godot(
            "enet_server.gd",
            &[
                format!("port={port}"),
                "once=1".into(),
                "timeout=30".into(),
                compression_arg(compress),
            ],
        ),
    );
    let listening = server.expect_line("ENET_SERVER_LISTENING", STEP);
    assert!(
        listening.contains(" err=0 ") && listening.contains(&compression_arg(compress)),
        "{listening}"
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    let mut host = EnetHost::bind(
        "127.0.0.1:0",
        HostConfig {
            peer_limit: 1,
            channel_limit: 3,
            ..config(compress)
        },
    )
    .expect("bind");
    let our_addr = host.local_addr().unwrap();
    let peer: PeerId = host.connect(addr, 3, OUR_ID).expect("connect");
    match next_event(&mut host, &mut server, "connect") {
        Event::Connect { peer: p, .. } => assert_eq!(p, peer),
        other => panic!("expected Connect, got {other:?}"),
    }
    assert_eq!(host.peer(peer).unwrap().channel_count(), 3);
    let line = server.expect_line("PEER_CONNECTED", STEP);
    assert_eq!(line, format!("PEER_CONNECTED id={OUR_ID} addr={our_addr}"));

    // Godot's greeting: SIMPLIFY_PATH, then greet("server", 1), ping_all(42) and
    // to_clients("p") on channel 1 (reliable) and fire(7) on channel 2 (unsequenced, so it may
    // be lost; not required). We confirm the path like a Godot client would.
    let mut server_path_id = None;
    let mut reliable_calls = Vec::new();
    let mut unreliable_calls = Vec::new();
    let expected_greeting = [
        (
            "greet".to_string(),
            vec![Arg::Str("server".into()), Arg::Int(1)],
        ),
        ("ping_all".to_string(), vec![Arg::Int(42)]),
        ("to_clients".to_string(), vec![Arg::Str("p".into())]),
    ];
    let check_call = |server_path_id: Option<u32>, gp: &GodotPacket| match &gp.mp {
        Mp::RemoteCall { path_id, path, .. } => match (path_id, path) {
            (None, Some(path)) => assert_eq!(path, "Lobby"),
            (Some(id), None) => assert_eq!(Some(*id), server_path_id),
            other => panic!("bad RPC target {other:?}"),
        },
        other => panic!("expected a remote call, got {other:?}"),
    };
    while reliable_calls.len() < expected_greeting.len() {
        match next_event(&mut host, &mut server, "Godot's RPCs") {
            Event::Receive {
                channel, packet, ..
            } => {
                let gp = decode_or_panic(channel, &packet.data);
                assert_eq!(gp.source, SERVER_ID, "{gp:?}");
                assert_eq!(gp.target, OUR_ID as i32, "{gp:?}");
                match (&gp.mp, channel) {
                    (Mp::SimplifyPath { id, path }, CH_RELIABLE) => {
                        assert_eq!(path, "Lobby");
                        assert!(reliable_calls.is_empty(), "SIMPLIFY_PATH must come first");
                        server_path_id = Some(*id);
                        host.send(
                            peer,
                            CH_RELIABLE,
                            Packet::reliable(with_header(
                                OUR_ID,
                                SERVER_ID as i32,
                                &confirm_path("Lobby"),
                            )),
                        )
                        .unwrap();
                    }
                    (Mp::RemoteCall { method, args, .. }, CH_RELIABLE) => {
                        assert!(packet.flags.contains(PacketFlags::RELIABLE));
                        check_call(server_path_id, &gp);
                        reliable_calls.push((method.clone(), args.clone()));
                    }
                    (Mp::RemoteCall { method, args, .. }, CH_UNRELIABLE) => {
                        assert!(!packet.flags.contains(PacketFlags::RELIABLE));
                        check_call(server_path_id, &gp);
                        unreliable_calls.push((method.clone(), args.clone()));
                    }
                    other => panic!("unexpected packet {other:?}"),
                }
            }
            other => panic!("expected Godot's RPCs, got {other:?}"),
        }
    }
    assert_eq!(reliable_calls, expected_greeting);
    assert!(server_path_id.is_some(), "no SIMPLIFY_PATH from Godot");

    // Our hand-made RPC: SIMPLIFY_PATH + Lobby.greet("rust", 7)
    // with the path inline, from OUR_ID to the server.
    host.send(
        peer,
        CH_RELIABLE,
        Packet::reliable(with_header(
            OUR_ID,
            SERVER_ID as i32,
            &simplify_path(OUR_PATH_ID, "Lobby"),
        )),
    )
    .unwrap();
    let call = remote_call_inline("greet", &[v_string("rust"), v_int(7)], "Lobby");
    host.send(
        peer,
        CH_RELIABLE,
        Packet::reliable(with_header(OUR_ID, SERVER_ID as i32, &call)),
    )
    .unwrap();

    // Godot confirms our path and answers greet with answer("hi rust", 8).
    let mut confirmed = false;
    let reply_args = loop {
        match next_event(&mut host, &mut server, "CONFIRM_PATH and reply") {
            Event::Receive {
                channel, packet, ..
            } => {
                let gp = decode_or_panic(channel, &packet.data);
                assert_eq!((gp.source, gp.target), (SERVER_ID, OUR_ID as i32));
                match &gp.mp {
                    Mp::ConfirmPath { path } => {
                        assert_eq!(path, "Lobby");
                        assert_eq!(channel, CH_RELIABLE);
                        confirmed = true;
                    }
                    Mp::RemoteCall { method, args, .. } if method == "answer" => {
                        assert_eq!(channel, CH_RELIABLE);
                        check_call(server_path_id, &gp);
                        let name = b"answer\0";
                        assert!(packet.data.windows(name.len()).any(|w| w == name));
                        break args.clone();
                    }
                    // The unsequenced `fire` may arrive late.
                    Mp::RemoteCall { method, args, .. } if channel == CH_UNRELIABLE => {
                        unreliable_calls.push((method.clone(), args.clone()));
                    }
                    other => panic!("unexpected {other:?} on channel {channel}"),
                }
            }
            other => panic!("expected Godot's reply, got {other:?}"),
        }
    };
    assert_eq!(reply_args, [Arg::Str("hi rust".into()), Arg::Int(8)]);
    assert!(confirmed, "Godot did not confirm our SIMPLIFY_PATH");
    for (m, args) in &unreliable_calls {
        assert_eq!((m.as_str(), args.as_slice()), ("fire", &[Arg::Int(7)][..]));
    }
    server.expect_line(
        &format!("RPC greet[rust, 7] from={OUR_ID} on={SERVER_ID}"),
        STEP,
    );

    // Disconnect with data; Godot drops the peer and (once=1) exits.
    host.disconnect(peer, OUR_ID);
    loop {
        match next_event(&mut host, &mut server, "disconnect") {
            Event::Disconnect {
                peer: p, reason, ..
            } => {
                assert_eq!(p, peer);
                assert_eq!(reason, DisconnectReason::Local);
                break;
            }
            // Late unsequenced packets are allowed before the disconnect completes.
            Event::Receive { channel, .. } if channel == CH_UNRELIABLE => {}
            other => panic!("expected our disconnect to complete, got {other:?}"),
        }
    }
    assert_eq!(
        host.host().stats().datagrams_dropped,
        0,
        "datagrams from Godot dropped as malformed"
    );
    server.expect_line(&format!("PEER_DISCONNECTED id={OUR_ID}"), STEP);
    server.expect_line("ENET_SERVER_EXIT reason=once", STEP);
    assert_eq!(server.wait(STEP), Some(0), "{:?}", server.seen);
}

#[test]
fn our_client_to_godot_server_plain() {
    our_client_to_godot_server(false);
}

#[test]
fn our_client_to_godot_server_range_coder() {
    our_client_to_godot_server(true);
}

/// Our server disconnects the Godot client (with data) as soon as its first RPC arrives: our
/// DISCONNECT is acknowledged (Event::Disconnect, reason Local) and Godot reports
/// `server_disconnected`.
#[test]
fn our_host_disconnects_godot_client() {
    if !require_program("godot3-server") {
        return;
    }
    let mut host = EnetHost::bind("127.0.0.1:0", config(false)).expect("bind");
    let port = host.local_addr().unwrap().port();
    let mut client = Proc::spawn(
        "enet_client.gd",
        godot(
            "enet_client.gd",
            &[
                "host=127.0.0.1".into(),
                format!("port={port}"),
                "timeout=15".into(),
            ],
        ),
    );
    let (peer, godot_id) = match next_event(&mut host, &mut client, "connect") {
        Event::Connect { peer, data, .. } => (peer, data),
        other => panic!("expected Connect, got {other:?}"),
    };
    match next_event(&mut host, &mut client, "first RPC") {
        Event::Receive {
            channel, packet, ..
        } => {
            let gp = decode_or_panic(channel, &packet.data);
            assert_eq!((gp.source, gp.target), (godot_id, SERVER_ID as i32));
        }
        other => panic!("expected the client's first RPC, got {other:?}"),
    }
    host.disconnect(peer, 77);
    loop {
        match next_event(&mut host, &mut client, "our disconnect") {
            Event::Disconnect {
                peer: p, reason, ..
            } => {
                assert_eq!((p, reason), (peer, DisconnectReason::Local));
                break;
            }
            // The client's remaining RPCs may still arrive before the acknowledgement.
            Event::Receive { channel, .. } => assert_eq!(channel, CH_RELIABLE),
            other => panic!("unexpected {other:?}"),
        }
    }
    let exit = client.expect_line("ENET_CLIENT_EXIT", STEP);
    assert!(
        exit.starts_with("ENET_CLIENT_EXIT server_disconnected "),
        "{exit}"
    );
    assert_eq!(client.wait(STEP), Some(1), "{:?}", client.seen);
}
