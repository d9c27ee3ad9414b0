//! Deploy windows (the `window` gate) as the daemon re-checks them before a switch: is now
//! inside, and if not, when does the next window open. Pure.

use crate::manifest::policy::WindowGate;
use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc};

fn bounds(g: &WindowGate) -> (NaiveTime, Option<NaiveTime>) {
    (
        g.from.map(|t| t.0).unwrap_or(NaiveTime::MIN),
        g.to.map(|t| t.0),
    )
}

fn day_ok(g: &WindowGate, d: chrono::Weekday) -> bool {
    g.days.is_empty() || g.days.iter().any(|x| x.0 == d)
}

/// True when `now` is inside the window (`from` inclusive, `to` exclusive; a window whose
/// `to` is before `from` runs past midnight and belongs to the day it starts).
pub fn is_open(g: &WindowGate, now: DateTime<Utc>) -> bool {
    let local = now.with_timezone(&g.tz.0);
    let t = local.time();
    let (from, to) = bounds(g);
    match to {
        None => day_ok(g, local.weekday()) && t >= from,
        Some(to) if to > from => day_ok(g, local.weekday()) && t >= from && t < to,
        Some(to) => {
            (day_ok(g, local.weekday()) && t >= from)
                || (day_ok(g, local.weekday().pred()) && t < to)
        }
    }
}

/// `None` when open now; else the next time it opens (within the coming 8 days).
pub fn next_open(g: &WindowGate, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if is_open(g, now) {
        return None;
    }
    let tz = g.tz.0;
    let today = now.with_timezone(&tz).date_naive();
    let (from, _) = bounds(g);
    for i in 0..9 {
        let d = today + Duration::days(i);
        if !day_ok(g, d.weekday()) {
            continue;
        }
        let Some(start) = tz.from_local_datetime(&d.and_time(from)).earliest() else {
            continue;
        };
        let start = start.with_timezone(&Utc);
        if start > now {
            return Some(start);
        }
    }
    None
}

/// For several window gates (all must be open): `None` when all are open, else the latest
/// next opening among the closed ones (a first estimate; re-checked at every resync).
pub fn wait_until(gates: &[&WindowGate], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    gates
        .iter()
        .filter(|g| !is_open(g, now))
        .map(|g| next_open(g, now).unwrap_or(now + Duration::days(8)))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(y: &str) -> WindowGate {
        serde_yaml::from_str(y).unwrap()
    }

    #[test]
    fn berlin_office_hours() {
        let g =
            gate("{days: [mon, tue, wed, thu], from: \"09:00\", to: \"16:00\", tz: Europe/Berlin}");
        // Fri 2026-11-27 12:00 UTC = 13:00 Berlin, a Friday: closed until Mon 08:00 UTC.
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
        assert!(!is_open(&g, now));
        assert_eq!(
            next_open(&g, now),
            Some(Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap())
        );
        let mon = Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0).unwrap();
        assert!(is_open(&g, mon));
        assert_eq!(wait_until(&[&g], mon), None);
        // After hours on Monday: opens Tuesday 09:00 Berlin.
        let late = Utc.with_ymd_and_hms(2026, 11, 30, 15, 30, 0).unwrap();
        assert_eq!(
            next_open(&g, late),
            Some(Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap())
        );
    }

    #[test]
    fn overnight_window() {
        let g = gate("{from: \"22:00\", to: \"02:00\"}");
        assert!(is_open(
            &g,
            Utc.with_ymd_and_hms(2026, 11, 27, 23, 0, 0).unwrap()
        ));
        assert!(is_open(
            &g,
            Utc.with_ymd_and_hms(2026, 11, 27, 1, 0, 0).unwrap()
        ));
        assert!(!is_open(
            &g,
            Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
        ));
    }
}
