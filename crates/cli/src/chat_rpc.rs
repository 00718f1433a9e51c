//! The chat room's two remote calls on Godot 3.2's MultiplayerAPI wire format.
//!
//! * client → server: `Chat.send_message(text: String)` (`rpc_id(1, ...)`);
//! * server → every client: `Chat.receive_message(sender_id: int, text: String)`.
//!
//! Outgoing calls use the full-path form of REMOTE_CALL (`target = 0x80000000 | offset`, the
//! node path appended after the arguments), which Godot 3.2 itself sends to every peer that has
//! not yet confirmed a path; so we never need a path id. Incoming calls may use either form:
//! SIMPLIFY_PATH packets are stored per sender (bounded) and answered with CONFIRM_PATH, as
//! Godot does. Anything else (other commands, other nodes or methods, bad arguments) is
//! reported as [`Incoming::Ignored`] with the reason, never a panic.

use std::collections::HashMap;

/// The chat node's path (relative to the multiplayer root, as Godot sends it).
pub(crate) const CHAT_PATH: &str = "Chat";
/// Client → server method.
pub(crate) const SEND_MESSAGE: &str = "send_message";
/// Server → clients method.
pub(crate) const RECEIVE_MESSAGE: &str = "receive_message";

const CMD_REMOTE_CALL: u8 = 0;
const CMD_SIMPLIFY_PATH: u8 = 2;
const CMD_CONFIRM_PATH: u8 = 3;

const TYPE_INT: u32 = 2;
const TYPE_STRING: u32 = 4;
const FLAG_64: u32 = 1 << 16;

/// Most cached paths kept per sender (Godot sends one per node it calls; we have one node).
pub(crate) const MAX_PATHS_PER_PEER: usize = 64;
/// Longest node path or method name accepted.
pub(crate) const MAX_NAME: usize = 1024;

/// A decoded chat call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChatCall {
    /// `send_message(text)` (at the server).
    SendMessage {
        /// The message.
        text: String,
    },
    /// `receive_message(sender_id, text)` (at a client).
    ReceiveMessage {
        /// Who wrote it.
        sender_id: i64,
        /// The message.
        text: String,
    },
}

/// What an incoming packet was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// A chat call (`method` is its name, for metrics).
    Call(ChatCall),
    /// A path to cache; send `reply` (CONFIRM_PATH) back to the sender, reliably.
    Confirm {
        /// The CONFIRM_PATH packet.
        reply: Vec<u8>,
    },
    /// Not for us, or malformed; the reason (and the method name when there was one).
    Ignored {
        /// Why.
        reason: String,
        /// The called method, when the packet got that far.
        method: Option<String>,
    },
}

/// Per-sender path caches (what SIMPLIFY_PATH told us).
#[derive(Debug, Default)]
pub(crate) struct ChatRpc {
    paths: HashMap<u32, HashMap<u32, String>>,
}

impl ChatRpc {
    /// Forgets what `peer` cached (call when it leaves).
    pub(crate) fn peer_left(&mut self, peer: u32) {
        self.paths.remove(&peer);
    }

    /// Decodes a packet from `from`.
    pub(crate) fn handle(&mut self, from: u32, packet: &[u8]) -> Incoming {
        let ignored = |reason: &str| Incoming::Ignored {
            reason: reason.to_string(),
            method: None,
        };
        match packet.first() {
            Some(&CMD_REMOTE_CALL) => self.remote_call(from, packet),
            Some(&CMD_SIMPLIFY_PATH) => {
                let Some(id) = read_u32(packet, 1) else {
                    return ignored("short SIMPLIFY_PATH");
                };
                let Some(path) = read_cstring(packet, 5) else {
                    return ignored("SIMPLIFY_PATH without a valid path");
                };
                let cache = self.paths.entry(from).or_default();
                if cache.len() >= MAX_PATHS_PER_PEER && !cache.contains_key(&id) {
                    return ignored("too many cached paths from this peer");
                }
                cache.insert(id, path.clone());
                let mut reply = vec![CMD_CONFIRM_PATH];
                reply.extend_from_slice(path.as_bytes());
                reply.push(0);
                Incoming::Confirm { reply }
            }
            Some(&CMD_CONFIRM_PATH) => ignored("CONFIRM_PATH (we never simplify paths)"),
            Some(other) => ignored(&format!("command {other} is not a remote call")),
            None => ignored("empty packet"),
        }
    }

