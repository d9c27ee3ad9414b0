//! `baton serve`: the controller daemon (SPEC §5).

use super::{Context, Outcome};
use anyhow::{bail, Result};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Clone and follow a remote repository instead of watching --repo.
    #[arg(long)]
    pub url: Option<String>,
    /// The branch to follow.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// State directory (default .git/baton of the watched repo, ./baton-state with --url).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:8750")]
    pub listen: String,
    /// Resync / fetch interval.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub interval: std::time::Duration,
    /// Reconcile once and exit.
    #[arg(long)]
    pub once: bool,
    /// Trusted baseline revision on an empty state dir (default: the current head).
    #[arg(long, value_name = "REV")]
    pub trust: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn run(_ctx: &Context, _args: Args) -> Result<Outcome> {
    bail!("`serve` is being built (issue 4)")
}
