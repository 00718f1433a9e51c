//! An ENet echo server and client on the async driver, `TokioEnetHost` (feature `tokio`).
//!
//! ```text
//! cargo run -p enet-dtls --features tokio --example enet_echo_tokio -- server 127.0.0.1:7777
//! cargo run -p enet-dtls --features tokio --example enet_echo_tokio -- client 127.0.0.1:7777 hello
//! ```
//!
//! The same protocol and output as the blocking `enet_echo` example (the two interoperate):
//! the server echoes every packet on its channel with its flags; the client sends its text
//! reliably on channel 0, prints `ECHO <text>` and disconnects.

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use enet_dtls::enet::TokioEnetHost;
use enet_dtls::{Event, HostConfig, Packet};

/// How long the client waits for each step (connect, echo, disconnect).
const STEP_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        ["server", addr] => {
            let mut server = TokioEnetHost::bind(addr, HostConfig::default()).await?;
            println!("LISTENING {}", server.local_addr()?);
            serve(&mut server).await
        }
        ["client", addr, text] => {
            let echo = echo_client(addr.parse()?, text.as_bytes()).await?;
            println!("ECHO {}", String::from_utf8_lossy(&echo));
            Ok(())
        }
        _ => Err(
            "usage: enet_echo_tokio server ADDR:PORT | enet_echo_tokio client ADDR:PORT TEXT"
                .into(),
        ),
    }
}

/// Echoes every packet, forever. `next_event` is cancel safe, so this future can also sit in a
/// `tokio::select!` next to a shutdown signal.
async fn serve(server: &mut TokioEnetHost) -> Result<(), Box<dyn Error>> {
    loop {
        match server.next_event().await? {
            Event::Connect { address, .. } => println!("CONNECT {address}"),
            Event::Receive {
                peer,
                channel,
                packet,
            } => server.send(peer, channel, packet)?,
            Event::Disconnect { address, .. } => println!("DISCONNECT {address}"),
        }
    }
}

/// Connects to `server`, sends `text` reliably on channel 0, waits for the echo, disconnects
/// cleanly and returns what came back.
async fn echo_client(server: SocketAddr, text: &[u8]) -> Result<Vec<u8>, Box<dyn Error>> {
    let mut client = TokioEnetHost::bind("127.0.0.1:0", HostConfig::default()).await?;
    let peer = client.connect(server, 2, 0)?;
    let mut echo = None;
    while let Some(event) = client.service(STEP_TIMEOUT).await? {
        match event {
            Event::Connect { .. } => client.send(peer, 0, Packet::reliable(text))?,
            Event::Receive { packet, .. } => {
                echo = Some(packet.data);
                client.disconnect(peer, 0);
            }
            Event::Disconnect { .. } => break,
        }
    }
    echo.ok_or_else(|| format!("no echo from {server}").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the example's server and client against each other on loopback, in one runtime.
    #[tokio::test(flavor = "current_thread")]
    async fn client_gets_its_text_back_from_the_server() {
        let mut server = TokioEnetHost::bind("127.0.0.1:0", HostConfig::default())
            .await
            .expect("bind the server");
        let addr = server.local_addr().unwrap();
        let echo = tokio::select! {
            result = serve(&mut server) => panic!("the server stopped: {result:?}"),
            echo = echo_client(addr, b"hello from the tokio example") => echo.expect("client"),
        };
        assert_eq!(echo, b"hello from the tokio example");
    }
}
