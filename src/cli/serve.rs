//! `baton serve`: the controller daemon (docs/daemon.md). Resolves the repository, state dir
//! and limits, sets up logging, and runs `baton::daemon` (`--once` for a single pass).

use super::context::print_json;
use super::logging::LogFormat;
use super::{Context, Format, Outcome};
use anyhow::{Context as _, Result};
use baton::check::approvals::github::DEFAULT_API_URL;
use baton::check::{GithubSource, Pull};
use baton::daemon::artifact::ArtifactLimits;
use baton::daemon::{ControllerConfig, ServeConfig};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Clone and follow a remote repository instead of watching --repo.
    #[arg(long)]
    pub url: Option<String>,
    /// The branch to follow.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// State directory (default .git/baton of the watched repo, ./baton-state with --url).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:8750")]
    pub listen: String,
    /// Resync / fetch interval.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub interval: std::time::Duration,
    /// Reconcile once and exit.
    #[arg(long)]
    pub once: bool,
    /// Trusted baseline revision on an empty state dir (default: the current head).
    #[arg(long, value_name = "REV")]
    pub trust: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Count the GitHub reviews of the pull request each landed commit came from: owner/repo
    /// (token in GITHUB_TOKEN, API base in GITHUB_API_URL).
    #[arg(long, value_name = "OWNER/REPO")]
    pub github: Option<String>,
    /// GitHub API token (from the environment only, so it never shows in a process list).
    #[arg(long, env = "GITHUB_TOKEN", hide = true, hide_env_values = true)]
    pub github_token: Option<String>,
    /// GitHub API base; pagination follows links on its origin only.
    #[arg(long, env = "GITHUB_API_URL", value_name = "URL", default_value = DEFAULT_API_URL)]
    pub github_api_url: String,
    /// Largest artifact read or downloaded (bytes, or with a unit: 512MiB, 20GiB).
    #[arg(long, value_name = "SIZE", default_value = "20GiB", value_parser = parse_size)]
    pub max_artifact_size: u64,
    /// A folder `file://` artifacts may be read from (repeatable; none: file:// is refused).
    #[arg(long = "allow-file-root", value_name = "DIR")]
    pub allow_file_root: Vec<PathBuf>,
    /// Serve a non-loopback --listen address without BATON_API_TOKEN (logs a warning).
    #[arg(long)]
    pub insecure_listen: bool,
    /// Where people reach the dashboard, for links in notifications and statuses
    /// (default: http://<--listen>).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// An SSH private key: rollbacks the daemon writes after a failed verification are signed
    /// with it (gpg.format=ssh; docs/verification.md).
    #[arg(long, value_name = "PATH")]
    pub signing_key: Option<PathBuf>,
}

fn parse_size(s: &str) -> std::result::Result<u64, String> {
    baton::daemon::artifact::parse_size(s).map_err(|e| e.to_string())
}

pub fn run(ctx: &Context, args: Args) -> Result<Outcome> {
    let format = ctx.text_or_json()?;
    super::logging::init(args.log_format);
    let (repo, state_dir) = match &args.url {
        Some(_) => {
            let state = args
                .state_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("baton-state"));
            (baton::daemon::run::clone_dir(&state), state)
        }
        None => {
            let repo = baton::repo::open(&ctx.args.repo)?;
            let workdir = repo
                .workdir()
                .map(|p| p.to_path_buf())
                .unwrap_or_else(|| repo.path().to_path_buf());
            let state = args
                .state_dir
                .clone()
                .unwrap_or_else(|| repo.path().join("baton"));
            (workdir, state)
        }
    };
    let github = match &args.github {
        Some(repo) => {
            let valid = repo
                .split_once('/')
                .is_some_and(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/'));
            if !valid {
                anyhow::bail!("--github `{repo}`: expected owner/repo");
            }
            let api_url = Some(args.github_api_url.trim())
                .filter(|u| !u.is_empty())
                .unwrap_or(DEFAULT_API_URL);
            // Refuse a bad API base now rather than at the first judged change.
            baton::check::approvals::github::Client::new(api_url, None)
                .context("--github-api-url (GITHUB_API_URL)")?;
            Some(GithubSource {
                repo: repo.clone(),
                pull: Pull::OfJudgedCommit,
                token: args.github_token.clone().filter(|t| !t.is_empty()),
                api_url: api_url.to_owned(),
            })
        }
        None => None,
    };
    let cfg = ServeConfig {
        controller: ControllerConfig {
            repo,
            branch: args.branch.clone(),
            path: ctx.args.path.clone(),
            interval: args.interval,
            trust: args.trust.clone(),
            fetch_timeout: std::time::Duration::from_secs(60),
            github,
            artifacts: ArtifactLimits::new(args.max_artifact_size, &args.allow_file_root)?,
            public_url: args.public_url.clone().or_else(|| {
                (!args.listen.ends_with(":0")).then(|| format!("http://{}", args.listen))
            }),
            rollback: baton::daemon::verify::rollback::RollbackConfig {
                signing_key: args.signing_key.clone(),
                url: args.url.clone(),
            },
        },
        url: args.url.clone(),
        state_dir,
        listen: args.listen.clone(),
        once: args.once,
        webhook_secret: std::env::var("BATON_WEBHOOK_SECRET")
            .ok()
            .filter(|s| !s.is_empty()),
        api_token: std::env::var("BATON_API_TOKEN")
            .ok()
            .filter(|s| !s.is_empty()),
        alertmanager_token: std::env::var("BATON_ALERTMANAGER_TOKEN")
            .ok()
            .filter(|s| !s.is_empty()),
        insecure_listen: args.insecure_listen,
    };
    if !cfg.once {
        baton::daemon::serve(cfg).context("baton serve")?;
        return Ok(Outcome::Ok);
    }
    let report = baton::daemon::once(&cfg).context("baton serve --once")?;
    match format {
        Format::Json => print_json(&report.status)?,
        _ => print_once(&report.status),
    }
    Ok(if report.ok() {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

fn print_once(s: &baton::daemon::view::StatusView) {
    let head = s.head.as_deref().unwrap_or("-");
    println!("branch {} at {}", s.branch, &head[..head.len().min(10)]);
    for e in &s.environments {
        println!("environment {} (stage {}) -> {}", e.name, e.stage, e.target);
        for m in &e.models {
            let deployed = m
                .deployed
                .iter()
                .map(|v| v.version.clone())
                .collect::<Vec<_>>()
                .join(",");
            let deployed = if deployed.is_empty() {
                "-".into()
            } else {
                deployed
            };
            println!("  {:<24} {:<10} {}", m.model, deployed, m.sync.as_str());
            for r in &m.reasons {
                println!("      {r}");
            }
        }
    }
    for e in &s.errors {
        println!("error: {e}");
    }
}
