//! The chat room's two remote calls, on Godot 3.2's MultiplayerAPI (`godot_proto`):
//!
//! * client → server: `Chat.send_message(text: String)` (`rpc_id(1, ...)`; `remote` on the
//!   server);
//! * server → every client: `Chat.receive_message(sender_id: int, text: String)` (`puppet` on
//!   our clients: only the server, the node's network master, may call it, so another client
//!   cannot forge a message through the server's relay).
//!
//! [`ChatApi`] is the glue between [`godot_proto::MultiplayerApi`] (encoding, decoding, the
//! node path cache, rpc modes, all bounded) and [`MultiplayerPeer`]: the caller reports the
//! peer's events, takes the decoded calls with [`ChatApi::poll_call`] and sends what the API
//! queued with [`ChatApi::flush`]. Nothing here parses bytes itself.

use std::collections::VecDeque;

use enet_dtls::enet::EnetSocket;
use enet_dtls::multiplayer::{MultiplayerPeer, Target, TransferMode};
#[cfg(test)]
use godot_proto::ApiStats;
use godot_proto::{ApiEvent, MultiplayerApi, RpcError, RpcKind, RpcMode};

/// The chat node's path (relative to the multiplayer root, as Godot sends it).
pub(crate) const CHAT_PATH: &str = "Chat";
/// Client → server method.
pub(crate) const SEND_MESSAGE: &str = "send_message";
/// Server → clients method.
pub(crate) const RECEIVE_MESSAGE: &str = "receive_message";

/// A decoded chat call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChatCall {
    /// `send_message(text)` from client `from` (at the server).
    SendMessage {
        /// The caller.
        from: u32,
        /// The message.
        text: String,
    },
    /// `receive_message(sender_id, text)` (at a client, from the server).
    ReceiveMessage {
        /// Who wrote it.
        sender_id: i64,
        /// The message.
        text: String,
    },
}

/// An incoming packet the API did not execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The sender.
    pub(crate) from: i32,
    /// The called method, when the packet was a call that got that far.
    pub(crate) method: Option<String>,
    /// Why (Godot would print an error and drop it).
    pub(crate) reason: String,
}

/// One side of the chat on Godot 3.2's MultiplayerAPI.
#[derive(Debug)]
pub(crate) struct ChatApi {
    api: MultiplayerApi<VecDeque<ChatCall>>,
}

/// Calls queued at most between two [`ChatApi::poll_call`] drains (one packet decodes to at
/// most one call, and the callers drain after every packet; this only bounds a caller bug).
const MAX_QUEUED_CALLS: usize = 4096;

impl ChatApi {
    /// The server side (id 1): `send_message` is callable by any client.
    pub(crate) fn server() -> ChatApi {
        let mut api = MultiplayerApi::with_state(VecDeque::new());
        api.register(
            CHAT_PATH,
            SEND_MESSAGE,
            RpcMode::Remote,
            |ctx, (text,): (String,)| {
                let Ok(from) = u32::try_from(ctx.sender()) else {
                    return;
                };
                push(ctx.state_mut(), ChatCall::SendMessage { from, text });
            },
        );
        api.set_arg_names(CHAT_PATH, SEND_MESSAGE, &["text"]);
        api.start_server();
        ChatApi { api }
    }

    /// The client side, with the unique id `my_id` the multiplayer peer chose:
    /// `receive_message` is callable by the server only.
    pub(crate) fn client(my_id: u32) -> ChatApi {
        let mut api = MultiplayerApi::with_state(VecDeque::new());
        api.register(
            CHAT_PATH,
            RECEIVE_MESSAGE,
            RpcMode::Puppet,
            |ctx, (sender_id, text): (i64, String)| {
                push(
                    ctx.state_mut(),
                    ChatCall::ReceiveMessage { sender_id, text },
                );
            },
        );
        api.set_arg_names(CHAT_PATH, RECEIVE_MESSAGE, &["sender_id", "text"]);
        api.start_client(i32::try_from(my_id).unwrap_or(i32::MAX));
        ChatApi { api }
    }

    /// The multiplayer peer reported `id` connected.
    pub(crate) fn peer_connected(&mut self, id: u32) {
        if let Ok(id) = i32::try_from(id) {
            self.api.on_peer_connected(id);
        }
    }

    /// The multiplayer peer reported `id` gone (its path caches are dropped).
    pub(crate) fn peer_disconnected(&mut self, id: u32) {
        if let Ok(id) = i32::try_from(id) {
            self.api.on_peer_disconnected(id);
        }
    }

