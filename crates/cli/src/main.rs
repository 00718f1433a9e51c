//! `enet-dtls`: the command-line tool of the enet-dtls project.
//!
//! Each subcommand lives in its own module; `main` only parses arguments and dispatches.

#![forbid(unsafe_code)]

mod args;
mod chat_room;
mod chat_rpc;
mod cmd_bench;
mod cmd_chat;
mod cmd_demo;
mod cmd_dtls;
mod cmd_enet;
mod cmd_keygen;
mod cmd_netsim;
mod hexview;
mod metrics;
mod shutdown;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Secure real-time game networking: DTLS 1.2, ENet 1.3 and Godot-compatible tools.
#[derive(Debug, Parser)]
#[command(name = "enet-dtls", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a private key and a self-signed certificate (DIR/key.pem, DIR/cert.pem).
    Keygen(cmd_keygen::KeygenArgs),
    /// DTLS 1.2 echo server with stateless cookies: echoes every datagram to its sender.
    DtlsServer(cmd_dtls::ServerArgs),
    /// DTLS 1.2 client: connects, sends TEXT COUNT times and waits for every echo.
    DtlsClient(cmd_dtls::ClientArgs),
    /// Plain ENet 1.3 echo host: sends every packet back on the same channel and reliability.
    EnetEcho(cmd_enet::EchoArgs),
    /// The main job: the same Godot RPCs over plaintext ENet and over ENet in DTLS 1.2, captured and
    /// shown side by side (no arguments needed).
    Demo(cmd_demo::DemoArgs),
    /// A chat room on Godot 3.2's MultiplayerAPI (node `Chat`) that Godot clients can join.
    Serve(cmd_chat::ServeArgs),
    /// Join a chat room: sends stdin lines, prints `<id>: <text>` per message.
    Connect(cmd_chat::ConnectArgs),
    /// Loopback benchmark: our ENet and DTLS next to raw UDP and C ENet, with ratios.
    Bench(cmd_bench::BenchArgs),
    /// UDP relay with simulated loss, delay, jitter, duplication, reordering and a rate cap.
    Netsim(cmd_netsim::NetsimArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Keygen(a) => cmd_keygen::run(a),
        Command::DtlsServer(a) => cmd_dtls::run_server(a),
        Command::DtlsClient(a) => cmd_dtls::run_client(a),
        Command::EnetEcho(a) => cmd_enet::run_echo(a),
        Command::Bench(a) => cmd_bench::run(a),
        Command::Demo(a) => cmd_demo::run(a),
        Command::Serve(a) => cmd_chat::run_serve(a),
        Command::Connect(a) => cmd_chat::run_connect(a),
        Command::Netsim(a) => cmd_netsim::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
