//! The multiplayer peer against real Godot 3.2.3 (`godot3-server`), plaintext, both roles,
//! every compression mode: the fixtures `fixtures/godot/mp_clients.gd` and
//! `mp_servers.gd` run several `NetworkedMultiplayerENet` peers in one Godot process through
//! the raw packet API, remote-controlled by `cmd:` packets, and print one line per event.
//!
//! Godot 3.2.3 as packaged by Debian ignores `use_dtls` (it links the system ENet, without
//! Godot's DTLS socket layer), so Godot's DTLS-enabled ENet is rebuilt from Godot's own DTLS
//! parts: `dtls_tunnel.gd` (a Godot `PacketPeerDTLS` client in front of a Godot ENet client,
//! against our `use_dtls` server) and `dtls_server_tunnel.gd` (Godot's `DTLSServer` in front of
//! a Godot ENet server, for our `use_dtls` clients). DTLS between our own peers is in
//! `multiplayer_dtls.rs`.
//!
//! With `CI=true` a missing `godot3-server` is a failure; otherwise the tests print a loud
//! SKIP line.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use enet_dtls::enet::{EnetHost, EnetSocket, UdpEnetSocket};
use enet_dtls::enet_proto::Transmit;
use enet_dtls::multiplayer::{
    CompressionMode, ConnectionStatus, MultiplayerEvent, MultiplayerPeer, ReceivedPacket, Target,
    TransferMode, SERVER_ID,
};
use enet_dtls::{HostConfig, Packet};

use common::{free_port, have_godot, packets, Proc};

/// Stops a hung test; never an expectation on speed.
const DEADLINE: Duration = Duration::from_secs(40);

/// Datagrams with ENet's "compressed" header flag (0x4000), sent and received.
#[derive(Debug, Default)]
struct Compressed {
    sent: AtomicU64,
    received: AtomicU64,
}

/// A UDP socket that counts the compressed ENet datagrams going through it.
#[derive(Debug)]
struct Counting {
    udp: UdpEnetSocket,
    counts: Arc<Compressed>,
}

fn compressed(datagram: &[u8]) -> bool {
    datagram.first().is_some_and(|b| b & 0x40 != 0)
}

impl EnetSocket for Counting {
    enet_dtls::forward_enet_socket!(field: udp, except: [send_batch, recv_batch]);

    fn send_batch(&mut self, now: Instant, batch: &[Transmit]) -> std::io::Result<usize> {
        let n = batch.iter().filter(|t| compressed(&t.data)).count() as u64;
        self.counts.sent.fetch_add(n, Ordering::Relaxed);
        self.udp.send_batch(now, batch)
    }

    fn recv_batch(
        &mut self,
        now: Instant,
        sink: &mut dyn FnMut(SocketAddr, &[u8]),
    ) -> std::io::Result<usize> {
        let counts = &self.counts;
        self.udp.recv_batch(now, &mut |from, data| {
            if compressed(data) {
                counts.received.fetch_add(1, Ordering::Relaxed);
            }
            sink(from, data)
        })
    }
}

/// A socket on 127.0.0.1 that counts compressed datagrams, and its counters.
fn counting_socket() -> (Counting, Arc<Compressed>) {
    let counts = Arc::new(Compressed::default());
    let udp = UdpEnetSocket::bind("127.0.0.1:0").unwrap();
    (
        Counting {
            udp,
            counts: counts.clone(),
        },
        counts,
    )
}

/// A compressible text of about 700 bytes (one datagram, not fragmented).
fn big_text(tag: &str) -> String {
    format!("{tag}:{}", "the same words again and again ".repeat(22))
}

