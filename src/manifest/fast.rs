//! A fast path for version manifests written in the plain block style baton and people write.
//! It accepts a strict YAML subset and answers `None` for anything else, so the caller falls
//! back to serde_yaml: when it answers, the result equals serde_yaml's (tested differentially).
//!
//! Supported: block mappings (spaces, consistent indentation), single-line flow mappings of
//! scalars, plain scalars, and single- or double-quoted scalars without escapes, with `#`
//! comments. Not supported (fallback): tabs, CR, document markers, directives, anchors,
//! aliases, tags, block scalars, multi-line scalars, sequences, duplicate or unknown keys,
//! nulls, and numbers outside a plain decimal form.

use super::model::ModelManifest;
use super::small_map::SmallMap;
use super::version::{Artifact, Evidence, VersionManifest};
use chrono::{DateTime, Utc};
use serde::de::IntoDeserializer;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy)]
enum Scalar<'a> {
    Plain(&'a str),
    Quoted(&'a str),
}

#[derive(Debug)]
enum Node<'a> {
    Scalar(Scalar<'a>),
    Map(Vec<(&'a str, Node<'a>)>),
    Seq(Vec<Scalar<'a>>),
}

struct Line<'a> {
    indent: usize,
    body: &'a str,
}

/// Parse a version manifest, or `None` when the text is outside the supported subset.
pub(crate) fn parse_version(text: &str) -> Option<VersionManifest> {
    version_manifest(document(text)?)
}

/// Parse a model manifest, or `None` when the text is outside the supported subset.
pub(crate) fn parse_model(text: &str) -> Option<ModelManifest> {
    let (mut name, mut description, mut owners) = (None, None, None);
    for (k, v) in document(text)? {
        match k {
            "name" => name = Some(string(v)?),
            "description" => description = Some(string(v)?),
            "owners" => owners = Some(seq_of_strings(v)?),
            _ => return None,
        }
    }
    Some(ModelManifest {
        name: name?,
        description: description.unwrap_or_default(),
        owners: owners.unwrap_or_default(),
    })
}

/// The top-level block mapping of a document.
fn document(text: &str) -> Option<Vec<(&str, Node<'_>)>> {
    if text.bytes().any(|b| b == b'\t' || b == b'\r') || text.starts_with('\u{feff}') {
        return None;
    }
    let mut lines = Vec::with_capacity(24);
    for raw in text.split('\n') {
        let body = raw.trim_start_matches(' ');
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        lines.push(Line {
            indent: raw.len() - body.len(),
            body,
        });
    }
    let mut i = 0;
    let top = block_map(&lines, &mut i, 0)?;
    (i == lines.len()).then_some(top)
}

/// A block mapping whose keys sit at exactly `indent`.
fn block_map<'a>(
    lines: &[Line<'a>],
    i: &mut usize,
    indent: usize,
) -> Option<Vec<(&'a str, Node<'a>)>> {
    let mut out: Vec<(&'a str, Node<'a>)> = Vec::new();
    while *i < lines.len() {
        let line = &lines[*i];
        if line.indent < indent {
            break;
        }
        if line.indent > indent {
            return None;
        }
        let colon = line.body.bytes().position(|c| c == b':')?;
        let key = &line.body[..colon];
        if !is_key(key) || out.iter().any(|(k, _)| *k == key) {
            return None;
        }
        let rest = &line.body[colon + 1..];
        if !rest.is_empty() && !rest.starts_with(' ') {
            return None;
        }
        let rest = rest.trim_start_matches(' ');
        *i += 1;
        let value = if rest.is_empty() || rest.starts_with('#') {
            // A nested block mapping must follow, indented deeper.
            let child = lines.get(*i)?.indent;
            if child <= indent {
                return None;
            }
            Node::Map(block_map(lines, i, child)?)
        } else if let Some(inner) = rest.strip_prefix('{') {
            Node::Map(flow_map(inner)?)
        } else if let Some(inner) = rest.strip_prefix('[') {
            Node::Seq(flow_seq(inner)?)
        } else {
            Node::Scalar(block_scalar(rest)?)
        };
        out.push((key, value));
    }
    Some(out)
}

/// Byte offset of the first `a` directly followed by `b` (both ASCII).
fn find2(s: &str, a: u8, b: u8) -> Option<usize> {
    s.as_bytes().windows(2).position(|w| w[0] == a && w[1] == b)
}

/// Keys: plain words; no quoting, no indicators.
fn is_key(k: &str) -> bool {
    let b = k.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.' || c == b'/')
}

/// A scalar value after `key: ` in block context, with an optional trailing comment.
fn block_scalar(rest: &str) -> Option<Scalar<'_>> {
    if let Some((s, after)) = quoted(rest) {
        let trimmed = after.trim_start_matches(' ');
        return (trimmed.is_empty() || (trimmed.starts_with('#') && after.starts_with(' ')))
            .then_some(s);
    }
    let v = match find2(rest, b' ', b'#') {
        Some(p) => &rest[..p],
        None => rest,
    }
    .trim_end_matches(' ');
    plain_ok(v, false).then_some(Scalar::Plain(v))
}

