//! Whole-registry invariants for `baton validate`: known stages, exclusive and canary stages,
//! `requires`, environments, group references, signers, digests and artifact paths.

use super::{Registry, VersionEntry};
use crate::diag::Diagnostic;
use crate::manifest::{Gate, Policy, VersionManifest};
use std::collections::{BTreeMap, BTreeSet};

/// What the invariants need to know about files in the registry's tree, kept behind a
/// trait so the checks stay pure (git implements it in [`crate::registry::files`]).
pub trait RegistryFiles {
    /// Size in bytes of the regular file at the repository-relative `path`, if it exists.
    fn file_size(&self, path: &str) -> Option<u64>;
    /// Lower-case hex sha256 of the regular file at the repository-relative `path`.
    fn file_sha256(&self, path: &str) -> Option<String>;
    /// The text of a manifest blob, to locate keys in diagnostics.
    fn text(&self, blob: git2::Oid) -> Option<String>;
}

/// Every problem in the registry: load diagnostics plus invariant violations, sorted.
pub fn validate(reg: &Registry, files: &dyn RegistryFiles) -> Vec<Diagnostic> {
    let mut out = reg.load_diagnostics();
    if let Some(policy) = &reg.policy {
        let ptext = reg
            .policy_blob
            .and_then(|b| files.text(b))
            .unwrap_or_default();
        check_policy(reg, policy, &ptext, files, &mut out);
        check_notifications(reg, policy, &ptext, &mut out);
        check_verify(reg, policy, &ptext, &mut out);
        check_models(reg, policy, files, &mut out);
        check_kserve_releases(reg, policy, files, &mut out);
    }
    out.sort();
    out.dedup();
    out
}

/// `notifications:` routes: known event kinds, known environments, one valid sink each.
fn check_notifications(reg: &Registry, p: &Policy, text: &str, out: &mut Vec<Diagnostic>) {
    let file = reg.policy_path();
    for (i, r) in p.notifications.iter().enumerate() {
        let d = |msg: String| {
            Diagnostic::new(&file, format!("notifications[{i}]: {msg}"))
                .at_key(text, &["notifications"])
        };
        if r.on.is_empty() {
            out.push(d("`on` lists no event kinds".into()));
        }
        for k in &r.on {
            if k != "*" && crate::daemon::events::EventKind::parse(k).is_none() {
                out.push(d(format!(
                    "unknown event kind `{k}` (see docs/daemon.md, events; `*` for all)"
                )));
            }
        }
        for e in &r.environments {
            if !p.environments.contains_key(e) {
                out.push(d(format!("unknown environment `{e}`")));
            }
        }
        if let Err(why) = r.sink() {
            out.push(d(why));
        }
    }
}

/// Each stage's `verify:` block (docs/verification.md), located at the stage's item.
fn check_verify(reg: &Registry, p: &Policy, text: &str, out: &mut Vec<Diagnostic>) {
    let file = reg.policy_path();
    for s in &p.stages {
        let Some(v) = &s.verify else { continue };
        let at = |msg: String| {
            let diag = Diagnostic::new(&file, format!("stage `{}`: verify: {msg}", s.name));
            match crate::manifest::locate::find_list_item(text, "stages", "name", &s.name) {
                Some((l, c)) => diag.at(Some(l), Some(c)),
                None => diag.at_key(text, &["stages"]),
            }
        };
        for m in verify_problems(s.terminal, p.is_deployed(&s.name), v) {
            out.push(at(m));
        }
    }
}

