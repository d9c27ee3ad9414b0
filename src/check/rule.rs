//! The rules of docs/gates.md as one enum, in report order: verdicts carry a `Rule`, and
//! only renderings and status turn it into its name (`stage-order`, `policy-change`, ...).

use serde::Serialize;

/// One rule of the gates engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    Schema,
    StageOrder,
    Immutable,
    Exclusive,
    Requires,
    Artifact,
    Metric,
    Evidence,
    Verification,
    Soak,
    Window,
    Approvals,
    Rollback,
    Delete,
    PolicyChange,
}

impl Rule {
    /// Every rule, in report order (the columns of the Markdown table).
    pub const ALL: [Rule; 15] = [
        Rule::Schema,
        Rule::StageOrder,
        Rule::Immutable,
        Rule::Exclusive,
        Rule::Requires,
        Rule::Artifact,
        Rule::Metric,
        Rule::Evidence,
        Rule::Verification,
        Rule::Soak,
        Rule::Window,
        Rule::Approvals,
        Rule::Rollback,
        Rule::Delete,
        Rule::PolicyChange,
    ];

    /// The rule's name as documented and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Schema => "schema",
            Rule::StageOrder => "stage-order",
            Rule::Immutable => "immutable",
            Rule::Exclusive => "exclusive",
            Rule::Requires => "requires",
            Rule::Artifact => "artifact",
            Rule::Metric => "metric",
            Rule::Evidence => "evidence",
            Rule::Verification => "verification",
            Rule::Soak => "soak",
            Rule::Window => "window",
            Rule::Approvals => "approvals",
            Rule::Rollback => "rollback",
            Rule::Delete => "delete",
            Rule::PolicyChange => "policy-change",
        }
    }

    /// Rules that time alone fixes (a window opening, a soak ending).
    pub fn is_time(self) -> bool {
        matches!(self, Rule::Soak | Rule::Window)
    }
}

impl std::fmt::Display for Rule {
    /// Padding and alignment apply (`{:<13}` in the text rendering).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_serialize_as_documented() {
        for r in Rule::ALL {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
        }
        assert_eq!(format!("{:<13}|", Rule::Soak), "soak         |");
    }
}
