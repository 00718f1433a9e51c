//! A Godot 3.2 multiplayer client (`NetworkedMultiplayerENet`) in Rust: joins a Godot server
//! (or `mp_server`), says hello to everyone, prints what arrives for a few seconds, and leaves.
//!
//! ```text
//! cargo run -p enet-dtls --example mp_client -- 127.0.0.1 7777
//! cargo run -p enet-dtls --example mp_client -- 127.0.0.1 7777 --compression 4
//! cargo run -p enet-dtls --example mp_client -- localhost 7777 --dtls cert.pem
//! cargo run -p enet-dtls --example mp_client -- 127.0.0.1 7777 --dtls-insecure
//! ```
//!
//! It reads like Godot's usual `start_client()`:
//!
//! ```gdscript
//! func start_client(address, port):
//!     var peer = NetworkedMultiplayerENet.new()
//!     peer.create_client(address, port)
//!     get_tree().network_peer = peer
//!     # then: connection_succeeded / connection_failed / server_disconnected signals
//! ```
//!
//! `--dtls CERT` verifies the server against that certificate (pinned) and the host name
//! given (Godot's `dtls_verify` with `set_dtls_certificate`); `--dtls-insecure` accepts any
//! certificate (`dtls_verify = false`). Prints `CONNECTED <own id>`, `PEER <id>`,
//! `PACKET <from> <mode> <text>`, `FAILED <cause>` and `BYE`.

use std::error::Error;
use std::time::{Duration, Instant};

use enet_dtls::keys::Certificate;
use enet_dtls::multiplayer::{
    CompressionMode, MultiplayerEvent, MultiplayerPeer, Target, TransferMode,
};

/// How to secure the connection.
enum Dtls {
    Off,
    Pinned(Certificate),
    Insecure,
}

/// Godot's `create_client(address, port)`, plus the options of this example.
fn start_client(
    address: &str,
    port: u16,
    compression: CompressionMode,
    dtls: Dtls,
) -> Result<MultiplayerPeer, Box<dyn Error>> {
    let client = MultiplayerPeer::client(address, port).compression(compression);
    let client = match dtls {
        Dtls::Off => client,
        Dtls::Pinned(cert) => client.use_dtls(true).dtls_certificate(cert),
        Dtls::Insecure => client.use_dtls(true).dtls_verify(false),
    };
    Ok(client.create()?)
}

/// Runs the client for `stay` after connecting: greets everyone, prints what arrives. Returns
/// the packets received, or the cause when it could not connect.
fn chat(client: &mut MultiplayerPeer, stay: Duration) -> Result<Vec<String>, Box<dyn Error>> {
    let mut leave_at = None;
    let mut got = Vec::new();
    let give_up = Instant::now() + Duration::from_secs(60);
    while leave_at.is_none_or(|t| Instant::now() < t) && Instant::now() < give_up {
        let Some(event) = client.service(Duration::from_millis(50))? else {
            continue;
        };
        match event {
            MultiplayerEvent::ConnectionSucceeded => {
                println!("CONNECTED {}", client.unique_id());
                // Godot's rpc(): to everyone (the server relays to the other clients).
                client.send(Target::Broadcast, TransferMode::Reliable, None, b"hello")?;
                leave_at = Some(Instant::now() + stay);
            }
            MultiplayerEvent::PeerConnected(id) => println!("PEER {id}"),
            MultiplayerEvent::PeerDisconnected(id) => println!("PEER_LEFT {id}"),
            MultiplayerEvent::Packet(p) => {
                let text = String::from_utf8_lossy(&p.data).into_owned();
                println!("PACKET {} {:?} {text}", p.from, p.mode);
                got.push(text);
            }
            MultiplayerEvent::ConnectionFailed(cause) => {
                return Err(format!("FAILED {cause}").into())
            }
            MultiplayerEvent::ServerDisconnected => break,
            _ => {}
        }
    }
    client.close()?;
    println!("BYE");
    Ok(got)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: mp_client HOST PORT [--compression 0..4] [--dtls CERT | --dtls-insecure]";
    let (Some(host), Some(port)) = (args.first(), args.get(1)) else {
        return Err(usage.into());
    };
    let (mut compression, mut dtls) = (CompressionMode::None, Dtls::Off);
    let mut rest = args[2..].iter();
    while let Some(flag) = rest.next() {
        match flag.as_str() {
            "--compression" => {
                let v = rest.next().ok_or(usage)?.parse()?;
                compression = CompressionMode::from_godot(v).ok_or(usage)?;
            }
            "--dtls" => dtls = Dtls::Pinned(Certificate::load(rest.next().ok_or(usage)?)?),
            "--dtls-insecure" => dtls = Dtls::Insecure,
            _ => return Err(usage.into()),
        }
    }
    let mut client = start_client(host, port.parse()?, compression, dtls)?;
    chat(&mut client, Duration::from_secs(3))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example's client joins a server over DTLS (pinned certificate) and gets the
    /// server's packet; with the wrong pinned certificate it reports why it failed.
    #[test]
    fn joins_over_dtls_and_reports_a_bad_certificate() {
        use enet_dtls::keys::{CertificateParams, KeyType, PrivateKey};
        let key = PrivateKey::generate(KeyType::EcP256).unwrap();
        let cert = Certificate::self_signed(&key, &CertificateParams::new("localhost")).unwrap();
        let mut server = MultiplayerPeer::server(0)
            .bind_address("127.0.0.1".parse().unwrap())
            .use_dtls(true)
            .dtls_key(key.clone())
            .dtls_certificate(cert.clone())
            .create()
            .unwrap();
        let port = server.local_addr().unwrap().port();
        let pinned = cert.clone();
        let good = std::thread::spawn(move || {
            let mut c = start_client(
                "localhost",
                port,
                CompressionMode::None,
                Dtls::Pinned(pinned),
            )
            .map_err(|e| e.to_string())?;
            chat(&mut c, Duration::from_millis(500)).map_err(|e| e.to_string())
        });
        let other = Certificate::self_signed(&key, &CertificateParams::new("localhost")).unwrap();
        let bad = std::thread::spawn(move || {
            let mut c = start_client(
                "localhost",
                port,
                CompressionMode::None,
                Dtls::Pinned(other),
            )
            .map_err(|e| e.to_string())?;
            chat(&mut c, Duration::from_millis(500)).map_err(|e| e.to_string())
        });
        while !(good.is_finished() && bad.is_finished()) {
            server.wait(Some(Duration::from_millis(10))).unwrap();
            server.poll().unwrap();
            while let Some(e) = server.next_event() {
                if let MultiplayerEvent::PeerConnected(id) = e {
                    server
                        .send(Target::Peer(id), TransferMode::Reliable, None, b"welcome")
                        .unwrap();
                }
            }
        }
        assert_eq!(good.join().unwrap().unwrap(), vec!["welcome".to_string()]);
        let err = bad.join().unwrap().unwrap_err();
        assert!(err.starts_with("FAILED DTLS handshake failed"), "{err}");
    }
}