/// What is wrong with a `verify:` block (pure; one sentence each).
pub fn verify_problems(
    terminal: bool,
    deployed: bool,
    v: &crate::manifest::verify::VerifySpec,
) -> Vec<String> {
    use crate::manifest::verify::{unknown_placeholders, Provider};
    let mut out = Vec::new();
    if terminal {
        out.push("a terminal stage holds no deployment to verify".into());
    } else if !deployed {
        out.push("no environment deploys this stage, so nothing would be verified".into());
    }
    match v.provider.kind() {
        Err(why) => out.push(why),
        Ok(Provider::Prometheus(p)) => {
            let a = p.address.trim();
            if !(a.starts_with("http://") || a.starts_with("https://")) || a.len() < 10 {
                out.push(format!(
                    "provider.prometheus.address `{}` is not an http(s) URL",
                    p.address
                ));
            }
        }
        Ok(Provider::Command(c)) => {
            if c.command.trim().is_empty() {
                out.push("provider.command.command is empty".into());
            }
        }
    }
    if v.interval().is_zero() {
        out.push("`interval` must be longer than 0s".into());
    }
    if v.count == 0 {
        out.push("`count` must be at least 1".into());
    }
    if v.consecutive_error_limit == Some(0) {
        out.push("`consecutive_error_limit` must be at least 1".into());
    }
    if v.metrics.is_empty() {
        out.push("`metrics` is empty: at least one metric is needed".into());
    }
    let mut names = BTreeSet::new();
    for m in &v.metrics {
        if m.name.trim().is_empty() {
            out.push("a metric has an empty `name`".into());
        } else if !names.insert(m.name.as_str()) {
            out.push(format!("metric `{}` is listed twice", m.name));
        }
        if m.query.trim().is_empty() {
            out.push(format!("metric `{}` has an empty `query`", m.name));
        }
        if !m.has_bound() {
            out.push(format!(
                "metric `{}` sets none of max, min, max_increase_vs_primary",
                m.name
            ));
        }
        for (field, x) in [
            ("max", m.max),
            ("min", m.min),
            ("max_increase_vs_primary", m.max_increase_vs_primary),
        ] {
            if x.is_some_and(|x| !x.is_finite()) {
                out.push(format!(
                    "metric `{}`: `{field}` must be a finite number",
                    m.name
                ));
            }
        }
        if m.max_increase_vs_primary.is_some_and(|x| x < 0.0) {
            out.push(format!(
                "metric `{}`: max_increase_vs_primary must be >= 0",
                m.name
            ));
        }
        if let (Some(lo), Some(hi)) = (m.min, m.max) {
            if lo > hi {
                out.push(format!("metric `{}`: min {lo} is above max {hi}", m.name));
            }
        }
        for u in unknown_placeholders(&m.query) {
            out.push(format!(
                "metric `{}`: unknown placeholder `{{{{{u}}}}}` (use {{{{model}}}}, {{{{version}}}}, {{{{environment}}}})",
                m.name
            ));
        }
    }
    out
}

fn refs_problem(policy: &Policy, r: &str, allow_owners: bool) -> Option<String> {
    if r == "owners" {
        return (!allow_owners)
            .then(|| "`owners` is only meaningful in an approvals gate".to_owned());
    }
    if let Some(g) = r.strip_prefix("group:") {
        return (!policy.groups.contains_key(g))
            .then(|| format!("unknown group `{g}` (not in `groups`)"));
    }
    if r.trim().is_empty() {
        return Some("empty approver reference".to_owned());
    }
    None
}

