//! `baton schema [policy|model|version] [--out DIR]`: the JSON Schema of the registry's file
//! formats (docs/schema/), derived from the manifest types by `baton::manifest::schema`.

use super::{Context, Outcome};
use anyhow::{Context as _, Result};
use baton::manifest::schema::{self, FileKind};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file format: `policy` (baton.yaml), `model` (model.yaml) or `version` (a version
    /// manifest). Without it: all three, as one JSON object keyed by these names.
    #[arg(value_enum)]
    pub kind: Option<Kind>,
    /// Write `baton.schema.json`, `model.schema.json` and `version.schema.json` (or only the
    /// KIND's) into DIR instead of printing.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Policy,
    Model,
    Version,
}

impl From<Kind> for FileKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Policy => FileKind::Policy,
            Kind::Model => FileKind::Model,
            Kind::Version => FileKind::Version,
        }
    }
}

pub fn run(ctx: &Context, args: Args) -> Result<Outcome> {
    // The output is JSON whatever --format says; markdown/github are refused as for any verb.
    ctx.text_or_json()?;
    let kind = args.kind.map(FileKind::from);
    match args.out {
        None => {
            let text = match kind {
                Some(k) => k.rendered(),
                None => schema::render(&schema::all()),
            };
            print!("{text}");
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let kinds = match kind {
                Some(k) => vec![k],
                None => FileKind::ALL.to_vec(),
            };
            for k in kinds {
                let path = dir.join(k.file_name());
                std::fs::write(&path, k.rendered())
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("{}", path.display());
            }
        }
    }
    Ok(Outcome::Ok)
}
