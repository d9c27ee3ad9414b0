//! Text rendering: one block per transition with each gate ✓/✗ and its reason, then the
//! change-wide and model-wide verdicts and a summary line. ANSI colour only when asked.

use super::{movement, name, summary};
use crate::check::report::{CheckReport, Verdict};
use std::fmt::Write;

fn mark(v: &Verdict, color: bool) -> String {
    match (v.passed, color) {
        (true, true) => "\x1b[32m✓\x1b[0m".into(),
        (false, true) => "\x1b[31m✗\x1b[0m".into(),
        (true, false) => "✓".into(),
        (false, false) => "✗".into(),
    }
}

fn line(out: &mut String, v: &Verdict, color: bool) {
    let loc = match (&v.file, v.line) {
        (Some(f), Some(l)) if !v.passed => format!(" [{f}:{l}]"),
        (Some(f), None) if !v.passed => format!(" [{f}]"),
        _ => String::new(),
    };
    let _ = writeln!(out, "  {} {:<13} {}{loc}", mark(v, color), v.rule, v.reason);
    if let Some(h) = v.hint.as_deref().filter(|_| !v.passed) {
        for (i, l) in h.lines().enumerate() {
            let lead = if i == 0 { "to pass:" } else { "" };
            let _ = writeln!(out, "    {lead:<13} {l}");
        }
    }
}

pub fn render(r: &CheckReport, color: bool) -> String {
    let mut out = String::new();
    let short = |s: &str| s.get(..10).unwrap_or(s).to_owned();
    let _ = writeln!(
        out,
        "baton check {}...{} (merge base {})",
        short(&r.base),
        short(&r.head),
        short(&r.merge_base)
    );
    for t in &r.transitions {
        let _ = writeln!(
            out,
            "\n{}: {}{}  ({})",
            name(t),
            movement(t, "->"),
            if t.rollback { " [rollback]" } else { "" },
            t.path
        );
        for v in &t.verdicts {
            line(&mut out, v, color);
        }
        if let Some(at) = t.not_before {
            let _ = writeln!(
                out,
                "  waiting: only time gates fail; it passes from {} without a change",
                at.format("%Y-%m-%dT%H:%M:%SZ")
            );
        }
    }
    if !r.change.is_empty() {
        let _ = writeln!(out, "\nchange-wide:");
        for v in &r.change {
            line(&mut out, v, color);
        }
    }
    for (m, vs) in &r.models {
        let _ = writeln!(out, "\nmodel {m}:");
        for v in vs {
            line(&mut out, v, color);
        }
    }
    if r.transitions.is_empty() && r.change.is_empty() && r.models.is_empty() {
        let _ = writeln!(out, "\nno registry changes");
    }
    let verdict = if r.passed() { "PASS" } else { "FAIL" };
    let verdict = match (color, r.passed()) {
        (true, true) => format!("\x1b[32m{verdict}\x1b[0m"),
        (true, false) => format!("\x1b[31m{verdict}\x1b[0m"),
        _ => verdict.to_owned(),
    };
    let _ = writeln!(out, "\n{verdict}: {}", summary(r));
    out
}
