//! `models/<model>/model.yaml`: a model's description and owners (docs/registry-format.md).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelManifest {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Approver references: `group:<name>`, principals (e-mail), `github:<login>`.
    #[serde(default)]
    pub owners: Vec<String>,
}
