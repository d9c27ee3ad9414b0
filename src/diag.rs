//! Located diagnostics: every problem baton reports names a file (repository-relative),
//! and where it can, the line and column. Shared by validation, gates and the daemon.

use serde::Serialize;
use std::fmt;

/// One located problem in the registry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    /// Path of the file relative to the repository root.
    pub file: String,
    /// 1-based line, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based column, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// Human-readable description.
    pub message: String,
}

impl Diagnostic {
    pub fn new(file: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.into(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    pub fn at(mut self, line: Option<usize>, column: Option<usize>) -> Self {
        self.line = line;
        self.column = column;
        self
    }

    /// Locate the diagnostic at a (possibly nested) key of a YAML document, if found.
    pub fn at_key(self, text: &str, key_path: &[&str]) -> Self {
        match crate::manifest::locate::find_key(text, key_path) {
            Some((l, c)) => self.at(Some(l), Some(c)),
            None => self,
        }
    }

    /// `file:line:column` (omitting what is unknown).
    pub fn location(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{}:{}", self.file, l, c),
            (Some(l), None) => format!("{}:{}", self.file, l),
            _ => self.file.clone(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location(), self.message)
    }
}
