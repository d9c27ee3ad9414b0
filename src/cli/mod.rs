//! Command-line interface (docs/cli.md): clap definitions, shared context, and exit codes.
//! One module per verb; each returns an [`Outcome`] or an error that exits with 2.

mod context;
mod table;

mod approve;
mod check;
mod completions;
mod history;
mod init;
mod logging;
mod promote;
mod register;
mod remote_artifact;
mod rollback;
mod schema;
mod serve;
mod status;
mod validate;

pub use context::Context;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Result of a verb that ran to completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0: success, all gates pass.
    Ok,
    /// Exit 1: gates or validation failed.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
    Github,
}

#[derive(Debug, Parser)]
#[command(
    name = "baton",
    version,
    about = "GitOps promotion controller for machine-learning models"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args, Clone)]
pub struct GlobalArgs {
    /// The git repository holding the registry.
    #[arg(long, global = true, default_value = ".", value_name = "DIR")]
    pub repo: PathBuf,
    /// Registry folder inside the repository (default: where baton.yaml is found).
    #[arg(long, global = true, value_name = "SUBDIR")]
    pub path: Option<String>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the whole registry at a revision against schema and invariants.
    #[command(
        after_help = "Examples:\n  baton validate\n  baton validate --rev origin/main --format json"
    )]
    Validate(validate::Args),
    /// Judge the change base...head against the registry's gates.
    #[command(
        after_help = "Examples:\n  baton check --base main --head HEAD\n  baton check --base origin/main --format markdown > verdict.md\n  baton check --base origin/main --github acme/registry --pr 42 --comment --status"
    )]
    Check(check::Args),
    /// Desired (and, with --state-dir, deployed) state per environment and model.
    #[command(
        after_help = "Examples:\n  baton status\n  baton status --state-dir .git/baton --format json"
    )]
    Status(status::Args),
    /// The audit trail of a model: every stage transition with commit, author, date.
    #[command(
        after_help = "Examples:\n  baton history fraud-detector\n  baton history fraud-detector --version 4"
    )]
    History(history::Args),
    /// Register a new model version (computes sha256 and size) in the first stage.
    #[command(
        after_help = "Examples:\n  baton register fraud-detector --artifact artifacts/fraud-detector/6/model.onnx --metrics metrics.json\n  baton register fraud-detector --artifact artifacts/fraud-detector/6 --artifact-format mlflow\n  baton register fraud-detector --artifact model.onnx --evidence bias-audit=audit.yaml"
    )]
    Register(register::Args),
    /// Edit manifests to promote a version to a stage.
    #[command(
        after_help = "Examples:\n  baton promote fraud-detector 4 --to staging --commit --branch promote-fraud-detector-4\n  baton promote fraud-detector 4 --to production --traffic 10 --commit"
    )]
    Promote(promote::Args),
    /// Make a signed approval commit for a promotion.
    #[command(
        after_help = "Examples:\n  baton approve fraud-detector 4 --stage production\n  baton approve --policy"
    )]
    Approve(approve::Args),
    /// Revert the commit that put an environment's current version in place.
    #[command(after_help = "Examples:\n  baton rollback fraud-detector --env production --commit")]
    Rollback(rollback::Args),
    /// Run the controller: watch, re-check and reconcile deployments.
    #[command(
        after_help = "Examples:\n  baton serve --path registry-example\n  baton serve --once\n  baton serve --url git@github.com:acme/registry.git --branch main --state-dir /var/lib/baton"
    )]
    Serve(serve::Args),
    /// Scaffold a new registry: policy, an example model, your SSH key as signer.
    #[command(
        after_help = "Examples:\n  baton init my-registry\n  baton init --key ~/.ssh/id_ed25519.pub --email alice@example.com ."
    )]
    Init(init::Args),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Examples:\n  baton completions bash > ~/.local/share/bash-completion/completions/baton\n  baton completions zsh > \"${fpath[1]}/_baton\"\n  baton completions fish > ~/.config/fish/completions/baton.fish"
    )]
    Completions(completions::Args),
    /// Print the man page (roff) of baton and every verb.
    #[command(after_help = "Examples:\n  baton man > baton.1 && man ./baton.1")]
    Man(completions::ManArgs),
    /// Print the JSON Schema of baton.yaml, model.yaml and version manifests (for editors).
    #[command(
        after_help = "Examples:\n  baton schema\n  baton schema version\n  baton schema --out docs/schema"
    )]
    Schema(schema::Args),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        restore_sigpipe();
    }
    let ctx = Context::new(cli.global);
    let result = match cli.command {
        Command::Validate(a) => validate::run(&ctx, a),
        Command::Check(a) => check::run(&ctx, a),
        Command::Status(a) => status::run(&ctx, a),
        Command::History(a) => history::run(&ctx, a),
        Command::Register(a) => register::run(&ctx, a),
        Command::Promote(a) => promote::run(&ctx, a),
        Command::Approve(a) => approve::run(&ctx, a),
        Command::Rollback(a) => rollback::run(&ctx, a),
        Command::Serve(a) => serve::run(&ctx, a),
        Command::Init(a) => init::run(&ctx, a),
        Command::Completions(a) => completions::run(a),
        Command::Man(a) => completions::man(a),
        Command::Schema(a) => schema::run(&ctx, a),
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::from(0),
        Ok(Outcome::Failed) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {}", sentence(&e));
            ExitCode::from(2)
        }
    }
}

