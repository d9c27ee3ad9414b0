//! `baton promote <model> <version> --to <stage>`: edit manifests for a promotion, and with
//! `--commit` commit them on a new branch ready for a pull request.

use super::context::print_json;
use super::{Context, Format, Outcome};
use anyhow::{bail, Context as _, Result};
use baton::authoring::{git, promote, AuthoringError};
use baton::manifest::{parse_policy, parse_version};
use baton::repo::join;
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model to promote (its folder name under `models/`).
    pub model: String,
    /// The version to promote (its `version:` label).
    pub version: String,
    /// Target stage.
    #[arg(long)]
    pub to: String,
    /// Percent of traffic in a canary stage.
    #[arg(long)]
    pub traffic: Option<u32>,
    /// Branch to commit on (with --commit; default promote/<model>-<version>-<stage>).
    #[arg(long, requires = "commit")]
    pub branch: Option<String>,
    /// Commit the edit on a new branch.
    #[arg(long)]
    pub commit: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<Outcome> {
    let format = ctx.text_or_json()?;
    if !baton::names::is_model_name(&args.model) {
        bail!("`{}` is not a valid model name", args.model);
    }
    let repo = ctx.open_repo()?;
    let Some(workdir) = repo.workdir().map(|p| p.to_path_buf()) else {
        bail!("the repository has no working tree (bare); promote edits files");
    };
    let head = baton::repo::resolve_commit(&repo, "HEAD")?;
    let root = ctx.registry_root(&repo, &head, "HEAD")?;
    let policy_path = join(&root, "baton.yaml");
    let bytes = std::fs::read(workdir.join(&policy_path))
        .with_context(|| format!("{policy_path}: cannot read"))?;
    let policy =
        parse_policy(&bytes).map_err(|e| anyhow::anyhow!("{}", e.into_diagnostic(&policy_path)))?;
    let dir = join(&root, &format!("models/{}/versions", args.model));
    let entries = std::fs::read_dir(workdir.join(&dir))
        .with_context(|| format!("unknown model `{}` ({dir} not found)", args.model))?;
    let mut versions = Vec::new();
    for e in entries {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(label) = name.strip_suffix(".yaml") else {
            continue;
        };
        let path = join(&dir, &name);
        let text =
            std::fs::read_to_string(e.path()).with_context(|| format!("{path}: cannot read"))?;
        let manifest = parse_version(text.as_bytes())
            .map_err(|e| anyhow::anyhow!("{}", e.into_diagnostic(&path)))?;
        versions.push(promote::VersionText {
            label: label.to_owned(),
            path,
            text,
            manifest,
        });
    }
    versions.sort_by(|a, b| baton::names::natural_cmp(&a.label, &b.label));
    let planned = promote::plan(
        &policy,
        &args.model,
        &versions,
        &args.version,
        &args.to,
        args.traffic,
    );
    let plan = match planned {
        Err(AuthoringError::Refused(m)) => {
            eprintln!("error: {m}");
            return Ok(Outcome::Failed);
        }
        other => other?,
    };

    let branch = args.commit.then(|| {
        args.branch
            .clone()
            .unwrap_or_else(|| format!("promote/{}-{}-{}", args.model, args.version, args.to))
    });
    if let Some(b) = &branch {
        if git::branch_exists(&workdir, b) {
            bail!("branch `{b}` already exists; pass --branch to name another");
        }
        git::run(&workdir, &["checkout", "-q", "-b", b])?;
    }
    for e in &plan.edits {
        std::fs::write(workdir.join(&e.file), &e.text)
            .with_context(|| format!("{}: cannot write", e.file))?;
    }
    let mut commit = None;
    if branch.is_some() {
        let files: Vec<&str> = plan.edits.iter().map(|e| e.file.as_str()).collect();
        let mut add = vec!["add", "--"];
        add.extend(&files);
        git::run(&workdir, &add)?;
        let message = plan.message();
        let mut args = vec!["commit", "-q", "-m", message.as_str(), "--"];
        args.extend(&files);
        git::run(&workdir, &args)?;
        commit = Some(git::run(&workdir, &["rev-parse", "HEAD"])?);
    }
    match format {
        Format::Json => print_json(&json!({
            "model": plan.model,
            "version": plan.version,
            "to": plan.to,
            "edits": plan.edits,
            "branch": branch,
            "commit": commit,
        }))?,
        _ => {
            for e in &plan.edits {
                println!(
                    "{} {}: {} -> {}{}  ({})",
                    plan.model,
                    e.version,
                    e.from,
                    e.to,
                    e.traffic
                        .map(|t| format!(" ({t}% traffic)"))
                        .unwrap_or_default(),
                    e.file
                );
            }
            match (&branch, &commit) {
                (Some(b), Some(c)) => println!(
                    "committed {} on branch {b}: open a pull request; `baton check --base <target>` judges it",
                    &c[..c.len().min(10)]
                ),
                _ => println!("edited the working tree; review with `git diff`, or rerun with --commit"),
            }
        }
    }
    Ok(Outcome::Ok)
}
