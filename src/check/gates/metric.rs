//! `metric`: `min` / `max` thresholds on a version's metric, and `max_regression` against the
//! versions in the target stage at base (higher is better unless `lower_is_better`).

use super::{located, verdict, Facts};
use crate::check::change::Transition;
use crate::check::report::Verdict;
use crate::check::Rule;
use crate::manifest::policy::MetricGate;

/// A number rounded to 9 decimals, printed shortest (0.935 - 0.941 prints -0.006).
pub fn num(x: f64) -> String {
    let r = (x * 1e9).round() / 1e9;
    format!("{}", if r == 0.0 { 0.0 } else { r })
}

pub fn judge(t: &Transition, f: &Facts, g: &MetricGate) -> Verdict {
    let text = t.new.as_ref().map(|n| n.text.clone()).unwrap_or_default();
    let to = t.to().unwrap_or_default();
    let Some(m) = t.new.as_ref().and_then(|n| n.manifest()) else {
        return verdict(Rule::Metric, false, "manifest did not parse");
    };
    let name = &g.name;
    let Some(&value) = m.metrics.get(name) else {
        return located(
            verdict(Rule::Metric, false, format!("metric `{name}` is missing")),
            &t.path,
            &text,
            &["metrics"],
        );
    };
    let mut ok = true;
    let mut parts = Vec::new();
    if let Some(min) = g.min {
        let pass = value >= min;
        ok &= pass;
        parts.push(format!(
            "{name} {} {} min {}",
            num(value),
            if pass { ">=" } else { "<" },
            num(min)
        ));
    }
    if let Some(max) = g.max {
        let pass = value <= max;
        ok &= pass;
        parts.push(format!(
            "{name} {} {} max {}",
            num(value),
            if pass { "<=" } else { ">" },
            num(max)
        ));
    }
    if let Some(allowed) = g.max_regression {
        let refs: Vec<(String, f64)> = f
            .old_model
            .into_iter()
            .flat_map(|mv| mv.in_stage(to))
            .filter(|v| v.label != t.version)
            .filter_map(|v| {
                let m = v.manifest()?;
                Some((v.label.clone(), *m.metrics.get(name)?))
            })
            .collect();
        let best = refs.iter().cloned().reduce(|a, b| {
            let better = if g.lower_is_better {
                b.1 < a.1
            } else {
                b.1 > a.1
            };
            if better {
                b
            } else {
                a
            }
        });
        match best {
            None => parts.push(format!(
                "no version in `{to}` at base to compare {name} with"
            )),
            Some((label, r)) => {
                let regression = if g.lower_is_better {
                    value - r
                } else {
                    r - value
                };
                let pass = regression <= allowed + 1e-12;
                ok &= pass;
                parts.push(format!(
                    "regression {} vs {}@{label} ({}) {} max_regression {}",
                    num(regression.max(0.0)),
                    t.model,
                    num(r),
                    if pass { "<=" } else { ">" },
                    num(allowed)
                ));
            }
        }
    }
    located(
        verdict(Rule::Metric, ok, parts.join("; ")),
        &t.path,
        &text,
        &["metrics", name],
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rounds() {
        assert_eq!(super::num(0.935 - 0.941), "-0.006");
        assert_eq!(super::num(0.92), "0.92");
        assert_eq!(super::num(50.0), "50");
    }
}
