//! `enet-dtls dtls-server` and `dtls-client` (owned by the DTLS driver work).
use std::process::ExitCode;

/// Arguments of `dtls-server`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServerArgs {}

/// Arguments of `dtls-client`.
#[derive(Debug, clap::Args)]
pub(crate) struct ClientArgs {}

pub(crate) fn run_server(_a: ServerArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    Err("dtls-server is not implemented yet".into())
}

pub(crate) fn run_client(_a: ClientArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    Err("dtls-client is not implemented yet".into())
}
