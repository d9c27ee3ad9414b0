//! Line-level edits of version manifests that keep everything else byte for byte: set the
//! top-level `stage`, set or remove `traffic` (so diffs and reviews stay minimal).

/// Replace the value of the top-level `stage:` key.
pub fn set_stage(text: &str, stage: &str) -> String {
    set_key(text, "stage", Some(stage), None)
}

/// Set (or with `None` remove) the top-level `traffic:` key; a new key goes after `stage:`.
pub fn set_traffic(text: &str, traffic: Option<u32>) -> String {
    let value = traffic.map(|t| t.to_string());
    set_key(text, "traffic", value.as_deref(), Some("stage"))
}

fn is_key_line(line: &str, key: &str) -> bool {
    line.strip_prefix(key)
        .is_some_and(|rest| rest.starts_with(':'))
}

/// Keep a trailing `# comment` of the replaced line.
fn comment_of(line: &str) -> &str {
    match line.find(" #") {
        Some(i) => &line[line[..i].trim_end().len()..],
        None => "",
    }
}

fn set_key(text: &str, key: &str, value: Option<&str>, after: Option<&str>) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let pos = lines.iter().position(|l| is_key_line(l, key));
    match (pos, value) {
        (Some(i), Some(v)) => {
            let comment = comment_of(&lines[i]).to_owned();
            lines[i] = format!("{key}: {v}{comment}");
        }
        (Some(i), None) => {
            lines.remove(i);
        }
        (None, Some(v)) => {
            let at = after
                .and_then(|a| lines.iter().position(|l| is_key_line(l, a)))
                .map_or(lines.len(), |i| i + 1);
            lines.insert(at, format!("{key}: {v}"));
        }
        (None, None) => {}
    }
    let mut out = lines.join("\n");
    if text.ends_with('\n') || text.is_empty() {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = "model: a\nversion: \"1\"\nstage: staging   # where it is\nartifact:\n  uri: x\n  stage: nested\n";

    #[test]
    fn edits_only_top_level_keys() {
        let t = set_stage(M, "production");
        assert_eq!(t, M.replace("stage: staging", "stage: production"));
        let t = set_traffic(&t, Some(10));
        assert!(t.contains("stage: production   # where it is\ntraffic: 10\nartifact:"));
        let t = set_traffic(&t, Some(20));
        assert!(t.contains("traffic: 20\n"));
        let t = set_traffic(&t, None);
        assert_eq!(t, M.replace("stage: staging", "stage: production"));
    }
}
