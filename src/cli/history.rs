//! `baton history <model> [--version V]`: the audit trail of stage transitions from git.
//! Newest first, one row per version whose stage changed in a first-parent commit.

use super::context::print_json;
use super::{table, Context, Format, Outcome};
use anyhow::{bail, Result};
use baton::audit::{Approvals, LandedApproval};
use baton::history::{HistoryWalker, StageEvent};
use baton::repo::join;
use serde_json::json;

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

pub fn run(ctx: &Context, args: Args) -> Result<Outcome> {
    let format = ctx.text_or_json()?;
    if !baton::names::is_model_name(&args.model) {
        bail!(
            "`{}` is not a valid model name (a DNS label: lower-case letters, digits and '-')",
            args.model
        );
    }
    // Reading thousands of commits and trees: skip libgit2's re-hashing of every object read
    // (object ids are still compared; this only drops the check against on-disk corruption).
    baton::gitopts::init();
    let repo = ctx.open_repo()?;
    let commit = baton::repo::resolve_commit(&repo, &args.rev)?;
    let root = ctx.registry_root(&repo, &commit, &args.rev)?;
    let events = HistoryWalker::new().model_history(
        &repo,
        commit.id(),
        &root,
        &args.model,
        args.version.as_deref(),
    )?;
    if events.is_empty() {
        let folder = join(&root, &format!("models/{}", args.model));
        let exists = commit
            .tree()?
            .get_path(std::path::Path::new(&folder))
            .is_ok();
        match &args.version {
            _ if !exists => bail!(
                "unknown model `{}`: no `{folder}/` at {} and no version of it in its history",
                args.model,
                args.rev
            ),
            Some(v) => bail!(
                "model `{}` has no version `{v}` in the history of {}",
                args.model,
                args.rev
            ),
            None => {}
        }
    }
    let approvals = Approvals::new(&repo, commit.id(), &root)?.for_events(&events)?;
    match format {
        Format::Json => print_json(&json!({
            "model": args.model,
            "version": args.version,
            "revision": commit.id().to_string(),
            "registry": root,
            "transitions": events
                .iter()
                .zip(&approvals)
                .map(|(e, a)| event_json(e, a))
                .collect::<Vec<_>>(),
        }))?,
        _ => print!("{}", render_text(&args.model, &events, &approvals)),
    }
    Ok(Outcome::Ok)
}

fn event_json(e: &StageEvent, approvals: &[LandedApproval]) -> serde_json::Value {
    json!({
        "approvals": approvals,
        "commit": e.commit.to_string(),
        "date": e.time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "version": e.version,
        "from": e.from,
        "to": e.to,
        "author": {"name": e.author_name, "email": e.author_email},
        "subject": e.subject,
        "path": e.path,
    })
}

/// `from -> to`, with `(new)` / `(deleted)` for a registration / deletion.
fn transition(e: &StageEvent) -> String {
    format!(
        "{} -> {}",
        e.from.as_deref().unwrap_or("(new)"),
        e.to.as_deref().unwrap_or("(deleted)")
    )
}

/// Approvers of one transition: the first principal of each approval, or `-`.
fn approvers(approvals: &[LandedApproval]) -> String {
    if approvals.is_empty() {
        return "-".to_owned();
    }
    approvals
        .iter()
        .filter_map(|a| a.principals.first().cloned())
        .collect::<Vec<_>>()
        .join(",")
}

fn render_text(model: &str, events: &[StageEvent], approvals: &[Vec<LandedApproval>]) -> String {
    if events.is_empty() {
        return format!("{model}: no stage transitions\n");
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .zip(approvals)
        .map(|(e, a)| {
            vec![
                e.time.format("%Y-%m-%d %H:%M").to_string(),
                e.commit.to_string()[..10].to_owned(),
                e.version.clone(),
                transition(e),
                e.author_name.clone(),
                approvers(a),
                e.subject.clone(),
            ]
        })
        .collect();
    table::render(
        &[
            "DATE (UTC)",
            "COMMIT",
            "VERSION",
            "TRANSITION",
            "AUTHOR",
            "APPROVALS",
            "SUBJECT",
        ],
        &rows,
    )
}