fn check_policy(
    reg: &Registry,
    p: &Policy,
    text: &str,
    files: &dyn RegistryFiles,
    out: &mut Vec<Diagnostic>,
) {
    let file = reg.policy_path();
    let d = |msg: String, key: &[&str]| Diagnostic::new(&file, msg).at_key(text, key);
    // A problem of one stage, located at its `- name:` item.
    let ds = |msg: String, stage: &str| {
        let diag = Diagnostic::new(&file, msg);
        match crate::manifest::locate::find_list_item(text, "stages", "name", stage) {
            Some((l, c)) => diag.at(Some(l), Some(c)),
            None => diag.at_key(text, &["stages"]),
        }
    };
    if p.stages.is_empty() {
        out.push(d(
            "`stages` is empty: at least one stage is needed".into(),
            &["stages"],
        ));
    }
    let mut seen = BTreeSet::new();
    for s in &p.stages {
        if !crate::names::is_model_name(&s.name) {
            out.push(ds(
                format!("stage name `{}` must be a lower-case DNS label", s.name),
                &s.name,
            ));
        }
        if !seen.insert(s.name.as_str()) {
            out.push(ds(format!("stage `{}` is listed twice", s.name), &s.name));
        }
        if s.terminal && !s.gates.is_empty() {
            out.push(ds(
                format!("terminal stage `{}` cannot have gates", s.name),
                &s.name,
            ));
        }
        if s.terminal && s.canary {
            out.push(ds(
                format!("stage `{}` cannot be both terminal and canary", s.name),
                &s.name,
            ));
        }
        for g in &s.gates {
            match g {
                Gate::Metric(m) => {
                    if m.min.is_none() && m.max.is_none() && m.max_regression.is_none() {
                        out.push(ds(
                            format!("metric gate `{}` in stage `{}` sets none of min, max, max_regression", m.name, s.name),
                            &s.name,
                        ));
                    }
                    if m.max_regression.is_some_and(|r| r < 0.0) {
                        out.push(ds(
                            format!("metric gate `{}`: max_regression must be >= 0", m.name),
                            &s.name,
                        ));
                    }
                }
                Gate::Soak(sk) => {
                    if p.stage(&sk.stage).is_none() {
                        out.push(ds(
                            format!(
                                "soak gate in stage `{}` names unknown stage `{}`",
                                s.name, sk.stage
                            ),
                            &s.name,
                        ));
                    }
                }
                Gate::Approvals(a) => {
                    if a.min > 0 && a.from.is_empty() {
                        out.push(ds(
                            format!("approvals gate in stage `{}` has an empty `from`", s.name),
                            &s.name,
                        ));
                    }
                    for r in &a.from {
                        if let Some(m) = refs_problem(p, r, true) {
                            out.push(ds(
                                format!("approvals gate in stage `{}`: {m}", s.name),
                                &s.name,
                            ));
                        }
                    }
                }
                Gate::Window(w) => {
                    if w.from.is_some() != w.to.is_some() {
                        out.push(ds(
                            format!(
                                "window gate in stage `{}` needs both `from` and `to`",
                                s.name
                            ),
                            &s.name,
                        ));
                    }
                }
                Gate::Evidence(e) => {
                    if e.trim().is_empty() {
                        out.push(ds(
                            format!("evidence gate in stage `{}` names no evidence", s.name),
                            &s.name,
                        ));
                    }
                }
            }
        }
    }
    for (g, members) in &p.groups {
        for m in members {
            if m == "owners" {
                out.push(d(
                    format!("group `{g}`: `owners` cannot be a group member"),
                    &["groups", g],
                ));
            } else if let Some(problem) = refs_problem(p, m, false) {
                out.push(d(format!("group `{g}`: {problem}"), &["groups", g]));
            }
        }
    }
    for r in &p.policy_owners {
        if let Some(problem) = refs_problem(p, r, false) {
            out.push(d(format!("policy_owners: {problem}"), &["policy_owners"]));
        }
    }
    if let Some(signers) = &p.signers {
        match safe_relative(signers) {
            Err(why) => out.push(d(format!("signers `{signers}`: {why}"), &["signers"])),
            Ok(rel) => {
                if files.file_size(&reg.path(&rel)).is_none() {
                    out.push(d(
                        format!(
                            "signers file `{}` does not exist at this revision",
                            reg.path(&rel)
                        ),
                        &["signers"],
                    ));
                }
            }
        }
    }
    let mut paths: BTreeMap<String, &str> = BTreeMap::new();
    let mut kserve_folders: Vec<(&str, String, String, String)> = Vec::new();
    for (name, env) in &p.environments {
        let key = ["environments", name.as_str()];
        if !crate::names::is_model_name(name) {
            out.push(d(
                format!("environment name `{name}` must be a lower-case DNS label"),
                &key,
            ));
        }
        match p.stage(&env.stage) {
            None => out.push(d(
                format!("environment `{name}` deploys unknown stage `{}`", env.stage),
                &key,
            )),
            Some(s) if s.terminal => out.push(d(
                format!(
                    "environment `{name}` deploys terminal stage `{}`, which holds no deployment",
                    env.stage
                ),
                &key,
            )),
            _ => {}
        }
        if let Some(h) = &env.health {
            if h.command.is_some() == h.http.is_some() {
                out.push(d(
                    format!(
                        "environment `{name}`: `health` needs exactly one of `command` and `http`"
                    ),
                    &["environments", name.as_str(), "health"],
                ));
            }
        }
        match env.target.config() {
            Err(problems) => {
                for p in problems {
                    out.push(d(
                        format!("environment `{name}`: target: {}", p.message),
                        &["environments", name.as_str(), "target", p.field],
                    ));
                }
            }
            Ok(crate::manifest::target::TargetConfig::Local(c)) => {
                if let Some(other) = paths.insert(c.path.clone(), name) {
                    out.push(d(
                        format!(
                            "environments `{other}` and `{name}` share the target path `{}`",
                            c.path
                        ),
                        &key,
                    ));
                }
            }
            Ok(crate::manifest::target::TargetConfig::Kserve(c)) => {
                if let Some(why) = crate::daemon::target::kserve::folder_problem(&c.path) {
                    out.push(d(
                        format!("environment `{name}`: target: {why}"),
                        &["environments", name.as_str(), "target", "path"],
                    ));
                }
                let state = std::path::Path::new("/state-dir");
                if let Err(why) =
                    crate::daemon::target::kserve::gitops::Remote::parse(&c.repo, state)
                {
                    out.push(d(
                        format!("environment `{name}`: target: {why}"),
                        &["environments", name.as_str(), "target", "repo"],
                    ));
                }
                kserve_folders.push((
                    name.as_str(),
                    c.repo.trim_end_matches('/').to_owned(),
                    c.branch,
                    c.path,
                ));
            }
            Ok(_) => {}
        }
    }
    // Two kserve environments writing one folder (or one inside the other) of the same
    // repository and branch would render each other's files away.
    for (i, (a, repo, branch, path)) in kserve_folders.iter().enumerate() {
        for (b, repo2, branch2, path2) in &kserve_folders[i + 1..] {
            let nested = path == path2
                || path2.starts_with(&format!("{path}/"))
                || path.starts_with(&format!("{path2}/"));
            if repo == repo2 && branch == branch2 && nested {
                out.push(d(
                    format!(
                        "environments `{a}` and `{b}` both write `{repo}` branch `{branch}` folders `{path}` and `{path2}`; each kserve environment needs its own folder"
                    ),
                    &["environments", b],
                ));
            }
        }
    }
    // Nested target folders would let a model folder of one environment collide with the
    // other environment's folder (`prod` and `prod/eu`, with a model named `eu`).
    for (outer, outer_env) in &paths {
        for (inner, inner_env) in &paths {
            if inner.starts_with(&format!("{outer}/")) {
                out.push(d(
                    format!(
                        "environment `{inner_env}`: target path `{inner}` is inside `{outer}`, the target path of environment `{outer_env}`"
                    ),
                    &["environments", inner_env],
                ));
            }
        }
    }
}

