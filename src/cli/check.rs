//! `baton check --base REV [--head REV]`: judge a proposed change against the gates (SPEC §2).

use super::{Context, Outcome};
use anyhow::{bail, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The branch the change targets (merge-base(base, head) is the old side).
    #[arg(long)]
    pub base: String,
    /// The proposed revision.
    #[arg(long, default_value = "HEAD")]
    pub head: String,
    /// Count GitHub pull-request reviews: owner/repo (token in GITHUB_TOKEN).
    #[arg(long, value_name = "OWNER/REPO", requires = "pr")]
    pub github: Option<String>,
    /// The pull request number for --github.
    #[arg(long, value_name = "N", requires = "github")]
    pub pr: Option<u64>,
}

pub fn run(_ctx: &Context, _args: Args) -> Result<Outcome> {
    bail!("`check` is being built (issue 3)")
}
