//! `baton register <model> --artifact FILE`: write a new version manifest in the first stage.

use super::{Context, Outcome};
use anyhow::{bail, Result};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model to register a version of.
    pub model: String,
    /// The artifact file (sha256 and size are computed).
    #[arg(long, value_name = "FILE")]
    pub artifact: PathBuf,
    /// JSON object of metric name -> number.
    #[arg(long, value_name = "FILE.json")]
    pub metrics: Option<PathBuf>,
    /// Version label (default: next integer after the highest numeric label).
    #[arg(long)]
    pub version: Option<String>,
}

pub fn run(_ctx: &Context, _args: Args) -> Result<Outcome> {
    bail!("`register` is being built (issue 2)")
}
