//! An ENet echo server and client on the blocking driver, `EnetHost`.
//!
//! ```text
//! cargo run -p enet-dtls --example enet_echo -- server 127.0.0.1:7777 [MAX_PEERS]
//! cargo run -p enet-dtls --example enet_echo -- client 127.0.0.1:7777 hello
//! ```
//!
//! The server sends every packet back to its sender, on the channel it came in on and with the
//! same flags, and prints `LISTENING <addr>`, `CONNECT <addr>` and `DISCONNECT <addr>`. The
//! client connects with 2 channels, sends its text as one reliable packet on channel 0, prints
//! `ECHO <text>` when it comes back and disconnects. Both speak plain ENet 1.3, so either side
//! also works with C ENet or Godot's `NetworkedMultiplayerENet` at the ENet level.
//!
//! The server takes 32 peers, or `MAX_PEERS` (1..=4095) from any number of ports of one address
//! (a load test's). It uses nothing of DTLS, so the linker leaves OpenSSL out of this binary:
//! `scripts/bench` measures its memory as a plain-ENet server built on the library.

use std::error::Error;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use enet_dtls::enet::EnetHost;
use enet_dtls::{Event, HostConfig, Packet};

/// How long the client waits for each step (connect, echo, disconnect).
const STEP_TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        ["server", addr] => serve(addr, HostConfig::default()),
        ["server", addr, max_peers] => {
            let max_peers: usize = max_peers
                .parse()
                .map_err(|e| format!("MAX_PEERS {max_peers:?}: {e}"))?;
            let config = HostConfig {
                peer_limit: max_peers,
                duplicate_peers: max_peers,
                ..HostConfig::default()
            };
            serve(addr, config)
        }
        ["client", addr, text] => {
            let echo = echo_client(addr.parse()?, text.as_bytes())?;
            println!("ECHO {}", String::from_utf8_lossy(&echo));
            Ok(())
        }
        _ => Err(
            "usage: enet_echo server ADDR:PORT [MAX_PEERS] | enet_echo client ADDR:PORT TEXT"
                .into(),
        ),
    }
}

/// Binds a server with `config` on `addr`, prints `LISTENING <addr>` and echoes until killed.
fn serve(addr: &str, config: HostConfig) -> Result<(), Box<dyn Error>> {
    let mut server = EnetHost::bind(addr, config)?;
    println!("LISTENING {}", server.local_addr()?);
    loop {
        serve_once(&mut server)?;
    }
}

/// Services the server once (waiting up to 100 ms for traffic) and echoes what arrived.
fn serve_once(server: &mut EnetHost) -> Result<(), Box<dyn Error>> {
    match server.service(Duration::from_millis(100))? {
        Some(Event::Connect { address, .. }) => println!("CONNECT {address}"),
        Some(Event::Receive {
            peer,
            channel,
            packet,
        }) => server.send(peer, channel, packet)?,
        Some(Event::Disconnect { address, .. }) => println!("DISCONNECT {address}"),
        None => {}
    }
    Ok(())
}

/// Connects to `server`, sends `text` reliably on channel 0, waits for the echo, disconnects
/// cleanly and returns what came back.
fn echo_client(server: SocketAddr, text: &[u8]) -> Result<Vec<u8>, Box<dyn Error>> {
    let mut client = EnetHost::bind("127.0.0.1:0", HostConfig::default())?;
    let peer = client.connect(server, 2, 0)?;
    let mut echo = None;
    let mut deadline = Instant::now() + STEP_TIMEOUT;
    while Instant::now() < deadline {
        match client.service(Duration::from_millis(100))? {
            Some(Event::Connect { .. }) => {
                client.send(peer, 0, Packet::reliable(text))?;
                deadline = Instant::now() + STEP_TIMEOUT;
            }
            Some(Event::Receive { packet, .. }) => {
                echo = Some(packet.data);
                client.disconnect(peer, 0);
                deadline = Instant::now() + STEP_TIMEOUT;
            }
            Some(Event::Disconnect { .. }) => break,
            None => {}
        }
    }
    echo.ok_or_else(|| format!("no echo from {server}").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the example's server and client against each other on loopback.
    #[test]
    fn client_gets_its_text_back_from_the_server() {
        let mut server =
            EnetHost::bind("127.0.0.1:0", HostConfig::default()).expect("bind the server");
        let addr = server.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            echo_client(addr, b"hello from the example").map_err(|e| e.to_string())
        });
        while !client.is_finished() {
            serve_once(&mut server).expect("serve");
        }
        let echo = client.join().expect("client thread").expect("client");
        assert_eq!(echo, b"hello from the example");
    }
}
