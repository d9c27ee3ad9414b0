//! `baton register <model> --artifact FILE|DIR`: write a new version manifest in the first stage
//! (a folder becomes a directory artifact). It writes into the working tree; committing it is
//! the user's pull request.

use super::context::print_json;
use super::{Context, Format, Outcome};
use anyhow::{anyhow, bail, Context as _, Result};
use baton::manifest::modeline::{with_modeline, SchemaHome};
use baton::manifest::schema::FileKind;
use baton::manifest::version::listing_digest;
use baton::manifest::{parse_policy, Artifact, VersionManifest};
use baton::register::{
    artifact_uri, digest, folder_listing, next_version, parse_metrics, render_manifest,
    render_model_yaml,
};
use baton::registry::invariants::artifact_location;
use baton::repo::join;
use git2::{ObjectType, Repository};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model to register a version of.
    pub model: String,
    /// The artifact file, or a folder (a directory artifact listing every file in it), or a
    /// remote one (s3://bucket/key, gs://…, https://…; an s3:// or gs:// URI ending in `/`
    /// registers the objects below it as a directory artifact). sha256 and size are computed,
    /// streaming.
    #[arg(long, value_name = "FILE|DIR|URI")]
    pub artifact: PathBuf,
    /// The model format a server loads (`artifact.format`): onnx, sklearn, mlflow...
    /// (`--format` is the output format).
    #[arg(long, value_name = "FORMAT")]
    pub artifact_format: Option<String>,
    /// JSON object of metric name -> number.
    #[arg(long, value_name = "FILE.json")]
    pub metrics: Option<PathBuf>,
    /// Version label (default: next integer after the highest numeric label).
    #[arg(long)]
    pub version: Option<String>,
    /// Record this artifact URI (e.g. s3://bucket/key) instead of the local file's location;
    /// sha256 and size are still computed from --artifact.
    #[arg(long, value_name = "URI")]
    pub uri: Option<String>,
    /// A lineage entry (repeatable), e.g. --lineage code=https://github.com/acme/fraud@9f1c2e7.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_pair)]
    pub lineage: Vec<(String, String)>,
    /// Another model's version this one needs beside it (repeatable), e.g.
    /// --requires feature-encoder=8.
    #[arg(long, value_name = "MODEL=VERSION", value_parser = parse_requirement)]
    pub requires: Vec<(String, String)>,
    /// An evidence result (repeatable): NAME=FILE, a YAML or JSON file holding
    /// `{passed: true|false, report: "…"}`, or NAME=passed / NAME=failed; recorded under the
    /// manifest's `evidence`, e.g. --evidence offline-eval=reports/eval.yaml.
    #[arg(long, value_name = "NAME=FILE", value_parser = parse_pair)]
    pub evidence: Vec<(String, String)>,
}

/// The `evidence` map from `--evidence NAME=FILE|passed|failed`, each file checked.
fn read_evidence(
    pairs: &[(String, String)],
) -> Result<BTreeMap<String, baton::manifest::version::Evidence>> {
    let mut out = BTreeMap::new();
    for (name, value) in pairs {
        let e = match baton::register::evidence_shorthand(value) {
            Some(e) => e,
            None => {
                let text = std::fs::read_to_string(value).map_err(|e| {
                    anyhow!(
                        "evidence `{name}`: cannot read {value}: {}",
                        baton::fsutil::io_sentence(&e)
                    )
                })?;
                baton::register::parse_evidence(&text).map_err(|e| anyhow!("{value}:{e}"))?
            }
        };
        if out.insert(name.clone(), e).is_some() {
            bail!("--evidence `{name}` is given twice");
        }
    }
    Ok(out)
}

