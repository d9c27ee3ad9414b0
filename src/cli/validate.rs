//! `baton validate [--rev REV]`: the whole registry at a revision against schema and invariants.

use super::context::print_json;
use super::{Context, Format, Outcome};
use anyhow::Result;
use baton::registry::files::GitFiles;
use baton::registry::invariants::validate;
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Revision to validate.
    #[arg(long, default_value = "HEAD")]
    pub rev: String,
}

pub fn run(ctx: &Context, args: Args) -> Result<Outcome> {
    let format = ctx.text_or_json()?;
    let (repo, reg) = ctx.load(&args.rev)?;
    let files = GitFiles::new(&repo, reg.commit)?;
    let errors = validate(&reg, &files);
    let envs = reg.policy.as_ref().map_or(0, |p| p.environments.len());
    match format {
        Format::Json => print_json(&json!({
            "revision": reg.commit.to_string(),
            "registry": reg.root,
            "valid": errors.is_empty(),
            "models": reg.models.len(),
            "versions": reg.version_count(),
            "environments": envs,
            "errors": errors,
        }))?,
        _ => {
            for e in &errors {
                println!("{e}");
            }
            let short = &reg.commit.to_string()[..10];
            let root = if reg.root.is_empty() {
                "."
            } else {
                reg.root.as_str()
            };
            if errors.is_empty() {
                println!(
                    "ok: registry {root} at {short}: {} models, {} versions, {envs} environments",
                    reg.models.len(),
                    reg.version_count()
                );
            } else {
                println!(
                    "invalid: registry {root} at {short}: {} error{}",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                );
            }
        }
    }
    Ok(if errors.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}
