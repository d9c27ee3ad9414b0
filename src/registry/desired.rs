//! Desired state: for each environment, the versions of each model in its stage and their
//! traffic. Pure; shared by `baton status` and the controller's plan.

use super::invariants::traffic_split;
use super::Registry;
use crate::manifest::VersionManifest;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One version an environment should serve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredVersion {
    pub version: String,
    /// Percent of traffic (100 outside canary stages).
    pub traffic: u32,
    #[serde(skip)]
    pub manifest: Arc<VersionManifest>,
    /// Repository-relative path of the manifest.
    #[serde(skip)]
    pub path: String,
}

/// What one environment should run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvironmentDesired {
    pub stage: String,
    /// Model -> versions (one, or several in a canary stage), natural version order.
    pub models: BTreeMap<String, Vec<DesiredVersion>>,
}

/// Desired state of every environment in the registry's policy.
pub fn desired_state(reg: &Registry) -> BTreeMap<String, EnvironmentDesired> {
    let mut out = BTreeMap::new();
    let Some(policy) = &reg.policy else {
        return out;
    };
    for (env, spec) in &policy.environments {
        let mut models = BTreeMap::new();
        for (name, model) in &reg.models {
            let in_stage: Vec<_> = model
                .versions
                .values()
                .filter(|v| v.manifest.stage == spec.stage)
                .collect();
            if in_stage.is_empty() {
                continue;
            }
            let manifests: Vec<&VersionManifest> =
                in_stage.iter().map(|v| v.manifest.as_ref()).collect();
            let split = traffic_split(&manifests);
            let versions = in_stage
                .iter()
                .zip(split)
                .map(|(v, (label, traffic))| DesiredVersion {
                    version: label,
                    traffic,
                    manifest: v.manifest.clone(),
                    path: v.path.clone(),
                })
                .collect();
            models.insert(name.clone(), versions);
        }
        out.insert(
            env.clone(),
            EnvironmentDesired {
                stage: spec.stage.clone(),
                models,
            },
        );
    }
    out
}