fn parse_requirement(s: &str) -> Result<(String, String), String> {
    let (m, v) = parse_pair(s)?;
    if !baton::names::is_model_name(&m) {
        return Err(format!("`{m}` is not a valid model name"));
    }
    if !baton::names::is_version_label(&v) {
        return Err(format!("`{v}` is not a valid version label"));
    }
    Ok((m, v))
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

pub fn run(ctx: &Context, args: Args) -> Result<Outcome> {
    let format = ctx.text_or_json()?;
    if !baton::names::is_model_name(&args.model) {
        bail!(
            "`{}` is not a valid model name (a DNS label: lower-case letters, digits and '-', at most 63)",
            args.model
        );
    }
    if let Some(v) = &args.version {
        if !baton::names::is_version_label(v) {
            bail!("`{v}` is not a valid version label (^[A-Za-z0-9][A-Za-z0-9._-]{{0,62}}$)");
        }
    }
    let repo = ctx.open_repo()?;
    let workdir = repo
        .workdir()
        .ok_or_else(|| {
            anyhow!("repository has no working directory (bare); register writes files")
        })?
        .to_path_buf();
    let head = repo.head().ok().and_then(|h| h.peel_to_commit().ok());

    // Registry folder and policy: from HEAD's git objects, like every other verb; in a
    // repository without commits yet, from the working tree.
    let (root, policy_text) = match &head {
        Some(c) => {
            let root = ctx.registry_root(&repo, c, "HEAD")?;
            let text = baton::repo::read_file(&repo, c, &join(&root, "baton.yaml"))?
                .ok_or_else(|| anyhow!("no baton.yaml at HEAD"))?;
            (root, text)
        }
        None => {
            let root = baton::repo::normalize_subdir(ctx.args.path.as_deref().unwrap_or(""));
            let file = workdir.join(&root).join("baton.yaml");
            let text = std::fs::read(&file)
                .with_context(|| format!("no commits yet and cannot read {}", file.display()))?;
            (root, text)
        }
    };
    let policy_file = join(&root, "baton.yaml");
    let policy =
        parse_policy(&policy_text).map_err(|e| anyhow!("{}", e.into_diagnostic(&policy_file)))?;
    let stage = policy
        .first_stage()
        .ok_or_else(|| anyhow!("{policy_file}: no stages"))?
        .name
        .clone();

    let registry_dir = workdir.join(&root);
    let model_rel = format!("models/{}", args.model);
    let versions_rel = format!("{model_rel}/versions");

    // Existing labels, committed or only in the working tree.
    let mut existing: BTreeMap<String, &'static str> = BTreeMap::new();
    for l in working_tree_labels(&registry_dir.join(&versions_rel))? {
        existing.insert(l, "in the working tree");
    }
    if let Some(c) = &head {
        let dir = join(&root, &versions_rel);
        for l in baton::history::labels_ever(&repo, c.id(), &dir)? {
            existing.insert(l, "history");
        }
        for l in head_labels(&repo, c, &dir)? {
            existing.insert(l, "at HEAD");
        }
    }
    let version = match &args.version {
        Some(v) => v.clone(),
        None => next_version(existing.keys().map(String::as_str)),
    };
    let manifest_rel = join(&root, &format!("{versions_rel}/{version}.yaml"));
    if let Some(place) = existing.get(&version) {
        let m = &args.model;
        if *place == "history" {
            eprintln!("error: {manifest_rel}: {m} version {version} was registered before in the history of HEAD and deleted; labels are never reused, register a new version instead");
        } else {
            eprintln!("error: {manifest_rel}: {m} version {version} already exists ({place}); versions are immutable, register a new version instead");
        }
        return Ok(Outcome::Failed);
    }

    if let Some(f) = &args.artifact_format {
        if !baton::names::is_version_label(f) {
            bail!("--artifact-format `{f}` is not a format name (letters, digits, `.`, `_`, `-`; at most 63)");
        }
    }
    // The artifact: digest streamed from the remote store, or from the local file or folder.
    let mut artifact = match super::remote_artifact::requested(&args.artifact, args.uri.as_deref())?
    {
        Some(uri) => super::remote_artifact::describe(uri)?,
        None => local_artifact(&args, &registry_dir)?,
    };
    artifact.format = args.artifact_format.clone();

    let metrics = match &args.metrics {
        None => BTreeMap::new(),
        Some(p) => {
            let bytes = std::fs::read(p)
                .with_context(|| format!("cannot read the metrics file {}", p.display()))?;
            parse_metrics(&bytes).map_err(|e| anyhow!("{}: {e}", p.display()))?
        }
    };
    let size = artifact.size.unwrap_or_default();

    let manifest = VersionManifest {
        model: args.model.clone(),
        version: version.clone(),
        stage,
        artifact,
        metrics: metrics.into(),
        evidence: read_evidence(&args.evidence)?.into_iter().collect(),
        lineage: args.lineage.iter().cloned().collect(),
        requires: args.requires.iter().cloned().collect(),
        traffic: None,
        created: chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0)
            .expect("now is representable"),
    };

    // A model without a folder gets a minimal model.yaml beside its first version.
    let model_yaml_rel = join(&root, &format!("{model_rel}/model.yaml"));
    let model_yaml_committed = match &head {
        Some(c) => baton::repo::read_file(&repo, c, &model_yaml_rel)?.is_some(),
        None => false,
    };
    let model_yaml_path = workdir.join(&model_yaml_rel);
    let create_model_yaml = !model_yaml_committed && !model_yaml_path.exists();

    let manifest_path = workdir.join(&manifest_rel);
    std::fs::create_dir_all(manifest_path.parent().expect("has a parent"))
        .with_context(|| format!("creating {}", registry_dir.join(&versions_rel).display()))?;
    let mut out = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&manifest_path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            eprintln!("error: {manifest_rel}: already exists; versions are immutable");
            return Ok(Outcome::Failed);
        }
        Err(e) => return Err(e).with_context(|| format!("writing {manifest_rel}")),
    };
    // The editor modeline, when baton.yaml names the registry's schema folder.
    let schema_home = SchemaHome::from_policy(&policy_text);
    let headed = |kind: FileKind, text: String| match &schema_home {
        Some(home) => with_modeline(home, kind, &text),
        None => text,
    };
    out.write_all(headed(FileKind::Version, render_manifest(&manifest)).as_bytes())
        .with_context(|| format!("writing {manifest_rel}"))?;
    if create_model_yaml {
        let text = headed(FileKind::Model, render_model_yaml(&args.model));
        write_new(&model_yaml_path, &text).with_context(|| format!("writing {model_yaml_rel}"))?;
    }

    match format {
        Format::Json => print_json(&json!({
            "model": manifest.model,
            "version": manifest.version,
            "stage": manifest.stage,
            "path": manifest_rel,
            "artifact": {
                "uri": manifest.artifact.uri,
                "sha256": manifest.artifact.sha256,
                "size": size,
                "format": manifest.artifact.format,
                "files": manifest.artifact.files,
            },
            "metrics": manifest.metrics,
            "created": manifest.created.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "model_yaml_created": create_model_yaml.then_some(&model_yaml_rel),
        }))?,
        _ => {
            println!(
                "registered {} version {} in stage {}",
                manifest.model, manifest.version, manifest.stage
            );
            println!("  wrote    {manifest_rel}");
            if create_model_yaml {
                println!("  wrote    {model_yaml_rel} (new model: fill in description and owners)");
            }
            println!("  artifact {}", manifest.artifact.uri);
            println!("  sha256   {}", manifest.artifact.sha256);
            println!("  size     {size} bytes");
            if let Some(files) = &manifest.artifact.files {
                println!(
                    "  files    {} (sha256 is the digest of their listing)",
                    files.len()
                );
            }
            if let Some(f) = &manifest.artifact.format {
                println!("  format   {f}");
            }
            let mut add = vec![manifest_rel.clone()];
            if create_model_yaml {
                add.push(model_yaml_rel.clone());
            }
            if matches!(
                artifact_location(&manifest.artifact.uri),
                Ok(baton::registry::invariants::ArtifactLocation::Registry(_))
            ) {
                add.push(join(&root, &manifest.artifact.uri));
            }
            println!(
                "next: git add {} && git commit, then open a pull request",
                add.join(" ")
            );
        }
    }
    Ok(Outcome::Ok)
}