    fn remote_call(&self, from: u32, p: &[u8]) -> Incoming {
        let ignored = |reason: &str, method: Option<&str>| Incoming::Ignored {
            reason: reason.to_string(),
            method: method.map(str::to_string),
        };
        if p.len() < 6 {
            return ignored("REMOTE_CALL shorter than 6 bytes", None);
        }
        let Some(target) = read_u32(p, 1) else {
            return ignored("short REMOTE_CALL", None);
        };
        let path = if target & 0x8000_0000 != 0 {
            let ofs = (target & 0x7fff_ffff) as usize;
            match read_cstring_or_end(p, ofs) {
                Some(path) => path,
                None => return ignored("REMOTE_CALL with a bad path offset", None),
            }
        } else {
            match self.paths.get(&from).and_then(|c| c.get(&target)) {
                Some(path) => path.clone(),
                None => return ignored("REMOTE_CALL with an unknown path id", None),
            }
        };
        let Some(method) = read_cstring(p, 5) else {
            return ignored("REMOTE_CALL without a method name", None);
        };
        if path.trim_start_matches("/root/") != CHAT_PATH {
            return ignored(&format!("no node at {path:?}"), Some(&method));
        }
        let mut ofs = 5 + method.len() + 1;
        let Some(&argc) = p.get(ofs) else {
            return ignored("REMOTE_CALL without an argument count", Some(&method));
        };
        ofs += 1;
        let mut args = Vec::new();
        for _ in 0..argc {
            match decode_arg(p, ofs) {
                Some((arg, used)) => {
                    args.push(arg);
                    ofs += used;
                }
                None => return ignored("an argument is not an int or a String", Some(&method)),
            }
        }
        let call = match (method.as_str(), args.as_slice()) {
            (SEND_MESSAGE, [Arg::Str(text)]) => ChatCall::SendMessage { text: text.clone() },
            (RECEIVE_MESSAGE, [Arg::Int(id), Arg::Str(text)]) => ChatCall::ReceiveMessage {
                sender_id: *id,
                text: text.clone(),
            },
            _ => return ignored("unknown method or wrong arguments", Some(&method)),
        };
        Incoming::Call(call)
    }
}

/// `send_message(text)` as a REMOTE_CALL packet (full-path form).
pub(crate) fn send_message(text: &str) -> Vec<u8> {
    let mut args = Vec::new();
    encode_string(&mut args, text);
    remote_call(SEND_MESSAGE, 1, &args)
}

/// `receive_message(sender_id, text)` as a REMOTE_CALL packet (full-path form).
pub(crate) fn receive_message(sender_id: i64, text: &str) -> Vec<u8> {
    let mut args = Vec::new();
    encode_int(&mut args, sender_id);
    encode_string(&mut args, text);
    remote_call(RECEIVE_MESSAGE, 2, &args)
}

fn remote_call(method: &str, argc: u8, args: &[u8]) -> Vec<u8> {
    let mut p = vec![CMD_REMOTE_CALL, 0, 0, 0, 0];
    p.extend_from_slice(method.as_bytes());
    p.push(0);
    p.push(argc);
    p.extend_from_slice(args);
    let ofs = u32::try_from(p.len()).unwrap_or(0x7fff_ffff) & 0x7fff_ffff;
    p[1..5].copy_from_slice(&(0x8000_0000 | ofs).to_le_bytes());
    p.extend_from_slice(CHAT_PATH.as_bytes());
    p.push(0);
    p
}