    /// The client reached the server.
    pub(crate) fn connected_to_server(&mut self) {
        self.api.on_connected_to_server();
    }

    /// The client's server went away.
    pub(crate) fn server_disconnected(&mut self) {
        self.api.on_server_disconnected();
    }

    /// A packet the multiplayer peer received from `from`.
    pub(crate) fn handle_packet(&mut self, from: u32, data: &[u8]) {
        match i32::try_from(from) {
            Ok(from) => self.api.handle_packet(from, data),
            Err(_) => tracing::debug!(from, "packet from an id outside Godot's range; dropped"),
        }
    }

    /// The next decoded chat call.
    pub(crate) fn poll_call(&mut self) -> Option<ChatCall> {
        self.api.state_mut().pop_front()
    }

    /// The next refused packet (other events of the API are dropped: the room follows the
    /// multiplayer peer's own events).
    pub(crate) fn poll_refusal(&mut self) -> Option<Refusal> {
        while let Some(event) = self.api.poll_event() {
            if let ApiEvent::Refused {
                from,
                kind,
                name,
                reason,
                ..
            } = event
            {
                return Some(Refusal {
                    from,
                    method: name.filter(|_| kind == Some(RpcKind::Call)),
                    reason: reason.to_string(),
                });
            }
        }
        None
    }

    /// Client: `rpc_id(1, "send_message", text)`.
    pub(crate) fn send_message(&mut self, text: &str) -> Result<(), RpcError> {
        self.api.rpc_id(1, CHAT_PATH, SEND_MESSAGE, (text,))
    }

    /// Server: `receive_message(sender_id, text)` on `target` (every client, or one).
    pub(crate) fn receive_message(
        &mut self,
        target: Target,
        sender_id: i64,
        text: &str,
    ) -> Result<(), RpcError> {
        let target = target.to_wire().ok_or(RpcError::UnknownPeer(0))?;
        self.api
            .rpc_id(target, CHAT_PATH, RECEIVE_MESSAGE, (sender_id, text))
    }

    /// Sends every packet the API queued (calls, path announcements and confirmations)
    /// through `peer`. A target that left meanwhile is not an error for the chat.
    pub(crate) fn flush<S: EnetSocket>(&mut self, peer: &mut MultiplayerPeer<S>) {
        while let Some(out) = self.api.poll_outgoing() {
            let mode = match out.mode {
                godot_proto::TransferMode::Unreliable => TransferMode::Unreliable,
                godot_proto::TransferMode::UnreliableOrdered => TransferMode::UnreliableOrdered,
                godot_proto::TransferMode::Reliable => TransferMode::Reliable,
            };
            let target = Target::from_wire(out.target);
            if let Err(e) = peer.send(target, mode, None, &out.data) {
                tracing::debug!(error = %e, ?target, "send failed");
            }
        }
    }

    /// What the API did (calls executed, refusals, path cache traffic).
    #[cfg(test)]
    pub(crate) fn stats(&self) -> ApiStats {
        self.api.stats()
    }
}

