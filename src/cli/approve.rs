//! `baton approve <model> <version> --stage <stage>` / `baton approve --policy`: make a signed
//! empty approval commit (docs/approvals.md) with the user's own git signing configuration.

use super::context::print_json;
use super::{Context, Format, Outcome};
use anyhow::{bail, Result};
use baton::authoring::git;
use baton::check::approvals::TRAILER;
use serde_json::json;

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

pub fn run(ctx: &Context, args: Args) -> Result<Outcome> {
    let format = ctx.text_or_json()?;
    let (repo, reg) = ctx.load("HEAD")?;
    let Some(workdir) = repo.workdir().map(|p| p.to_path_buf()) else {
        bail!("the repository has no working tree (bare); approve makes a commit");
    };
    let what = if args.policy {
        "policy".to_owned()
    } else {
        let (Some(model), Some(version), Some(stage)) = (&args.model, &args.version, &args.stage)
        else {
            bail!(
                "usage: baton approve <model> <version> --stage <stage>, or baton approve --policy"
            );
        };
        let Some(v) = reg.version(model, version) else {
            bail!("{model} has no version `{version}` at HEAD");
        };
        if &v.manifest.stage != stage {
            eprintln!(
                "error: {model}@{version} is in `{}` at HEAD, not `{stage}`: an approval binds to the manifest as committed, so promote first",
                v.manifest.stage
            );
            return Ok(Outcome::Failed);
        }
        format!("{model}@{version} -> {stage}")
    };
    let title = format!("Approve {what}");
    let trailer = format!("{TRAILER}: {what}");
    git::run(
        &workdir,
        &[
            "commit",
            "-q",
            "-S",
            "--allow-empty",
            "-m",
            &title,
            "-m",
            &trailer,
        ],
    )?;
    let commit = git::run(&workdir, &["rev-parse", "HEAD"])?;
    let signed = repo
        .extract_signature(&git2::Oid::from_str(&commit)?, None)
        .is_ok();
    match format {
        Format::Json => {
            print_json(&json!({"commit": commit, "trailer": trailer, "signed": signed}))?
        }
        _ => println!("{} {trailer}", &commit[..commit.len().min(10)]),
    }
    if !signed {
        bail!("git made the commit unsigned; configure signing (docs/approvals.md)");
    }
    Ok(Outcome::Ok)
}
