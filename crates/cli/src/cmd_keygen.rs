//! `enet-dtls keygen` (owned by the foundation work).
use std::process::ExitCode;

/// Arguments of `keygen`.
#[derive(Debug, clap::Args)]
pub(crate) struct KeygenArgs {}

pub(crate) fn run(_a: KeygenArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    Err("keygen is not implemented yet".into())
}
