//! The pure parts of `baton register`: the next version label, metrics read from JSON, the
//! artifact's digest (of a file, or the listing of a folder) and recorded URI, the manifest text.

use crate::manifest::version::{check_file_path, ArtifactFile, Evidence};
use crate::manifest::VersionManifest;
use std::collections::BTreeMap;
use std::path::Path;
use thiserror::Error;

/// The label after the highest purely numeric label (`"1"` when there is none).
/// Non-numeric labels (`v2`, `1.3`) are ignored.
pub fn next_version<'a>(labels: impl IntoIterator<Item = &'a str>) -> String {
    labels
        .into_iter()
        .filter(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|l| l.parse::<u128>().ok())
        .max()
        .map_or(1, |n| n.saturating_add(1))
        .to_string()
}

/// Why a metrics file was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MetricsError {
    #[error("{line}:{column}: invalid JSON: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("metrics must be a JSON object of name -> number, found {found}")]
    NotAnObject { found: &'static str },
    #[error("metric `{name}` must be a number, found {found}")]
    NotANumber { name: String, found: &'static str },
    #[error("metric name must not be empty")]
    EmptyName,
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Parse a metrics file: a JSON object whose values are all numbers.
pub fn parse_metrics(bytes: &[u8]) -> Result<BTreeMap<String, f64>, MetricsError> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| MetricsError::Json {
        line: e.line(),
        column: e.column(),
        message: e
            .to_string()
            .split(" at line ")
            .next()
            .unwrap_or("")
            .to_owned(),
    })?;
    let serde_json::Value::Object(map) = v else {
        return Err(MetricsError::NotAnObject { found: kind(&v) });
    };
    let mut out = BTreeMap::new();
    for (name, value) in map {
        if name.trim().is_empty() {
            return Err(MetricsError::EmptyName);
        }
        match value.as_f64() {
            Some(n) if value.is_number() && n.is_finite() => {
                out.insert(name, n);
            }
            _ => {
                return Err(MetricsError::NotANumber {
                    name,
                    found: kind(&value),
                })
            }
        }
    }
    Ok(out)
}

/// Why an evidence file (`register --evidence NAME=FILE`) was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EvidenceError {
    #[error("{line}:{column}: {message} (evidence is {{passed: true|false, report: \"…\"}}; docs/registry-format.md)")]
    Parse {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("1:1: the file is empty; evidence is {{passed: true|false, report: \"…\"}}")]
    Empty,
}

/// One evidence result, from the text of a YAML (or JSON) file holding the object
/// `{passed: bool, report: string}` of docs/registry-format.md (`report` optional).
pub fn parse_evidence(text: &str) -> Result<Evidence, EvidenceError> {
    if text.trim().is_empty() {
        return Err(EvidenceError::Empty);
    }
    serde_yaml::from_str::<Evidence>(text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        let message = e.to_string();
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or_default()
            .to_owned();
        EvidenceError::Parse {
            line,
            column,
            message,
        }
    })
}

/// The shorthand values of `--evidence NAME=VALUE` that need no file.
pub fn evidence_shorthand(value: &str) -> Option<Evidence> {
    match value {
        "passed" => Some(Evidence {
            passed: true,
            report: None,
        }),
        "failed" => Some(Evidence {
            passed: false,
            report: None,
        }),
        _ => None,
    }
}

/// Lower-case hex sha256 and size in bytes of everything `r` yields (the one streaming
/// hash, [`crate::fsutil::sha256_reader`]).
pub use crate::fsutil::sha256_reader as digest;