/// The artifact at the local `--artifact` path: digest streamed from the file, or each file
/// of a folder (a directory artifact); the URI relative to the registry folder when inside it,
/// else `file://` (or `--uri`).
fn local_artifact(args: &Args, registry_dir: &Path) -> Result<Artifact> {
    let artifact_path = std::fs::canonicalize(&args.artifact)
        .with_context(|| format!("artifact {}", args.artifact.display()))?;
    let (sha256, size, files) = if artifact_path.is_dir() {
        let files = folder_listing(&artifact_path)
            .map_err(|e| anyhow!("artifact {}: {e}", args.artifact.display()))?;
        let size = files.iter().map(|f| f.size).sum();
        (listing_digest(&files), size, Some(files))
    } else if artifact_path.is_file() {
        let file = std::fs::File::open(&artifact_path)
            .with_context(|| format!("artifact {}", args.artifact.display()))?;
        let (sha256, size) = digest(file)
            .with_context(|| format!("reading artifact {}", args.artifact.display()))?;
        (sha256, size, None)
    } else {
        bail!(
            "artifact {}: not a regular file or a folder",
            args.artifact.display()
        );
    };
    let uri = match &args.uri {
        Some(u) => {
            artifact_location(u).map_err(|why| anyhow!("--uri `{u}`: {why}"))?;
            if files.is_some() && !u.ends_with('/') {
                bail!("--uri `{u}`: the artifact is a folder, so its URI must end in `/`");
            }
            u.clone()
        }
        None => {
            let reg =
                std::fs::canonicalize(registry_dir).unwrap_or_else(|_| registry_dir.to_owned());
            let uri = artifact_uri(&artifact_path, &reg);
            if files.is_some() {
                format!("{uri}/")
            } else {
                uri
            }
        }
    };
    Ok(Artifact {
        uri,
        sha256,
        size: Some(size),
        format: None,
        files,
    })
}

fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// Labels of `<label>.yaml` files in a working-tree versions folder (none when it is absent).
fn working_tree_labels(dir: &Path) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for e in entries {
        let name = e?.file_name();
        if let Some(l) = name.to_str().and_then(|n| n.strip_suffix(".yaml")) {
            out.insert(l.to_owned());
        }
    }
    Ok(out)
}

/// Labels of `<label>.yaml` entries in HEAD's versions folder.
fn head_labels(repo: &Repository, head: &git2::Commit, dir: &str) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let tree = head.tree()?;
    let Ok(e) = tree.get_path(Path::new(dir)) else {
        return Ok(out);
    };
    if e.kind() != Some(ObjectType::Tree) {
        return Ok(out);
    }
    for v in repo.find_tree(e.id())?.iter() {
        if let Some(l) = v.name().and_then(|n| n.strip_suffix(".yaml")) {
            out.insert(l.to_owned());
        }
    }
    Ok(out)
}
