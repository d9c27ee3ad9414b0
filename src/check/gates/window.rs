//! `window`: the current time (in the gate's IANA time zone) is on an allowed day and within
//! `from`..`to`; the state says when a closed window next opens and when an open one closes.

use super::{hinted, verdict};
use crate::check::report::Verdict;
use crate::check::Rule;
use crate::manifest::policy::WindowGate;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::Serialize;

/// Whether a window is open at an instant, and its next edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WindowState {
    pub open: bool,
    /// When closed: the next instant it opens (within 8 days; `None` if never).
    pub opens_at: Option<DateTime<Utc>>,
    /// When open: the next instant it closes (`None` if it never closes).
    pub closes_at: Option<DateTime<Utc>>,
}

/// Is the window open at `at`? `from` is inclusive, `to` exclusive, both local to the gate's
/// zone. A window whose `to` is not after its `from` runs past midnight and belongs to the day
/// it starts (`days: [fri], 22:00-02:00` is open Friday 23:00 and Saturday 01:00, not Friday
/// 01:00); `from == to` is a whole day starting at `from`. This is the one evaluator: `check`
/// and the daemon both use it (docs/gates.md, `window`).
pub fn is_open(w: &WindowGate, at: DateTime<Utc>) -> bool {
    let local = at.with_timezone(&w.tz.0);
    let day_ok = |d: chrono::Weekday| w.days.is_empty() || w.days.iter().any(|x| x.0 == d);
    let t = local.time();
    let today = local.weekday();
    match (w.from, w.to) {
        (Some(f), Some(to)) if f.0 < to.0 => day_ok(today) && t >= f.0 && t < to.0,
        (Some(f), Some(to)) => (day_ok(today) && t >= f.0) || (day_ok(today.pred()) && t < to.0),
        (Some(f), None) => day_ok(today) && t >= f.0,
        (None, Some(to)) => day_ok(today) && t < to.0,
        (None, None) => day_ok(today),
    }
}

/// For several window gates (all must be open): `None` when all are open now, else the
/// latest next opening among the closed ones (`now` + 8 days when one never opens). A first
/// estimate of when a waiting change may go ahead; it is judged again then.
pub fn wait_until(gates: &[&WindowGate], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    gates
        .iter()
        .map(|g| evaluate(g, now))
        .filter(|s| !s.open)
        .map(|s| s.opens_at.unwrap_or(now + Duration::days(8)))
        .max()
}

/// Local wall-clock `date` at `time` in the window's zone, as UTC (skipping DST gaps).
fn instant(w: &WindowGate, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    let tz = w.tz.0;
    let naive = date.and_time(time);
    tz.from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(naive + Duration::hours(1)))
                .earliest()
        })
        .map(|d| d.with_timezone(&Utc))
}

