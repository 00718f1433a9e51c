//! The chat room server, shared by `enet-dtls serve` and `enet-dtls demo`: a Godot 3.2
//! multiplayer server (plain ENet or ENet over DTLS) whose node `Chat` takes
//! `send_message(text)` from any client and calls `receive_message(sender_id, text)` on every
//! client, the sender included, reliably.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dtls_proto::EndpointStats;
use enet_dtls::capture::CaptureSocket;
use enet_dtls::enet::{DtlsEnetSocket, EnetSocket, UdpEnetSocket};
use enet_dtls::godot_proto::ApiEvent;
use enet_dtls::multiplayer::{MultiplayerError, MultiplayerPeer, Target};
use enet_dtls::rpc::RpcPeer;

use crate::chat_rpc::{self, ChatCall, ChatEvent, ChatPeer, SEND_MESSAGE};
use crate::metrics::ServerMetrics;

/// Longest message the room relays (bytes of UTF-8). One message fans out to every client, so
/// this bounds what one packet can make the server send.
pub(crate) const MAX_MESSAGE: usize = 4096;

/// How often every peer's RTT is sampled into the metrics.
const RTT_SAMPLE_PERIOD: Duration = Duration::from_secs(1);

/// The methods the metrics count by name.
pub(crate) const METHODS: &[&str] = &[SEND_MESSAGE, chat_rpc::RECEIVE_MESSAGE];

/// What the sockets under a room can tell beyond [`EnetSocket`].
pub(crate) trait RoomSocket: EnetSocket {
    /// The DTLS endpoint's counters (None for plain ENet).
    fn dtls_stats(&self) -> Option<EndpointStats> {
        None
    }
    /// The cipher suite of the DTLS session with `addr`.
    fn cipher(&self, addr: SocketAddr) -> Option<&'static str> {
        let _ = addr;
        None
    }
}

impl RoomSocket for UdpEnetSocket {}

impl<T: EnetSocket> RoomSocket for DtlsEnetSocket<T> {
    fn dtls_stats(&self) -> Option<EndpointStats> {
        Some(self.endpoint_stats())
    }
    fn cipher(&self, addr: SocketAddr) -> Option<&'static str> {
        DtlsEnetSocket::cipher(self, addr)
    }
}

impl<S: RoomSocket> RoomSocket for crate::metrics::FailureTap<S> {
    fn dtls_stats(&self) -> Option<EndpointStats> {
        self.get_ref().dtls_stats()
    }
    fn cipher(&self, addr: SocketAddr) -> Option<&'static str> {
        self.get_ref().cipher(addr)
    }
}

impl<S: RoomSocket> RoomSocket for CaptureSocket<S> {
    fn dtls_stats(&self) -> Option<EndpointStats> {
        self.get_ref().dtls_stats()
    }
    fn cipher(&self, addr: SocketAddr) -> Option<&'static str> {
        self.get_ref().cipher(addr)
    }
}

/// Something that happened in the room (one output line each in `serve`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RoomEvent {
    /// A client joined.
    Join(u32, Option<SocketAddr>),
    /// A client left.
    Leave(u32),
    /// A client said something (already relayed to everyone).
    Message(u32, String),
    /// A message that was not relayed, and why.
    Refused(u32, String),
}

/// The room: the multiplayer server, its MultiplayerAPI and the chat calls.
#[derive(Debug)]
pub(crate) struct Room<S: RoomSocket> {
    peer: ChatPeer<S>,
    welcome: Option<String>,
    metrics: Option<ServerMetrics>,
    next_rtt_sample: Instant,
}

impl<S: RoomSocket> Room<S> {
    /// A room on a started server. `welcome`: a message the server (id 1) sends each client
    /// that joins.
    pub(crate) fn new(peer: MultiplayerPeer<S>, welcome: Option<String>) -> Room<S> {
        Room {
            peer: RpcPeer::new(peer, chat_rpc::server_api()),
            welcome,
            metrics: None,
            next_rtt_sample: Instant::now(),
        }
    }

    /// Turns metrics on.
    pub(crate) fn set_metrics(&mut self, metrics: ServerMetrics) {
        self.metrics = Some(metrics);
    }

    /// The multiplayer server.
    pub(crate) fn peer(&self) -> &MultiplayerPeer<S> {
        self.peer.peer()
    }

    /// Waits up to `timeout` for traffic, handles everything that arrived and returns what
    /// happened.
    pub(crate) fn step(&mut self, timeout: Duration) -> Result<Vec<RoomEvent>, MultiplayerError> {
        let mut out = Vec::new();
        if let Some(event) = self.peer.service(timeout)? {
            // The relays of one batch of messages leave together (one datagram per client
            // where they fit) rather than one flush per receive_message.
            self.peer.defer_flushes(true)?;
            let handled = self.handle_batch(event, &mut out);
            self.peer.defer_flushes(false)?;
            handled?;
        }
        self.update_metrics();
        Ok(out)
    }

