//! `baton rollback <model> --env <env>`: revert the commit that put the environment's current
//! version in place (`git revert` semantics; merge commits are reverted against their mainline).

use super::context::print_json;
use super::{Context, Format, Outcome};
use anyhow::{bail, Result};
use baton::authoring::{git, rollback, AuthoringError};
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model to roll back.
    pub model: String,
    /// The environment to roll back.
    #[arg(long)]
    pub env: String,
    /// Commit the revert (like `git revert`); otherwise only the working tree changes.
    #[arg(long)]
    pub commit: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<Outcome> {
    let format = ctx.text_or_json()?;
    let (repo, reg) = ctx.load("HEAD")?;
    let Some(workdir) = repo.workdir().map(|p| p.to_path_buf()) else {
        bail!("the repository has no working tree (bare); rollback reverts a commit");
    };
    let target = match rollback::find(&repo, &reg, &args.model, &args.env) {
        Err(AuthoringError::Refused(m)) => {
            eprintln!("error: {m}");
            return Ok(Outcome::Failed);
        }
        other => other?,
    };
    let sha = target.commit.to_string();
    let mut cmd = vec!["revert"];
    cmd.push(if args.commit {
        "--no-edit"
    } else {
        "--no-commit"
    });
    if target.merge {
        cmd.extend(["-m", "1"]);
    }
    cmd.push(&sha);
    git::run(&workdir, &cmd)?;
    let commit = if args.commit {
        Some(git::run(&workdir, &["rev-parse", "HEAD"])?)
    } else {
        None
    };
    let e = &target.event;
    match format {
        Format::Json => print_json(&json!({
            "model": args.model,
            "environment": args.env,
            "reverted": sha,
            "merge": target.merge,
            "version": e.version,
            "subject": e.subject,
            "commit": commit,
        }))?,
        _ => {
            println!(
                "reverting {} \"{}\" ({}), which put {} {} in `{}`",
                &sha[..10],
                e.subject,
                e.time.format("%Y-%m-%d %H:%M UTC"),
                args.model,
                e.version,
                e.to.as_deref().unwrap_or("?")
            );
            match &commit {
                Some(c) => println!("committed {}: push it (or open a pull request); `baton check` judges it as a rollback", &c[..10]),
                None => println!("the revert is staged in the working tree; commit it with `git commit`"),
            }
        }
    }
    Ok(Outcome::Ok)
}
