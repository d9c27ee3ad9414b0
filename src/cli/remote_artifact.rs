//! `register --artifact s3://…|gs://…|https://…`: the remote artifact is hashed as it streams
//! (never held in memory), with a progress bar on stderr when stderr is a terminal.

use anyhow::{bail, Result};
use baton::daemon::artifact::describe::{describe as describe_remote, is_remote, Progress};
use baton::daemon::artifact::remote::Remote;
use baton::manifest::Artifact;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

/// Connecting, and each wait for data, as in `baton serve`.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The remote URI `--artifact` names, if it names one (`--uri` is then refused: the
/// recorded URI is the artifact's own).
pub fn requested<'a>(artifact: &'a Path, uri: Option<&str>) -> Result<Option<&'a str>> {
    let Some(s) = artifact.to_str().filter(|s| is_remote(s)) else {
        return Ok(None);
    };
    if uri.is_some() {
        bail!("--uri is for a local --artifact; {s} is recorded as it is");
    }
    Ok(Some(s))
}

/// Digest and size of the object (or of each object below the folder) `uri` names.
pub fn describe(uri: &str) -> Result<Artifact> {
    let remote = Remote::new(TIMEOUT);
    let mut bar = Bar::new();
    let result = describe_remote(uri, &remote, TIMEOUT, &mut bar);
    bar.finish();
    Ok(result?)
}

/// indicatif's bar on a terminal, nothing otherwise.
struct Bar(Option<indicatif::ProgressBar>);

impl Bar {
    fn new() -> Self {
        if !std::io::stderr().is_terminal() {
            return Bar(None);
        }
        let pb =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "hashing {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("a valid template"),
        );
        Bar(Some(pb))
    }

    fn finish(&self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn total(&mut self, bytes: u64) {
        if let Some(pb) = &self.0 {
            pb.set_length(bytes);
        }
    }

    fn advance(&mut self, bytes: u64) {
        if let Some(pb) = &self.0 {
            pb.inc(bytes);
        }
    }
}