/// An error and its causes as one sentence (`a: b: c`, like `{:#}`), with library text made
/// readable: I/O errors without Rust's `(os error 2)`, git errors without their
/// `; class=…; code=…` suffix.
fn sentence(e: &anyhow::Error) -> String {
    let parts: Vec<String> = e
        .chain()
        .map(|c| {
            if let Some(io) = c.downcast_ref::<std::io::Error>() {
                baton::fsutil::io_sentence(io)
            } else if let Some(g) = c.downcast_ref::<git2::Error>() {
                g.message().to_owned()
            } else {
                c.to_string()
            }
        })
        .collect();
    let mut out: Vec<String> = Vec::new();
    for p in parts {
        // A context that already ends with its cause's text says it once.
        if out.last().is_some_and(|l| l.ends_with(&p)) {
            continue;
        }
        out.push(p);
    }
    out.join(": ")
}

/// One-shot verbs end quietly on a closed pipe (`baton history m | head`), like other Unix
/// tools, instead of panicking in `println!`. `serve` keeps Rust's default (SIGPIPE ignored)
/// so that a peer closing a socket is an error, not the end of the daemon.
fn restore_sigpipe() {
    // SAFETY: resetting a signal disposition to its default at startup, before any threads.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::{CommandFactory, Parser};

    /// Every `Examples:` line of every verb's `--help` parses as written (up to a redirection):
    /// an example that names a flag that does not exist fails here, not in a user's shell.
    #[test]
    fn every_verb_has_examples_that_parse() {
        let cmd = Cli::command();
        for sub in cmd.get_subcommands() {
            let help = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            let examples: Vec<&str> = help
                .lines()
                .filter_map(|l| l.trim().strip_prefix("baton "))
                .collect();
            assert!(
                !examples.is_empty(),
                "`baton {}` has no examples",
                sub.get_name()
            );
            for a in sub.get_positionals() {
                assert!(
                    a.get_help().is_some(),
                    "`baton {}`: positional {} is not described",
                    sub.get_name(),
                    a.get_id()
                );
            }
            for ex in examples {
                let line = ex.split(['>', '&']).next().unwrap();
                let args = std::iter::once("baton")
                    .chain(line.split_whitespace().map(|a| a.trim_matches('"')));
                if let Err(e) = Cli::try_parse_from(args) {
                    panic!("example `baton {ex}` does not parse: {e}");
                }
            }
        }
    }
}
