//! The `# yaml-language-server: $schema=…` first line that lets editors validate manifests:
//! where a registry keeps its schemas (read from `baton.yaml`), and the line for each file.
//!
//! A registry names its schema folder once, in `baton.yaml`'s first line; `baton init` and
//! `baton register` write the model and version files' lines from it, so every manifest points
//! at the same folder whatever its depth (docs/registry-format.md#editor-validation).

use super::schema::FileKind;

/// What every modeline starts with.
pub const PREFIX: &str = "# yaml-language-server: $schema=";

/// The folder `baton init` writes the schemas into, relative to the registry root.
pub const INIT_SCHEMA_DIR: &str = ".baton/schema";

/// A registry's schema folder: relative to the registry root, or an absolute URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaHome(String);

impl SchemaHome {
    /// `dir` relative to the registry root (`.baton/schema`, `../docs/schema`) or a URL.
    pub fn new(dir: &str) -> Self {
        SchemaHome(dir.trim_end_matches('/').to_owned())
    }

    /// The folder `baton.yaml`'s first line points at, when that line is a modeline naming
    /// `…/baton.schema.json`; `None` otherwise (nothing is guessed).
    pub fn from_policy(policy: &[u8]) -> Option<Self> {
        let first = policy.split(|b| *b == b'\n').next()?;
        let first = std::str::from_utf8(first).ok()?.trim_end();
        let target = first.strip_prefix(PREFIX)?.trim();
        let dir = target.strip_suffix(FileKind::Policy.file_name())?;
        let dir = dir.strip_suffix('/').unwrap_or(dir);
        Some(SchemaHome::new(if dir.is_empty() { "." } else { dir }))
    }

    /// The schema's address as seen from a file of `kind` (a version manifest sits three
    /// folders below the registry root, `model.yaml` two).
    pub fn target(&self, kind: FileKind) -> String {
        let file = kind.file_name();
        if self.0.contains("://") {
            return format!("{}/{file}", self.0);
        }
        let depth = match kind {
            FileKind::Policy => 0,
            FileKind::Model => 2,
            FileKind::Version => 3,
        };
        let up = "../".repeat(depth);
        match self.0.as_str() {
            "." => format!("{up}{file}"),
            dir if depth == 0 => format!("{dir}/{file}"),
            dir => format!("{up}{dir}/{file}"),
        }
    }

    /// The first line of a file of `kind`, newline included.
    pub fn line(&self, kind: FileKind) -> String {
        format!("{PREFIX}{}\n", self.target(kind))
    }
}

/// `text` with the modeline of `kind` as its first line (an existing modeline is replaced).
pub fn with_modeline(home: &SchemaHome, kind: FileKind, text: &str) -> String {
    let rest = match text.strip_prefix(PREFIX) {
        Some(r) => r.split_once('\n').map_or("", |(_, rest)| rest),
        None => text,
    };
    format!("{}{rest}", home.line(kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_climb_to_the_registry_root() {
        let h = SchemaHome::new("../docs/schema/");
        assert_eq!(
            h.line(FileKind::Policy),
            "# yaml-language-server: $schema=../docs/schema/baton.schema.json\n"
        );
        assert_eq!(
            h.target(FileKind::Model),
            "../../../docs/schema/model.schema.json"
        );
        assert_eq!(
            h.target(FileKind::Version),
            "../../../../docs/schema/version.schema.json"
        );
        let init = SchemaHome::new(INIT_SCHEMA_DIR);
        assert_eq!(
            init.target(FileKind::Version),
            "../../../.baton/schema/version.schema.json"
        );
        let url = SchemaHome::new("https://example.com/baton/schema");
        assert_eq!(
            url.target(FileKind::Version),
            "https://example.com/baton/schema/version.schema.json"
        );
        assert_eq!(
            SchemaHome::new(".").target(FileKind::Model),
            "../../model.schema.json"
        );
    }

    #[test]
    fn the_home_is_read_back_from_the_policy_line() {
        for dir in ["../docs/schema", ".baton/schema", "https://h/s", "."] {
            let h = SchemaHome::new(dir);
            let policy = format!("{}version: 1\n", h.line(FileKind::Policy));
            assert_eq!(SchemaHome::from_policy(policy.as_bytes()), Some(h), "{dir}");
        }
        assert_eq!(SchemaHome::from_policy(b"version: 1\n"), None);
        assert_eq!(
            SchemaHome::from_policy(b"# yaml-language-server: $schema=elsewhere.json\n"),
            None
        );
        assert_eq!(
            SchemaHome::from_policy(
                b"# a comment\n# yaml-language-server: $schema=s/baton.schema.json\n"
            ),
            None
        );
    }

    #[test]
    fn a_modeline_is_added_once() {
        let h = SchemaHome::new(".baton/schema");
        let once = with_modeline(&h, FileKind::Model, "name: a\n");
        assert_eq!(
            once,
            "# yaml-language-server: $schema=../../.baton/schema/model.schema.json\nname: a\n"
        );
        assert_eq!(with_modeline(&h, FileKind::Model, &once), once);
    }
}