/// `"..."` without escapes or `'...'` without doubled quotes; returns the rest of the line.
fn quoted(s: &str) -> Option<(Scalar<'_>, &str)> {
    let q = s.as_bytes().first().copied()?;
    if q != b'"' && q != b'\'' {
        return None;
    }
    let end = s[1..].find(q as char)? + 1;
    let inner = &s[1..end];
    let after = &s[end + 1..];
    let clean = inner
        .bytes()
        .all(|c| (0x20..0x7f).contains(&c) && c != b'\\');
    if !clean || (q == b'\'' && after.starts_with('\'')) {
        return None;
    }
    Some((Scalar::Quoted(inner), after))
}

/// Printable ASCII plain scalar that cannot be read as anything but this text.
fn plain_ok(v: &str, flow: bool) -> bool {
    let b = v.as_bytes();
    if b.is_empty() || !b.iter().all(|c| (0x20..0x7f).contains(c)) {
        return false;
    }
    if b"-?:,[]{}#&*!|>'\"%@`".contains(&b[0]) || v.ends_with(':') || find2(v, b':', b' ').is_some()
    {
        return false;
    }
    if flow {
        if b.iter().any(|c| b",[]{}#".contains(c)) {
            return false;
        }
        // `:` inside a flow scalar is fine only before a "safe" character.
        let mut it = v.match_indices(':');
        if it.any(|(p, _)| b.get(p + 1).is_none_or(|c| b" ,[]{}?".contains(c))) {
            return false;
        }
    }
    true
}

/// The text inside a one-line flow collection closed by `close`, with only blanks or a
/// comment after it.
fn flow_body(inner: &str, close: char) -> Option<&str> {
    let end = inner.find(close)?;
    let rest = &inner[end + 1..];
    let after = rest.trim_start_matches(' ');
    if !(after.is_empty() || (after.starts_with('#') && rest.starts_with(' '))) {
        return None;
    }
    Some(inner[..end].trim_matches(' '))
}

/// A flow scalar: quoted without escapes, or plain with flow rules.
fn flow_scalar(value: &str) -> Option<Scalar<'_>> {
    match quoted(value) {
        Some((s, "")) => Some(s),
        Some(_) => None,
        None => plain_ok(value, true).then_some(Scalar::Plain(value)),
    }
}

/// The inside of `[...]`: one line, scalars only.
fn flow_seq(inner: &str) -> Option<Vec<Scalar<'_>>> {
    let body = flow_body(inner, ']')?;
    if body.is_empty() {
        return Some(Vec::new());
    }
    body.split(',')
        .map(|item| flow_scalar(item.trim_matches(' ')))
        .collect()
}

