//! Find the line and column of a key in a YAML document by indentation, so that
//! diagnostics about a field's *value* (not just syntax errors) point at the right line.

/// Locate `key_path` (e.g. `["artifact", "sha256"]`) in block-style YAML.
/// Returns 1-based (line, column) of the last key, or of the deepest key found.
pub fn find_key(text: &str, key_path: &[&str]) -> Option<(usize, usize)> {
    let mut found = None;
    let mut want = 0usize;
    let mut min_indent = 0usize;
    let mut parent_indent: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        if want >= key_path.len() {
            break;
        }
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = raw.len() - trimmed.len();
        if let Some(p) = parent_indent {
            if indent <= p {
                // Left the parent's block without finding the child.
                break;
            }
        }
        if indent < min_indent {
            continue;
        }
        let body = trimmed.strip_prefix("- ").unwrap_or(trimmed);
        let key = key_path[want];
        let matches = body
            .strip_prefix(key)
            .or_else(|| body.strip_prefix(&format!("\"{key}\"")))
            .is_some_and(|rest| rest.starts_with(':'));
        if matches {
            found = Some((i + 1, indent + 1));
            parent_indent = Some(indent);
            min_indent = indent + 1;
            want += 1;
        }
    }
    found
}

/// Locate the item of the top-level block list `list_key` whose `field` is `value`, e.g. the
/// stage `- name: staging` in `stages:`. Returns 1-based (line, column) of `field`.
pub fn find_list_item(
    text: &str,
    list_key: &str,
    field: &str,
    value: &str,
) -> Option<(usize, usize)> {
    let mut inside = false;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = raw.len() - trimmed.len();
        if indent == 0 && !trimmed.starts_with('-') {
            inside = trimmed
                .strip_prefix(list_key)
                .is_some_and(|r| r.starts_with(':'));
            continue;
        }
        if !inside {
            continue;
        }
        let Some(body) = trimmed.strip_prefix("- ") else {
            continue;
        };
        let body_col = indent + 3;
        let (offset, rest) = match body.strip_prefix('{') {
            Some(flow) => match flow.find(&format!("{field}:")) {
                Some(at) => (1 + at, &flow[at..]),
                None => continue,
            },
            None => (0, body),
        };
        let Some(v) = rest.strip_prefix(field).and_then(|r| r.strip_prefix(':')) else {
            continue;
        };
        let v = v.split(['#', ',', '}']).next().unwrap_or("").trim();
        let v = v.trim_matches(|c| c == '"' || c == '\'');
        if v == value {
            return Some((i + 1, body_col + offset));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{find_key, find_list_item};

    #[test]
    fn list_items() {
        let y = "version: 1\nstages:\n  - name: dev\n  - name: \"prod\"  # x\n    canary: true\n  - {name: old, terminal: true}\ngroups: {}\n";
        assert_eq!(find_list_item(y, "stages", "name", "dev"), Some((3, 5)));
        assert_eq!(find_list_item(y, "stages", "name", "prod"), Some((4, 5)));
        assert_eq!(find_list_item(y, "stages", "name", "old"), Some((6, 6)));
        assert_eq!(find_list_item(y, "stages", "name", "nope"), None);
        assert_eq!(find_list_item(y, "groups", "name", "dev"), None);
    }

    #[test]
    fn nested_keys() {
        let y = "model: a\nartifact:\n  uri: x\n  sha256: abc\nstage: dev\n";
        assert_eq!(find_key(y, &["stage"]), Some((5, 1)));
        assert_eq!(find_key(y, &["artifact", "sha256"]), Some((4, 3)));
        assert_eq!(find_key(y, &["missing"]), None);
    }
}
