//! The sans-IO `MultiplayerApi` between several instances, with the multiplayer peer's relay
//! simulated here (Godot 3.2's `NetworkedMultiplayerENet` rules: clients send everything to the
//! server; the server delivers target 1 locally, relays target 0 to everyone else and delivers
//! it locally, relays `-id` to everyone but the sender and `id`, forwards other ids).
//!
//! Godot itself is the peer in the interop tests of `enet-dtls`; these tests pin the wire
//! bytes, the path cache exchange, the rpc modes and refusals deterministically.

use std::collections::{BTreeMap, VecDeque};

use godot_proto::{
    ApiEvent, ArgErrorKind, MultiplayerApi, Outgoing, RefusalReason, RpcError, RpcKind, RpcMode,
    TransferMode, Variant, Vector2,
};

/// What each peer's handlers record: `"<method>(<args>) from <sender>"`.
type Log = Vec<String>;

/// A server (id 1) and clients, connected through a simulated relay.
struct Room {
    apis: BTreeMap<i32, MultiplayerApi<Log>>,
    /// (from, to, packet) in flight.
    wire: VecDeque<(i32, i32, Outgoing)>,
    /// Every packet that left a peer: (from, Outgoing), for byte checks.
    sent: Vec<(i32, Outgoing)>,
}

impl Room {
    fn new(clients: &[i32]) -> Room {
        let mut apis = BTreeMap::new();
        let mut server = MultiplayerApi::with_state(Log::new());
        server.start_server();
        apis.insert(1, server);
        for &c in clients {
            let mut api = MultiplayerApi::with_state(Log::new());
            api.start_client(c);
            apis.insert(c, api);
        }
        let mut room = Room {
            apis,
            wire: VecDeque::new(),
            sent: Vec::new(),
        };
        // Godot's order: the server sees each client; each client sees the server, then
        // `connected_to_server`, then the other clients (ADD_PEER).
        for &c in clients {
            room.api(1).on_peer_connected(c);
            let api = room.api(c);
            api.on_peer_connected(1);
            api.on_connected_to_server();
            for &o in clients.iter().filter(|&&o| o != c) {
                api.on_peer_connected(o);
            }
        }
        for api in room.apis.values_mut() {
            while api.poll_event().is_some() {}
        }
        room
    }

    fn api(&mut self, id: i32) -> &mut MultiplayerApi<Log> {
        self.apis.get_mut(&id).unwrap()
    }

    fn log(&self, id: i32) -> &Log {
        self.apis[&id].state()
    }

    /// Moves packets until nothing is left, applying the relay rules at the server.
    fn run(&mut self) {
        loop {
            for (&id, api) in self.apis.iter_mut() {
                while let Some(out) = api.poll_outgoing() {
                    self.sent.push((id, out.clone()));
                    if id == 1 {
                        self.wire.push_back((1, 1, out)); // "1 -> server's own routing"
                    } else {
                        self.wire.push_back((id, 1, out));
                    }
                }
            }
            let Some((from, _, out)) = self.wire.pop_front() else {
                break;
            };
            let ids: Vec<i32> = self.apis.keys().copied().collect();
            let deliver_to: Vec<i32> = match out.target {
                0 => ids.into_iter().filter(|&p| p != from).collect(),
                t if t < 0 => ids.into_iter().filter(|&p| p != from && p != -t).collect(),
                t => vec![t],
            };
            for to in deliver_to {
                if to != from {
                    self.api(to).handle_packet(from, &out.data);
                }
            }
        }
    }

    fn events(&mut self, id: i32) -> Vec<ApiEvent> {
        let api = self.api(id);
        std::iter::from_fn(|| api.poll_event()).collect()
    }

    fn refusals(&mut self, id: i32) -> Vec<RefusalReason> {
        self.events(id)
            .into_iter()
            .filter_map(|e| match e {
                ApiEvent::Refused { reason, .. } => Some(reason),
                _ => None,
            })
            .collect()
    }
}

