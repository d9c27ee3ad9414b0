//! `soak`: on the base branch's first-parent history, the version sat in the soak stage at
//! least `for` (committer times; the current stint counts until now).

use super::{verdict, Facts};
use crate::check::change::Transition;
use crate::check::report::Verdict;
use crate::manifest::policy::SoakGate;
use chrono::{DateTime, Duration, Utc};

/// How long the version has sat in `stage`: (entered, left or `None` if still there).
pub fn stint(f: &Facts, stage: &str) -> Option<(DateTime<Utc>, Option<DateTime<Utc>>)> {
    // Newest first: the newest entry into `stage`, then the first later event leaving it.
    let idx = f
        .history
        .iter()
        .position(|e| e.to.as_deref() == Some(stage))?;
    let entered = f.history[idx].time;
    let left = f.history[..idx]
        .iter()
        .rev()
        .find(|e| e.from.as_deref() == Some(stage))
        .map(|e| e.time);
    Some((entered, left))
}

fn human(d: Duration) -> String {
    let secs = d.num_seconds().max(0) as u64;
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

/// The verdict, and when it would pass if the version stays in the soak stage.
pub fn judge(t: &Transition, f: &Facts, g: &SoakGate) -> (Verdict, Option<DateTime<Utc>>) {
    let need = Duration::from_std(g.duration.0).unwrap_or(Duration::MAX);
    let stage = &g.stage;
    let mut v = match stint(f, stage) {
        None => (
            verdict(
                "soak",
                false,
                format!(
                    "never sat in `{stage}` on the base branch; needs {}",
                    g.duration
                ),
            ),
            None,
        ),
        Some((entered, left)) => {
            let end = left.unwrap_or(f.now);
            let sat = end - entered;
            let since = entered.format("%Y-%m-%dT%H:%M:%SZ");
            if sat >= need {
                (
                    verdict(
                        "soak",
                        true,
                        format!(
                            "in `{stage}` since {since} ({}), needs {}",
                            human(sat),
                            g.duration
                        ),
                    ),
                    None,
                )
            } else if left.is_some() {
                (
                    verdict(
                        "soak",
                        false,
                        format!(
                            "sat in `{stage}` only {} (from {since}), needs {}",
                            human(sat),
                            g.duration
                        ),
                    ),
                    None,
                )
            } else {
                let at = entered + need;
                (
                    verdict(
                        "soak",
                        false,
                        format!(
                            "in `{stage}` since {since}, only {}; needs {} (passes at {})",
                            human(sat),
                            g.duration,
                            at.format("%Y-%m-%dT%H:%M:%SZ")
                        ),
                    ),
                    Some(at),
                )
            }
        }
    };
    v.0.file = Some(t.file.clone());
    v
}