/// Why a folder cannot be registered as a directory artifact.
#[derive(Debug, Error)]
pub enum FolderError {
    #[error(
        "{0} is a symbolic link; a directory artifact holds regular files only (copy the file in)"
    )]
    Symlink(String),
    #[error("{0} is {1}, not a regular file; a directory artifact holds regular files only")]
    Special(String, &'static str),
    #[error("{0}: the name is not UTF-8")]
    NotUtf8(String),
    #[error("{0}")]
    BadPath(String),
    #[error("the folder holds no files")]
    Empty,
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The listing of the folder `dir` as a directory artifact: every regular file under it
/// (recursively, streamed through sha256), with its `/`-separated path relative to `dir`,
/// sorted by path bytewise. Symbolic links and special files are refused, never followed.
pub fn folder_listing(dir: &Path) -> Result<Vec<ArtifactFile>, FolderError> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<ArtifactFile>) -> Result<(), FolderError> {
        let io = |path: &str| {
            let path = if path.is_empty() { "." } else { path }.to_owned();
            move |source| FolderError::Io { path, source }
        };
        for e in std::fs::read_dir(dir).map_err(io(rel))? {
            let e = e.map_err(io(rel))?;
            let name = e.file_name();
            let Some(name) = name.to_str() else {
                let lossy = name.to_string_lossy();
                return Err(FolderError::NotUtf8(if rel.is_empty() {
                    lossy.into_owned()
                } else {
                    format!("{rel}/{lossy}")
                }));
            };
            let path = if rel.is_empty() {
                name.to_owned()
            } else {
                format!("{rel}/{name}")
            };
            // DirEntry::file_type does not follow links.
            let kind = e.file_type().map_err(io(&path))?;
            if kind.is_symlink() {
                return Err(FolderError::Symlink(path));
            }
            if kind.is_dir() {
                walk(&e.path(), &path, out)?;
                continue;
            }
            if !kind.is_file() {
                use std::os::unix::fs::FileTypeExt;
                let what = if kind.is_fifo() {
                    "a named pipe"
                } else if kind.is_socket() {
                    "a socket"
                } else {
                    "a device"
                };
                return Err(FolderError::Special(path, what));
            }
            check_file_path(&path).map_err(FolderError::BadPath)?;
            let f = {
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(e.path())
                    .map_err(io(&path))?
            };
            let (sha256, size) = digest(f).map_err(io(&path))?;
            out.push(ArtifactFile { path, sha256, size });
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out)?;
    if out.is_empty() {
        return Err(FolderError::Empty);
    }
    out.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    Ok(out)
}

/// The URI to record for an artifact at absolute path `artifact`: a path relative to the
/// registry folder `registry` when the file is inside it, else an absolute `file://` URI.
/// Both paths should be canonical.
pub fn artifact_uri(artifact: &Path, registry: &Path) -> String {
    match artifact.strip_prefix(registry) {
        Ok(rel) if rel.components().next().is_some() => rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
        _ => format!("file://{}", artifact.display()),
    }
}

/// A YAML scalar for `s`: plain when YAML reads it back as the same string, else
/// double-quoted (JSON escapes are valid YAML escapes).
pub fn yaml_str(s: &str) -> String {
    let plain_chars = !s.is_empty()
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._/:@+-=~".contains(&b))
        && !s.ends_with(':');
    if plain_chars {
        if let Ok(serde_yaml::Value::String(back)) = serde_yaml::from_str::<serde_yaml::Value>(s) {
            if back == s {
                return s.to_owned();
            }
        }
    }
    serde_json::to_string(s).expect("strings serialize")
}

/// [`yaml_str`] for a value inside a flow mapping (`{path: ...}`), where `:` is quoted too.
fn flow_str(s: &str) -> String {
    let plain = yaml_str(s);
    if plain.contains(':') && !plain.starts_with('"') {
        serde_json::to_string(s).expect("strings serialize")
    } else {
        plain
    }
}

/// The manifest text of a newly registered version, in the field order of docs/registry-format.md.
/// Only the fields `register` sets are written.
pub fn render_manifest(m: &VersionManifest) -> String {
    let mut out = String::new();
    out.push_str(&format!("model: {}\n", yaml_str(&m.model)));
    out.push_str(&format!(
        "version: {}\n",
        serde_json::to_string(&m.version).expect("strings serialize")
    ));
    out.push_str(&format!("stage: {}\n", yaml_str(&m.stage)));
    out.push_str("artifact:\n");
    out.push_str(&format!("  uri: {}\n", yaml_str(&m.artifact.uri)));
    out.push_str(&format!("  sha256: {}\n", m.artifact.sha256));
    if let Some(size) = m.artifact.size {
        out.push_str(&format!("  size: {size}\n"));
    }
    if let Some(format) = &m.artifact.format {
        out.push_str(&format!("  format: {}\n", yaml_str(format)));
    }
    if let Some(files) = &m.artifact.files {
        out.push_str("  files:\n");
        for f in files {
            out.push_str(&format!(
                "    - {{path: {}, sha256: {}, size: {}}}\n",
                flow_str(&f.path),
                f.sha256,
                f.size
            ));
        }
    }
    if !m.metrics.is_empty() {
        out.push_str("metrics:\n");
        for (k, v) in &m.metrics {
            out.push_str(&format!("  {}: {}\n", yaml_str(k), fmt_number(*v)));
        }
    }
    if !m.evidence.is_empty() {
        out.push_str("evidence:\n");
        for (k, e) in &m.evidence {
            out.push_str(&format!("  {}: {{passed: {}", yaml_str(k), e.passed));
            if let Some(r) = &e.report {
                let plain = yaml_str(r);
                let quoted = match plain.contains([',', '{', '}', '[', ']', ':', '#']) {
                    true if !plain.starts_with('"') => {
                        serde_json::to_string(r).expect("strings serialize")
                    }
                    _ => plain,
                };
                out.push_str(&format!(", report: {quoted}"));
            }
            out.push_str("}\n");
        }
    }
    if !m.lineage.is_empty() {
        out.push_str("lineage:\n");
        for (k, v) in &m.lineage {
            out.push_str(&format!("  {}: {}\n", yaml_str(k), yaml_str(v)));
        }
    }
    if !m.requires.is_empty() {
        out.push_str("requires:\n");
        for (k, v) in &m.requires {
            out.push_str(&format!(
                "  {}: {}\n",
                yaml_str(k),
                serde_json::to_string(v).expect("strings serialize")
            ));
        }
    }
    out.push_str(&format!(
        "created: {}\n",
        m.created.format("%Y-%m-%dT%H:%M:%SZ")
    ));
    out
}

