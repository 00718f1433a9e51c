//! `enet-dtls`: the command-line tool of the enet-dtls project.
//!
//! Each subcommand lives in its own module; `main` only parses arguments and dispatches.

#![forbid(unsafe_code)]

mod args;
mod cmd_bench;
mod cmd_dtls;
mod cmd_enet;
mod cmd_keygen;
mod cmd_netsim;
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