fn check_models(reg: &Registry, p: &Policy, files: &dyn RegistryFiles, out: &mut Vec<Diagnostic>) {
    for (name, model) in &reg.models {
        if let (Some(m), Some(blob)) = (model.model_manifest(), model.manifest_blob) {
            for o in &m.owners {
                if let Some(problem) = refs_problem(p, o, false) {
                    let text = files.text(blob).unwrap_or_default();
                    out.push(
                        Diagnostic::new(
                            reg.path(&format!("models/{name}/model.yaml")),
                            format!("owners: {problem}"),
                        )
                        .at_key(&text, &["owners"]),
                    );
                }
            }
        }
        for v in model.parsed() {
            check_version(reg, p, &v, files, out);
        }
        // Occupancy of each deployed stage.
        let mut by_stage: BTreeMap<&str, Vec<VersionEntry>> = BTreeMap::new();
        for v in model.parsed() {
            by_stage
                .entry(v.manifest.stage.as_str())
                .or_default()
                .push(v);
        }
        for (stage, vs) in by_stage {
            let manifests: Vec<&VersionManifest> = vs.iter().map(|v| v.manifest.as_ref()).collect();
            for problem in occupancy_problems(p, stage, &manifests) {
                let v = vs.last().expect("non-empty");
                let text = files.text(v.blob).unwrap_or_default();
                out.push(Diagnostic::new(&v.path, problem).at_key(&text, &["stage"]));
            }
        }
    }
}