    /// Handles `first` and every other event that is already queued.
    fn handle_batch(
        &mut self,
        first: ApiEvent,
        out: &mut Vec<RoomEvent>,
    ) -> Result<(), MultiplayerError> {
        self.handle(first, out)?;
        while let Some(event) = self.peer.next_event() {
            self.handle(event, out)?;
        }
        Ok(())
    }

    fn handle(
        &mut self,
        event: ApiEvent,
        out: &mut Vec<RoomEvent>,
    ) -> Result<(), MultiplayerError> {
        match ChatEvent::from_api(event) {
            ChatEvent::Other(ApiEvent::PeerConnected(id)) => {
                let Ok(id) = u32::try_from(id) else {
                    return Ok(());
                };
                out.push(RoomEvent::Join(id, self.peer.peer().peer_address(id).ok()));
                if let Some(text) = &self.welcome {
                    let text = text.clone();
                    self.send(Target::Peer(id), 1, &text)?;
                }
            }
            ChatEvent::Other(ApiEvent::PeerDisconnected(id)) => {
                if let Ok(id) = u32::try_from(id) {
                    out.push(RoomEvent::Leave(id));
                }
            }
            ChatEvent::Call(ChatCall::SendMessage { from, text }) => {
                if let Some(m) = &self.metrics {
                    m.rpc(SEND_MESSAGE);
                }
                if text.len() > MAX_MESSAGE {
                    out.push(RoomEvent::Refused(
                        from,
                        format!("{} bytes (at most {MAX_MESSAGE})", text.len()),
                    ));
                } else {
                    // Every client, the sender included, reliably.
                    self.send(Target::Broadcast, i64::from(from), &text)?;
                    out.push(RoomEvent::Message(from, text));
                }
            }
            ChatEvent::Refused {
                from,
                method,
                reason,
            } => {
                if let (Some(m), Some(method)) = (&self.metrics, &method) {
                    m.rpc(method);
                }
                tracing::debug!(from, ?method, %reason, "packet refused");
            }
            // The server registers only send_message; other events mean nothing to the room.
            ChatEvent::Call(ChatCall::ReceiveMessage { .. }) | ChatEvent::Other(_) => {}
        }
        Ok(())
    }

    /// `receive_message(sender_id, text)` on `target`; only a broken socket is an error (a
    /// client that left meanwhile is not).
    fn send(&mut self, target: Target, sender_id: i64, text: &str) -> Result<(), MultiplayerError> {
        match chat_rpc::receive_message(&mut self.peer, target, sender_id, text) {
            Ok(()) => Ok(()),
            Err(enet_dtls::rpc::RpcPeerError::Peer(e @ MultiplayerError::Io(_))) => Err(e),
            Err(e) => {
                tracing::debug!(error = %e, ?target, "receive_message not sent");
                Ok(())
            }
        }
    }

    fn update_metrics(&mut self) {
        let Some(m) = &mut self.metrics else {
            return;
        };
        let peer = self.peer.peer();
        let ids = peer.peer_ids();
        m.set_peers(ids.len());
        m.observe_enet(&peer.enet().host().stats());
        if let Some(d) = peer.enet().socket().dtls_stats() {
            m.observe_dtls(&d, true);
        }
        m.refused_multiplayer(peer.framing_stats().refused_connections);
        let now = Instant::now();
        if now >= self.next_rtt_sample {
            self.next_rtt_sample = now + RTT_SAMPLE_PERIOD;
            for id in ids {
                if let Ok(stats) = peer.peer_stats(id) {
                    m.rtt(stats.rtt);
                }
            }
        }
    }

    /// Asks every client to disconnect, services until they have answered or `grace` has
    /// passed, then closes (ENet DISCONNECT to whoever is left; under DTLS the sessions end
    /// with close_notify). Returns the leave events seen meanwhile.
    pub(crate) fn shutdown(&mut self, grace: Duration) -> Vec<RoomEvent> {
        let mut out = Vec::new();
        for id in self.peer.peer().peer_ids() {
            let _ = self.peer.peer_mut().disconnect_peer(id, false);
        }
        let deadline = Instant::now() + grace;
        while !self.peer.peer().peer_ids().is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.step(left.min(Duration::from_millis(20))) {
                Ok(events) => out.extend(events),
                Err(_) => break,
            }
        }
        // The id list empties when ENet reports the last disconnect, which can be before that
        // event has reached the API: take what is still queued so every LEAVE is reported.
        if self.peer.poll().is_ok() {
            while let Some(event) = self.peer.next_event() {
                if self.handle(event, &mut out).is_err() {
                    break;
                }
            }
        }
        let _ = self.peer.close();
        out
    }
}

/// Makes message text safe for one output line: control characters become `\u{..}` escapes,
/// so a client cannot forge lines of the room's output.
pub(crate) fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_forge_lines() {
        assert_eq!(printable("hi"), "hi");
        assert_eq!(printable("a\nJOIN 5"), "a\\u{a}JOIN 5");
        assert_eq!(printable("é\u{1b}[2J"), "é\\u{1b}[2J");
    }
}
