//! GitHub Actions workflow commands: one `::error file=…,line=…,title=…::…` annotation per
//! failing gate, a `::notice` for each transition that only waits for time, then a summary.

use super::{name, summary};
use crate::check::report::{CheckReport, Verdict};
use std::fmt::Write;

/// Escape a message (`%`, CR, LF) per the workflow-command format.
fn data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escape a property value (also `:` and `,`).
fn prop(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

fn annotate(out: &mut String, v: &Verdict, subject: &str) {
    let mut props = Vec::new();
    if let Some(f) = &v.file {
        props.push(format!("file={}", prop(f)));
    }
    if let Some(l) = v.line {
        props.push(format!("line={l}"));
    }
    props.push(format!(
        "title={}",
        prop(&format!("baton check: {}", v.rule))
    ));
    let _ = writeln!(
        out,
        "::error {}::{}",
        props.join(","),
        data(&match &v.hint {
            Some(h) => format!("{subject}: {}\nTo pass: {h}", v.reason),
            None => format!("{subject}: {}", v.reason),
        })
    );
}

pub fn render(r: &CheckReport) -> String {
    let mut out = String::new();
    for t in &r.transitions {
        for v in t.verdicts.iter().filter(|v| !v.passed) {
            annotate(&mut out, v, &name(t));
        }
        if let Some(at) = t.not_before {
            let _ = writeln!(
                out,
                "::notice file={},title={}::{}",
                prop(&t.path),
                prop("baton check: waiting"),
                data(&format!(
                    "{}: only time gates fail; it passes from {} without a change",
                    name(t),
                    at.format("%Y-%m-%dT%H:%M:%SZ")
                ))
            );
        }
    }
    for v in r.change.iter().filter(|v| !v.passed) {
        annotate(&mut out, v, "change");
    }
    for (m, vs) in &r.models {
        for v in vs.iter().filter(|v| !v.passed) {
            annotate(&mut out, v, m);
        }
    }
    let _ = writeln!(
        out,
        "baton check: {}: {}",
        if r.passed() { "passed" } else { "failed" },
        summary(r)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::report::TransitionReport;
    use crate::check::Rule;

    #[test]
    fn a_transition_that_only_waits_for_time_gets_a_notice() {
        let at = "2026-11-30T08:00:00Z".parse().unwrap();
        let r = CheckReport {
            base: "main".into(),
            merge_base: "a".repeat(40),
            head: "b".repeat(40),
            registry: ".".into(),
            transitions: vec![TransitionReport {
                moved: crate::stage_move::StageMove {
                    model: "churn".into(),
                    version: "2".into(),
                    from: Some("staging".into()),
                    to: Some("production".into()),
                    path: "models/churn/versions/2.yaml".into(),
                },
                rollback: false,
                verdicts: vec![Verdict {
                    rule: Rule::Window,
                    passed: false,
                    reason: "window mon-fri 09:00-16:00 UTC is closed".into(),
                    file: Some("baton.yaml".into()),
                    line: Some(7),
                    hint: None,
                }],
                not_before: Some(at),
                open_until: None,
            }],
            change: vec![],
            models: Default::default(),
            errors: vec![],
        };
        let out = render(&r);
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].starts_with("::error file=baton.yaml,line=7,"),
            "{out}"
        );
        assert_eq!(
            lines[1],
            "::notice file=models/churn/versions/2.yaml,title=baton check%3A waiting::churn@2: only time gates fail; it passes from 2026-11-30T08:00:00Z without a change"
        );
        assert!(lines[2].starts_with("baton check: failed: "), "{out}");
    }
}
