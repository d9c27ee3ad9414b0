//! `baton approve <model> <version> --stage <stage>` / `baton approve --policy`: make a signed
//! empty approval commit (docs/approvals.md) with the user's own git signing configuration.

use super::context::print_json;
use super::{Context, Format, Outcome};
use anyhow::{bail, Result};
use baton::authoring::{approve, git};
use baton::check::approvals::TRAILER;
use baton::registry::Registry;
use serde_json::json;
use std::collections::BTreeSet;
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model whose change you approve (with VERSION; omit both with --policy).
    pub model: Option<String>,
    /// The version whose change you approve.
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
    let repo_dir = workdir.clone();
    let gpg_format = git::run(&workdir, &["config", "--get", "gpg.format"]).ok();
    let signers = reg
        .policy
        .as_ref()
        .and_then(|p| p.signers.as_deref())
        .map_or("the allowed signers file".to_owned(), |s| {
            baton::repo::join(&reg.root, s)
        });
    if let Some(setup) = approve::ssh_signing_setup(gpg_format.as_deref(), &signers) {
        bail!("{setup}");
    }
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
        if let Some(why) = own_change(&repo_dir, &reg, model, stage, &v.path)? {
            eprintln!("error: {why}");
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

/// The refusal when the approver (`git config user.email`) authored or committed the newest
/// commit that changed the manifest at `path` (the change being approved).
fn own_change(
    workdir: &Path,
    reg: &Registry,
    model: &str,
    stage: &str,
    path: &str,
) -> Result<Option<String>> {
    let Ok(me) = git::run(workdir, &["config", "--get", "user.email"]) else {
        return Ok(None);
    };
    let log = git::run(
        workdir,
        &["log", "-1", "--format=%H%x00%ae%x00%ce", "--", path],
    )?;
    let mut fields = log.trim().split('\0');
    let commit = fields.next().unwrap_or_default();
    let authors: BTreeSet<String> = fields.map(|e| e.trim().to_lowercase()).collect();
    let Some(policy) = reg.policy.as_ref() else {
        return Ok(None);
    };
    let owners = reg
        .models
        .get(model)
        .map(|m| m.owners().to_vec())
        .unwrap_or_default();
    let mut exclude = authors.clone();
    exclude.insert(me.trim().to_lowercase());
    let eligible = approve::eligible(policy, stage, &owners, &exclude);
    Ok(approve::own_change(
        &me,
        &authors,
        commit.get(..10).unwrap_or(commit),
        &eligible,
    ))
}
