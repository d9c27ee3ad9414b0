//! `stage-order`: forward moves go exactly one stage along `stages`, a new version enters the
//! first stage, any move to a terminal stage is allowed, other moves only as rollbacks.

use super::rollback::Held;
use super::{hinted, located, verdict, Facts};
use crate::check::change::Transition;
use crate::check::report::Verdict;
use crate::check::Rule;

pub fn judge(t: &Transition, f: &Facts, held: Option<&Held>) -> Verdict {
    let p = f.policy;
    let to = t.to().unwrap_or_default();
    let text = t.new.as_ref().map(|n| n.text.clone()).unwrap_or_default();
    let v = |passed: bool, reason: String| {
        located(
            verdict(Rule::StageOrder, passed, reason),
            &t.path,
            &text,
            &["stage"],
        )
    };
    let Some(to_idx) = p.stage_index(to) else {
        return v(false, format!("unknown stage `{to}`"));
    };
    let to_stage = &p.stages[to_idx];
    let Some(from) = t.from() else {
        let first = &p.stages[0].name;
        return if to_idx == 0 {
            v(
                true,
                format!("a new version enters the first stage `{first}`"),
            )
        } else if to_stage.terminal {
            v(
                true,
                format!("a new version may enter terminal stage `{to}`"),
            )
        } else {
            hinted(
                v(
                    false,
                    format!("a new version must enter the first stage `{first}`, not `{to}`"),
                ),
                format!(
                    "register it in `{first}` (`baton register` does), merge that, then promote it one stage at a time (`baton promote {} {} --to <next stage>`)",
                    t.model, t.version
                ),
            )
        };
    };
    if from == to {
        return v(true, format!("stays in `{to}`"));
    }
    if to_stage.terminal {
        return v(
            true,
            format!("`{from}` -> `{to}`: any stage may move to a terminal stage"),
        );
    }
    if let Some(h) = held {
        return v(
            true,
            format!(
                "`{from}` -> `{to}` is a rollback: it held `{to}` before on the branch ({})",
                h.describe()
            ),
        );
    }
    let Some(from_idx) = p.stage_index(from) else {
        return v(false, format!("moves from unknown stage `{from}`"));
    };
    if to_idx == from_idx + 1 && !p.stages[from_idx].terminal {
        return v(true, format!("`{from}` -> `{to}` is the next stage"));
    }
    if to_idx > from_idx && !p.stages[from_idx].terminal {
        let skipped: Vec<&str> = p.stages[from_idx + 1..to_idx]
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        let next = skipped[0];
        return hinted(
            v(
                false,
                format!("`{from}` -> `{to}` skips {}", quoted(&skipped)),
            ),
            format!(
                "promote it to `{next}` first (`baton promote {} {} --to {next}`), merge that, then on to `{to}`",
                t.model, t.version
            ),
        );
    }
    v(
        false,
        format!(
            "`{from}` -> `{to}` goes backward; that is only allowed as a rollback, and this version never held `{to}` on the branch"
        ),
    )
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
