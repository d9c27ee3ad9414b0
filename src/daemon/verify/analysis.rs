//! The analysis, pure: a metric's value against its bounds, and the measurements so far against
//! `count`, `failure_limit` and `consecutive_error_limit` (Argo Rollouts' meanings) → a verdict.

use crate::manifest::verify::{VerifyMetric, VerifySpec};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One metric's reading in one measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricReading {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The same query for the primary (baseline) version, for `max_increase_vs_primary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<f64>,
    /// Why there is no value (no data, provider unreachable...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Which bound the value broke.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// What one measurement came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Every metric within its bounds.
    Good,
    /// Some metric broke a bound.
    Failed,
    /// Some metric could not be read (and none failed): never counted as a failure.
    Error,
}

/// One measurement: every metric read at `at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub at: DateTime<Utc>,
    pub outcome: Outcome,
    pub metrics: Vec<MetricReading>,
}

impl Measurement {
    /// Readings in, outcome decided: failed when any metric failed, else error when any
    /// errored, else good.
    pub fn new(at: DateTime<Utc>, metrics: Vec<MetricReading>) -> Self {
        let outcome = if metrics.iter().any(|m| m.failure.is_some()) {
            Outcome::Failed
        } else if metrics.iter().any(|m| m.error.is_some()) || metrics.is_empty() {
            Outcome::Error
        } else {
            Outcome::Good
        };
        Measurement {
            at,
            outcome,
            metrics,
        }
    }

