//! The chat room's two remote calls, on Godot 3.2's MultiplayerAPI:
//!
//! * client → server: `Chat.send_message(text: String)` (`rpc_id(1, ...)`; `remote` on the
//!   server);
//! * server → every client: `Chat.receive_message(sender_id: int, text: String)` (`puppet` on
//!   our clients: only the server, the node's network master, may call it, so another client
//!   cannot forge a message through the server's relay).
//!
//! The protocol is `godot_proto::MultiplayerApi` (encoding, decoding, the node path cache,
//! rpc modes, all bounded), driven over the multiplayer peer by [`enet_dtls::rpc::RpcPeer`].
//! This module only declares the room's node and turns the API's call events into
//! [`ChatCall`]s; it parses no bytes itself.

use enet_dtls::enet::EnetSocket;
use enet_dtls::godot_proto::{ApiEvent, FromVariant, MultiplayerApi, RpcKind, RpcMode, Variant};
use enet_dtls::multiplayer::Target;
use enet_dtls::rpc::{RpcPeer, RpcPeerError};

/// The chat node's path (relative to the multiplayer root, as Godot sends it).
pub(crate) const CHAT_PATH: &str = "Chat";
/// Client → server method.
pub(crate) const SEND_MESSAGE: &str = "send_message";
/// Server → clients method.
pub(crate) const RECEIVE_MESSAGE: &str = "receive_message";

/// A chat peer: the multiplayer peer driving the room's MultiplayerAPI.
pub(crate) type ChatPeer<S> = RpcPeer<(), S>;

/// The server's API: `send_message` is callable by any client.
pub(crate) fn server_api() -> MultiplayerApi {
    let mut api = MultiplayerApi::new();
    api.register_event(CHAT_PATH, SEND_MESSAGE, RpcMode::Remote);
    api.set_arg_names(CHAT_PATH, SEND_MESSAGE, &["text"]);
    api
}

/// A client's API: `receive_message` is callable by the server only.
pub(crate) fn client_api() -> MultiplayerApi {
    let mut api = MultiplayerApi::new();
    api.register_event(CHAT_PATH, RECEIVE_MESSAGE, RpcMode::Puppet);
    api.set_arg_names(CHAT_PATH, RECEIVE_MESSAGE, &["sender_id", "text"]);
    api
}

/// Client: `rpc_id(1, "send_message", text)`.
pub(crate) fn send_message<S: EnetSocket>(
    peer: &mut ChatPeer<S>,
    text: &str,
) -> Result<(), RpcPeerError> {
    peer.rpc_id(1, CHAT_PATH, SEND_MESSAGE, (text,))
}

/// Server: `receive_message(sender_id, text)` on `target` (every client, or one).
pub(crate) fn receive_message<S: EnetSocket>(
    peer: &mut ChatPeer<S>,
    target: Target,
    sender_id: i64,
    text: &str,
) -> Result<(), RpcPeerError> {
    let Some(target) = target.to_wire() else {
        return Err(RpcPeerError::Rpc(
            enet_dtls::godot_proto::RpcError::UnknownPeer(0),
        ));
    };
    peer.rpc_id(target, CHAT_PATH, RECEIVE_MESSAGE, (sender_id, text))
}

/// A chat call.
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

/// What an API event means for the chat.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ChatEvent {
    /// A chat call with the right arguments.
    Call(ChatCall),
    /// An incoming packet that was not executed: refused by the API (mode, unknown node or
    /// method, malformed, ...) or a chat method with the wrong arguments.
    Refused {
        /// The sender.
        from: i32,
        /// The called method, when the packet was a call that got that far.
        method: Option<String>,
        /// Why.
        reason: String,
    },
    /// Any other event (connections, ...), unchanged.
    Other(ApiEvent),
}

impl ChatEvent {
    /// Sorts an API event.
    pub(crate) fn from_api(event: ApiEvent) -> ChatEvent {
        match event {
            ApiEvent::Call {
                from, method, args, ..
            } => match chat_call(from, &method, args) {
                Ok(call) => ChatEvent::Call(call),
                Err(reason) => ChatEvent::Refused {
                    from,
                    method: Some(method),
                    reason,
                },
            },
            ApiEvent::Refused {
                from,
                kind,
                name,
                reason,
                ..
            } => ChatEvent::Refused {
                from,
                method: name.filter(|_| kind == Some(RpcKind::Call)),
                reason: reason.to_string(),
            },
            other => ChatEvent::Other(other),
        }
    }
}