fn fmt_args(args: &[Variant]) -> String {
    args.iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Registers `Game.<mode name>` for every mode on every peer, each logging its calls.
fn register_all_modes(room: &mut Room) {
    let modes = [
        ("disabled", RpcMode::Disabled),
        ("remote", RpcMode::Remote),
        ("master", RpcMode::Master),
        ("puppet", RpcMode::Puppet),
        ("remotesync", RpcMode::RemoteSync),
        ("mastersync", RpcMode::MasterSync),
        ("puppetsync", RpcMode::PuppetSync),
    ];
    for api in room.apis.values_mut() {
        for (name, mode) in modes {
            api.register("Game", name, mode, move |ctx, args: Vec<Variant>| {
                let line = format!("{name}({}) from {}", fmt_args(&args), ctx.sender());
                ctx.state_mut().push(line);
            });
        }
    }
}

#[test]
fn first_call_carries_the_path_inline_like_godot() {
    // The bytes of Godot 3.2.3's client calling rpc_id(1, "hello", "client", 2) on /root/Game
    // before the server confirmed the path (captured from a real Godot client).
    let mut room = Room::new(&[7]);
    room.api(1).register(
        "Game",
        "hello",
        RpcMode::Remote,
        |ctx, (who, n): (String, i64)| {
            let line = format!("hello {who} {n} from {}", ctx.sender());
            ctx.state_mut().push(line);
        },
    );
    room.api(7)
        .rpc_id(1, "Game", "hello", ("client", 2))
        .unwrap();
    let first: Vec<Outgoing> = std::iter::from_fn(|| room.api(7).poll_outgoing()).collect();
    assert_eq!(first.len(), 2, "SIMPLIFY_PATH, then the call");
    assert_eq!(first[0].data, b"\x02\x01\x00\x00\x00Game\x00");
    assert_eq!(first[0].mode, TransferMode::Reliable);
    let call = hex(
        "00 24000080 68656c6c6f00 02 04000000 06000000 636c69656e740000 02000000 02000000 47616d6500",
    );
    assert_eq!(first[1].data, call);
    assert_eq!(
        (first[1].target, first[1].mode),
        (1, TransferMode::Reliable)
    );
    for out in first {
        room.api(1).handle_packet(7, &out.data);
    }
    assert_eq!(room.log(1), &["hello client 2 from 7"]);
    // The server confirmed the path: CONFIRM_PATH "Game\0", reliable, to 7.
    let confirm = room.api(1).poll_outgoing().unwrap();
    assert_eq!(
        (confirm.target, confirm.mode, confirm.data),
        (7, TransferMode::Reliable, b"\x03Game\x00".to_vec())
    );
    room.api(7).handle_packet(1, b"\x03Game\x00");
    assert!(room.api(7).path_confirmed_by("Game", 1));
    // Now the id form, without the path: sync_ping-like packet on path id 1.
    room.api(7)
        .rpc_id(1, "Game", "hello", ("again", 3))
        .unwrap();
    let second = room.api(7).poll_outgoing().unwrap();
    assert_eq!(&second.data[..5], &[0, 1, 0, 0, 0]);
    assert!(!second.data.ends_with(b"Game\x00"));
    room.api(1).handle_packet(7, &second.data);
    assert_eq!(room.log(1)[1], "hello again 3 from 7");
    assert!(room.api(7).poll_outgoing().is_none());
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn broadcast_is_per_peer_until_every_peer_confirmed_then_one_packet() {
    let mut room = Room::new(&[10, 11, 12]);
    register_all_modes(&mut room);
    room.api(1).rpc("Game", "remote", (1,)).unwrap();
    let out: Vec<Outgoing> = std::iter::from_fn(|| room.api(1).poll_outgoing()).collect();
    // 3 SIMPLIFY_PATH and 3 unicast calls with the inline path.
    let simplify: Vec<i32> = out
        .iter()
        .filter(|o| o.data[0] == 2)
        .map(|o| o.target)
        .collect();
    let calls: Vec<i32> = out
        .iter()
        .filter(|o| o.data[0] == 0)
        .map(|o| o.target)
        .collect();
    assert_eq!(simplify, [10, 11, 12]);
    assert_eq!(calls, [10, 11, 12]);
    assert!(out
        .iter()
        .filter(|o| o.data[0] == 0)
        .all(|o| o.data[4] & 0x80 != 0 && o.data.ends_with(b"Game\x00")));
    for o in out {
        room.wire.push_back((1, 1, o));
    }
    room.run();
    for c in [10, 11, 12] {
        assert_eq!(room.log(c), &["remote(Int(1)) from 1"]);
        assert!(room.api(1).path_confirmed_by("Game", c));
    }
    // Everyone confirmed: one packet to target 0 with the cached id.
    room.sent.clear();
    room.api(1).rpc("Game", "remote", (2,)).unwrap();
    let out: Vec<Outgoing> = std::iter::from_fn(|| room.api(1).poll_outgoing()).collect();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].target, 0);
    assert_eq!(&out[0].data[..5], &[0, 1, 0, 0, 0]);
    room.wire.push_back((1, 1, out[0].clone()));
    room.run();
    for c in [10, 11, 12] {
        assert_eq!(room.log(c).len(), 2);
    }
    // A client that connects later gets the path announced again, only to it.
    room.api(1).on_peer_connected(13);
    let mut late = MultiplayerApi::with_state(Log::new());
    late.start_client(13);
    late.on_peer_connected(1);
    late.on_connected_to_server();
    late.register(
        "Game",
        "remote",
        RpcMode::Remote,
        |ctx, args: Vec<Variant>| {
            let line = format!("remote({}) from {}", fmt_args(&args), ctx.sender());
            ctx.state_mut().push(line);
        },
    );
    room.apis.insert(13, late);
    room.api(1).rpc("Game", "remote", (3,)).unwrap();
    let out: Vec<Outgoing> = std::iter::from_fn(|| room.api(1).poll_outgoing()).collect();
    let shapes: Vec<(u8, i32, bool)> = out
        .iter()
        .map(|o| (o.data[0], o.target, o.data[4] & 0x80 != 0))
        .collect();
    assert_eq!(
        shapes,
        [
            (2, 13, false),
            (0, 10, false),
            (0, 11, false),
            (0, 12, false),
            (0, 13, true)
        ]
    );
    for o in out {
        room.wire.push_back((1, 1, o));
    }
    room.run();
    assert_eq!(room.log(13), &["remote(Int(3)) from 1"]);
    assert_eq!(room.log(12).len(), 3);
}

