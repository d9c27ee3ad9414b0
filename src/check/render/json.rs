//! JSON rendering: the report's fields (see docs/cli.md) plus `passed`, `blocks_all` and
//! `blocked_models`. Keys are sorted; the shape is stable.

use crate::check::report::CheckReport;
use serde_json::{json, Value};

pub fn value(r: &CheckReport) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("passed".into(), json!(r.passed()));
        m.insert("blocks_all".into(), json!(r.blocks_all()));
        m.insert("blocked_models".into(), json!(r.blocked_models()));
        m.insert("summary".into(), json!(super::summary(r)));
    }
    v
}

pub fn render(r: &CheckReport) -> String {
    let mut s = serde_json::to_string_pretty(&value(r)).unwrap_or_default();
    s.push('\n');
    s
}
