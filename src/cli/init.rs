//! `baton init [DIR]`: scaffold a registry in DIR with the user's SSH key as signer and policy
//! owner; nothing is committed (the first commit is the user's).

use super::{Context, Outcome};
use anyhow::{Context as _, Result};
use baton::authoring::init::{check_email, find_key, scaffold, InitError, KeySearch};
use baton::gitcli::GitCli;
use baton::manifest::modeline::{with_modeline, SchemaHome, INIT_SCHEMA_DIR};
use baton::manifest::schema::FileKind;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The folder of the new registry (created when missing; a git repository is initialised
    /// there when it is not inside one).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Your SSH public key (default: `git config user.signingkey`, else the one `~/.ssh/*.pub`).
    #[arg(long, value_name = "FILE.pub")]
    pub key: Option<PathBuf>,
    /// The signer's principal (default: `git config user.email`).
    #[arg(long)]
    pub email: Option<String>,
}

fn git_config(dir: &std::path::Path, key: &str) -> Option<String> {
    GitCli::in_dir(dir)
        .run(&["config", "--get", key])
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The scaffolded files with the editor modeline on each manifest, and the schemas it points
/// at in `.baton/schema/` (docs/registry-format.md#editor-validation).
fn with_schemas(files: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    let home = SchemaHome::new(INIT_SCHEMA_DIR);
    let mut out: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .map(|(rel, bytes)| {
            let kind = if rel == "baton.yaml" {
                Some(FileKind::Policy)
            } else if rel.ends_with("/model.yaml") {
                Some(FileKind::Model)
            } else if rel.contains("/versions/") && rel.ends_with(".yaml") {
                Some(FileKind::Version)
            } else {
                None
            };
            match (kind, String::from_utf8(bytes)) {
                (Some(k), Ok(text)) => (rel, with_modeline(&home, k, &text).into_bytes()),
                (_, Ok(text)) => (rel, text.into_bytes()),
                (_, Err(e)) => (rel, e.into_bytes()),
            }
        })
        .collect();
    for k in FileKind::ALL {
        out.push((
            format!("{INIT_SCHEMA_DIR}/{}", k.file_name()),
            k.rendered().into_bytes(),
        ));
    }
    out
}

pub fn run(_ctx: &Context, args: Args) -> Result<Outcome> {
    let dir = args.dir;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if dir.join("baton.yaml").exists() {
        return Err(InitError::Exists(dir.join("baton.yaml").display().to_string()).into());
    }
    let email = match args.email.or_else(|| git_config(&dir, "user.email")) {
        Some(e) => check_email(&e)?,
        None => return Err(InitError::NoEmail.into()),
    };
    let search = KeySearch {
        explicit: args.key,
        git_signingkey: git_config(&dir, "user.signingkey"),
        ssh_dir: std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ssh")),
    };
    let (key, from) = find_key(&search)?;
    let files = with_schemas(scaffold(&email, &key));
    // Nothing is overwritten: every file must be new.
    for (rel, _) in &files {
        let p = dir.join(rel);
        if std::fs::symlink_metadata(&p).is_ok() {
            return Err(InitError::Exists(p.display().to_string()).into());
        }
    }
    let git = GitCli::in_dir(&dir);
    if git.run(&["rev-parse", "--git-dir"]).is_err() {
        git.run(&["init", "-q", "-b", "main"])?;
    }
    for (rel, bytes) in &files {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("{}", parent.display()))?;
        }
        std::fs::write(&p, bytes).with_context(|| format!("writing {}", p.display()))?;
    }
    println!("A new registry in {}:", dir.display());
    for (rel, _) in &files {
        println!("  {rel}");
    }
    println!("signer and policy owner: {email} (key from {from})");
    println!();
    println!("Next:");
    println!(
        "  cd {} && git add -A && git commit -m \"Start the model registry\"",
        dir.display()
    );
    println!("  baton validate         # reads the committed registry");
    println!("  baton serve            # deploys staging and production under .git/baton/deploy/");
    println!("Add reviewers' keys to .baton/allowed_signers and to groups.ml-leads: approvals never count a change's own author.");
    Ok(Outcome::Ok)
}
