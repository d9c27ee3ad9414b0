//! `baton status [--rev REV] [--state-dir DIR]`: desired version(s) and traffic per
//! environment and model; with the daemon's state dir, also what is deployed (or that alone).

use super::context::print_json;
use super::{table, Context, Format, Outcome};
use anyhow::Result;
use baton::registry::desired::desired_state;
use serde_json::json;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Revision whose desired state to show (default HEAD).
    #[arg(long)]
    pub rev: Option<String>,
    /// The daemon's state directory, to show deployed state beside desired state.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// With `--state-dir`, reasons to show the state dir alone: no repository here (the `--url`
/// daemon's host), or a head without a readable `baton.yaml`.
fn registry_unreadable(e: &anyhow::Error) -> Option<bool> {
    use baton::repo::RepoError;
    match e.downcast_ref::<RepoError>()? {
        RepoError::NotARepository { .. } => Some(false),
        RepoError::NoRegistry { .. } | RepoError::PathNotFound { .. } => Some(true),
        _ => None,
    }
}

pub fn run(ctx: &Context, args: Args) -> Result<Outcome> {
    let format = ctx.text_or_json()?;
    let rev = args.rev.as_deref().unwrap_or("HEAD");
    let loaded = ctx.load(rev);
    if let (Some(dir), Err(e)) = (&args.state_dir, &loaded) {
        // An explicit --rev needs the repository; the default head may be absent or broken.
        if let Some(broken_head) = registry_unreadable(e).filter(|_| args.rev.is_none()) {
            if broken_head {
                eprintln!("error: {e:#}");
            }
            state_dir_alone(dir, format, &format!("{e:#}"))?;
            return Ok(if broken_head {
                Outcome::Failed
            } else {
                Outcome::Ok
            });
        }
    }
    let (_repo, reg) = loaded?;
    let problems = reg.load_diagnostics();
    if reg.policy.is_none() {
        for d in &problems {
            eprintln!("{d}");
        }
        eprintln!(
            "error: {} does not parse; no desired state",
            reg.policy_path()
        );
        if let Some(dir) = &args.state_dir {
            let why = format!(
                "{} does not parse at {}",
                reg.policy_path(),
                short(&reg.commit.to_string())
            );
            state_dir_alone(dir, format, &why)?;
        }
        return Ok(Outcome::Failed);
    }
    if !problems.is_empty() {
        eprintln!(
            "warning: {} problem(s) in the registry (run `baton validate`); manifests that do not parse are left out",
            problems.len()
        );
    }
    if let Some(dir) = &args.state_dir {
        return state_dir_status(&reg, dir, format);
    }
    let desired = desired_state(&reg);
    match format {
        Format::Json => {
            let envs: Vec<_> = desired
                .iter()
                .map(|(name, env)| {
                    json!({
                        "name": name,
                        "stage": env.stage,
                        "models": env.models.iter().map(|(m, vs)| json!({
                            "model": m,
                            "versions": vs.iter().map(|v| {
                                let mut o = json!({
                                    "version": v.version,
                                    "traffic": v.traffic,
                                    "sha256": v.manifest.artifact.sha256,
                                });
                                if let Some(s) = &v.kept_from {
                                    o["kept_from"] = json!(s);
                                }
                                o
                            }).collect::<Vec<_>>(),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            print_json(&json!({
                "revision": reg.commit.to_string(),
                "registry": reg.root,
                "environments": envs,
            }))?;
        }
        _ => {
            let root = if reg.root.is_empty() {
                "."
            } else {
                reg.root.as_str()
            };
            println!("registry {root} at {}", &reg.commit.to_string()[..10]);
            if desired.is_empty() {
                println!("no environments defined in baton.yaml");
            }
            for (name, env) in &desired {
                println!();
                println!("environment {name} (stage {})", env.stage);
                if env.models.is_empty() {
                    println!("  (no model versions in stage {})", env.stage);
                    continue;
                }
                let rows: Vec<Vec<String>> = env
                    .models
                    .iter()
                    .flat_map(|(m, vs)| {
                        vs.iter().map(move |v| {
                            vec![
                                format!("  {m}"),
                                v.version.clone(),
                                format!("{}%", v.traffic),
                                v.manifest.artifact.sha256.chars().take(12).collect(),
                            ]
                        })
                    })
                    .collect();
                print!(
                    "{}",
                    table::render(&["  MODEL", "VERSION", "TRAFFIC", "SHA256"], &rows)
                );
                for (m, vs) in &env.models {
                    for v in vs {
                        if let Some(from) = &v.kept_from {
                            println!(
                                "  {m} {}: kept from stage {from} (stage {} holds no version of {m})",
                                v.version, env.stage
                            );
                        }
                    }
                }
            }
        }
    }
    Ok(Outcome::Ok)
}

fn short(c: &str) -> &str {
    &c[..c.len().min(10)]
}

/// `--state-dir`: desired vs deployed per environment, with sync, health and reasons.
fn state_dir_status(
    reg: &baton::registry::Registry,
    dir: &std::path::Path,
    format: Format,
) -> Result<Outcome> {
    use anyhow::Context as _;
    let view = baton::daemon::inspect::inspect(reg, dir)
        .with_context(|| format!("--state-dir {}", dir.display()))?;
    match format {
        Format::Json => {
            let mut v = serde_json::to_value(&view)?;
            v["revision"] = json!(reg.commit.to_string());
            v["state_dir"] = json!(dir);
            print_json(&v)?;
        }
        _ => {
            let head = view.head.as_deref().unwrap_or("-");
            println!(
                "registry {} at {}; daemon state {} (last reconciled {})",
                if reg.root.is_empty() {
                    "."
                } else {
                    reg.root.as_str()
                },
                &reg.commit.to_string()[..10],
                dir.display(),
                short(head)
            );
            print_environments(&view);
        }
    }
    Ok(Outcome::Ok)
}

/// `--state-dir` without a registry to read: the daemon's last published status as it is
/// (`desired` is what the branch head said at the daemon's last pass).
fn state_dir_alone(dir: &std::path::Path, format: Format, why: &str) -> Result<()> {
    use anyhow::Context as _;
    let view = baton::daemon::inspect::from_state_dir(dir)
        .with_context(|| format!("--state-dir {}", dir.display()))?;
    match format {
        Format::Json => {
            let mut v = serde_json::to_value(&view)?;
            v["revision"] = serde_json::Value::Null;
            v["state_dir"] = json!(dir);
            v["registry_unread"] = json!(why);
            print_json(&v)?;
        }
        _ => {
            let head = view.head.as_deref().unwrap_or("-");
            let updated = view
                .updated
                .map(|t| format!(", status of {}", t.to_rfc3339()))
                .unwrap_or_default();
            println!(
                "daemon state {} (branch {}, last reconciled {}{updated})",
                dir.display(),
                if view.branch.is_empty() {
                    "-"
                } else {
                    view.branch.as_str()
                },
                short(head)
            );
            println!("registry not read ({why}): showing the daemon's last status");
            if view.environments.is_empty() {
                println!("no status.json yet: the daemon has not published a status");
            }
            print_environments(&view);
            for h in &view.held {
                println!(
                    "held: {} {} at {}: {}",
                    h.model,
                    h.kind.as_str(),
                    short(&h.baseline),
                    h.reasons.join("; ")
                );
            }
        }
    }
    Ok(())
}

fn print_environments(view: &baton::daemon::view::StatusView) {
    let label = |vs: &[baton::daemon::view::VersionView]| -> String {
        if vs.is_empty() {
            return "-".into();
        }
        vs.iter()
            .map(|v| {
                if vs.len() > 1 {
                    format!("{} ({}%)", v.version, v.traffic)
                } else {
                    v.version.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    for env in &view.environments {
        println!();
        println!(
            "environment {} (stage {}) -> {}",
            env.name, env.stage, env.target
        );
        let rows: Vec<Vec<String>> = env
            .models
            .iter()
            .map(|m| {
                let mut sync = m.sync.as_str().to_owned();
                if let Some(t) = m.waiting_until {
                    sync = format!("{sync} until {}", t.to_rfc3339());
                }
                vec![
                    format!("  {}", m.model),
                    label(&m.desired),
                    label(&m.deployed),
                    sync,
                    m.health.as_str().into(),
                ]
            })
            .collect();
        print!(
            "{}",
            table::render(&["  MODEL", "DESIRED", "DEPLOYED", "SYNC", "HEALTH"], &rows)
        );
        for m in env.models.iter().filter(|m| !m.reasons.is_empty()) {
            for r in &m.reasons {
                println!("  {}: {r}", m.model);
            }
        }
    }
    for e in &view.errors {
        println!("error: {e}");
    }
}
