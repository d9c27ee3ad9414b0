//! `baton rollback <model> --env <env>`: revert the commit that put the current version in place.

use super::{Context, Outcome};
use anyhow::{bail, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    pub model: String,
    /// The environment to roll back.
    #[arg(long)]
    pub env: String,
    /// Commit the revert (like `git revert`); otherwise only the working tree changes.
    #[arg(long)]
    pub commit: bool,
}

pub fn run(_ctx: &Context, _args: Args) -> Result<Outcome> {
    bail!("`rollback` is being built (issue 3)")
}