fn encode_int(out: &mut Vec<u8>, v: i64) {
    match i32::try_from(v) {
        Ok(small) => {
            out.extend_from_slice(&TYPE_INT.to_le_bytes());
            out.extend_from_slice(&small.to_le_bytes());
        }
        Err(_) => {
            out.extend_from_slice(&(TYPE_INT | FLAG_64).to_le_bytes());
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

fn encode_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&TYPE_STRING.to_le_bytes());
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    out.resize(out.len() + (4 - s.len() % 4) % 4, 0);
}

#[derive(Debug)]
enum Arg {
    Int(i64),
    Str(String),
}

/// Decodes an int or String Variant at `ofs`; returns it and the bytes used.
fn decode_arg(p: &[u8], ofs: usize) -> Option<(Arg, usize)> {
    let header = read_u32(p, ofs)?;
    match (header & 0xff, header & FLAG_64 != 0) {
        (TYPE_INT, false) => Some((Arg::Int(i64::from(read_u32(p, ofs + 4)? as i32)), 8)),
        (TYPE_INT, true) => {
            let b = p.get(ofs + 4..ofs + 12)?;
            Some((Arg::Int(i64::from_le_bytes(b.try_into().ok()?)), 12))
        }
        (TYPE_STRING, _) => {
            let len = read_u32(p, ofs + 4)? as usize;
            let start = ofs + 8;
            let bytes = p.get(start..start.checked_add(len)?)?;
            let text = std::str::from_utf8(bytes).ok()?.to_string();
            let padded = len.checked_add((4 - len % 4) % 4)?;
            Some((Arg::Str(text), 8 + padded))
        }
        _ => None,
    }
}

fn read_u32(p: &[u8], ofs: usize) -> Option<u32> {
    let b = p.get(ofs..ofs.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

/// A NUL-terminated UTF-8 string at `ofs` (at most [`MAX_NAME`] bytes).
fn read_cstring(p: &[u8], ofs: usize) -> Option<String> {
    let rest = p.get(ofs..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    if end > MAX_NAME {
        return None;
    }
    String::from_utf8(rest[..end].to_vec()).ok()
}

/// Like [`read_cstring`], but the NUL may be missing at the end of the packet (Godot parses the
/// appended path up to the packet's end).
fn read_cstring_or_end(p: &[u8], ofs: usize) -> Option<String> {
    let rest = p.get(ofs..)?;
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    if end == 0 || end > MAX_NAME {
        return None;
    }
    String::from_utf8(rest[..end].to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_calls_decode_back() {
        let mut rpc = ChatRpc::default();
        let p = send_message("héllo");
        assert_eq!(
            rpc.handle(7, &p),
            Incoming::Call(ChatCall::SendMessage {
                text: "héllo".into()
            })
        );
        for id in [3i64, 2_000_000_000, 5_000_000_000] {
            let p = receive_message(id, "x");
            assert_eq!(
                rpc.handle(1, &p),
                Incoming::Call(ChatCall::ReceiveMessage {
                    sender_id: id,
                    text: "x".into()
                })
            );
        }
    }

    #[test]
    fn send_message_bytes_match_godot() {
        // Godot 3.2's rpc_id(1, "send_message", "hi") from /root/Chat before the path is
        // confirmed: REMOTE_CALL, 0x80000000 | offset of the appended path, the method, argc,
        // the String Variant (type 4, length 2, padded), then "Chat\0".
        let p = send_message("hi");
        let mut want = vec![0u8];
        want.extend_from_slice(&(0x8000_0000u32 | 31).to_le_bytes());
        want.extend_from_slice(b"send_message\0\x01");
        want.extend_from_slice(&[4, 0, 0, 0, 2, 0, 0, 0, b'h', b'i', 0, 0]);
        want.extend_from_slice(b"Chat\0");
        assert_eq!(p, want);
    }

    #[test]
    fn simplified_paths_are_confirmed_and_used() {
        let mut rpc = ChatRpc::default();
        let mut simplify = vec![CMD_SIMPLIFY_PATH, 5, 0, 0, 0];
        simplify.extend_from_slice(b"Chat\0");
        assert_eq!(
            rpc.handle(9, &simplify),
            Incoming::Confirm {
                reply: b"\x03Chat\0".to_vec()
            }
        );
        let mut call = send_message("yo");
        let path_at = call.len() - 5;
        call.truncate(path_at);
        call[1..5].copy_from_slice(&5u32.to_le_bytes());
        assert_eq!(
            rpc.handle(9, &call),
            Incoming::Call(ChatCall::SendMessage { text: "yo".into() })
        );
        // Another sender has no such id.
        assert!(matches!(rpc.handle(10, &call), Incoming::Ignored { .. }));
        rpc.peer_left(9);
        assert!(matches!(rpc.handle(9, &call), Incoming::Ignored { .. }));
    }

    #[test]
    fn hostile_packets_are_ignored() {
        let mut rpc = ChatRpc::default();
        let good = send_message("hello there");
        // Every truncation and every single-byte corruption: no panic.
        for n in 0..good.len() {
            let _ = rpc.handle(2, &good[..n]);
            for v in [0u8, 0x7f, 0xff] {
                let mut bad = good.clone();
                bad[n] = v;
                let _ = rpc.handle(2, &bad);
            }
        }
        // Huge string length.
        let mut p = vec![0u8];
        p.extend_from_slice(&0x8000_0000u32.to_le_bytes());
        p.extend_from_slice(b"send_message\0\x01");
        p.extend_from_slice(&[4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(rpc.handle(2, &p), Incoming::Ignored { .. }));
        // The path cache per peer is bounded.
        for id in 0..(MAX_PATHS_PER_PEER as u32 + 10) {
            let mut s = vec![CMD_SIMPLIFY_PATH];
            s.extend_from_slice(&id.to_le_bytes());
            s.extend_from_slice(b"Chat\0");
            let _ = rpc.handle(3, &s);
        }
        assert_eq!(rpc.paths[&3].len(), MAX_PATHS_PER_PEER);
        // Another node or method.
        let mut other = receive_message(1, "x");
        let n = other.len();
        other[n - 5..n - 1].copy_from_slice(b"Evil");
        assert!(matches!(
            rpc.handle(2, &other),
            Incoming::Ignored { method: Some(m), .. } if m == RECEIVE_MESSAGE
        ));
    }
}
