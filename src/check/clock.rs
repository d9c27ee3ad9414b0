//! The daemon's clock for `soak`: when it accepted each change that put a version into a
//! stage. Commit dates are set by whoever pushes; entries after the trusted baseline use this.

use chrono::{DateTime, Utc};
use git2::{Oid, Repository};
use std::collections::BTreeMap;

/// Acceptance times of stage entries, keyed by (model, version, stage).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AcceptedClock {
    /// The commit the daemon trusted as its baseline: history up to it keeps commit dates.
    pub trusted: Option<Oid>,
    /// When the daemon accepted the change that moved `version` of `model` into `stage`.
    pub entered: BTreeMap<(String, String, String), DateTime<Utc>>,
}

impl AcceptedClock {
    /// The time to use for a history event of `commit` moving `model@version` into `stage`:
    /// its commit date when the commit is at or before the trusted baseline, else the
    /// daemon's acceptance time (or `now` when the daemon has not accepted it yet).
    pub fn entered_at(
        &self,
        repo: &Repository,
        commit: Oid,
        commit_time: DateTime<Utc>,
        key: (&str, &str, &str),
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        if let Some(t) = self.trusted {
            if t == commit || repo.graph_descendant_of(t, commit).unwrap_or(false) {
                return commit_time;
            }
        }
        let k = (key.0.to_owned(), key.1.to_owned(), key.2.to_owned());
        self.entered.get(&k).copied().unwrap_or(now)
    }
}