/// Candidate edges after `now`: each local midnight and each `from` / `to` for 8 days.
fn edges(w: &WindowGate, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let today = now.with_timezone(&w.tz.0).date_naive();
    let mut out = Vec::new();
    for d in 0..=8 {
        let date = today + Duration::days(d);
        let mut times = vec![NaiveTime::MIN];
        times.extend(w.from.map(|f| f.0));
        times.extend(w.to.map(|t| t.0));
        for t in times {
            if let Some(i) = instant(w, date, t) {
                if i > now {
                    out.push(i);
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The window's state at `now`.
pub fn evaluate(w: &WindowGate, now: DateTime<Utc>) -> WindowState {
    let open = is_open(w, now);
    let next = edges(w, now).into_iter().find(|e| is_open(w, *e) != open);
    WindowState {
        open,
        opens_at: if open { None } else { next },
        closes_at: if open { next } else { None },
    }
}

fn describe(w: &WindowGate) -> String {
    let mut s = String::new();
    if !w.days.is_empty() {
        let days: Vec<String> = w
            .days
            .iter()
            .map(|d| d.0.to_string().to_lowercase())
            .collect();
        s.push_str(&days.join(","));
        s.push(' ');
    }
    match (w.from, w.to) {
        (Some(f), Some(t)) => s.push_str(&format!("{f}-{t} ")),
        (Some(f), None) => s.push_str(&format!("from {f} ")),
        (None, Some(t)) => s.push_str(&format!("until {t} ")),
        (None, None) => {}
    }
    s.push_str(w.tz.0.name());
    s
}

pub fn judge(w: &WindowGate, state: &WindowState) -> Verdict {
    let fmt = |d: DateTime<Utc>| {
        d.with_timezone(&w.tz.0)
            .format("%a %Y-%m-%d %H:%M %Z")
            .to_string()
    };
    if state.open {
        verdict(
            Rule::Window,
            true,
            match state.closes_at {
                Some(c) => format!("window {} is open until {}", describe(w), fmt(c)),
                None => format!("window {} is open", describe(w)),
            },
        )
    } else {
        let v = verdict(
            Rule::Window,
            false,
            match state.opens_at {
                Some(o) => format!("window {} is closed; it opens {}", describe(w), fmt(o)),
                None => format!("window {} is closed and never opens", describe(w)),
            },
        );
        hinted(
            v,
            match state.opens_at {
                Some(o) => format!("nothing to change, only time: the change may go ahead from {} (check again then; once merged, `baton serve` deploys it by itself)", fmt(o)),
                None => "the window has no open day: change the gate's days or hours in baton.yaml (a policy change)".to_owned(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::policy::{ClockTime, Day, TimeZone as Tz};
    use chrono::Weekday;

    fn berlin() -> WindowGate {
        WindowGate {
            days: [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu]
                .into_iter()
                .map(Day)
                .collect(),
            from: Some(ClockTime(NaiveTime::from_hms_opt(9, 0, 0).unwrap())),
            to: Some(ClockTime(NaiveTime::from_hms_opt(16, 0, 0).unwrap())),
            tz: Tz(chrono_tz::Europe::Berlin),
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn open_inside_closed_outside() {
        let w = berlin();
        // Tuesday 2026-11-24 10:00 UTC = 11:00 Berlin (CET).
        let s = evaluate(&w, at("2026-11-24T10:00:00Z"));
        assert!(s.open);
        assert_eq!(s.closes_at, Some(at("2026-11-24T15:00:00Z")));
        // Thursday 15:30 UTC = 16:30 Berlin: closed; next Monday 09:00 Berlin.
        let s = evaluate(&w, at("2026-11-26T15:30:00Z"));
        assert!(!s.open);
        assert_eq!(s.opens_at, Some(at("2026-11-30T08:00:00Z")));
        // Summer time: Monday 2026-06-01 07:30 UTC = 09:30 CEST: open.
        assert!(evaluate(&w, at("2026-06-01T07:30:00Z")).open);
    }

    #[test]
    fn overnight_window() {
        let mut w = berlin();
        w.days.clear();
        w.from = Some(ClockTime(NaiveTime::from_hms_opt(22, 0, 0).unwrap()));
        w.to = Some(ClockTime(NaiveTime::from_hms_opt(2, 0, 0).unwrap()));
        w.tz = Tz(chrono_tz::UTC);
        assert!(is_open(&w, at("2026-11-24T23:00:00Z")));
        assert!(is_open(&w, at("2026-11-25T01:00:00Z")));
        assert!(!is_open(&w, at("2026-11-25T12:00:00Z")));
        assert_eq!(
            evaluate(&w, at("2026-11-25T12:00:00Z")).opens_at,
            Some(at("2026-11-25T22:00:00Z"))
        );
    }

    fn friday_night() -> WindowGate {
        let mut w = berlin();
        w.days = vec![Day(Weekday::Fri)];
        w.from = Some(ClockTime(NaiveTime::from_hms_opt(22, 0, 0).unwrap()));
        w.to = Some(ClockTime(NaiveTime::from_hms_opt(2, 0, 0).unwrap()));
        w.tz = Tz(chrono_tz::UTC);
        w
    }

    #[test]
    fn an_overnight_window_with_days_belongs_to_the_day_it_starts() {
        let w = friday_night();
        // 2026-11-27 is a Friday.
        assert!(is_open(&w, at("2026-11-27T23:00:00Z")), "Friday 23:00");
        assert!(is_open(&w, at("2026-11-28T01:00:00Z")), "Saturday 01:00");
        assert!(!is_open(&w, at("2026-11-27T01:00:00Z")), "Friday 01:00");
        assert!(!is_open(&w, at("2026-11-28T23:00:00Z")), "Saturday 23:00");
        // Saturday 03:00: closed until next Friday 22:00.
        let s = evaluate(&w, at("2026-11-28T03:00:00Z"));
        assert_eq!(s.opens_at, Some(at("2026-12-04T22:00:00Z")));
        // Friday 23:00: open until Saturday 02:00.
        let s = evaluate(&w, at("2026-11-27T23:00:00Z"));
        assert_eq!(s.closes_at, Some(at("2026-11-28T02:00:00Z")));
    }

    #[test]
    fn from_equal_to_is_a_whole_day_from_from() {
        let mut w = friday_night();
        w.to = w.from;
        assert!(is_open(&w, at("2026-11-27T22:00:00Z")));
        assert!(is_open(&w, at("2026-11-28T21:59:00Z")));
        assert!(!is_open(&w, at("2026-11-28T22:00:00Z")));
        assert!(!is_open(&w, at("2026-11-27T21:00:00Z")));
        let s = evaluate(&w, at("2026-11-27T21:00:00Z"));
        assert_eq!(s.opens_at, Some(at("2026-11-27T22:00:00Z")));
    }

    #[test]
    fn wait_until_is_the_latest_opening_of_the_closed_gates() {
        let a = berlin();
        let b = friday_night();
        // Thursday 2026-11-26 15:30 UTC: berlin closed until Mon 08:00 UTC; friday night
        // closed until Fri 22:00 UTC.
        let now = at("2026-11-26T15:30:00Z");
        assert_eq!(wait_until(&[&a, &b], now), Some(at("2026-11-30T08:00:00Z")));
        assert_eq!(wait_until(&[&a], at("2026-11-24T10:00:00Z")), None);
    }
}
