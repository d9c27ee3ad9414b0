//! Name rules (docs/registry-format.md): DNS-label model names, file-safe version labels, their
//! natural order ("9" < "10"), and how tree entry names that are not UTF-8 are shown.

use std::cmp::Ordering;

/// `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`
pub fn is_model_name(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 63 {
        return false;
    }
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    edge(b[0]) && edge(b[b.len() - 1]) && b.iter().all(|&c| edge(c) || c == b'-')
}

/// `^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`
pub fn is_version_label(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 63 || !b[0].is_ascii_alphanumeric() {
        return false;
    }
    b.iter()
        .all(|&c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-')
}

/// Natural ordering: runs of digits compare numerically, everything else bytewise.
/// Ties (e.g. "01" vs "1") fall back to plain string order so the order is total.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let si = i;
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let na = a[si..i].trim_start_matches('0');
            let nb = b[sj..j].trim_start_matches('0');
            let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if ord != Ordering::Equal {
                return ord;
            }
        } else {
            let ord = ab[i].cmp(&bb[j]);
            if ord != Ordering::Equal {
                return ord;
            }
            i += 1;
            j += 1;
        }
    }
    (ab.len() - i).cmp(&(bb.len() - j)).then_with(|| a.cmp(b))
}

/// A tree entry name as shown in diagnostics: UTF-8 as is, other bytes as `\xNN` (so a name
/// that is not UTF-8 is never shown as, or confused with, another name).
pub fn shown_name(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The message for a tree entry whose name is not UTF-8 (docs/registry-format.md, "Names").
pub fn not_utf8_message(bytes: &[u8]) -> String {
    format!(
        "the name `{}` is not UTF-8: names in the registry must be UTF-8",
        shown_name(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names() {
        assert!(is_model_name("fraud-detector"));
        assert!(is_model_name("a"));
        assert!(!is_model_name("-a"));
        assert!(!is_model_name("a-"));
        assert!(!is_model_name("Fraud"));
        assert!(!is_model_name(&"a".repeat(64)));
    }

    #[test]
    fn version_labels() {
        assert!(is_version_label("4"));
        assert!(is_version_label("v1.2.3-rc_1"));
        assert!(!is_version_label(".4"));
        assert!(!is_version_label("a/b"));
        assert!(!is_version_label(""));
    }

    #[test]
    fn names_that_are_not_utf8_are_shown_escaped() {
        assert_eq!(shown_name(b"fraud"), "fraud");
        assert_eq!(shown_name(b"fr\xffaud"), "fr\\xffaud");
        assert_eq!(shown_name(b"\xc3"), "\\xc3");
        assert!(not_utf8_message(b"\xff").contains("`\\xff` is not UTF-8"));
    }

    #[test]
    fn natural_order() {
        assert_eq!(natural_cmp("9", "10"), Ordering::Less);
        assert_eq!(natural_cmp("v2", "v10"), Ordering::Less);
        assert_eq!(natural_cmp("1.10", "1.9"), Ordering::Greater);
        assert_eq!(natural_cmp("a", "a"), Ordering::Equal);
        assert_ne!(natural_cmp("01", "1"), Ordering::Equal);
    }
}