    /// One line for status, events and the evidence report: `error-rate=0.2 (max 0.01)`.
    pub fn summary(&self) -> String {
        self.metrics
            .iter()
            .map(|m| match (&m.value, &m.error, &m.failure) {
                (_, _, Some(f)) => format!("{}: {f}", m.name),
                (_, Some(e), None) => format!("{}: {e}", m.name),
                (Some(v), None, None) => format!("{}={v}", m.name),
                (None, None, None) => format!("{}: no value", m.name),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Where the analysis stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Running,
    /// `count` good measurements.
    Passed,
    /// More than `failure_limit` failed measurements.
    Failed,
    /// `consecutive_error_limit` errors in a row: hold, never roll back.
    Inconclusive,
}

/// Judge one value against `m`'s bounds; `Some(why)` when it breaks one. `primary` is the
/// same query for the baseline version; without one the relative bound is not judged.
pub fn judge_value(m: &VerifyMetric, value: f64, primary: Option<f64>) -> Option<String> {
    if let Some(max) = m.max {
        if value > max {
            return Some(format!("{value} is above max {max}"));
        }
    }
    if let Some(min) = m.min {
        if value < min {
            return Some(format!("{value} is below min {min}"));
        }
    }
    if let (Some(limit), Some(base)) = (m.max_increase_vs_primary, primary) {
        if let Some(why) = increase_problem(value, base, limit) {
            return Some(why);
        }
    }
    None
}

/// `value` against `base` with at most `limit` relative increase (0.10 = +10%). A zero (or
/// negative) baseline allows no increase at all.
fn increase_problem(value: f64, base: f64, limit: f64) -> Option<String> {
    if base <= 0.0 {
        return (value > base).then(|| {
            format!("{value} is above the primary's {base} (any increase over 0 breaks max_increase_vs_primary)")
        });
    }
    let rel = (value - base) / base;
    (rel > limit).then(|| {
        format!(
            "{value} is {:.1}% above the primary's {base} (max_increase_vs_primary {:.1}%)",
            rel * 100.0,
            limit * 100.0
        )
    })
}

/// A reading from a provider's answers for the version and (when asked) its primary.
pub fn reading(
    m: &VerifyMetric,
    value: Result<f64, String>,
    primary: Option<Result<f64, String>>,
) -> MetricReading {
    let mut r = MetricReading {
        name: m.name.clone(),
        value: None,
        primary: None,
        error: None,
        failure: None,
    };
    match value {
        Err(e) => r.error = Some(e),
        Ok(v) => {
            r.value = Some(v);
            let base = match primary {
                Some(Ok(p)) => Some(p),
                Some(Err(e)) => {
                    r.error = Some(format!("primary: {e}"));
                    None
                }
                None => None,
            };
            r.primary = base;
            // A failed absolute bound counts even when the primary could not be read.
            r.failure = judge_value(m, v, base);
            if r.failure.is_some() {
                r.error = None;
            }
        }
    }
    r
}

/// The verdict of `measurements` (oldest first) under `spec`.
pub fn verdict(spec: &VerifySpec, measurements: &[Measurement]) -> Verdict {
    let failed = measurements
        .iter()
        .filter(|m| m.outcome == Outcome::Failed)
        .count();
    if failed as u64 > u64::from(spec.failure_limit) {
        return Verdict::Failed;
    }
    let trailing_errors = measurements
        .iter()
        .rev()
        .take_while(|m| m.outcome == Outcome::Error)
        .count();
    if trailing_errors as u64 >= u64::from(spec.error_limit()) {
        return Verdict::Inconclusive;
    }
    let good = measurements
        .iter()
        .filter(|m| m.outcome == Outcome::Good)
        .count();
    if good as u64 >= u64::from(spec.count) {
        return Verdict::Passed;
    }
    Verdict::Running
}

/// The newest failed measurement, for containment and the evidence.
pub fn last_failure(measurements: &[Measurement]) -> Option<&Measurement> {
    measurements
        .iter()
        .rev()
        .find(|m| m.outcome == Outcome::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(count: u32, failure_limit: u32, errors: Option<u32>) -> VerifySpec {
        let mut s: VerifySpec = serde_yaml::from_str(
            "provider: {prometheus: {address: http://p:9090}}\ninterval: 1s\ncount: 1\nmetrics:\n  - {name: err, query: q, max: 0.01}\n",
        )
        .unwrap();
        s.count = count;
        s.failure_limit = failure_limit;
        s.consecutive_error_limit = errors;
        s
    }

    fn metric() -> VerifyMetric {
        VerifyMetric {
            name: "err".into(),
            query: "q".into(),
            max: Some(0.01),
            min: None,
            max_increase_vs_primary: None,
        }
    }

    fn m(o: Outcome) -> Measurement {
        let r = match o {
            Outcome::Good => reading(&metric(), Ok(0.0), None),
            Outcome::Failed => reading(&metric(), Ok(0.5), None),
            Outcome::Error => reading(&metric(), Err("no data".into()), None),
        };
        let x = Measurement::new(Utc::now(), vec![r]);
        assert_eq!(x.outcome, o);
        x
    }

    #[test]
    fn passes_after_count_good_measurements() {
        let s = spec(3, 0, None);
        let mut ms = vec![m(Outcome::Good), m(Outcome::Good)];
        assert_eq!(verdict(&s, &ms), Verdict::Running);
        ms.push(m(Outcome::Error));
        assert_eq!(verdict(&s, &ms), Verdict::Running);
        ms.push(m(Outcome::Good));
        assert_eq!(verdict(&s, &ms), Verdict::Passed);
    }

    #[test]
    fn fails_past_the_failure_limit() {
        let s = spec(5, 1, None);
        let mut ms = vec![m(Outcome::Failed)];
        assert_eq!(verdict(&s, &ms), Verdict::Running);
        ms.push(m(Outcome::Good));
        ms.push(m(Outcome::Failed));
        assert_eq!(verdict(&s, &ms), Verdict::Failed);
        assert_eq!(
            verdict(&spec(5, 0, None), &[m(Outcome::Failed)]),
            Verdict::Failed
        );
    }

    #[test]
    fn errors_are_never_failures_and_only_a_run_of_them_is_inconclusive() {
        let s = spec(5, 0, None);
        let mut ms: Vec<Measurement> = (0..3).map(|_| m(Outcome::Error)).collect();
        assert_eq!(verdict(&s, &ms), Verdict::Running);
        ms.push(m(Outcome::Good));
        ms.extend((0..3).map(|_| m(Outcome::Error)));
        assert_eq!(verdict(&s, &ms), Verdict::Running, "not 4 in a row");
        ms.push(m(Outcome::Error));
        assert_eq!(verdict(&s, &ms), Verdict::Inconclusive);
        assert_eq!(
            verdict(&spec(5, 0, Some(1)), &[m(Outcome::Error)]),
            Verdict::Inconclusive
        );
    }

    #[test]
    fn bounds_and_the_increase_over_the_primary() {
        let mut x = metric();
        x.max = None;
        x.min = Some(0.9);
        assert!(judge_value(&x, 0.95, None).is_none());
        assert!(judge_value(&x, 0.5, None).unwrap().contains("below min"));
        x.min = None;
        x.max_increase_vs_primary = Some(0.10);
        assert!(judge_value(&x, 1.05, Some(1.0)).is_none());
        let why = judge_value(&x, 1.2, Some(1.0)).unwrap();
        assert!(why.contains("20.0% above"), "{why}");
        assert!(judge_value(&x, 0.1, Some(0.0)).is_some());
        assert!(judge_value(&x, 0.0, Some(0.0)).is_none());
        assert!(
            judge_value(&x, 5.0, None).is_none(),
            "no primary: not judged"
        );
        // A primary that cannot be read is an error, not a failure.
        let r = reading(&x, Ok(1.0), Some(Err("no data".into())));
        assert_eq!(
            Measurement::new(Utc::now(), vec![r]).outcome,
            Outcome::Error
        );
    }
}