fn check_version(
    reg: &Registry,
    p: &Policy,
    v: &VersionEntry,
    files: &dyn RegistryFiles,
    out: &mut Vec<Diagnostic>,
) {
    let m = &v.manifest;
    let mut problems: Vec<(String, Vec<&str>)> = Vec::new();
    if p.stage(&m.stage).is_none() {
        let known: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
        problems.push((
            format!("unknown stage `{}` (stages: {})", m.stage, known.join(", ")),
            vec!["stage"],
        ));
    }
    if !is_sha256(&m.artifact.sha256) {
        problems.push((
            "artifact.sha256 must be 64 lower-case hex characters".to_owned(),
            vec!["artifact", "sha256"],
        ));
    }
    match artifact_location(&m.artifact.uri) {
        Err(why) => problems.push((
            format!("artifact.uri `{}`: {why}", m.artifact.uri),
            vec!["artifact", "uri"],
        )),
        Ok(loc) if m.artifact.files.is_some() => {
            directory_problems(reg, &m.artifact, &loc, files, &mut problems)
        }
        Ok(ArtifactLocation::Registry(rel)) => match files.file_size(&reg.path(&rel)) {
            None => problems.push((
                format!(
                    "artifact `{}` does not exist in the registry at this revision",
                    reg.path(&rel)
                ),
                vec!["artifact", "uri"],
            )),
            Some(size) => {
                if let Some(want) = m.artifact.size {
                    if want != size {
                        problems.push((
                            format!(
                                "artifact.size is {want} but `{}` is {size} bytes",
                                reg.path(&rel)
                            ),
                            vec!["artifact", "size"],
                        ));
                    }
                }
                // The digest, too: found here rather than at deploy time (docs/cli.md).
                if is_sha256(&m.artifact.sha256) {
                    if let Some(got) = files.file_sha256(&reg.path(&rel)) {
                        if got != m.artifact.sha256 {
                            problems.push((
                                format!(
                                    "artifact.sha256 is {} but `{}` has sha256 {got}",
                                    m.artifact.sha256,
                                    reg.path(&rel)
                                ),
                                vec!["artifact", "sha256"],
                            ));
                        }
                    }
                }
            }
        },
        Ok(ArtifactLocation::External) => {
            if let Some(problem) = remote_size_problem(&m.artifact) {
                problems.push((problem, vec!["artifact"]));
            }
        }
    }
    let bad_metrics: Vec<&String> = m
        .metrics
        .iter()
        .filter(|(_, v)| !v.is_finite())
        .map(|(k, _)| k)
        .collect();
    for k in bad_metrics {
        problems.push((
            format!("metric `{k}` must be a finite number"),
            vec!["metrics", k.as_str()],
        ));
    }
    if let Some(t) = m.traffic {
        match p.stage(&m.stage) {
            Some(s) if !s.canary => problems.push((
                format!(
                    "traffic is only allowed in a canary stage; `{}` is not one",
                    m.stage
                ),
                vec!["traffic"],
            )),
            _ if !(1..=99).contains(&t) => problems.push((
                format!("traffic {t} must be 1..99 (percent)"),
                vec!["traffic"],
            )),
            _ => {}
        }
    }
    for (rm, rv) in &m.requires {
        match reg.model(rm) {
            None => problems.push((
                format!("requires unknown model `{rm}`"),
                vec!["requires", rm.as_str()],
            )),
            Some(model)
                if reg.version(rm, rv).is_none()
                    && !model.diagnostics.iter().any(|d| {
                        d.file == reg.path(&format!("models/{rm}/versions/{rv}.yaml"))
                    }) =>
            {
                // (A required manifest that exists but does not parse is reported once, there.)
                problems.push((
                    format!("requires `{rm}` version `{rv}`, which is not registered"),
                    vec!["requires", rm.as_str()],
                ))
            }
            _ => {}
        }
        if rm == &m.model {
            problems.push((
                "a version cannot require its own model".to_owned(),
                vec!["requires", rm.as_str()],
            ));
        }
    }
    if !problems.is_empty() {
        let text = files.text(v.blob).unwrap_or_default();
        for (msg, key) in problems {
            out.push(Diagnostic::new(&v.path, msg).at_key(&text, &key));
        }
    }
}

