//! Pure decisions of verification: which versions a switch brought in (to verify), and what
//! runs instead of a failing version (containment).

use super::Role;
use crate::daemon::release::Release;

/// A version a deploy brought in: (version, sha256, role, baseline version to compare with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub version: String,
    pub sha256: String,
    pub role: Role,
    pub baseline: Option<String>,
}

/// The versions of `release` that `previous` did not run (same label and digest), each with
/// its role: a canary is compared with the release's primary, a new primary with the
/// previous primary.
pub fn arrivals(release: &Release, previous: Option<&Release>) -> Vec<Arrival> {
    let ran = |v: &str, sha: &str| {
        previous.is_some_and(|p| p.versions.iter().any(|x| x.version == v && x.sha256 == sha))
    };
    let primary = release.primary().version.clone();
    release
        .versions
        .iter()
        .filter(|v| !ran(&v.version, &v.sha256))
        .map(|v| {
            let (role, baseline) = if v.version == primary {
                let prev = previous
                    .map(|p| p.primary().version.clone())
                    .filter(|p| *p != v.version);
                (Role::Primary, prev)
            } else {
                (Role::Canary, Some(primary.clone()))
            };
            Arrival {
                version: v.version.clone(),
                sha256: v.sha256.clone(),
                role,
                baseline,
            }
        })
        .collect()
}

/// What to run instead of `release` with `version` failing: without a canary, its share goes
/// to the primary; a failing primary is replaced by `previous`. `None`: nothing to run
/// (a failing primary with no previous release: undeploy).
pub fn contain(release: &Release, version: &str, previous: Option<&Release>) -> Option<Release> {
    let failing = release.versions.iter().find(|v| v.version == version)?;
    if failing.primary {
        return previous.cloned();
    }
    let mut out = release.clone();
    out.versions.retain(|v| v.version != version);
    let rest: u32 = out
        .versions
        .iter()
        .filter(|v| !v.primary)
        .map(|v| v.traffic)
        .sum();
    for v in out.versions.iter_mut().filter(|v| v.primary) {
        v.traffic = 100u32.saturating_sub(rest);
    }
    Some(out)
}

/// True when `release` runs `version` built from `sha256`.
pub fn runs(release: &Release, version: &str, sha256: &str) -> bool {
    release
        .versions
        .iter()
        .any(|v| v.version == version && v.sha256 == sha256)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::release::ReleaseVersion;

    fn rv(v: &str, traffic: u32, primary: bool) -> ReleaseVersion {
        ReleaseVersion {
            version: v.into(),
            sha256: format!("{v:0>64}"),
            uri: format!("a/{v}"),
            size: None,
            format: None,
            files: vec![],
            traffic,
            primary,
            requires: Default::default(),
            metrics: Default::default(),
        }
    }

    fn rel(vs: Vec<ReleaseVersion>) -> Release {
        Release {
            model: "m".into(),
            commit: "c".into(),
            root: String::new(),
            versions: vs,
        }
    }

    #[test]
    fn a_new_canary_and_a_new_primary_are_arrivals() {
        let before = rel(vec![rv("1", 100, true)]);
        let canary = rel(vec![rv("1", 90, true), rv("2", 10, false)]);
        let a = arrivals(&canary, Some(&before));
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].version.as_str(), a[0].role), ("2", Role::Canary));
        assert_eq!(a[0].baseline.as_deref(), Some("1"));
        let promoted = rel(vec![rv("2", 100, true)]);
        let a = arrivals(&promoted, Some(&canary));
        assert!(a.is_empty(), "2 ran already as a canary");
        let a = arrivals(&promoted, Some(&before));
        assert_eq!(
            (a[0].role, a[0].baseline.as_deref()),
            (Role::Primary, Some("1"))
        );
        let a = arrivals(&before, None);
        assert_eq!((a[0].role, a[0].baseline.as_deref()), (Role::Primary, None));
    }

    #[test]
    fn containment_gives_a_canary_share_to_the_primary_or_goes_back() {
        let before = rel(vec![rv("1", 100, true)]);
        let canary = rel(vec![
            rv("1", 70, true),
            rv("2", 10, false),
            rv("3", 20, false),
        ]);
        let c = contain(&canary, "3", Some(&before)).unwrap();
        assert_eq!(
            c.key().iter().map(|k| (k.0, k.2)).collect::<Vec<_>>(),
            vec![("1", 90), ("2", 10)]
        );
        let promoted = rel(vec![rv("2", 100, true)]);
        assert_eq!(contain(&promoted, "2", Some(&before)), Some(before.clone()));
        assert_eq!(contain(&promoted, "2", None), None);
        assert!(runs(&canary, "2", &format!("{:0>64}", "2")));
        assert!(!runs(&c, "3", &format!("{:0>64}", "3")));
    }
}