/// A metric value as YAML: Rust's shortest round-trip decimal form (never an exponent),
/// always with a fraction so YAML reads a float (`12.0`).
fn fmt_number(v: f64) -> String {
    let s = format!("{v}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// The `model.yaml` written when `register` creates a model folder.
pub fn render_model_yaml(model: &str) -> String {
    format!(
        "name: {model}\ndescription: \"\"\n# Who may approve this model's promotions: group:<name>, e-mails, github:<login>.\nowners: []\n"
    )
}

#[cfg(test)]
mod evidence_tests {
    use super::*;

    #[test]
    fn evidence_files_parse_or_say_where_they_are_wrong() {
        let e = parse_evidence("passed: true\nreport: reports/eval.json\n").unwrap();
        assert!(e.passed);
        assert_eq!(e.report.as_deref(), Some("reports/eval.json"));
        let e = parse_evidence("{\"passed\": false}").unwrap();
        assert!(!e.passed && e.report.is_none());
        let err = parse_evidence("passed: true\nscore: 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("2:1: unknown field `score`"), "{err}");
        let err = parse_evidence("report: x\n").unwrap_err().to_string();
        assert!(err.contains("missing field `passed`"), "{err}");
        let err = parse_evidence("passed: maybe\n").unwrap_err().to_string();
        assert!(err.starts_with("1:9: "), "{err}");
        assert_eq!(parse_evidence("  \n"), Err(EvidenceError::Empty));
        assert_eq!(evidence_shorthand("passed").map(|e| e.passed), Some(true));
        assert_eq!(evidence_shorthand("failed").map(|e| e.passed), Some(false));
        assert_eq!(evidence_shorthand("eval.yaml"), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{parse_model, parse_version, Artifact};
    use chrono::TimeZone;

    #[test]
    fn next_label() {
        assert_eq!(next_version([]), "1");
        assert_eq!(next_version(["1", "2", "10", "9"]), "11");
        assert_eq!(next_version(["v7", "1.5", "3"]), "4");
        assert_eq!(next_version(["rc1"]), "1");
    }

    #[test]
    fn metrics_object_of_numbers() {
        let m = parse_metrics(br#"{"auc": 0.94, "p99_latency_ms": 12}"#).unwrap();
        assert_eq!(m["auc"], 0.94);
        assert_eq!(m["p99_latency_ms"], 12.0);
        assert_eq!(
            parse_metrics(b"[1]").unwrap_err(),
            MetricsError::NotAnObject { found: "an array" }
        );
        assert!(matches!(
            parse_metrics(br#"{"auc": "0.9"}"#).unwrap_err(),
            MetricsError::NotANumber { ref name, found: "a string" } if name == "auc"
        ));
        let e = parse_metrics(b"{\n  \"auc\": 0.9,\n}").unwrap_err();
        assert!(matches!(e, MetricsError::Json { line: 3, .. }), "{e:?}");
    }

    #[test]
    fn digest_of_known_input() {
        let (d, n) = digest(&b"test"[..]).unwrap();
        assert_eq!(
            d,
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert_eq!(n, 4);
    }

    #[test]
    fn uri_relative_inside_registry_else_file() {
        let reg = Path::new("/r/reg");
        assert_eq!(
            artifact_uri(Path::new("/r/reg/artifacts/m/1/model.onnx"), reg),
            "artifacts/m/1/model.onnx"
        );
        assert_eq!(
            artifact_uri(Path::new("/r/other/model.onnx"), reg),
            "file:///r/other/model.onnx"
        );
        assert_eq!(
            artifact_uri(Path::new("/r/registry/x"), reg),
            "file:///r/registry/x"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(yaml_str("artifacts/a/1/m.onnx"), "artifacts/a/1/m.onnx");
        assert_eq!(yaml_str("s3://b/k"), "s3://b/k");
        assert_eq!(yaml_str("true"), "\"true\"");
        assert_eq!(yaml_str("12"), "\"12\"");
        assert_eq!(yaml_str("a b: c"), "\"a b: c\"");
        assert_eq!(yaml_str("#x"), "\"#x\"");
    }

    #[test]
    fn a_folder_lists_its_regular_files_sorted_and_refuses_links() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("model");
        std::fs::create_dir_all(dir.join("data/sub")).unwrap();
        std::fs::create_dir_all(dir.join("empty")).unwrap();
        std::fs::write(dir.join("MLmodel"), b"flavors: {}").unwrap();
        std::fs::write(dir.join("data/sub/w.bin"), b"test").unwrap();
        std::fs::write(dir.join("data-a"), b"").unwrap();
        let files = folder_listing(&dir).unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        // Bytewise: `-` (0x2d) sorts before `/` (0x2f).
        assert_eq!(paths, ["MLmodel", "data-a", "data/sub/w.bin"]);
        assert_eq!(files[2].size, 4);
        assert_eq!(
            files[2].sha256,
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );

        std::os::unix::fs::symlink(dir.join("MLmodel"), dir.join("data/alias")).unwrap();
        let e = folder_listing(&dir).unwrap_err();
        assert!(
            matches!(&e, FolderError::Symlink(p) if p == "data/alias"),
            "{e}"
        );
        std::fs::remove_file(dir.join("data/alias")).unwrap();
        let fifo =
            std::ffi::CString::new(dir.join("pipe").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let e = folder_listing(&dir).unwrap_err().to_string();
        assert_eq!(e, "pipe is a named pipe, not a regular file; a directory artifact holds regular files only");
        let empty = d.path().join("nothing");
        std::fs::create_dir_all(empty.join("sub")).unwrap();
        assert!(matches!(folder_listing(&empty), Err(FolderError::Empty)));
    }

    #[test]
    fn a_directory_artifact_renders_and_parses_back() {
        let files = vec![
            ArtifactFile {
                path: "MLmodel".into(),
                sha256: "0".repeat(64),
                size: 512,
            },
            ArtifactFile {
                path: "weird: name, {x}.bin".into(),
                sha256: "1".repeat(64),
                size: 7,
            },
        ];
        let m = VersionManifest {
            model: "m".into(),
            version: "6".into(),
            stage: "development".into(),
            artifact: Artifact {
                uri: "artifacts/m/6/".into(),
                sha256: crate::manifest::version::listing_digest(&files),
                size: Some(519),
                format: Some("mlflow".into()),
                files: Some(files),
            },
            metrics: Default::default(),
            evidence: Default::default(),
            lineage: Default::default(),
            requires: Default::default(),
            traffic: None,
            created: chrono::Utc
                .with_ymd_and_hms(2026, 11, 27, 16, 0, 5)
                .unwrap(),
        };
        let text = render_manifest(&m);
        assert!(
            text.contains("  format: mlflow\n  files:\n    - {path: MLmodel, sha256: 0000"),
            "{text}"
        );
        assert_eq!(parse_version(text.as_bytes()).unwrap(), m);
    }

    #[test]
    fn rendered_manifest_parses_back() {
        let m = VersionManifest {
            model: "fraud-detector".into(),
            version: "12".into(),
            stage: "development".into(),
            artifact: Artifact {
                uri: "file:///tmp/a b/model #1.onnx".into(),
                sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
                size: Some(4),
                format: None,
                files: None,
            },
            metrics: [
                ("auc".to_string(), 0.941),
                ("yes".to_string(), 1e-9),
                ("big".to_string(), 3e20),
            ]
            .into_iter()
            .collect(),
            evidence: Default::default(),
            lineage: [("code".to_string(), "https://x/y@abc: \"q\"".to_string())]
                .into_iter()
                .collect(),
            requires: [("feature-encoder".to_string(), "8".to_string())]
                .into_iter()
                .collect(),
            traffic: None,
            created: chrono::Utc
                .with_ymd_and_hms(2026, 11, 27, 16, 0, 5)
                .unwrap(),
        };
        let text = render_manifest(&m);
        assert!(text.contains("version: \"12\"\n"), "{text}");
        assert_eq!(parse_version(text.as_bytes()).unwrap(), m);

        // A directory artifact's files, odd names included, read back the same.
        let mut dir = m.clone();
        dir.artifact.uri = "s3://acme-models/fraud/6/".into();
        dir.artifact.files = Some(
            ["MLmodel", "data/model.pkl", "a: b, {c}.bin", "true", "#x"]
                .iter()
                .map(|p| crate::manifest::version::ArtifactFile {
                    path: p.to_string(),
                    sha256: "0".repeat(64),
                    size: 512,
                })
                .collect(),
        );
        let text = render_manifest(&dir);
        assert!(
            text.contains("    - {path: data/model.pkl, sha256: "),
            "{text}"
        );
        assert_eq!(parse_version(text.as_bytes()).unwrap(), dir);
        assert_eq!(
            parse_model(render_model_yaml("m-1").as_bytes())
                .unwrap()
                .name,
            "m-1"
        );
    }
}