/// Polls our peers and reads Godot's lines until `done`; panics after [`DEADLINE`] with both.
fn pump<S: EnetSocket>(
    peers: &mut [&mut MultiplayerPeer<S>],
    log: &mut Vec<Vec<MultiplayerEvent>>,
    godot: &mut Proc,
    mut done: impl FnMut(&[Vec<MultiplayerEvent>], &Proc) -> bool,
) {
    let give_up = Instant::now() + DEADLINE;
    loop {
        common::poll_all(peers, log);
        godot.drain();
        if done(log, godot) {
            return;
        }
        assert!(
            Instant::now() < give_up,
            "timed out.\nGodot:\n{}\nours: {log:#?}",
            godot.seen.join("\n")
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn has_packet(events: &[MultiplayerEvent], from: u32, text: &str) -> Option<ReceivedPacket> {
    packets(events)
        .into_iter()
        .find(|p| p.from == from && p.data == text.as_bytes())
        .cloned()
}

/// The ENet channel Godot uses for `mode` by default.
fn channel_of(mode: TransferMode) -> u8 {
    match mode {
        TransferMode::Reliable => 1,
        _ => 2,
    }
}

/// A Godot `cmd:send` command.
fn cmd_send(
    target: i64,
    mode: TransferMode,
    channel: i32,
    always_ordered: bool,
    text: &str,
) -> Vec<u8> {
    format!(
        "cmd:send {target} {} {channel} {} {text}",
        mode as i64,
        u8::from(always_ordered)
    )
    .into_bytes()
}

/// Sends `command` (a `cmd:` packet) reliably to the Godot server.
fn command_server(peer: &mut MultiplayerPeer, command: &[u8]) {
    peer.send(
        Target::Peer(SERVER_ID),
        TransferMode::Reliable,
        None,
        command,
    )
    .unwrap();
}

/// Our client `a` (id `a_id`) on a Godot server sends, in every transfer mode, `to-godot
/// <mode>` to the server, `a-to-b <mode>` to client `b_id` (Godot relays it), and a command
/// asking Godot to send `gd <mode>` back to `a` in that mode.
fn send_in_every_mode(a: &mut MultiplayerPeer, a_id: u32, b_id: u32) {
    for mode in TransferMode::ALL {
        a.send(
            Target::Peer(SERVER_ID),
            mode,
            None,
            format!("to-godot {mode:?}").as_bytes(),
        )
        .unwrap();
        a.send(
            Target::Peer(b_id),
            mode,
            None,
            format!("a-to-b {mode:?}").as_bytes(),
        )
        .unwrap();
        let cmd = cmd_send(i64::from(a_id), mode, -1, false, &format!("gd {mode:?}"));
        command_server(a, &cmd);
    }
}

// ---------------------------------------------------------------------------------------------
// Godot clients, our server
// ---------------------------------------------------------------------------------------------

/// Five servers of ours (one per compression mode), two Godot clients on each, plus a full
/// server and a server refusing new connections, all clients in one Godot process:
///
/// * the clients connect and each sees the other (our ADD_PEER); our server sees both;
///   the unreliable traffic below happens right after (ENet's throttle drops nothing in a
///   connection's first seconds on loopback, so the test can expect every packet);
/// * our server's packets arrive in every transfer mode on Godot's channels, also on a chosen
///   transfer channel;
/// * a Godot client's packets reach our server in every transfer mode (mode and channel read
///   back from the ENet flags), with `always_ordered` too, and are relayed to the other client
///   (by id, broadcast; not to the excluded id of an all-but-one target);
/// * a spoofed source id (a raw ENet client claiming a Godot client's id) is dropped;
/// * max_clients holds and a refusing server lets nobody in (refused at the ENet level);
/// * a client that leaves is announced (REMOVE_PEER), and a disconnected client sees it.
#[test]
fn godot_clients_on_our_servers_in_every_compression_mode() {
    if !have_godot() {
        return;
    }
    let mut counts = Vec::new();
    let mut servers: Vec<MultiplayerPeer<Counting>> = CompressionMode::ALL
        .into_iter()
        .map(|mode| {
            let (socket, c) = counting_socket();
            counts.push(c);
            MultiplayerPeer::server(0)
                .compression(mode)
                .max_clients(4)
                .create_with_socket(socket)
                .unwrap()
        })
        .collect();
    let full = MultiplayerPeer::server(0)
        .max_clients(1)
        .create_with_socket(counting_socket().0)
        .unwrap();
    let refusing = MultiplayerPeer::server(0)
        .refuse_new_connections(true)
        .create_with_socket(counting_socket().0)
        .unwrap();
    let mut specs: Vec<String> = Vec::new();
    for (m, s) in servers.iter().enumerate() {
        let port = s.local_addr().unwrap().port();
        specs.push(format!("{port}/{m}"));
        specs.push(format!("{port}/{m}"));
    }
    // C10 and C11 to the full server (one gets in), C12 to the refusing one.
    let full_port = full.local_addr().unwrap().port();
    specs.push(format!("{full_port}/0"));
    specs.push(format!("{full_port}/0"));
    specs.push(format!("{}/0", refusing.local_addr().unwrap().port()));
    servers.push(full);
    servers.push(refusing);
    let mut godot = Proc::godot(
        "mp_clients.gd",
        &[
            format!("clients={}", specs.join(",")),
            "timeout=35".into(),
            "connect_timeout=3".into(),
        ],
    );
    let modes = CompressionMode::ALL.len();
    let mut log = Vec::new();
    let mut peers: Vec<&mut MultiplayerPeer<Counting>> = servers.iter_mut().collect();

    // 1. Everybody joins; each Godot client learns of the other one.
    pump(&mut peers, &mut log, &mut godot, |l, g| {
        (0..modes).all(|m| {
            let (a, b) = (
                g.id_of(&format!("C{}", 2 * m)),
                g.id_of(&format!("C{}", 2 * m + 1)),
            );
            let (Some(a), Some(b)) = (a, b) else {
                return false;
            };
            g.has(&format!("C{} PEER_CONNECTED id={b}", 2 * m))
                && g.has(&format!("C{} PEER_CONNECTED id={a}", 2 * m + 1))
                && l[m].contains(&MultiplayerEvent::PeerConnected(a))
                && l[m].contains(&MultiplayerEvent::PeerConnected(b))
        })
    });
    let ids: Vec<(u32, u32)> = (0..modes)
        .map(|m| {
            (
                godot.id_of(&format!("C{}", 2 * m)).unwrap(),
                godot.id_of(&format!("C{}", 2 * m + 1)).unwrap(),
            )
        })
        .collect();
    for (m, (a, b)) in ids.iter().enumerate() {
        for c in [2 * m, 2 * m + 1] {
            assert!(
                godot.has(&format!("C{c} PEER_CONNECTED id=1")),
                "C{c} saw no server"
            );
        }
        let mut expected = vec![*a, *b];
        expected.sort_unstable();
        assert_eq!(peers[m].peer_ids(), expected);
        // Godot's address of the peer is the one our server sees.
        assert_eq!(
            peers[m].peer_address(*a).unwrap().ip().to_string(),
            "127.0.0.1"
        );
    }

    // 2. Our server → Godot in every transfer mode (and reliable on channel 2); Godot →
    //    our server and, relayed, → the other Godot client.
    for (m, (a, b)) in ids.iter().enumerate() {
        let s = &mut peers[m];
        for mode in TransferMode::ALL {
            s.send(
                Target::Peer(*a),
                mode,
                None,
                format!("srv {mode:?}").as_bytes(),
            )
            .unwrap();
        }
        s.send(
            Target::Peer(*a),
            TransferMode::Reliable,
            Some(2),
            b"srv on 2",
        )
        .unwrap();
        s.send(
            Target::Peer(*a),
            TransferMode::Reliable,
            None,
            big_text("srv big").as_bytes(),
        )
        .unwrap();
        for mode in TransferMode::ALL {
            let t = format!("to-server {mode:?}");
            s.send(
                Target::Peer(*a),
                TransferMode::Reliable,
                None,
                &cmd_send(1, mode, -1, false, &t),
            )
            .unwrap();
            let t = format!("relay {mode:?}");
            s.send(
                Target::Peer(*a),
                TransferMode::Reliable,
                None,
                &cmd_send(i64::from(*b), mode, -1, false, &t),
            )
            .unwrap();
        }
        let cmds = [
            cmd_send(1, TransferMode::Unreliable, -1, true, "always-ordered"),
            cmd_send(0, TransferMode::Reliable, -1, false, "broadcast"),
            cmd_send(
                -i64::from(*b),
                TransferMode::Reliable,
                -1,
                false,
                "all-but-b",
            ),
            cmd_send(-1, TransferMode::Reliable, -1, false, "all-but-server"),
            cmd_send(1, TransferMode::Reliable, -1, false, &big_text("gd big")),
            cmd_send(1, TransferMode::Reliable, 2, false, "reliable-on-2"),
        ];
        for c in cmds {
            s.send(Target::Peer(*a), TransferMode::Reliable, None, &c)
                .unwrap();
        }
    }
    pump(&mut peers, &mut log, &mut godot, |l, g| {
        ids.iter().enumerate().all(|(m, (a, _))| {
            let (ca, cb) = (2 * m, 2 * m + 1);
            has_packet(&l[m], *a, "reliable-on-2").is_some()
                && has_packet(&l[m], *a, "all-but-b").is_some()
                && g.has(&format!(
                    "C{cb} PACKET from={a} channel=1 text=all-but-server"
                ))
                && g.has(&format!("C{ca} PACKET from=1 channel=2 text=srv on 2"))
                && g.has(&format!(
                    "C{ca} PACKET from=1 channel=1 text={}",
                    big_text("srv big")
                ))
                && has_packet(&l[m], *a, &big_text("gd big")).is_some()
        })
    });
    for (m, (a, _)) in ids.iter().enumerate() {
        let (ca, cb) = (2 * m, 2 * m + 1);
        let ours = &log[m];
        for mode in TransferMode::ALL {
            assert!(
                godot.has(&format!(
                    "C{ca} PACKET from=1 channel={} text=srv {mode:?}",
                    channel_of(mode)
                )),
                "mode {m}: Godot did not get {mode:?}:\n{}",
                godot.seen.join("\n")
            );
            let p = has_packet(ours, *a, &format!("to-server {mode:?}"))
                .unwrap_or_else(|| panic!("mode {m}: no to-server {mode:?} in {ours:?}"));
            assert_eq!((p.mode, p.channel), (mode, channel_of(mode)), "mode {m}");
            assert!(
                godot.has(&format!(
                    "C{cb} PACKET from={a} channel={} text=relay {mode:?}",
                    channel_of(mode)
                )),
                "mode {m}: relay {mode:?} missing:\n{}",
                godot.seen.join("\n")
            );
            // Relayed packets do not stop at the server.
            assert!(has_packet(ours, *a, &format!("relay {mode:?}")).is_none());
        }
        let p = has_packet(ours, *a, "always-ordered").expect("always-ordered");
        assert_eq!((p.mode, p.channel), (TransferMode::UnreliableOrdered, 2));
        let p = has_packet(ours, *a, "reliable-on-2").unwrap();
        assert_eq!((p.mode, p.channel), (TransferMode::Reliable, 2));
        assert!(has_packet(ours, *a, "broadcast").is_some());
        assert!(godot.has(&format!("C{cb} PACKET from={a} channel=1 text=broadcast")));
        assert!(!godot.has(&format!("C{cb} PACKET from={a} channel=1 text=all-but-b")));
        assert!(has_packet(ours, *a, "all-but-server").is_none());
        assert!(has_packet(ours, *a, &big_text("gd big")).is_some());
        assert!(godot.has(&format!(
            "C{ca} PACKET from=1 channel=1 text={}",
            big_text("srv big")
        )));
        // The datagrams really were compressed, both ways (ENet's 0x4000 header flag).
        let (sent, received) = (
            counts[m].sent.load(Ordering::Relaxed),
            counts[m].received.load(Ordering::Relaxed),
        );
        if m == 0 {
            assert_eq!((sent, received), (0, 0));
        } else {
            assert!(sent > 0 && received > 0, "mode {m}: {sent} {received}");
        }
    }

    // 3. A raw ENet client with a valid id of its own claims to be C0 when talking to C1.
    let (a0, b0) = ids[0];
    let mut spoofer = EnetHost::bind("127.0.0.1:0", HostConfig::default()).unwrap();
    let sp = spoofer
        .connect(peers[0].local_addr().unwrap(), 3, 777)
        .unwrap();
    pump(&mut peers, &mut log, &mut godot, |l, _| {
        let _ = spoofer.service(Duration::ZERO).unwrap();
        l[0].contains(&MultiplayerEvent::PeerConnected(777))
    });
    let framed = |src: u32, target: u32, body: &[u8]| {
        let mut v = src.to_le_bytes().to_vec();
        v.extend_from_slice(&target.to_le_bytes());
        v.extend_from_slice(body);
        v
    };
    for p in [framed(a0, b0, b"spoofed"), framed(777, b0, b"honest")] {
        spoofer.send(sp, 1, Packet::reliable(p)).unwrap();
    }
    spoofer.flush().unwrap();
    pump(&mut peers, &mut log, &mut godot, |_, g| {
        let _ = spoofer.service(Duration::ZERO).unwrap();
        g.has("C1 PACKET from=777 channel=1 text=honest")
    });
    assert!(!godot.seen.iter().any(|l| l.contains("text=spoofed")));
    assert_eq!(peers[0].framing_stats().dropped_spoofed, 1);
    assert!(godot.has("C1 PEER_CONNECTED id=777"));
    spoofer.disconnect_now(sp, 0).unwrap();

    // 4. max_clients = 1: exactly one of C10, C11 got in. Refusing: C12 did not, and the
    //    ENet host took no peer (the CONNECTs were dropped before a slot was given). Checked
    //    last: the losers only give up after connect_timeout.
    pump(&mut peers, &mut log, &mut godot, |_, g| {
        ["C10", "C11", "C12"].iter().all(|c| {
            g.has_prefix(&format!("{c} CONNECTED"))
                || g.has(&format!("{c} NO_CONNECTION"))
                || g.has(&format!("{c} CONNECTION_FAILED"))
        })
    });
    let in_full = ["C10", "C11"]
        .iter()
        .filter(|c| godot.has_prefix(&format!("{c} CONNECTED")))
        .count();
    assert_eq!(in_full, 1, "{}", godot.seen.join("\n"));
    assert_eq!(peers[modes].peer_ids().len(), 1);
    assert!(peers[modes].enet().host().stats().connects_refused > 0);
    assert!(!godot.has_prefix("C12 CONNECTED"));
    assert!(log[modes + 1].is_empty(), "{:?}", log[modes + 1]);
    assert!(peers[modes + 1].enet().host().stats().connects_refused > 0);
    assert_eq!(peers[modes + 1].peer_ids(), Vec::<u32>::new());

    // 5. C(2m) leaves: our server and C(2m+1) see it. Then our server disconnects C(2m+1)
    //    (after its queued packets), which sees the server go.
    for (m, (a, _)) in ids.iter().enumerate() {
        peers[m]
            .send(Target::Peer(*a), TransferMode::Reliable, None, b"cmd:leave")
            .unwrap();
    }
    pump(&mut peers, &mut log, &mut godot, |l, g| {
        ids.iter().enumerate().all(|(m, (a, _))| {
            l[m].contains(&MultiplayerEvent::PeerDisconnected(*a))
                && g.has(&format!("C{} PEER_DISCONNECTED id={a}", 2 * m + 1))
        })
    });
    for (m, (_, b)) in ids.iter().enumerate() {
        peers[m]
            .send(Target::Peer(*b), TransferMode::Reliable, None, b"bye")
            .unwrap();
        peers[m].disconnect_peer(*b, false).unwrap();
    }
    pump(&mut peers, &mut log, &mut godot, |l, g| {
        ids.iter().enumerate().all(|(m, (_, b))| {
            l[m].contains(&MultiplayerEvent::PeerDisconnected(*b))
                && g.has(&format!("C{} SERVER_DISCONNECTED", 2 * m + 1))
        })
    });
    for m in 0..modes {
        assert!(godot.has(&format!("C{} PACKET from=1 channel=1 text=bye", 2 * m + 1)));
    }
    drop(peers);
    drop(servers);
    godot.wait_exit("MP_CLIENTS_EXIT", DEADLINE);
}

// ---------------------------------------------------------------------------------------------
// Our clients, Godot servers
// ---------------------------------------------------------------------------------------------

/// Two of our clients on each of five Godot servers (one per compression mode, one Godot
/// process): they join and learn of each other from Godot's ADD_PEER; packets in every
/// transfer mode go both ways with Godot's channels and flags; Godot relays between our two
/// clients (by id, broadcast); a kicked client and a closing server are reported.
#[test]
fn our_clients_on_godot_servers_in_every_compression_mode() {
    if !have_godot() {
        return;
    }
    let ports: Vec<u16> = CompressionMode::ALL.iter().map(|_| free_port()).collect();
    let specs: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(m, p)| format!("{p}/{m}"))
        .collect();
    let mut godot = Proc::godot(
        "mp_servers.gd",
        &[format!("servers={}", specs.join(",")), "timeout=35".into()],
    );
    let give_up = Instant::now() + DEADLINE;
    while (0..ports.len()).any(|m| !godot.has(&format!("S{m} LISTENING port={} err=0", ports[m]))) {
        assert!(Instant::now() < give_up, "{}", godot.seen.join("\n"));
        godot.drain();
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut clients: Vec<MultiplayerPeer> = Vec::new();
    for (m, mode) in CompressionMode::ALL.into_iter().enumerate() {
        for _ in 0..2 {
            clients.push(
                MultiplayerPeer::client("127.0.0.1", ports[m])
                    .compression(mode)
                    .create()
                    .unwrap(),
            );
        }
    }
    let ids: Vec<u32> = clients.iter().map(|c| c.unique_id()).collect();
    let modes = ports.len();
    let mut log = Vec::new();
    let mut peers: Vec<&mut MultiplayerPeer> = clients.iter_mut().collect();
    pump(&mut peers, &mut log, &mut godot, |l, g| {
        (0..modes).all(|m| {
            let (a, b) = (2 * m, 2 * m + 1);
            l[a].contains(&MultiplayerEvent::ConnectionSucceeded)
                && l[a].contains(&MultiplayerEvent::PeerConnected(ids[b]))
                && l[b].contains(&MultiplayerEvent::PeerConnected(ids[a]))
                && g.has_prefix(&format!("S{m} PEER_CONNECTED id={} ", ids[a]))
                && g.has_prefix(&format!("S{m} PEER_CONNECTED id={} ", ids[b]))
        })
    });
    for (m, server_port) in ports.iter().enumerate() {
        let (a, b) = (2 * m, 2 * m + 1);
        assert_eq!(peers[a].connection_status(), ConnectionStatus::Connected);
        assert_eq!(peers[a].peer_ids(), {
            let mut v = vec![SERVER_ID, ids[b]];
            v.sort_unstable();
            v
        });
        // Godot's address of our client is our socket's.
        let port = peers[a].local_addr().unwrap().port();
        assert!(godot.has(&format!(
            "S{m} PEER_CONNECTED id={} addr=127.0.0.1:{port}",
            ids[a]
        )));
        assert_eq!(
            peers[a].peer_address(SERVER_ID).unwrap().port(),
            *server_port
        );
        send_in_every_mode(peers[a], ids[a], ids[b]);
        peers[a]
            .send(
                Target::Broadcast,
                TransferMode::Reliable,
                None,
                b"broadcast",
            )
            .unwrap();
        peers[a]
            .send(
                Target::AllExcept(ids[b]),
                TransferMode::Reliable,
                None,
                b"all-but-b",
            )
            .unwrap();
        peers[a]
            .send(
                Target::Peer(SERVER_ID),
                TransferMode::Reliable,
                Some(2),
                b"reliable-on-2",
            )
            .unwrap();
        peers[a].set_target_peer(Target::Peer(SERVER_ID));
        peers[a].set_transfer_mode(TransferMode::Unreliable);
        peers[a].set_always_ordered(true);
        peers[a].put_packet(b"put always-ordered").unwrap();
        peers[a].set_always_ordered(false);
        peers[a].set_transfer_mode(TransferMode::Reliable);
        let cmd = cmd_send(0, TransferMode::Reliable, -1, false, "gd broadcast");
        peers[a].put_packet(&cmd).unwrap();
    }
    pump(&mut peers, &mut log, &mut godot, |l, g| {
        (0..modes).all(|m| {
            let (a, b) = (2 * m, 2 * m + 1);
            has_packet(&l[a], SERVER_ID, "gd broadcast").is_some()
                && has_packet(&l[b], SERVER_ID, "gd broadcast").is_some()
                && has_packet(&l[b], ids[a], "broadcast").is_some()
                && g.has(&format!(
                    "S{m} PACKET from={} channel=1 text=all-but-b",
                    ids[a]
                ))
                && g.has_prefix(&format!(
                    "S{m} PACKET from={} channel=2 text=put always-ordered",
                    ids[a]
                ))
        })
    });
    for m in 0..modes {
        let (a, b) = (2 * m, 2 * m + 1);
        for mode in TransferMode::ALL {
            let ch = channel_of(mode);
            assert!(
                godot.has(&format!(
                    "S{m} PACKET from={} channel={ch} text=to-godot {mode:?}",
                    ids[a]
                )),
                "S{m}: to-godot {mode:?} missing:\n{}",
                godot.seen.join("\n")
            );
            let p = has_packet(&log[b], ids[a], &format!("a-to-b {mode:?}"))
                .unwrap_or_else(|| panic!("mode {m}: a-to-b {mode:?} not relayed: {:?}", log[b]));
            assert_eq!((p.mode, p.channel), (mode, ch), "mode {m}");
            let p = has_packet(&log[a], SERVER_ID, &format!("gd {mode:?}"))
                .unwrap_or_else(|| panic!("mode {m}: gd {mode:?} missing"));
            assert_eq!((p.mode, p.channel), (mode, ch), "mode {m}");
            // Relayed packets are not the Godot server's.
            assert!(!godot.has(&format!(
                "S{m} PACKET from={} channel={ch} text=a-to-b {mode:?}",
                ids[a]
            )));
        }
        assert!(godot.has(&format!(
            "S{m} PACKET from={} channel=1 text=broadcast",
            ids[a]
        )));
        assert!(godot.has(&format!(
            "S{m} PACKET from={} channel=2 text=reliable-on-2",
            ids[a]
        )));
        assert!(has_packet(&log[b], ids[a], "all-but-b").is_none());
    }

    // Godot kicks b (at once); a is told. Then a asks the server to close.
    for m in 0..modes {
        let (a, b) = (2 * m, 2 * m + 1);
        let kick = format!("cmd:kick {} 1", ids[b]).into_bytes();
        command_server(peers[a], &kick);
    }
    pump(&mut peers, &mut log, &mut godot, |l, _| {
        (0..modes).all(|m| {
            let (a, b) = (2 * m, 2 * m + 1);
            l[b].contains(&MultiplayerEvent::ServerDisconnected)
                && l[a].contains(&MultiplayerEvent::PeerDisconnected(ids[b]))
        })
    });
    for m in 0..modes {
        let a = 2 * m;
        command_server(peers[a], b"cmd:quit");
    }
    pump(&mut peers, &mut log, &mut godot, |l, _| {
        (0..modes).all(|m| l[2 * m].contains(&MultiplayerEvent::ServerDisconnected))
    });
    for p in &peers {
        assert_eq!(p.connection_status(), ConnectionStatus::Disconnected);
    }
    godot.wait_exit("MP_SERVERS_EXIT", DEADLINE);
    assert!(godot.has("MP_SERVERS_EXIT reason=done"));
}

// ---------------------------------------------------------------------------------------------
// A Godot client over Godot's own DTLS, our DTLS server
// ---------------------------------------------------------------------------------------------

/// Debian's Godot ignores `use_dtls`, so its DTLS-enabled ENet is rebuilt from Godot's own
/// parts: a `NetworkedMultiplayerENet` client (`mp_clients.gd`) talks plain ENet to the
/// `dtls_tunnel.gd` fixture, which carries each datagram as one record of a Godot (mbedTLS)
/// `PacketPeerDTLS` session that verifies our certificate, as Godot's `ENetDTLSClient` does.
/// The Godot client joins our `use_dtls` server, packets go both ways in every transfer mode,
/// and its leave is seen.
#[test]
fn a_godot_client_joins_our_dtls_server_through_godots_dtls() {
    use enet_dtls::keys::{Certificate, CertificateParams, KeyType, PrivateKey};
    if !have_godot() {
        return;
    }
    let key = PrivateKey::generate(KeyType::Rsa(2048)).unwrap();
    let cert = Certificate::self_signed(&key, &CertificateParams::new("localhost")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("cert.pem");
    cert.save(&ca).unwrap();
    let mut server = common::loopback_server()
        .use_dtls(true)
        .dtls_key(key)
        .dtls_certificate(cert)
        .create()
        .unwrap();
    let listen_port = free_port();
    let mut tunnel = Proc::godot(
        "dtls_tunnel.gd",
        &[
            format!("listen_port={listen_port}"),
            format!("port={}", server.local_addr().unwrap().port()),
            "verify=1".into(),
            format!("ca={}", ca.display()),
            "hostname=localhost".into(),
            "timeout=35".into(),
        ],
    );
    let mut log = Vec::new();
    pump(&mut [&mut server], &mut log, &mut tunnel, |_, t| {
        t.has_prefix("TUNNEL_LISTENING")
    });
    let mut godot = Proc::godot(
        "mp_clients.gd",
        &[format!("clients={listen_port}/0"), "timeout=30".into()],
    );
    pump(&mut [&mut server], &mut log, &mut godot, |l, g| {
        g.id_of("C0")
            .is_some_and(|id| l[0].contains(&MultiplayerEvent::PeerConnected(id)))
    });
    let id = godot.id_of("C0").unwrap();
    for mode in TransferMode::ALL {
        server
            .send(
                Target::Peer(id),
                mode,
                None,
                format!("srv {mode:?}").as_bytes(),
            )
            .unwrap();
        let t = format!("to-server {mode:?}");
        server
            .send(
                Target::Peer(id),
                TransferMode::Reliable,
                None,
                &cmd_send(1, mode, -1, false, &t),
            )
            .unwrap();
    }
    pump(&mut [&mut server], &mut log, &mut godot, |l, g| {
        TransferMode::ALL.iter().all(|mode| {
            has_packet(&l[0], id, &format!("to-server {mode:?}")).is_some()
                && g.has(&format!(
                    "C0 PACKET from=1 channel={} text=srv {mode:?}",
                    channel_of(*mode)
                ))
        })
    });
    for mode in TransferMode::ALL {
        let p = has_packet(&log[0], id, &format!("to-server {mode:?}")).unwrap();
        assert_eq!((p.mode, p.channel), (mode, channel_of(mode)));
    }
    let dtls = server.enet().socket().dtls().unwrap();
    assert_eq!(dtls.endpoint().session_count(), 1);
    assert!(dtls.stats().records_received >= 3);
    tunnel.drain();
    assert!(
        tunnel.has("TUNNEL_DTLS_CONNECTED"),
        "{}",
        tunnel.seen.join("\n")
    );
    server
        .send(Target::Peer(id), TransferMode::Reliable, None, b"cmd:leave")
        .unwrap();
    pump(&mut [&mut server], &mut log, &mut godot, |l, _| {
        l[0].contains(&MultiplayerEvent::PeerDisconnected(id))
    });
    godot.wait_exit("MP_CLIENTS_EXIT", DEADLINE);
}

// ---------------------------------------------------------------------------------------------
// Our DTLS clients through Godot's DTLS server, a Godot server
// ---------------------------------------------------------------------------------------------

/// The server half of Godot's DTLS-enabled ENet, rebuilt from Godot's own parts: the
/// `dtls_server_tunnel.gd` fixture accepts DTLS clients with Godot's `DTLSServer` (mbedTLS,
/// cookie exchange, as `ENetDTLSServer`) and relays each record as one datagram to a Godot
/// `NetworkedMultiplayerENet` server (`mp_servers.gd`, range-coder compression), one backend
/// socket per DTLS client. Two of our `use_dtls` clients (certificate pinned, hostname checked)
/// join it, learn of each other, send and receive in every transfer mode, are relayed to each
/// other by Godot, and see a kick and the server closing.
#[test]
fn our_dtls_clients_join_a_godot_server_through_godots_dtls_server() {
    use enet_dtls::keys::{Certificate, CertificateParams, KeyFormat, KeyType, PrivateKey};
    if !have_godot() {
        return;
    }
    let key = PrivateKey::generate(KeyType::Rsa(2048)).unwrap();
    let cert = Certificate::self_signed(&key, &CertificateParams::new("localhost")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (key_path, cert_path) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    key.save(&key_path, KeyFormat::Pkcs1).unwrap();
    cert.save(&cert_path).unwrap();
    let backend_port = free_port();
    let mut godot = Proc::godot(
        "mp_servers.gd",
        &[format!("servers={backend_port}/1"), "timeout=35".into()],
    );
    let tunnel_port = free_port();
    let mut tunnel = Proc::godot(
        "dtls_server_tunnel.gd",
        &[
            format!("port={tunnel_port}"),
            format!("backend_port={backend_port}"),
            format!("key={}", key_path.display()),
            format!("cert={}", cert_path.display()),
            "sessions=2".into(),
            "timeout=35".into(),
        ],
    );
    let give_up = Instant::now() + DEADLINE;
    while !(godot.has_prefix(&format!("S0 LISTENING port={backend_port} err=0"))
        && tunnel.has_prefix("SERVER_TUNNEL_LISTENING"))
    {
        assert!(
            Instant::now() < give_up,
            "{}\n{}",
            godot.seen.join("\n"),
            tunnel.seen.join("\n")
        );
        godot.drain();
        tunnel.drain();
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut clients: Vec<MultiplayerPeer> = (0..2)
        .map(|_| {
            MultiplayerPeer::client("127.0.0.1", tunnel_port)
                .compression(CompressionMode::RangeCoder)
                .use_dtls(true)
                .dtls_certificate(cert.clone())
                .dtls_hostname("localhost")
                .create()
                .unwrap()
        })
        .collect();
    let ids: Vec<u32> = clients.iter().map(|c| c.unique_id()).collect();
    let (a, b) = (0, 1);
    let mut log = Vec::new();
    let mut peers: Vec<&mut MultiplayerPeer> = clients.iter_mut().collect();
    pump(&mut peers, &mut log, &mut godot, |l, g| {
        l[a].contains(&MultiplayerEvent::ConnectionSucceeded)
            && l[a].contains(&MultiplayerEvent::PeerConnected(ids[b]))
            && l[b].contains(&MultiplayerEvent::PeerConnected(ids[a]))
            && g.has_prefix(&format!("S0 PEER_CONNECTED id={} ", ids[a]))
            && g.has_prefix(&format!("S0 PEER_CONNECTED id={} ", ids[b]))
    });
    // Godot's peer is the tunnel's backend socket, not ours: the records went through Godot's DTLS.
    let our_port = peers[a].local_addr().unwrap().port();
    assert!(!godot.has(&format!(
        "S0 PEER_CONNECTED id={} addr=127.0.0.1:{our_port}",
        ids[a]
    )));
    for p in &peers {
        let dtls = p.enet().socket().dtls().expect("a DTLS socket");
        assert_eq!(dtls.session_count(), 1);
    }
    send_in_every_mode(peers[a], ids[a], ids[b]);
    let cmd = cmd_send(0, TransferMode::Reliable, -1, false, "gd broadcast");
    command_server(peers[a], &cmd);
    pump(&mut peers, &mut log, &mut godot, |l, g| {
        has_packet(&l[a], SERVER_ID, "gd broadcast").is_some()
            && has_packet(&l[b], SERVER_ID, "gd broadcast").is_some()
            && TransferMode::ALL.iter().all(|mode| {
                has_packet(&l[a], SERVER_ID, &format!("gd {mode:?}")).is_some()
                    && has_packet(&l[b], ids[a], &format!("a-to-b {mode:?}")).is_some()
                    && g.has(&format!(
                        "S0 PACKET from={} channel={} text=to-godot {mode:?}",
                        ids[a],
                        channel_of(*mode)
                    ))
            })
    });
    for mode in TransferMode::ALL {
        let ch = channel_of(mode);
        let p = has_packet(&log[b], ids[a], &format!("a-to-b {mode:?}")).unwrap();
        assert_eq!((p.mode, p.channel), (mode, ch));
        let p = has_packet(&log[a], SERVER_ID, &format!("gd {mode:?}")).unwrap();
        assert_eq!((p.mode, p.channel), (mode, ch));
    }

    // Godot kicks b at once (a is told), then a asks the server to close.
    let kick = format!("cmd:kick {} 1", ids[b]).into_bytes();
    command_server(peers[a], &kick);
    pump(&mut peers, &mut log, &mut godot, |l, _| {
        l[b].contains(&MultiplayerEvent::ServerDisconnected)
            && l[a].contains(&MultiplayerEvent::PeerDisconnected(ids[b]))
    });
    command_server(peers[a], b"cmd:quit");
    pump(&mut peers, &mut log, &mut godot, |l, _| {
        l[a].contains(&MultiplayerEvent::ServerDisconnected)
    });
    godot.wait_exit("MP_SERVERS_EXIT", DEADLINE);
    assert!(godot.has("MP_SERVERS_EXIT reason=done"));
    // Both DTLS sessions were Godot's, and each ended with its ENet connection (our
    // close_notify), so the tunnel stops by itself.
    drop(peers);
    drop(clients);
    tunnel.wait_exit("SERVER_TUNNEL_EXIT", DEADLINE);
    assert_eq!(
        tunnel
            .seen
            .iter()
            .filter(|l| l.starts_with("SERVER_TUNNEL_CONNECTED"))
            .count(),
        2,
        "{}",
        tunnel.seen.join("\n")
    );
    assert!(
        tunnel.has_prefix("SERVER_TUNNEL_EXIT done sessions=2 "),
        "{}",
        tunnel.seen.join("\n")
    );
}
