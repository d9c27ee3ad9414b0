//! GitHub Actions workflow commands: one `::error file=…,line=…,title=…::…` annotation per
//! failing gate, then a plain summary line.

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
