//! `baton check --base REV [--head REV]`: judge a proposed change against the gates (docs/gates.md).

use super::{Context, Format, Outcome};
use anyhow::{Context as _, Result};
use baton::check::approvals::github::DEFAULT_API_URL;
use baton::check::{render, CheckOptions, GithubSource, Pull};
use chrono::{DateTime, Utc};
use std::io::IsTerminal;

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
    /// Keep one Markdown comment with the report on the pull request (edited in place).
    #[arg(long, requires = "pr")]
    pub comment: bool,
    /// Set a `baton/check` commit status on the pull request's head.
    #[arg(long, requires = "pr")]
    pub status: bool,
    /// The clock for `window` and `soak` (RFC 3339); for reproducible runs and tests.
    #[arg(long, hide = true, value_name = "RFC3339")]
    pub now: Option<String>,
}

/// `--comment` and `--status`: the verdict on the pull request.
fn publish_on_pr(
    src: &GithubSource,
    pr: u64,
    report: &baton::check::report::CheckReport,
    comment: bool,
    status: bool,
) -> Result<()> {
    use baton::check::publish;
    let client = baton::check::approvals::github::Client::new(&src.api_url, src.token.clone())?;
    if comment {
        let md = render::markdown::render(report);
        let what = publish::upsert_comment(&client, &src.repo, pr, &md)
            .with_context(|| format!("--comment on {}#{pr}", src.repo))?;
        tracing::info!("comment on {}#{pr}: {what:?}", src.repo);
    }
    if status {
        let head = client
            .pull(&src.repo, pr)
            .with_context(|| format!("--status: reading {}#{pr}", src.repo))?
            .head
            .sha;
        let (state, description) = publish::status_of(report);
        client
            .create_status(
                &src.repo,
                &head,
                state,
                publish::CONTEXT,
                &description,
                publish::actions_run_url().as_deref(),
            )
            .with_context(|| format!("--status on {}@{head}", src.repo))?;
    }
    Ok(())
}

pub fn run(ctx: &Context, args: Args) -> Result<Outcome> {
    let repo = ctx.open_repo()?;
    let base = baton::repo::resolve_commit(&repo, &args.base)?.id();
    let head = baton::repo::resolve_commit(&repo, &args.head)?.id();
    let now: DateTime<Utc> = match &args.now {
        Some(s) => DateTime::parse_from_rfc3339(s)
            .with_context(|| format!("--now `{s}`: not an RFC 3339 time"))?
            .with_timezone(&Utc),
        None => Utc::now(),
    };
    let github = match (args.github, args.pr) {
        (Some(repo), Some(pr)) => {
            if !repo.contains('/') {
                anyhow::bail!("--github `{repo}`: expected owner/repo");
            }
            Some(GithubSource {
                repo,
                pull: Pull::Number(pr),
                token: std::env::var("GITHUB_TOKEN").ok().filter(|t| !t.is_empty()),
                api_url: std::env::var("GITHUB_API_URL")
                    .ok()
                    .filter(|u| !u.is_empty())
                    .unwrap_or_else(|| DEFAULT_API_URL.into()),
            })
        }
        _ => None,
    };
    let publish = github.clone().filter(|_| args.comment || args.status);
    let opts = CheckOptions {
        path: ctx.args.path.clone(),
        now,
        github,
        ..Default::default()
    };
    let report = baton::check::judge(&repo, base, head, &opts)?;
    if let (Some(src), Some(pr)) = (publish, args.pr) {
        publish_on_pr(&src, pr, &report, args.comment, args.status)?;
    }
    let out = match ctx.args.format {
        Format::Text => {
            let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            render::text::render(&report, color)
        }
        Format::Json => render::json::render(&report),
        Format::Markdown => render::markdown::render(&report),
        Format::Github => render::github::render(&report),
    };
    print!("{out}");
    Ok(if report.passed() {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}