/// What each kserve environment runs (its stage, or the nearest later stage's primary) must
/// render (docs/targets.md, "kserve"): artifacts KServe can load (not in the registry, not
/// `file://`), a `format`, and a split its `mode` can express.
fn check_kserve_releases(
    reg: &Registry,
    p: &Policy,
    files: &dyn RegistryFiles,
    out: &mut Vec<Diagnostic>,
) {
    use crate::daemon::target::kserve::render::{problems, RenderError};
    use crate::manifest::target::TargetConfig;
    let kserve: Vec<(&String, crate::manifest::target::KserveConfig)> = p
        .environments
        .iter()
        .filter_map(|(name, env)| match env.target.config() {
            Ok(TargetConfig::Kserve(c)) => Some((name, c)),
            _ => None,
        })
        .collect();
    if kserve.is_empty() {
        return;
    }
    let desired = super::desired::desired_state(reg);
    let commit = reg.commit.to_string();
    for (env, cfg) in kserve {
        let Some(d) = desired.get(env) else { continue };
        let releases = crate::daemon::release::releases_of(d, &commit, &reg.root);
        for (model, release) in &releases {
            let versions = &d.models[model];
            for e in problems(release, cfg.mode) {
                let (version, key): (Option<&str>, &[&str]) = match &e {
                    RenderError::NotRemote { version, .. } => {
                        (Some(version.as_str()), &["artifact", "uri"])
                    }
                    RenderError::NoFormat { version, .. } => {
                        (Some(version.as_str()), &["artifact"])
                    }
                    RenderError::BadFormat { version, .. } => {
                        (Some(version.as_str()), &["artifact", "format"])
                    }
                    _ => (None, &["stage"]),
                };
                // A version's own problem goes to its manifest; a split's to the newest
                // version in it.
                let Some(v) = versions
                    .iter()
                    .find(|v| Some(v.version.as_str()) == version)
                    .or(versions.last())
                else {
                    continue;
                };
                let kept = v
                    .kept_from
                    .as_deref()
                    .map(|s| format!(", kept from stage `{s}`"))
                    .unwrap_or_default();
                let text = reg
                    .model(model)
                    .and_then(|m| m.versions.values().find(|x| x.path == v.path))
                    .and_then(|x| files.text(x.blob))
                    .unwrap_or_default();
                out.push(
                    Diagnostic::new(&v.path, format!("environment `{env}` (kserve{kept}): {e}"))
                        .at_key(&text, key),
                );
            }
        }
    }
}

/// A directory artifact (docs/registry-format.md#directory-artifacts): `uri` ends in `/`, the
/// listing is sound, `sha256` is its digest, `size` (when given) the sum; an in-registry folder
/// holds every listed file, a regular blob with the listed size and digest.
fn directory_problems(
    reg: &Registry,
    a: &crate::manifest::version::Artifact,
    loc: &ArtifactLocation,
    files: &dyn RegistryFiles,
    problems: &mut Vec<(String, Vec<&str>)>,
) {
    use crate::manifest::version::{listing_digest, listing_problems};
    let listed = a.files.as_deref().unwrap_or_default();
    if !a.uri.ends_with('/') {
        problems.push((
            format!(
                "artifact.uri `{}` names a directory artifact (it lists `files`), so it must end in `/`",
                a.uri
            ),
            vec!["artifact", "uri"],
        ));
    }
    let listing = listing_problems(listed);
    let sound = listing.is_empty();
    for p in listing {
        problems.push((format!("artifact.files: {p}"), vec!["artifact", "files"]));
    }
    let total: u64 = listed.iter().map(|f| f.size).sum();
    if let Some(want) = a.size.filter(|w| *w != total) {
        problems.push((
            format!("artifact.size is {want} but the listed files sum to {total} bytes"),
            vec!["artifact", "size"],
        ));
    }
    if !sound {
        return;
    }
    let digest = listing_digest(listed);
    if is_sha256(&a.sha256) && digest != a.sha256 {
        problems.push((
            format!(
                "artifact.sha256 is {} but the listing of artifact.files hashes to {digest}",
                a.sha256
            ),
            vec!["artifact", "files"],
        ));
    }
    let ArtifactLocation::Registry(rel) = loc else {
        return;
    };
    for f in listed {
        let path = reg.path(&format!("{rel}/{}", f.path));
        match files.file_size(&path) {
            None => problems.push((
                format!(
                    "artifact.files: `{path}` does not exist in the registry at this revision (or is not a regular file)"
                ),
                vec!["artifact", "files"],
            )),
            Some(size) if size != f.size => problems.push((
                format!(
                    "artifact.files: `{path}` is {size} bytes but the listing says {}",
                    f.size
                ),
                vec!["artifact", "files"],
            )),
            Some(_) => {
                if let Some(got) = files.file_sha256(&path).filter(|g| *g != f.sha256) {
                    problems.push((
                        format!(
                            "artifact.files: `{path}` has sha256 {got} but the listing says {}",
                            f.sha256
                        ),
                        vec!["artifact", "files"],
                    ));
                }
            }
        }
    }
}

