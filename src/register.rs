//! The pure parts of `baton register`: the next version label, metrics read from JSON, the
//! artifact's digest and recorded URI, and the rendered manifest text.

use crate::manifest::VersionManifest;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
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

/// Lower-case hex sha256 and size in bytes of everything `r` yields, read in 64 KiB chunks.
pub fn digest(mut r: impl Read) -> std::io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(h.finalize()), size))
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

/// The manifest text of a newly registered version, in the field order of docs/registry-format.md.
/// Only the fields `register` sets are written: evidence and requires are added later by hand.
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
    if let Some(files) = &m.artifact.files {
        out.push_str(&render_files(files));
    }
    if !m.metrics.is_empty() {
        out.push_str("metrics:\n");
        for (k, v) in &m.metrics {
            out.push_str(&format!("  {}: {}\n", yaml_str(k), fmt_number(*v)));
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

/// A directory artifact's `files:` list (under `artifact:`), one flow mapping per file.
fn render_files(files: &[crate::manifest::version::ArtifactFile]) -> String {
    let mut out = String::from("  files:\n");
    for f in files {
        // Plain only when nothing in it is special inside a flow mapping.
        let plain = yaml_str(&f.path) == f.path && !f.path.contains(':');
        let path = if plain {
            f.path.clone()
        } else {
            serde_json::to_string(&f.path).expect("strings serialize")
        };
        out.push_str(&format!(
            "    - {{path: {path}, sha256: {}, size: {}}}\n",
            f.sha256, f.size
        ));
    }
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
