//! A Godot 3.2 multiplayer server (`NetworkedMultiplayerENet`) in Rust: Godot games (and
//! `mp_client`) join it, see each other, and talk through it.
//!
//! ```text
//! cargo run -p enet-dtls --example mp_server -- 7777
//! cargo run -p enet-dtls --example mp_server -- 7777 --compression 4 --max-clients 8
//! cargo run -p enet-dtls --example mp_server -- 7777 --dtls key.pem cert.pem
//! ```
//!
//! It reads like Godot's usual `start_server()`:
//!
//! ```gdscript
//! func start_server(port):
//!     var peer = NetworkedMultiplayerENet.new()
//!     peer.compression_mode = NetworkedMultiplayerENet.COMPRESS_ZSTD
//!     peer.create_server(port, 32)
//!     get_tree().network_peer = peer
//! ```
//!
//! Clients are relayed to each other (Godot's `server_relay`), so a Godot client's
//! `rpc()` reaches the other clients. The server itself answers every packet addressed to it
//! with `server got: <packet>` to its sender, in the mode the packet came in. It prints
//! `LISTENING <addr>`, `JOINED <id> <addr>`, `PACKET <from> <mode> <text>` and `LEFT <id>`.
//! `enet-dtls keygen` writes a key and certificate for `--dtls`.

use std::error::Error;
use std::time::Duration;

use enet_dtls::keys::{Certificate, PrivateKey};
use enet_dtls::multiplayer::{CompressionMode, MultiplayerEvent, MultiplayerPeer, Target};

/// Godot's `create_server(port, max_clients)`, plus the options of this example.
fn start_server(
    port: u16,
    max_clients: usize,
    compression: CompressionMode,
    dtls: Option<(PrivateKey, Certificate)>,
) -> Result<MultiplayerPeer, Box<dyn Error>> {
    let mut server = MultiplayerPeer::server(port)
        .max_clients(max_clients)
        .compression(compression);
    if let Some((key, cert)) = dtls {
        server = server.use_dtls(true).dtls_key(key).dtls_certificate(cert);
    }
    Ok(server.create()?)
}

/// One round of Godot's `_process`: wait up to 50 ms for traffic, `poll()`, handle the
/// "signals" and the packets.
fn serve_once(server: &mut MultiplayerPeer) -> Result<(), Box<dyn Error>> {
    server.wait(Some(Duration::from_millis(50)))?;
    server.poll()?;
    while let Some(event) = server.next_event() {
        match event {
            MultiplayerEvent::PeerConnected(id) => {
                println!("JOINED {id} {}", server.peer_address(id)?)
            }
            MultiplayerEvent::PeerDisconnected(id) => println!("LEFT {id}"),
            MultiplayerEvent::Packet(p) => {
                let text = String::from_utf8_lossy(&p.data).into_owned();
                println!("PACKET {} {:?} {text}", p.from, p.mode);
                let reply = format!("server got: {text}");
                server.send(Target::Peer(p.from), p.mode, None, reply.as_bytes())?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: mp_server PORT [--max-clients N] [--compression 0..4] [--dtls KEY CERT]";
    let port: u16 = args.first().ok_or(usage)?.parse()?;
    let (mut max_clients, mut compression, mut dtls) = (32, CompressionMode::None, None);
    let mut rest = args[1..].iter();
    while let Some(flag) = rest.next() {
        let mut value = || rest.next().ok_or(usage);
        match flag.as_str() {
            "--max-clients" => max_clients = value()?.parse()?,
            "--compression" => {
                compression = CompressionMode::from_godot(value()?.parse()?).ok_or(usage)?
            }
            "--dtls" => {
                let key = PrivateKey::load(value()?)?;
                let cert = Certificate::load(value()?)?;
                dtls = Some((key, cert));
            }
            _ => return Err(usage.into()),
        }
    }
    let mut server = start_server(port, max_clients, compression, dtls)?;
    println!("LISTENING {}", server.local_addr()?);
    loop {
        serve_once(&mut server)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use enet_dtls::multiplayer::TransferMode;

    /// A client joins the example's server and gets its packet answered.
    #[test]
    fn a_client_gets_an_answer() {
        let mut server = start_server(0, 4, CompressionMode::Zlib, None).unwrap();
        let port = server.local_addr().unwrap().port();
        let mut client = MultiplayerPeer::client("127.0.0.1", port)
            .compression(CompressionMode::Zlib)
            .create()
            .unwrap();
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            assert!(std::time::Instant::now() < give_up, "no answer");
            serve_once(&mut server).unwrap();
            client.poll().unwrap();
            match client.next_event() {
                Some(MultiplayerEvent::ConnectionSucceeded) => client
                    .send(Target::Peer(1), TransferMode::Reliable, None, b"hi")
                    .unwrap(),
                Some(MultiplayerEvent::Packet(p)) => {
                    assert_eq!(p.data, b"server got: hi");
                    return;
                }
                _ => {}
            }
        }
    }
}
