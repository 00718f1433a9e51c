//! DTLS echo server in Godot's shape: `UdpServer` + `DtlsServer`, one `PacketPeerDtls` per
//! client, in the same shape as the Godot peer the tests run (`fixtures/godot/dtls_echo_server.gd`).
//! It prints one line per event:
//!
//! ```text
//! cargo run -p enet-dtls --example dtls_server -- port=4433 [key=key.pem cert=cert.pem] \
//!     [bind=127.0.0.1] [timeout=30] [max_echoes=0]
//! ```
//!
//! Without `key`/`cert` it generates an in-memory RSA-2048 self-signed pair (CN=localhost).
//! Prints `DTLS_SERVER_LISTENING port=<p>`, `NEW_UDP_PEER <ip:port> dtls_status=<n>`,
//! `DTLS_CONNECTED <ip:port>`, `ECHO <ip:port> len=<n> text=<..>`,
//! `PEER_CLOSED <ip:port> status=<n>`, `DTLS_SERVER_EXIT reason=<timeout|max_echoes>`.
//!
//! For a server that faces the Internet prefer `DtlsListener` (see its docs): the `UdpServer`
//! here keeps a pending peer per source address before any DTLS check.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use enet_dtls::dtls::{DtlsServer, PacketPeerDtls, Status};
use enet_dtls::dtls_proto::keys::{Certificate, CertificateParams, KeyType, PrivateKey};
use enet_dtls::udp::UdpServer;

/// `key=value` arguments, like the fixtures' `args.gd`.
fn args() -> HashMap<String, String> {
    std::env::args()
        .skip(1)
        .filter_map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Godot's status numbers (`PacketPeerDTLS.STATUS_*`).
fn godot_status(s: Status) -> u8 {
    match s {
        Status::Disconnected => 0,
        Status::Handshaking => 1,
        Status::Connected => 2,
        Status::Error => 3,
        Status::ErrorHostnameMismatch => 4,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args();
    let get = |k: &str, d: &str| a.get(k).cloned().unwrap_or_else(|| d.to_string());
    let port: u16 = get("port", "4433").parse()?;
    let bind = get("bind", "127.0.0.1");
    let deadline = Instant::now() + Duration::from_secs_f64(get("timeout", "30").parse()?);
    let max_echoes: u64 = get("max_echoes", "0").parse()?;

    let (key, cert) = match (a.get("key"), a.get("cert")) {
        (Some(k), Some(c)) => (PrivateKey::load(k)?, Certificate::load(c)?),
        _ => {
            let key = PrivateKey::generate(KeyType::Rsa(2048))?;
            let cert = Certificate::self_signed(&key, &CertificateParams::new("localhost"))?;
            (key, cert)
        }
    };
    let mut dtls = DtlsServer::setup(&key, &cert, &[])?;
    let mut udp_server = UdpServer::listen((bind.as_str(), port))?;
    println!(
        "DTLS_SERVER_LISTENING port={}",
        udp_server.local_addr()?.port()
    );

    // [peer, "ip:port", was_connected]
    let mut peers: Vec<(PacketPeerDtls, String, bool)> = Vec::new();
    let mut echoes = 0u64;
    loop {
        udp_server.poll()?;
        while let Some(udp) = udp_server.take_connection() {
            let addr = udp.remote_addr().map(|a| a.to_string()).unwrap_or_default();
            let p = dtls.take_connection(udp);
            println!(
                "NEW_UDP_PEER {addr} dtls_status={}",
                godot_status(p.status())
            );
            if p.status() == Status::Handshaking {
                peers.push((p, addr, false));
            }
        }
        let mut keep = Vec::with_capacity(peers.len());
        for (mut p, addr, mut was_connected) in peers.drain(..) {
            p.poll()?;
            match p.status() {
                Status::Connected => {
                    if !was_connected {
                        was_connected = true;
                        println!("DTLS_CONNECTED {addr}");
                    }
                    while let Some(pkt) = p.get_packet()? {
                        let text = String::from_utf8_lossy(&pkt);
                        println!("ECHO {addr} len={} text={}", pkt.len(), text.trim());
                        p.put_packet(&pkt)?;
                        echoes += 1;
                    }
                    keep.push((p, addr, was_connected));
                }
                Status::Handshaking => keep.push((p, addr, was_connected)),
                other => {
                    let why = p.error().map(|e| format!(" error={e}")).unwrap_or_default();
                    println!("PEER_CLOSED {addr} status={}{why}", godot_status(other));
                }
            }
        }
        peers = keep;
        if max_echoes > 0 && echoes >= max_echoes {
            println!("DTLS_SERVER_EXIT reason=max_echoes");
            return Ok(());
        }
        if Instant::now() > deadline {
            println!("DTLS_SERVER_EXIT reason=timeout");
            return Ok(());
        }
        // Godot runs this at 500 fps; sleep until a datagram arrives, at most 2 ms.
        udp_server.wait(Some(Duration::from_millis(2)))?;
    }
}
