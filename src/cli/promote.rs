//! `baton promote <model> <version> --to <stage>`: edit manifests for a promotion.

use super::{Context, Outcome};
use anyhow::{bail, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    pub model: String,
    pub version: String,
    /// Target stage.
    #[arg(long)]
    pub to: String,
    /// Percent of traffic in a canary stage.
    #[arg(long)]
    pub traffic: Option<u32>,
    /// Branch to commit on (with --commit).
    #[arg(long)]
    pub branch: Option<String>,
    /// Commit the edit on a new branch.
    #[arg(long)]
    pub commit: bool,
}

pub fn run(_ctx: &Context, _args: Args) -> Result<Outcome> {
    bail!("`promote` is being built (issue 3)")
}
