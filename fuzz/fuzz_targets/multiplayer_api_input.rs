//! Godot 3.2 MultiplayerAPI packets on hostile input: a server with nodes of every rpc mode
//! takes arbitrary packets from several senders. Nothing panics, handlers of modes that forbid
//! the sender never run, local calls made inside handlers (run at once, or queued when their
//! handler is running) see our own id as the sender, the path cache stays within its limit,
//! and the API produces only path messages, calls and sets.
//!
//! Input: a sequence of `[sender selector u8][length u8][packet]` records.
#![no_main]

use godot_proto::{ApiLimits, DecodeLimits, MultiplayerApi, RpcMode, Variant};
use libfuzzer_sys::fuzz_target;

const SENDERS: [i32; 4] = [7, 8, 1, -5];

fuzz_target!(|data: &[u8]| {
    let limits = ApiLimits {
        decode: DecodeLimits {
            max_depth: 16,
            max_alloc: 1 << 16,
        },
        max_paths_per_peer: 8,
        max_path_len: 64,
        max_queued_refusals: 16,
    };
    let mut api = MultiplayerApi::with_limits(0u64, limits);
    api.register(
        "Game",
        "remote",
        RpcMode::Remote,
        |ctx, _a: Vec<Variant>| {
            *ctx.state_mut() += 1;
        },
    );
    api.register(
        "Game",
        "typed",
        RpcMode::RemoteSync,
        |ctx, (_s, _i): (String, i32)| {
            *ctx.state_mut() += 1;
            // Calls from a handler go out and run locally (remotesync) without recursion trouble.
            let _ = ctx.rpc_id(0, "Game", "remote", (1,));
            // A local call that runs at once, inside this one.
            let _ = ctx.rpc("Game", "echo", (0,));
        },
    );
    // puppetsync on the master: never callable by a peer, only locally (as the typed handler
    // does), so the sender is always our own id. It calls itself (queued until the input is
    // handled, a handler is never re-entered) and sets a property locally.
    api.register("Game", "echo", RpcMode::PuppetSync, |ctx, (n,): (i64,)| {
        assert_eq!(ctx.sender(), 1, "a peer reached a puppetsync method");
        if n < 3 {
            let _ = ctx.rpc("Game", "echo", (n + 1,));
        }
        let _ = ctx.rset("Game", "spos", n);
        assert_eq!(ctx.property("Game", "spos"), Some(&Variant::Int(n)));
    });
    api.register_property("Game", "spos", RpcMode::PuppetSync, 0);
    api.register("Game", "off", RpcMode::Disabled, |_c, _a: Vec<Variant>| {
        panic!("a disabled method ran")
    });
    api.register("Game", "puppet", RpcMode::Puppet, |_c, _a: Vec<Variant>| {
        panic!("a puppet method ran on its master")
    });
    api.register_property("Game", "pos", RpcMode::Remote, 0);
    api.register_event("Chat", "say", RpcMode::Master);
    api.start_server();
    for id in [7, 8] {
        api.on_peer_connected(id);
    }
    let mut rest = data;
    while rest.len() >= 2 {
        let from = SENDERS[usize::from(rest[0]) % SENDERS.len()];
        let len = usize::from(rest[1]).min(rest.len() - 2);
        let packet = &rest[2..2 + len];
        rest = &rest[2 + len..];
        api.handle_packet(from, packet);
        while let Some(out) = api.poll_outgoing() {
            // The server answers only SIMPLIFY_PATH (with CONFIRM_PATH) or, from the
            // handlers, calls and sets (and their path announcements).
            assert!(matches!(out.data.first(), Some(0..=3)), "{:?}", out.data);
        }
        while api.poll_event().is_some() {}
        for id in SENDERS {
            assert!(api.cached_paths(id) <= 8);
        }
    }
});