/// The inside of `{...}` up to the closing brace; one line, scalar values only.
fn flow_map(inner: &str) -> Option<Vec<(&str, Node<'_>)>> {
    let body = flow_body(inner, '}')?;
    let mut out: Vec<(&str, Node<'_>)> = Vec::new();
    if body.is_empty() {
        return Some(out);
    }
    for item in body.split(',') {
        let item = item.trim_matches(' ');
        let p = find2(item, b':', b' ')?;
        let (key, value) = (&item[..p], &item[p + 2..]);
        let value = value.trim_start_matches(' ');
        if !is_key(key) || out.iter().any(|(k, _)| *k == key) {
            return None;
        }
        out.push((key, Node::Scalar(flow_scalar(value)?)));
    }
    Some(out)
}

// ---- typed conversion, mirroring serde_yaml 0.9's rules for each target type ----

/// `String` targets take any scalar's text as is (serde_yaml's `deserialize_str`).
fn string(n: Node<'_>) -> Option<String> {
    match n {
        Node::Scalar(Scalar::Plain(s) | Scalar::Quoted(s)) => Some(s.to_owned()),
        _ => None,
    }
}

fn seq_of_strings(n: Node<'_>) -> Option<Vec<String>> {
    match n {
        Node::Seq(items) => Some(
            items
                .into_iter()
                .map(|(Scalar::Plain(s) | Scalar::Quoted(s))| s.to_owned())
                .collect(),
        ),
        _ => None,
    }
}

/// A version label (`deserialize_any`): quoted text, a plain decimal integer, or plain text
/// starting with a letter that is not a null, bool or special float.
fn label(n: Node<'_>) -> Option<String> {
    match n {
        Node::Scalar(Scalar::Quoted(s)) => Some(s.to_owned()),
        Node::Scalar(Scalar::Plain(s)) => {
            let b = s.as_bytes();
            if is_decimal_int(s) && b.len() <= 18 {
                return Some(s.to_owned());
            }
            if !b[0].is_ascii_alphabetic() {
                return None;
            }
            let lower = s.to_ascii_lowercase();
            if matches!(
                lower.as_str(),
                "null" | "true" | "false" | "inf" | "infinity" | "nan"
            ) {
                return None;
            }
            Some(s.to_owned())
        }
        _ => None,
    }
}

/// `0` or `[1-9][0-9]*`.
fn is_decimal_int(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && b.iter().all(u8::is_ascii_digit) && (b[0] != b'0' || b.len() == 1)
}

fn float(n: Node<'_>) -> Option<f64> {
    let Node::Scalar(Scalar::Plain(s)) = n else {
        return None;
    };
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let all_digits =
        |x: &str| !x.is_empty() && x.len() <= 20 && x.bytes().all(|c| c.is_ascii_digit());
    if !all_digits(int) || !frac.is_none_or(all_digits) {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    v.is_finite().then_some(v)
}

fn unsigned<T: std::str::FromStr>(n: Node<'_>) -> Option<T> {
    match n {
        Node::Scalar(Scalar::Plain(s)) if is_decimal_int(s) => s.parse().ok(),
        _ => None,
    }
}

fn boolean(n: Node<'_>) -> Option<bool> {
    match n {
        Node::Scalar(Scalar::Plain("true")) => Some(true),
        Node::Scalar(Scalar::Plain("false")) => Some(false),
        _ => None,
    }
}

/// `Option<String>`: a plain empty or null-like scalar would be `None`; leave those to serde.
fn opt_string(n: Node<'_>) -> Option<String> {
    if let Node::Scalar(Scalar::Plain("null" | "Null" | "NULL" | "~")) = n {
        return None;
    }
    string(n)
}

/// A mapping's entries converted by `f` (keys are unique: duplicates fell back already).
fn map<'a, T, M: FromIterator<(String, T)>>(
    n: Node<'a>,
    f: impl Fn(Node<'a>) -> Option<T>,
) -> Option<M> {
    let Node::Map(entries) = n else {
        return None;
    };
    entries
        .into_iter()
        .map(|(k, v)| Some((k.to_owned(), f(v)?)))
        .collect()
}

fn artifact(n: Node<'_>) -> Option<Artifact> {
    let Node::Map(entries) = n else {
        return None;
    };
    let (mut uri, mut sha256, mut size, mut format) = (None, None, None, None);
    for (k, v) in entries {
        match k {
            "uri" => uri = Some(string(v)?),
            "sha256" => sha256 = Some(string(v)?),
            "size" => size = Some(unsigned::<u64>(v)?),
            "format" => format = Some(string(v)?),
            // Directory artifacts (`files:`) are parsed by serde_yaml.
            _ => return None,
        }
    }
    Some(Artifact {
        uri: uri?,
        sha256: sha256?,
        size,
        format,
        files: None,
    })
}

fn evidence(n: Node<'_>) -> Option<Evidence> {
    let Node::Map(entries) = n else {
        return None;
    };
    let (mut passed, mut report) = (None, None);
    for (k, v) in entries {
        match k {
            "passed" => passed = Some(boolean(v)?),
            "report" => report = Some(opt_string(v)?),
            _ => return None,
        }
    }
    Some(Evidence {
        passed: passed?,
        report,
    })
}

fn timestamp(n: Node<'_>) -> Option<DateTime<Utc>> {
    let s = string(n)?;
    let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
        s.as_str().into_deserializer();
    DateTime::<Utc>::deserialize(de).ok()
}

fn version_manifest(top: Vec<(&str, Node<'_>)>) -> Option<VersionManifest> {
    let mut model = None;
    let mut version = None;
    let mut stage = None;
    let mut art = None;
    let mut metrics = SmallMap::new();
    let mut evid = SmallMap::new();
    let mut lineage = SmallMap::new();
    let mut requires = BTreeMap::new();
    let mut traffic = None;
    let mut created = None;
    for (k, v) in top {
        match k {
            "model" => model = Some(string(v)?),
            "version" => version = Some(label(v)?),
            "stage" => stage = Some(string(v)?),
            "artifact" => art = Some(artifact(v)?),
            "metrics" => metrics = map(v, float)?,
            "evidence" => evid = map(v, evidence)?,
            "lineage" => lineage = map(v, string)?,
            "requires" => requires = map(v, label)?,
            "traffic" => traffic = Some(unsigned::<u32>(v)?),
            "created" => created = Some(timestamp(v)?),
            _ => return None,
        }
    }
    Some(VersionManifest {
        model: model?,
        version: version?,
        stage: stage?,
        artifact: art?,
        metrics,
        evidence: evid,
        lineage,
        requires,
        traffic,
        created: created?,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_version as fast;
    use crate::manifest::VersionManifest;

    fn slow(text: &str) -> Result<VersionManifest, serde_yaml::Error> {
        serde_yaml::from_str(text)
    }

    const SPEC: &str = r#"model: fraud-detector
version: "4"
stage: staging                 # one of the stages in baton.yaml
artifact:
  uri: artifacts/fraud-detector/4/model.onnx   # relative path, file://, s3://, gs://, https://
  sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
  size: 48213                  # bytes, optional
metrics:                       # name -> number
  auc: 0.941
  p99_latency_ms: 11.5
evidence:                      # name -> result of a check run outside baton
  offline-eval: {passed: true, report: reports/fraud-detector/4/eval.json}
lineage:                       # where it came from: free-form strings
  code: https://github.com/acme/fraud@9f1c2e7
  data: s3://acme-data/fraud/2026-11-01
requires:                      # other models' versions that must share this version's stage
  feature-encoder: "7"
traffic: 10                    # optional; only in a stage with `canary: true`; percent
created: 2026-11-20T10:00:00Z
"#;

    /// Whenever the fast path answers, serde_yaml gives the same manifest.
    fn agree(text: &str) -> bool {
        match fast(text) {
            Some(m) => {
                let s = slow(text);
                assert_eq!(
                    s.as_ref().ok(),
                    Some(&m),
                    "fast path disagrees on:\n{text}\nserde: {s:?}"
                );
                true
            }
            None => false,
        }
    }

    #[test]
    fn spec_example_takes_the_fast_path() {
        assert!(agree(SPEC));
        let m = fast(SPEC).unwrap();
        assert_eq!(m.version, "4");
        assert_eq!(m.traffic, Some(10));
        assert_eq!(m.requires["feature-encoder"], "7");
        assert_eq!(m.metrics["p99_latency_ms"], 11.5);
    }

    #[test]
    fn registry_example_manifests_take_the_fast_path() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("registry-example/models");
        let mut n = 0;
        for model in std::fs::read_dir(dir).unwrap() {
            let versions = model.unwrap().path().join("versions");
            for f in std::fs::read_dir(versions).unwrap() {
                let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
                assert!(agree(&text), "expected the fast path for:\n{text}");
                n += 1;
            }
        }
        assert!(n >= 10);
    }

    #[test]
    fn tricky_forms_agree_or_fall_back() {
        let base = "model: m\nversion: 1\nstage: s\nartifact: {uri: a, sha256: b}\ncreated: 2026-11-20T10:00:00Z\n";
        assert!(agree(base));
        let cases = [
            "version: 4.0",
            "version: 007",
            "version: 0x1F",
            "version: v1.2",
            "version: null",
            "version: 'x''y'",
            "version: true",
            "version: 1e3",
            "version: -1",
            "version: +1",
            "version: .5",
            "version: nan",
            "version: Inf",
            "version: 99999999999999999999999",
            "stage: 123",
            "stage: null",
            "stage: ~",
            "stage: 'quoted # not a comment'",
            "stage: plain#hash",
            "stage: a # comment",
            "stage: \"a\\tb\"",
            "stage: \"a\" # c",
            "stage: \"a\"x",
            "stage: a: b",
            "stage: a:",
            "stage: [a]",
            "stage: &x a",
            "stage: !!str a",
            "stage: |\n  a",
            "stage: a\n  b",
            "stage:",
            "stage:  ",
            "traffic: 10",
            "traffic: 010",
            "traffic: -1",
            "traffic: 4294967296",
            "traffic: null",
            "traffic: \"10\"",
            "metrics: {auc: 0.9}",
            "metrics: {auc: 1}",
            "metrics: {auc: -0}",
            "metrics: {auc: -0.0}",
            "metrics: {auc: 007}",
            "metrics: {auc: 1e3}",
            "metrics: {auc: .inf}",
            "metrics: {auc: \"0.9\"}",
            "metrics: {}",
            "metrics: {auc: 0.9, auc: 0.8}",
            "metrics:\n  auc: 0.9\n  auc: 0.8",
            "metrics:\n  auc: 0.9\n   p99: 1",
            "metrics:\n    auc: 0.9\n    p99: 1",
            "metrics:\n  auc: 0.9\n p99: 1",
            "metrics:\n  1: 0.5",
            "metrics:\n  a b: 0.5",
            "evidence: {e: {passed: true}}",
            "evidence:\n  e: {passed: true}",
            "evidence:\n  e: {passed: True}",
            "evidence:\n  e: {passed: true, report: null}",
            "evidence:\n  e: {passed: true, report: ~}",
            "evidence:\n  e: {passed: true, report: s3://a/b}",
            "evidence:\n  e: {passed: true, report: a:b}",
            "evidence:\n  e: {passed: true, report: \"a,b\"}",
            "evidence:\n  e: {passed: true, report: 'a b'}",
            "evidence:\n  e: {passed: true,}",
            "evidence:\n  e: {passed: true} # c",
            "evidence:\n  e: {passed: true}# c",
            "evidence:\n  e:\n    passed: false\n    report: r",
            "evidence:\n  e: {passed: true, bogus: 1}",
            "lineage:\n  code: https://github.com/acme/fraud@9f1c2e7",
            "lineage:\n  code: 12",
            "lineage:\n  code: \"\"",
            "requires: {a: 7}",
            "requires: {a: \"7\"}",
            "requires: {a: 7.0}",
            "requires:\n  a: v2",
            "bogus: 1",
            "model: again",
            "---",
            "...",
            "%YAML 1.2",
            "created: 2026-11-20",
            "created: \"2026-11-20T10:00:00+02:00\"",
            "created: 2026-13-20T10:00:00Z",
        ];
        for c in cases {
            // Replace the base's line for the same key (if any) with the case.
            let key = c.split(':').next().unwrap();
            let kept: String = base
                .lines()
                .filter(|l| l.split(':').next() != Some(key))
                .map(|l| format!("{l}\n"))
                .collect();
            let text = format!("{kept}{c}\n");
            let took = agree(&text);
            if std::env::var("SHOW_FAST").is_ok() {
                println!("{took:5} {c:?}");
            }
            agree(&format!("{c}\n{kept}"));
            agree(&format!("{base}{c}\n"));
        }
    }

    #[test]
    fn model_manifests_agree_or_fall_back() {
        let cases = [
            "name: fraud-detector\ndescription: Card-not-present fraud scoring\nowners: [group:fraud-team, alice@acme.com]\n",
            "name: a\n",
            "name: a\nowners: []\n",
            "name: a\nowners: [\"x, y\", z]\n",
            "name: a\nowners: ['x', \"y\"] # c\n",
            "name: a\nowners: [x: y]\n",
            "name: a\nowners: [a:b, github:c]\n",
            "name: a\nowners: [a,]\n",
            "name: a\nowners: [[a]]\n",
            "name: a\nowners:\n  - x\n",
            "name: a\nowners: x\n",
            "name: a\ndescription: {a: b}\n",
            "name: 12\ndescription: null\n",
            "name: a\nbogus: 1\n",
        ];
        for c in cases {
            if let Some(m) = super::parse_model(c) {
                let s: Result<crate::manifest::ModelManifest, _> = serde_yaml::from_str(c);
                assert_eq!(s.as_ref().ok(), Some(&m), "fast path disagrees on:\n{c}");
            }
        }
        assert!(super::parse_model(cases[0]).is_some());
    }

    /// Mutations of the SPEC example: the fast path must never disagree with serde_yaml.
    #[test]
    fn random_mutations_never_disagree() {
        let pieces = [
            " ", ":", ": ", "#", " #", "'", "\"", "{", "}", ",", "-", "\n", "\n  ", "0", "1.5",
            "null", "~", "&a", "*a", "!", "|", ">", "x", "\\", "?", "[", "]", "%", "@", "e",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut fast_hits = 0;
        for _ in 0..20_000 {
            let mut text = SPEC.to_owned();
            for _ in 0..(1 + next() % 3) {
                let pos = (next() as usize) % text.len();
                if !text.is_char_boundary(pos) {
                    continue;
                }
                match next() % 3 {
                    0 => text.insert_str(pos, pieces[(next() as usize) % pieces.len()]),
                    1 => {
                        let end = (pos + 1 + (next() as usize) % 4).min(text.len());
                        if text.is_char_boundary(end) {
                            text.replace_range(pos..end, "");
                        }
                    }
                    _ => {
                        let end = (pos + 1).min(text.len());
                        if text.is_char_boundary(end) {
                            text.replace_range(pos..end, pieces[(next() as usize) % pieces.len()]);
                        }
                    }
                }
            }
            if agree(&text) {
                fast_hits += 1;
            }
        }
        // Most mutations land in comments or values and still take the fast path.
        assert!(fast_hits > 1_000, "fast path taken only {fast_hits} times");
    }
}