fn push(calls: &mut VecDeque<ChatCall>, call: ChatCall) {
    if calls.len() >= MAX_QUEUED_CALLS {
        calls.pop_front();
    }
    calls.push_back(call);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server and two clients (ids 7 and 9) wired together in memory: every packet a side
    /// queues is delivered, the server relaying client-to-client packets as the multiplayer
    /// peer does (the sender id stays the original client's).
    struct Room {
        server: ChatApi,
        a: ChatApi,
        b: ChatApi,
    }

    impl Room {
        fn new() -> Room {
            let mut server = ChatApi::server();
            let mut a = ChatApi::client(7);
            let mut b = ChatApi::client(9);
            for c in [&mut a, &mut b] {
                c.peer_connected(1);
                c.connected_to_server();
            }
            server.peer_connected(7);
            server.peer_connected(9);
            a.peer_connected(9);
            b.peer_connected(7);
            Room { server, a, b }
        }

        /// Delivers until nothing moves.
        fn run(&mut self) {
            loop {
                let mut moved = false;
                while let Some(o) = self.server.api.poll_outgoing() {
                    moved = true;
                    for (id, c) in [(7, &mut self.a), (9, &mut self.b)] {
                        if o.target == 0 || o.target == id || (o.target < 0 && -o.target != id) {
                            c.handle_packet(1, &o.data);
                        }
                    }
                }
                for (from, other) in [(7, 9), (9, 7)] {
                    let (src, dst) = if from == 7 {
                        (&mut self.a, &mut self.b)
                    } else {
                        (&mut self.b, &mut self.a)
                    };
                    while let Some(o) = src.api.poll_outgoing() {
                        moved = true;
                        if o.target == 1 || o.target == 0 {
                            self.server.handle_packet(from, &o.data);
                        }
                        if o.target == other || o.target == 0 {
                            dst.handle_packet(from, &o.data);
                        }
                    }
                }
                if !moved {
                    return;
                }
            }
        }
    }

    #[test]
    fn a_message_goes_to_the_server_and_back_to_everyone() {
        let mut room = Room::new();
        room.a.send_message("héllo").unwrap();
        room.run();
        let call = room.server.poll_call().unwrap();
        assert_eq!(
            call,
            ChatCall::SendMessage {
                from: 7,
                text: "héllo".into()
            }
        );
        room.server
            .receive_message(Target::Broadcast, 7, "héllo")
            .unwrap();
        room.run();
        for c in [&mut room.a, &mut room.b] {
            assert_eq!(
                c.poll_call(),
                Some(ChatCall::ReceiveMessage {
                    sender_id: 7,
                    text: "héllo".into()
                })
            );
            assert_eq!(c.poll_call(), None);
        }
        // Later calls use the confirmed path id: still delivered.
        room.b.send_message("second").unwrap();
        room.run();
        assert_eq!(
            room.server.poll_call(),
            Some(ChatCall::SendMessage {
                from: 9,
                text: "second".into()
            })
        );
        assert!(room.server.stats().confirms_received >= 1);
    }

    #[test]
    fn the_first_call_carries_the_method_name_and_text_in_clear() {
        // What the demo shows: Godot's REMOTE_CALL with the method name and the String Variant.
        let mut a = ChatApi::client(7);
        a.peer_connected(1);
        a.connected_to_server();
        a.send_message("hi").unwrap();
        let packets: Vec<Vec<u8>> =
            std::iter::from_fn(|| a.api.poll_outgoing().map(|o| o.data)).collect();
        let call = packets.iter().find(|p| p[0] == 0).expect("a REMOTE_CALL");
        let text = String::from_utf8_lossy(call);
        assert!(text.contains("send_message"), "{call:?}");
        assert!(
            call.windows(12)
                .any(|w| w == [4, 0, 0, 0, 2, 0, 0, 0, b'h', b'i', 0, 0]),
            "{call:?}"
        );
    }

    #[test]
    fn a_client_cannot_call_receive_message_on_another_client() {
        let mut room = Room::new();
        // Client 7 calls receive_message on client 9 directly (relayed by the server).
        room.a
            .api
            .rpc_id(9, CHAT_PATH, RECEIVE_MESSAGE, (1i64, "forged"))
            .unwrap();
        room.run();
        assert_eq!(room.b.poll_call(), None);
        let r = room.b.poll_refusal().expect("refused");
        assert_eq!(r.from, 7);
        assert_eq!(r.method.as_deref(), Some(RECEIVE_MESSAGE));
    }

    #[test]
    fn hostile_packets_are_refused_without_panic() {
        let mut server = ChatApi::server();
        server.peer_connected(3);
        let mut a = ChatApi::client(3);
        a.peer_connected(1);
        a.connected_to_server();
        a.send_message("hello there").unwrap();
        let good: Vec<Vec<u8>> =
            std::iter::from_fn(|| a.api.poll_outgoing().map(|o| o.data)).collect();
        for p in &good {
            for n in 0..p.len() {
                server.handle_packet(3, &p[..n]);
                for v in [0u8, 0x7f, 0xff] {
                    let mut bad = p.clone();
                    bad[n] = v;
                    server.handle_packet(3, &bad);
                }
            }
        }
        // Wrong argument types for send_message: refused with the method name.
        a.api.rpc_id(1, CHAT_PATH, SEND_MESSAGE, (5i64,)).unwrap();
        while let Some(o) = a.api.poll_outgoing() {
            server.handle_packet(3, &o.data);
        }
        let mut saw_bad_args = false;
        while let Some(r) = server.poll_refusal() {
            saw_bad_args |= r.method.as_deref() == Some(SEND_MESSAGE) && r.reason.contains("arg");
        }
        assert!(saw_bad_args);
        assert!(server.stats().refused > 0);
    }
}
