//! `baton history <model> [--version V]`: the audit trail of stage transitions from git.

use super::{Context, Outcome};
use anyhow::{bail, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model whose history to show.
    pub model: String,
    /// Only this version.
    #[arg(long)]
    pub version: Option<String>,
    /// Branch or revision whose first-parent history to walk.
    #[arg(long, default_value = "HEAD")]
    pub rev: String,
}

pub fn run(_ctx: &Context, _args: Args) -> Result<Outcome> {
    bail!("`history` is being built (issue 2)")
}
