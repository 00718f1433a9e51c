//! `enet-dtls enet-echo` (owned by the ENet driver work).
use std::process::ExitCode;

/// Arguments of `enet-echo`.
#[derive(Debug, clap::Args)]
pub(crate) struct EchoArgs {}

pub(crate) fn run_echo(_a: EchoArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    Err("enet-echo is not implemented yet".into())
}