/// Rules for the versions of one model sharing `stage` (docs/gates.md `exclusive`): a deployed
/// non-canary stage holds at most one; a canary stage splits traffic with exactly one
/// version taking the remainder. Stages no environment deploys hold any number.
pub fn occupancy_problems(p: &Policy, stage: &str, versions: &[&VersionManifest]) -> Vec<String> {
    let Some(s) = p.stage(stage) else {
        return Vec::new();
    };
    if !p.is_deployed(stage) || versions.is_empty() {
        return Vec::new();
    }
    let model = &versions[0].model;
    let labels = || {
        versions
            .iter()
            .map(|v| v.version.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = Vec::new();
    if !s.canary {
        if versions.len() > 1 {
            out.push(format!(
                "stage `{stage}` holds at most one version of each model; `{model}` has {} ({})",
                versions.len(),
                labels()
            ));
        }
        return out;
    }
    let without: Vec<&str> = versions
        .iter()
        .filter(|v| v.traffic.is_none())
        .map(|v| v.version.as_str())
        .collect();
    if without.len() != 1 {
        out.push(format!(
            "canary stage `{stage}`: exactly one version of `{model}` must carry no `traffic` (it takes the rest); found {} ({})",
            without.len(),
            if without.is_empty() { labels() } else { without.join(", ") }
        ));
    }
    let sum: u32 = versions.iter().filter_map(|v| v.traffic).sum();
    if sum >= 100 {
        out.push(format!(
            "canary stage `{stage}`: traffic of `{model}` versions sums to {sum}; it must be below 100"
        ));
    }
    out
}

/// The traffic split of one model's versions in a stage: (version, percent), the version
/// without `traffic` taking the remainder. Versions are in natural order.
pub fn traffic_split(versions: &[&VersionManifest]) -> Vec<(String, u32)> {
    let explicit: u32 = versions.iter().filter_map(|v| v.traffic).sum();
    versions
        .iter()
        .map(|v| {
            (
                v.version.clone(),
                v.traffic.unwrap_or(100u32.saturating_sub(explicit)),
            )
        })
        .collect()
}

pub fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// Where an artifact lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactLocation {
    /// A file in the registry folder (normalised relative path).
    Registry(String),
    /// `file://`, `https://`, `s3://`, `gs://`, `oci://`, `pvc://`: outside git.
    External,
}

/// Classify an artifact URI; relative paths must stay inside the registry folder.
pub fn artifact_location(uri: &str) -> Result<ArtifactLocation, String> {
    if let Some((scheme, rest)) = uri.split_once("://") {
        return match scheme {
            // oci:// and pvc:// only a kserve environment deploys (KServe loads them).
            "file" | "https" | "http" | "s3" | "gs" | "oci" | "pvc" if !rest.is_empty() => Ok(ArtifactLocation::External),
            "file" | "https" | "http" | "s3" | "gs" | "oci" | "pvc" => Err("empty location after the scheme".into()),
            other => Err(format!("unsupported scheme `{other}` (use a relative path, file://, https://, s3://, gs://, oci:// or pvc://)")),
        };
    }
    safe_relative(uri).map(ArtifactLocation::Registry)
}

/// A downloaded artifact (`s3://`, `gs://`, `https://`, `http://`) without `size`: the daemon
/// stops a download at its size, so a remote single-file artifact must give one (a directory
/// artifact's files each carry theirs). `file://` is read in place and needs none.
pub fn remote_size_problem(a: &crate::manifest::Artifact) -> Option<String> {
    let scheme = ["s3", "gs", "https", "http"]
        .into_iter()
        .find(|s| a.uri.starts_with(&format!("{s}://")))?;
    (a.size.is_none() && a.files.is_none()).then(|| {
        format!("artifact.size is required for a remote artifact: the daemon stops a {scheme}:// download at it (`baton register --artifact {scheme}://…` records it)")
    })
}

/// Normalise a relative path, refusing absolute paths and `..` components.
pub fn safe_relative(p: &str) -> Result<String, String> {
    if p.is_empty() {
        return Err("empty path".into());
    }
    if p.starts_with('/') || p.starts_with('\\') || p.contains('\\') {
        return Err("must be a relative path inside the registry folder".into());
    }
    let mut parts = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err("must not contain `..` (paths stay inside the registry folder)".into())
            }
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        return Err("empty path".into());
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod verify_tests {
    use super::verify_problems;
    use crate::manifest::verify::VerifySpec;

    fn spec(y: &str) -> VerifySpec {
        serde_yaml::from_str(y).unwrap()
    }

    const OK: &str = "provider: {prometheus: {address: http://127.0.0.1:9090}}\ninterval: 1m\ncount: 3\nmetrics:\n  - {name: err, query: 'x{model=\"{{model}}\"}', max: 0.01}\n";

    #[test]
    fn a_sound_block_has_no_problems() {
        assert!(verify_problems(false, true, &spec(OK)).is_empty());
    }

    #[test]
    fn nonsense_is_refused_with_a_reason_each() {
        let bad = spec(
            "provider: {command: {command: ' '}}\ninterval: 0s\ncount: 0\nconsecutive_error_limit: 0\nmetrics:\n  - {name: a, query: '{{modle}}'}\n  - {name: a, query: q, min: 2, max: 1}\n",
        );
        let p = verify_problems(false, false, &bad).join("\n");
        for want in [
            "no environment deploys",
            "command is empty",
            "`interval`",
            "`count` must be at least 1",
            "consecutive_error_limit",
            "metric `a` sets none of",
            "listed twice",
            "min 2 is above max 1",
            "unknown placeholder `{{modle}}`",
        ] {
            assert!(p.contains(want), "missing {want:?} in:\n{p}");
        }
        let none = spec("provider: {}\ninterval: 1m\ncount: 1\nmetrics: []\n");
        let p = verify_problems(true, true, &none).join("\n");
        assert!(p.contains("terminal"), "{p}");
        assert!(p.contains("names no provider"), "{p}");
        assert!(p.contains("`metrics` is empty"), "{p}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::version::{Artifact, ArtifactFile};

    fn artifact(uri: &str, size: Option<u64>) -> Artifact {
        Artifact {
            uri: uri.into(),
            sha256: "a".repeat(64),
            size,
            format: None,
            files: None,
        }
    }

    #[test]
    fn remote_single_files_need_a_size() {
        for uri in [
            "s3://b/k",
            "gs://b/k",
            "https://h/m.onnx",
            "http://h/m.onnx",
        ] {
            let p = remote_size_problem(&artifact(uri, None)).expect(uri);
            assert!(p.contains("artifact.size is required"), "{p}");
            assert!(
                remote_size_problem(&artifact(uri, Some(1))).is_none(),
                "{uri}"
            );
        }
        for uri in ["file:///m.onnx", "artifacts/m/1.bin"] {
            assert!(remote_size_problem(&artifact(uri, None)).is_none(), "{uri}");
        }
        // A directory artifact's files carry their sizes.
        let mut dir = artifact("s3://b/m/6/", None);
        dir.files = Some(vec![ArtifactFile {
            path: "MLmodel".into(),
            sha256: "b".repeat(64),
            size: 3,
        }]);
        assert!(remote_size_problem(&dir).is_none());
    }
}
