//! `soak`: on the base branch's first-parent history, the version sat in the soak stage at
//! least `for` (committer times; the current stint counts until now).

use super::{hinted, verdict, Facts};
use crate::check::change::Transition;
use crate::check::report::Verdict;
use crate::check::Rule;
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

/// A compact duration: `4d`, `1d 2h`, `5h 30m`, `45s`.
pub fn human(d: Duration) -> String {
    let secs = d.num_seconds().max(0);
    let (days, hours, mins, s) = (
        secs / 86400,
        secs % 86400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    let mut parts = Vec::new();
    for (n, unit) in [(days, "d"), (hours, "h"), (mins, "m"), (s, "s")] {
        if n > 0 {
            parts.push(format!("{n}{unit}"));
        }
    }
    if parts.is_empty() {
        "0s".into()
    } else {
        parts.join(" ")
    }
}

/// The verdict, and when it would pass if the version stays in the soak stage.
pub fn judge(t: &Transition, f: &Facts, g: &SoakGate) -> (Verdict, Option<DateTime<Utc>>) {
    let need = Duration::from_std(g.duration.0).unwrap_or(Duration::MAX);
    let needs = human(need);
    let stage = &g.stage;
    let mut v = match stint(f, stage) {
        None => (
            hinted(
                verdict(
                    Rule::Soak,
                    false,
                    format!("never sat in `{stage}` on the base branch; needs {}", needs),
                ),
                format!("promote it to `{stage}` first (`baton promote {} {} --to {stage}`) and let it run there {needs}", t.model, t.version),
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
                        Rule::Soak,
                        true,
                        format!(
                            "in `{stage}` since {since} ({}), needs {}",
                            human(sat),
                            needs
                        ),
                    ),
                    None,
                )
            } else if left.is_some() {
                (
                    hinted(
                        verdict(
                            Rule::Soak,
                            false,
                            format!(
                                "sat in `{stage}` only {} (from {since}), needs {}",
                                human(sat),
                                needs
                            ),
                        ),
                        format!("it left `{stage}` too early: it must sit there again for {needs} (`baton promote {} {} --to {stage}`)", t.model, t.version),
                    ),
                    None,
                )
            } else {
                let at = entered + need;
                let at_s = at.format("%Y-%m-%dT%H:%M:%SZ");
                (
                    hinted(
                        verdict(
                            Rule::Soak,
                            false,
                            format!(
                                "in `{stage}` since {since}, only {}; needs {} (passes at {at_s})",
                                human(sat),
                                needs,
                            ),
                        ),
                        format!("nothing to change, only time: it passes at {at_s} (check again then; once merged, `baton serve` goes ahead by itself)"),
                    ),
                    Some(at),
                )
            }
        }
    };
    if !f.daemon_clock {
        // Commit dates are set by whoever pushes; the daemon judges soak by its own record.
        v.0.reason.push_str(
            " (from commit dates; baton serve measures from when it accepted the change)",
        );
    }
    v.0.file = Some(t.path.clone());
    v
}