#[test]
fn rpc_modes_are_honoured_like_godot() {
    // Server 1 is the master of Game (the default); client 5 is not; 6 is another client.
    let mut room = Room::new(&[5, 6]);
    register_all_modes(&mut room);
    let names = [
        "disabled",
        "remote",
        "master",
        "puppet",
        "remotesync",
        "mastersync",
        "puppetsync",
    ];
    // The server (master) calls each mode on everyone.
    for name in names {
        room.api(1)
            .rpc("Game", name, (name,))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    room.run();
    // Locally on the master: master and mastersync (both skip the send), remotesync, and
    // puppetsync (Godot: a *sync mode always calls locally, master or not).
    let server_log: Vec<&str> = room
        .log(1)
        .iter()
        .map(|s| s.split('(').next().unwrap())
        .collect();
    assert_eq!(
        server_log,
        ["master", "remotesync", "mastersync", "puppetsync"]
    );
    assert!(room.log(1).iter().all(|l| l.ends_with("from 1")));
    // On the clients (puppets): remote, puppet, remotesync, puppetsync; disabled and master are
    // refused, mastersync/master were never sent.
    for c in [5, 6] {
        let log: Vec<&str> = room
            .log(c)
            .iter()
            .map(|s| s.split('(').next().unwrap())
            .collect();
        assert_eq!(
            log,
            ["remote", "puppet", "remotesync", "puppetsync"],
            "client {c}"
        );
        let refused = room.events(c);
        let refused: Vec<(Option<String>, RpcMode)> = refused
            .into_iter()
            .filter_map(|e| match e {
                ApiEvent::Refused {
                    name,
                    reason: RefusalReason::NotAllowed { mode, master },
                    from,
                    kind,
                    ..
                } => {
                    assert_eq!((from, master, kind), (1, 1, Some(RpcKind::Call)));
                    Some((name, mode))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            refused,
            [(Some("disabled".into()), RpcMode::Disabled)],
            "client {c}"
        );
    }
    // A client (puppet) calls each mode on the server.
    for c in [5, 6] {
        room.api(c).state_mut().clear();
    }
    room.api(1).state_mut().clear();
    room.events(1);
    for name in names {
        let r = room.api(5).rpc_id(1, "Game", name, ());
        assert_eq!(r, Ok(()), "{name}");
    }
    room.run();
    let server_log: Vec<&str> = room
        .log(1)
        .iter()
        .map(|s| s.split('(').next().unwrap())
        .collect();
    assert_eq!(server_log, ["remote", "master", "remotesync", "mastersync"]);
    assert!(room.log(1).iter().all(|l| l.ends_with("from 5")));
    let refused: Vec<String> = room
        .events(1)
        .into_iter()
        .filter_map(|e| match e {
            ApiEvent::Refused {
                name: Some(n),
                from: 5,
                reason: RefusalReason::NotAllowed { .. },
                ..
            } => Some(n),
            _ => None,
        })
        .collect();
    assert_eq!(refused, ["disabled", "puppet", "puppetsync"]);
    // Nothing ran locally on the client for rpc_id(1, ...).
    assert!(room.log(5).is_empty());
}

#[test]
fn puppet_calls_only_from_the_master_and_set_network_master() {
    let mut room = Room::new(&[5, 6]);
    register_all_modes(&mut room);
    // Client 5 becomes the master of Game everywhere.
    for api in room.apis.values_mut() {
        api.set_network_master("Game", 5);
    }
    assert!(room.api(5).is_network_master("/root/Game"));
    // 6 calls "puppet" on 1: refused (the master is 5, not 6).
    room.api(6).rpc_id(1, "Game", "puppet", ()).unwrap();
    // 5 calls "puppet" on everyone (through the relay): runs on 1 and 6.
    room.api(5).rpc("Game", "puppet", ()).unwrap();
    // 5 calls "master" on itself through rpc_id: local only, no packet.
    room.api(5).rpc_id(5, "Game", "master", ()).unwrap();
    // 6 calling "master" on itself is not allowed by its mode (it is not the master).
    assert_eq!(
        room.api(6).rpc_id(6, "Game", "master", ()),
        Err(RpcError::NotAllowedOnSelf("master".into()))
    );
    room.run();
    assert_eq!(room.log(1), &["puppet() from 5"]);
    assert_eq!(room.log(6), &["puppet() from 5"]);
    assert_eq!(room.log(5), &["master() from 5"]);
    let refusals = room.refusals(1);
    assert!(
        matches!(
            refusals.as_slice(),
            [RefusalReason::NotAllowed {
                mode: RpcMode::Puppet,
                master: 5
            }]
        ),
        "{refusals:?}"
    );
}

#[test]
fn relayed_calls_between_clients_and_sender_ids() {
    let mut room = Room::new(&[20, 30]);
    for api in room.apis.values_mut() {
        api.register(
            "Chat",
            "say",
            RpcMode::RemoteSync,
            |ctx, (text,): (String,)| {
                let line = format!("{} says {text}", ctx.sender());
                ctx.state_mut().push(line);
            },
        );
    }
    room.api(20).rpc_id(30, "Chat", "say", ("psst",)).unwrap();
    room.api(30).rpc("Chat", "say", ("all",)).unwrap();
    room.api(20)
        .rpc_id(-30, "Chat", "say", ("not 30",))
        .unwrap();
    room.run();
    assert_eq!(room.log(30), &["30 says all", "20 says psst"]);
    assert_eq!(room.log(20), &["20 says not 30", "30 says all"]);
    // 20's packets reach the server before 30's.
    assert_eq!(room.log(1), &["20 says not 30", "30 says all"]);
}

#[test]
fn rset_and_properties() {
    let mut room = Room::new(&[5]);
    for api in room.apis.values_mut() {
        api.register_property(
            "Player",
            "position",
            RpcMode::Puppet,
            Vector2::new(0.0, 0.0),
        );
        api.register_property("Player", "name", RpcMode::Remote, "nobody");
        api.register_property("Player", "score", RpcMode::RemoteSync, 0);
    }
    room.api(1)
        .rset("Player", "position", Vector2::new(3.0, 4.0))
        .unwrap();
    room.api(5).rset_id(1, "Player", "name", "five").unwrap();
    room.api(5)
        .rset_id(1, "Player", "position", Vector2::new(9.0, 9.0))
        .unwrap();
    room.api(5).rset("Player", "score", 7).unwrap();
    room.run();
    assert_eq!(
        room.api(5).property("Player", "position"),
        Some(&Variant::Vector2(Vector2::new(3.0, 4.0)))
    );
    assert_eq!(
        room.api(1).property("/root/Player", "name"),
        Some(&Variant::from("five"))
    );
    // The puppet property on the master is not settable by a client.
    assert_eq!(
        room.api(1).property("Player", "position"),
        Some(&Variant::Vector2(Vector2::default()))
    );
    assert_eq!(
        room.api(1).property("Player", "score"),
        Some(&Variant::Int(7))
    );
    assert_eq!(
        room.api(5).property("Player", "score"),
        Some(&Variant::Int(7))
    );
    let events = room.events(1);
    assert!(events.contains(&ApiEvent::PropertySet {
        from: 5,
        path: "Player".into(),
        property: "name".into()
    }));
    assert!(events.iter().any(|e| matches!(
        e,
        ApiEvent::Refused {
            kind: Some(RpcKind::Set),
            reason: RefusalReason::NotAllowed {
                mode: RpcMode::Puppet,
                ..
            },
            ..
        }
    )));
    // The wire form: REMOTE_SET has no argc.
    let set = room
        .sent
        .iter()
        .find(|(from, o)| *from == 5 && o.data[0] == 1)
        .unwrap();
    assert_eq!(&set.1.data[5..10], b"name\x00");
    assert_eq!(&set.1.data[10..14], &[4, 0, 0, 0]);
}

#[test]
fn unreliable_calls_and_raw_packets() {
    let mut room = Room::new(&[5]);
    register_all_modes(&mut room);
    room.api(5)
        .rpc_unreliable_id(1, "Game", "remote", (1.5,))
        .unwrap();
    let out: Vec<Outgoing> = std::iter::from_fn(|| room.api(5).poll_outgoing()).collect();
    assert_eq!(
        out[0].mode,
        TransferMode::Reliable,
        "SIMPLIFY_PATH is reliable"
    );
    assert_eq!(out[1].mode, TransferMode::Unreliable);
    room.api(5)
        .send_bytes(b"raw!", 1, TransferMode::UnreliableOrdered)
        .unwrap();
    let raw = room.api(5).poll_outgoing().unwrap();
    assert_eq!(raw.data, b"\x04raw!");
    assert_eq!(raw.mode, TransferMode::UnreliableOrdered);
    assert_eq!(
        room.api(5).send_bytes(b"", 1, TransferMode::Reliable),
        Err(RpcError::EmptyPacket)
    );
    for o in out.into_iter().chain([raw]) {
        room.api(1).handle_packet(5, &o.data);
    }
    assert_eq!(room.log(1), &["remote(Real(1.5)) from 5"]);
    assert!(room.events(1).contains(&ApiEvent::PeerPacket {
        from: 5,
        data: b"raw!".to_vec()
    }));
}

#[test]
fn bad_arguments_name_the_argument() {
    let mut room = Room::new(&[5]);
    room.api(1).register(
        "Game",
        "move",
        RpcMode::Remote,
        |_ctx, (_x, _y): (i32, f32)| {},
    );
    room.api(1).set_arg_names("Game", "move", &["x", "y"]);
    room.api(5).rpc_id(1, "Game", "move", (1, "up")).unwrap();
    room.api(5).rpc_id(1, "Game", "move", (1,)).unwrap();
    room.api(5)
        .rpc_id(1, "Game", "move", (5_000_000_000i64, 1.0))
        .unwrap();
    room.run();
    let errors: Vec<String> = room
        .refusals(1)
        .into_iter()
        .map(|r| match r {
            RefusalReason::BadArguments(e) => {
                if let ArgErrorKind::Count { expected, got } = e.kind {
                    assert_eq!((expected, got), (2, 1));
                }
                e.to_string()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        errors,
        [
            "argument 1 (y): expected float, got String",
            "arguments: expected 2 arguments, got 1",
            "argument 0 (x): 5000000000 does not fit in i32",
        ]
    );
}

#[test]
fn hostile_packets_are_refused_not_executed() {
    let mut room = Room::new(&[5]);
    register_all_modes(&mut room);
    let api = room.api(1);
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        vec![9],
        vec![0, 1, 0, 0],
        vec![0, 7, 0, 0, 0, b'x', 0, 0],       // unknown path id
        vec![0, 0xff, 0xff, 0xff, 0xff, 0, 0], // inline offset past the end
        b"\x00\x0b\x00\x00\x80remote\x00\x00Nope\x00".to_vec(), // unknown node
        b"\x00\x0c\x00\x00\x80remote\x00\x01Game\x00".to_vec(), // argument missing
        b"\x00\x0c\x00\x00\x80remote".to_vec(), // unterminated name
        b"\x02\x01\x00\x00".to_vec(),          // short SIMPLIFY_PATH
        b"\x03Nope\x00".to_vec(),              // confirm of a path never sent
        vec![4],                               // empty RAW
        // An argument whose array claims 2^30 elements.
        b"\x00\x0e\x00\x00\x80remote\x00\x01\x13\x00\x00\x00\x00\x00\x00\x40Game\x00".to_vec(),
    ];
    for c in &cases {
        api.handle_packet(5, c);
    }
    let refusals = room.refusals(1);
    assert_eq!(refusals.len(), cases.len(), "{refusals:?}");
    assert!(room.log(1).is_empty());
    assert_eq!(room.api(1).stats().refused, cases.len() as u64);
    assert!(refusals.contains(&RefusalReason::UnknownPathId(7)));
    assert!(refusals.contains(&RefusalReason::UnknownNode));
    assert!(refusals.contains(&RefusalReason::UnexpectedConfirm));
    assert!(refusals.contains(&RefusalReason::UnknownCommand(9)));
}

#[test]
fn path_cache_is_bounded_per_peer() {
    let mut room = Room::new(&[5]);
    let limit = godot_proto::ApiLimits::default().max_paths_per_peer;
    for id in 0..(limit as u32 + 10) {
        let mut p = vec![2];
        p.extend_from_slice(&id.to_le_bytes());
        p.extend_from_slice(format!("N{id}\0").as_bytes());
        room.api(1).handle_packet(5, &p);
    }
    assert_eq!(room.api(1).cached_paths(5), limit);
    let refusals = room.refusals(1);
    assert_eq!(refusals.len(), 10);
    assert!(refusals.iter().all(|r| *r == RefusalReason::PathCacheLimit));
    // A disconnect forgets the peer's cache.
    room.api(1).on_peer_disconnected(5);
    assert_eq!(room.api(1).cached_paths(5), 0);
}

#[test]
fn calls_before_connecting_and_to_unknown_peers_fail() {
    let mut api = MultiplayerApi::new();
    api.register("Game", "remote", RpcMode::Remote, |_ctx, (): ()| {});
    assert_eq!(api.rpc("Game", "remote", ()), Err(RpcError::NotConnected));
    api.start_client(9);
    assert_eq!(api.rpc("Game", "remote", ()), Err(RpcError::NotConnected));
    api.on_peer_connected(1);
    api.on_connected_to_server();
    assert_eq!(
        api.rpc_id(4, "Game", "remote", ()),
        Err(RpcError::UnknownPeer(4))
    );
    let too_many = vec![Variant::Nil; 256];
    assert_eq!(
        api.rpc_id(1, "Game", "remote", too_many),
        Err(RpcError::TooManyArguments(256))
    );
    assert!(matches!(
        api.rpc_id(1, "Game", "bad\0name", ()),
        Err(RpcError::InvalidName { .. })
    ));
    api.on_server_disconnected();
    assert_eq!(
        api.rpc_id(1, "Game", "remote", ()),
        Err(RpcError::NotConnected)
    );
    let events: Vec<ApiEvent> = std::iter::from_fn(|| api.poll_event()).collect();
    assert_eq!(
        events,
        [
            ApiEvent::PeerConnected(1),
            ApiEvent::ConnectedToServer,
            ApiEvent::ServerDisconnected
        ]
    );
}

#[test]
fn event_methods_and_calls_from_handlers() {
    let mut room = Room::new(&[5]);
    // The server answers each "ping" with "pong" to the sender, from inside the handler.
    room.api(1)
        .register("Game", "ping", RpcMode::Remote, |ctx, (n,): (i64,)| {
            let to = ctx.sender();
            ctx.rpc_id(to, "Game", "pong", (n + 1,)).unwrap();
        });
    room.api(5).register_event("Game", "pong", RpcMode::Puppet);
    room.api(5).rpc_id(1, "Game", "ping", (41,)).unwrap();
    room.run();
    let calls: Vec<ApiEvent> = room
        .events(5)
        .into_iter()
        .filter(|e| matches!(e, ApiEvent::Call { .. }))
        .collect();
    assert_eq!(
        calls,
        [ApiEvent::Call {
            from: 1,
            path: "Game".into(),
            method: "pong".into(),
            args: vec![Variant::Int(42)]
        }]
    );
}

#[test]
fn the_api_can_move_between_threads() {
    fn is_send<T: Send>(_: &T) {}
    let mut api = MultiplayerApi::with_state(Log::new());
    api.register("Chat", "say", RpcMode::Remote, |ctx, (s,): (String,)| {
        ctx.state_mut().push(s)
    });
    is_send(&api);
    let handle = std::thread::spawn(move || {
        api.start_server();
        api.on_peer_connected(3);
        api.handle_packet(3, b"\x02\x01\x00\x00\x00Chat\x00");
        let mut call = vec![0, 1, 0, 0, 0];
        call.extend_from_slice(b"say\0\x01");
        Variant::from("moved").encode(&mut call);
        api.handle_packet(3, &call);
        api.state().clone()
    });
    assert_eq!(handle.join().unwrap(), ["moved"]);
}

#[test]
fn a_handler_calling_itself_through_a_sync_mode_is_cut_off() {
    let mut api = MultiplayerApi::with_state(0u64);
    // Godot would recurse until its stack overflows; we stop after a bound and say so.
    api.register("Game", "echo", RpcMode::RemoteSync, |ctx, (): ()| {
        *ctx.state_mut() += 1;
        ctx.rpc("Game", "echo", ()).unwrap();
    });
    api.start_server();
    api.rpc("Game", "echo", ()).unwrap();
    let ran = *api.state();
    assert_eq!(ran, godot_proto::MAX_LOCAL_CALLS_PER_INPUT as u64);
    let events: Vec<ApiEvent> = std::iter::from_fn(|| api.poll_event()).collect();
    assert!(matches!(
        events.as_slice(),
        [ApiEvent::Refused {
            reason: RefusalReason::LocalCallLimit,
            from: 1,
            ..
        }]
    ));
}

/// Godot 3.2's `rpcp`: the local call of a `*sync` mode runs inside `rpc()`, after the packets
/// for the other peers, with `get_rpc_sender_id()` our own id; the caller's sender id is back
/// when `rpc()` returns. Here a remote call's handler makes such calls, nested two deep, and a
/// local `rset`, and logs around each one.
#[test]
fn local_calls_from_a_handler_run_at_once_like_godot() {
    let mut room = Room::new(&[5]);
    for api in room.apis.values_mut() {
        api.register_property("Game", "score", RpcMode::RemoteSync, 0);
        api.register("Game", "show", RpcMode::RemoteSync, |ctx, (n,): (i64,)| {
            let me = ctx.sender();
            ctx.state_mut().push(format!("show({n}) from {me}"));
            if ctx.is_server() {
                // mastersync on the master: a local call only.
                ctx.rpc("Game", "inner", ()).unwrap();
            }
            let line = format!("show done, sender {}", ctx.sender());
            ctx.state_mut().push(line);
        });
        api.register("Game", "inner", RpcMode::MasterSync, |ctx, (): ()| {
            let line = format!("inner() from {}", ctx.sender());
            ctx.state_mut().push(line);
        });
    }
    room.api(1)
        .register("Game", "hit", RpcMode::Remote, |ctx, (n,): (i64,)| {
            let line = format!("hit({n}) from {}", ctx.sender());
            ctx.state_mut().push(line);
            ctx.rpc("Game", "show", (n * 10,)).unwrap();
            let line = format!("after show, sender {}", ctx.sender());
            ctx.state_mut().push(line);
            ctx.rset("Game", "score", n).unwrap();
            let score = ctx.property("Game", "score").cloned();
            ctx.state_mut().push(format!("after rset, score {score:?}"));
        });
    room.api(5).rpc_id(1, "Game", "hit", (4,)).unwrap();
    room.run();
    assert_eq!(
        room.log(1),
        &[
            "hit(4) from 5",
            "show(40) from 1",
            "inner() from 1",
            "show done, sender 1",
            "after show, sender 5",
            "after rset, score Some(Int(4))",
        ]
    );
    assert_eq!(room.log(5), &["show(40) from 1", "show done, sender 1"]);
    assert_eq!(
        room.api(5).property("Game", "score"),
        Some(&Variant::Int(4))
    );
    // The server's packets: show and the set go to the client, inner (mastersync on the
    // master) stays local; the order is the order of the calls.
    let from_server: Vec<u8> = room
        .sent
        .iter()
        .filter(|(from, o)| *from == 1 && o.data[0] <= 1)
        .map(|(_, o)| o.data[0])
        .collect();
    assert_eq!(from_server, [0, 1]);
    let stats = room.api(1).stats();
    assert_eq!((stats.calls_executed, stats.local_calls), (1, 3));
    let events = room.events(1);
    assert!(events.contains(&ApiEvent::PropertySet {
        from: 1,
        path: "Game".into(),
        property: "score".into()
    }));
}

/// A handler is not re-entered: its own local call (Godot would recurse) runs after the input,
/// once the handler has returned, as do the calls it makes then.
#[test]
fn a_handler_calling_itself_runs_again_after_it_returns() {
    let mut api = MultiplayerApi::with_state(Log::new());
    api.register("Game", "count", RpcMode::RemoteSync, |ctx, (n,): (i64,)| {
        ctx.state_mut().push(format!("in {n}"));
        if n < 2 {
            ctx.rpc("Game", "count", (n + 1,)).unwrap();
            ctx.rpc("Game", "other", (n,)).unwrap();
        }
        ctx.state_mut().push(format!("out {n}"));
    });
    api.register("Game", "other", RpcMode::RemoteSync, |ctx, (n,): (i64,)| {
        ctx.state_mut().push(format!("other {n}"));
    });
    api.start_server();
    api.rpc("Game", "count", (0,)).unwrap();
    assert_eq!(
        api.state(),
        &["in 0", "other 0", "out 0", "in 1", "other 1", "out 1", "in 2", "out 2"]
    );
    assert_eq!(api.stats().local_calls, 5);
}

/// A chain of handlers each calling the next runs nested up to MAX_LOCAL_CALL_DEPTH handlers
/// deep; the call made at that depth runs after the input, and its chain nests again.
#[test]
fn nested_local_calls_stop_nesting_at_the_depth_limit() {
    use godot_proto::MAX_LOCAL_CALL_DEPTH;
    #[derive(Default)]
    struct Depth {
        now: usize,
        max: usize,
        order: Vec<usize>,
    }
    let len = MAX_LOCAL_CALL_DEPTH + 10;
    let mut api = MultiplayerApi::with_state(Depth::default());
    for i in 0..len {
        let method = format!("m{i}");
        api.register("Chain", &method, RpcMode::RemoteSync, move |ctx, (): ()| {
            let d = ctx.state_mut();
            d.now += 1;
            d.max = d.max.max(d.now);
            d.order.push(i);
            if i + 1 < len {
                ctx.rpc("Chain", &format!("m{}", i + 1), ()).unwrap();
            }
            ctx.state_mut().now -= 1;
        });
    }
    api.start_server();
    api.rpc("Chain", "m0", ()).unwrap();
    let d = api.state();
    assert_eq!(d.order, (0..len).collect::<Vec<_>>());
    assert_eq!(d.max, MAX_LOCAL_CALL_DEPTH);
    assert_eq!(d.now, 0);
    assert_eq!(api.stats().local_calls, len as u64);
    assert!(api.poll_event().is_none());
}
