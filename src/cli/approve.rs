//! `baton approve <model> <version> --stage <stage>`: make a signed approval commit (SPEC §3).

use super::{Context, Outcome};
use anyhow::{bail, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    pub model: Option<String>,
    pub version: Option<String>,
    /// The stage being approved.
    #[arg(long)]
    pub stage: Option<String>,
    /// Approve a policy change (`Baton-Approve: policy`) instead.
    #[arg(long, conflicts_with_all = ["model", "version", "stage"])]
    pub policy: bool,
}

pub fn run(_ctx: &Context, _args: Args) -> Result<Outcome> {
    bail!("`approve` is being built (issue 3)")
}
