//! `baton completions SHELL` and `baton man`: shell completions and a man page generated from
//! the clap definitions, so they never drift from the flags.

use super::{Cli, Outcome};
use anyhow::Result;
use clap::CommandFactory;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {}

/// Print the completion script for `args.shell` (`baton completions bash > /etc/bash_completion.d/baton`).
pub fn run(args: Args) -> Result<Outcome> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "baton", &mut std::io::stdout());
    Ok(Outcome::Ok)
}

/// Print the man page (roff) of baton and its verbs (`baton man > baton.1`).
pub fn man(_args: ManArgs) -> Result<Outcome> {
    let cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    for sub in cmd.get_subcommands() {
        let name = format!("baton-{}", sub.get_name());
        let sub = sub
            .clone()
            .name(name)
            .disable_version_flag(true)
            .version(env!("CARGO_PKG_VERSION"));
        clap_mangen::Man::new(sub).render(&mut out)?;
    }
    Ok(Outcome::Ok)
}
