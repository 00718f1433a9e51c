//! DTLS client in Godot's shape: `PacketPeerUdp::connect_to_host` +
//! `PacketPeerDtls::connect_to_peer`, in the same shape as the Godot peer the tests run
//! (`fixtures/godot/dtls_client.gd`). It prints one line per event:
//!
//! ```text
//! cargo run -p enet-dtls --example dtls_client -- host=127.0.0.1 port=4433 \
//!     [msg="hello from rust"] [count=1] [wait_replies=1] [timeout=10] \
//!     [verify=0 | verify=1 ca=cert.pem hostname=localhost]
//! ```
//!
//! Sends `count` datagrams `"<msg> #<i>\n"` once connected, prints every reply until
//! `wait_replies` came back, then closes (close_notify). Prints `DTLS_CLIENT_CONNECTING ...`,
//! `DTLS_CONNECTED`, `SENT ..`, `RECV len= text=`, `DTLS_CLIENT_EXIT ok|timeout|error`.
//! Exit code 0 when all replies arrived, 1 otherwise.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use enet_dtls::dtls::{ClientConfig, PacketPeerDtls, Status};
use enet_dtls::dtls_proto::keys::Certificate;
use enet_dtls::udp::PacketPeerUdp;

fn args() -> HashMap<String, String> {
    std::env::args()
        .skip(1)
        .filter_map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let a = args();
    let get = |k: &str, d: &str| a.get(k).cloned().unwrap_or_else(|| d.to_string());
    let host = get("host", "127.0.0.1");
    let port: u16 = get("port", "4433").parse()?;
    let msg = get("msg", "hello from rust");
    let count: u32 = get("count", "1").parse()?;
    let wait_replies: u32 = get("wait_replies", "1").parse()?;
    let deadline = Instant::now() + Duration::from_secs_f64(get("timeout", "10").parse()?);
    let verify = get("verify", "0") == "1";
    let hostname = get("hostname", if verify { "localhost" } else { "" });

    // Godot: connect_to_peer(udp, verify, hostname, ca)
    let mut config = ClientConfig::builder()
        .verify(verify)
        .hostname(hostname.clone());
    if let Some(ca) = a.get("ca") {
        config = config.trusted_certificate(Certificate::load(ca)?);
    }
    if hostname.is_empty() {
        // Godot accepts verification without a hostname; here that is an explicit choice.
        config = config.allow_any_hostname();
    }
    let config = config.build()?;

    let mut udp = PacketPeerUdp::new();
    udp.connect_to_host((host.as_str(), port))?;
    let mut dtls = PacketPeerDtls::connect_to_peer(udp, &config)?;
    println!(
        "DTLS_CLIENT_CONNECTING {host}:{port} verify={verify} hostname={hostname} status={:?}",
        dtls.status()
    );

    let mut connected = false;
    let mut replies = 0u32;
    loop {
        dtls.poll()?;
        match dtls.status() {
            Status::Connected => {
                if !connected {
                    connected = true;
                    println!("DTLS_CONNECTED cipher={}", dtls.cipher().unwrap_or("?"));
                    for i in 0..count {
                        let line = format!("{msg} #{i}\n");
                        dtls.put_packet(line.as_bytes())?;
                        println!("SENT {}", line.trim());
                    }
                }
                while let Some(pkt) = dtls.get_packet()? {
                    replies += 1;
                    println!(
                        "RECV len={} text={}",
                        pkt.len(),
                        String::from_utf8_lossy(&pkt).trim()
                    );
                }
                if replies >= wait_replies {
                    dtls.disconnect_from_peer(); // sends close_notify
                    println!("DTLS_CLIENT_EXIT ok replies={replies}");
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Status::Handshaking => {}
            other => {
                let why = dtls.error().map(ToString::to_string).unwrap_or_default();
                println!("DTLS_CLIENT_EXIT error status={other:?} {why}");
                return Ok(ExitCode::FAILURE);
            }
        }
        if Instant::now() > deadline {
            println!(
                "DTLS_CLIENT_EXIT timeout status={:?} replies={replies}",
                dtls.status()
            );
            return Ok(ExitCode::FAILURE);
        }
        dtls.wait(Some(Duration::from_millis(2)))?;
    }
}
