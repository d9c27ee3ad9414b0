//! Pure parsers from manifest bytes to typed values. Errors keep serde_yaml's 1-based
//! line and column; the caller attaches the file path.

use super::{ModelManifest, Policy, VersionManifest};
use serde::de::DeserializeOwned;
use thiserror::Error;

/// docs/registry-format.md: a manifest is at most 64 KiB.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;

/// Why a manifest did not parse; the location is 1-based when known.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct ParseError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl ParseError {
    fn plain(message: impl Into<String>) -> Self {
        ParseError {
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// Attach a file path, producing a located diagnostic.
    pub fn into_diagnostic(self, file: impl Into<String>) -> crate::diag::Diagnostic {
        crate::diag::Diagnostic::new(file, self.message).at(self.line, self.column)
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ParseError> {
    parse_text(checked_text(bytes)?)
}

/// The size, encoding and emptiness checks every manifest goes through first.
fn checked_text(bytes: &[u8]) -> Result<&str, ParseError> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(ParseError::plain(format!(
            "manifest is {} bytes; the limit is {} (64 KiB)",
            bytes.len(),
            MAX_MANIFEST_BYTES
        )));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ParseError::plain(format!("not valid UTF-8: {e}")))?;
    if text.trim().is_empty() {
        return Err(ParseError::plain("empty manifest"));
    }
    Ok(text)
}

fn parse_text<T: DeserializeOwned>(text: &str) -> Result<T, ParseError> {
    serde_yaml::from_str(text).map_err(|e| {
        let loc = e.location();
        let mut message = e.to_string();
        if let Some(l) = &loc {
            let suffix = format!(" at line {} column {}", l.line(), l.column());
            if let Some(i) = message.find(&suffix) {
                message.replace_range(i..i + suffix.len(), "");
            }
        }
        ParseError {
            line: loc.as_ref().map(|l| l.line()),
            column: loc.as_ref().map(|l| l.column()),
            message,
        }
    })
}

pub fn parse_version(bytes: &[u8]) -> Result<VersionManifest, ParseError> {
    let text = checked_text(bytes)?;
    // The common plain block style has a fast path; it yields exactly what serde_yaml would.
    match super::fast::parse_version(text) {
        Some(m) => Ok(m),
        None => parse_text(text),
    }
}

pub fn parse_model(bytes: &[u8]) -> Result<ModelManifest, ParseError> {
    let text = checked_text(bytes)?;
    match super::fast::parse_model(text) {
        Some(m) => Ok(m),
        None => parse_text(text),
    }
}

pub fn parse_policy(bytes: &[u8]) -> Result<Policy, ParseError> {
    let p: Policy = parse(bytes)?;
    if p.version != 1 {
        return Err(ParseError {
            line: super::locate::find_key(std::str::from_utf8(bytes).unwrap_or(""), &["version"])
                .map(|x| x.0),
            column: Some(1),
            message: format!(
                "unsupported policy version {} (this baton reads version 1)",
                p.version
            ),
        });
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Gate;

    const POLICY: &str = r#"version: 1
stages:
  - name: development
  - name: staging
    gates:
      - metric: {name: auc, min: 0.90}
      - evidence: offline-eval
  - name: production
    canary: true
    gates:
      - approvals: {min: 2, from: [group:ml-leads, owners]}
      - metric: {name: auc, min: 0.92, max_regression: 0.005}
      - soak: {stage: staging, for: 24h}
      - window: {days: [mon, tue, wed, thu], from: "09:00", to: "16:00", tz: Europe/Berlin}
  - name: archived
    terminal: true
rollback:
  approvals: 0
groups:
  ml-leads: [alice@acme.com, bob@acme.com]
policy_owners: [group:registry-admins]
signers: .baton/allowed_signers
environments:
  production:
    stage: production
    target: {kind: local, path: production}
    health: {command: "test -s $BATON_ARTIFACT"}
"#;

    #[test]
    fn parses_spec_policy() {
        let p = parse_policy(POLICY.as_bytes()).unwrap();
        assert_eq!(p.stages.len(), 4);
        assert!(matches!(p.stages[1].gates[1], Gate::Evidence(ref e) if e == "offline-eval"));
        assert!(
            matches!(p.stages[2].gates[2], Gate::Soak(ref s) if s.duration.0.as_secs() == 86400)
        );
        assert!(p.stages[2].canary);
    }

    #[test]
    fn unknown_field_has_location() {
        let y = "model: a\nversion: 1\nbogus: 2\n";
        let e = parse_version(y.as_bytes()).unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("unknown field `bogus`"), "{}", e.message);
    }

    #[test]
    fn version_as_number() {
        let y = "model: a\nversion: 4\nstage: s\nartifact: {uri: a, sha256: b}\ncreated: 2026-11-20T10:00:00Z\n";
        assert_eq!(parse_version(y.as_bytes()).unwrap().version, "4");
    }
}