/// The call of `method` with `args` from `from`, if the arguments fit.
fn chat_call(from: i32, method: &str, args: Vec<Variant>) -> Result<ChatCall, String> {
    let n = args.len();
    let mut args = args.into_iter();
    let mut next = || args.next().unwrap_or(Variant::Nil);
    match (method, n) {
        (SEND_MESSAGE, 1) => {
            let text = String::from_variant(next()).map_err(|e| format!("text: {e}"))?;
            let from = u32::try_from(from).map_err(|_| format!("sender id {from}"))?;
            Ok(ChatCall::SendMessage { from, text })
        }
        (RECEIVE_MESSAGE, 2) => {
            let sender_id = i64::from_variant(next()).map_err(|e| format!("sender_id: {e}"))?;
            let text = String::from_variant(next()).map_err(|e| format!("text: {e}"))?;
            Ok(ChatCall::ReceiveMessage { sender_id, text })
        }
        (SEND_MESSAGE | RECEIVE_MESSAGE, n) => Err(format!("{n} arguments")),
        _ => Err("not a chat method".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server API and two client APIs (ids 7 and 9) wired together in memory: every packet
    /// a side queues is delivered, client-to-client packets as the server's relay delivers
    /// them (with the original sender's id). Returns the chat events of each side.
    struct Room {
        server: MultiplayerApi,
        a: MultiplayerApi,
        b: MultiplayerApi,
    }

    impl Room {
        fn new() -> Room {
            let mut server = server_api();
            server.start_server();
            server.on_peer_connected(7);
            server.on_peer_connected(9);
            let mut a = client_api();
            a.start_client(7);
            let mut b = client_api();
            b.start_client(9);
            for (c, other) in [(&mut a, 9), (&mut b, 7)] {
                c.on_peer_connected(1);
                c.on_peer_connected(other);
                c.on_connected_to_server();
            }
            Room { server, a, b }
        }

        fn run(&mut self) {
            loop {
                let mut moved = false;
                while let Some(o) = self.server.poll_outgoing() {
                    moved = true;
                    for (id, c) in [(7, &mut self.a), (9, &mut self.b)] {
                        if o.target == 0 || o.target == id || (o.target < 0 && -o.target != id) {
                            c.handle_packet(1, &o.data);
                        }
                    }
                }
                for from in [7, 9] {
                    let (src, dst) = if from == 7 {
                        (&mut self.a, &mut self.b)
                    } else {
                        (&mut self.b, &mut self.a)
                    };
                    let other = 16 - from;
                    while let Some(o) = src.poll_outgoing() {
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

    fn chat_events(api: &mut MultiplayerApi) -> Vec<ChatEvent> {
        std::iter::from_fn(|| api.poll_event())
            .map(ChatEvent::from_api)
            .filter(|e| !matches!(e, ChatEvent::Other(_)))
            .collect()
    }

    #[test]
    fn a_message_goes_to_the_server_and_back_to_everyone() {
        let mut room = Room::new();
        room.a
            .rpc_id(1, CHAT_PATH, SEND_MESSAGE, ("héllo",))
            .unwrap();
        room.run();
        assert_eq!(
            chat_events(&mut room.server),
            [ChatEvent::Call(ChatCall::SendMessage {
                from: 7,
                text: "héllo".into()
            })]
        );
        room.server
            .rpc(CHAT_PATH, RECEIVE_MESSAGE, (7i64, "héllo"))
            .unwrap();
        room.run();
        for c in [&mut room.a, &mut room.b] {
            assert_eq!(
                chat_events(c),
                [ChatEvent::Call(ChatCall::ReceiveMessage {
                    sender_id: 7,
                    text: "héllo".into()
                })]
            );
        }
    }

    #[test]
    fn a_client_cannot_call_receive_message_on_another_client() {
        let mut room = Room::new();
        // Client 7 calls receive_message on client 9 (relayed by the server, sender 7).
        room.a
            .rpc_id(9, CHAT_PATH, RECEIVE_MESSAGE, (1i64, "forged"))
            .unwrap();
        room.run();
        let events = chat_events(&mut room.b);
        assert!(
            matches!(&events[..], [ChatEvent::Refused { from: 7, method: Some(m), .. }] if m == RECEIVE_MESSAGE),
            "{events:?}"
        );
    }

    #[test]
    fn wrong_arguments_are_refused_with_the_method_name() {
        let mut room = Room::new();
        room.a.rpc_id(1, CHAT_PATH, SEND_MESSAGE, (5i64,)).unwrap();
        room.a
            .rpc_id(1, CHAT_PATH, SEND_MESSAGE, ("a", "b"))
            .unwrap();
        room.a.rpc_id(1, CHAT_PATH, "shutdown", ()).unwrap();
        room.run();
        let events = chat_events(&mut room.server);
        assert_eq!(events.len(), 3, "{events:?}");
        for (e, want) in events.iter().zip([SEND_MESSAGE, SEND_MESSAGE, "shutdown"]) {
            assert!(
                matches!(e, ChatEvent::Refused { from: 7, method: Some(m), .. } if m == want),
                "{e:?}"
            );
        }
    }
}
