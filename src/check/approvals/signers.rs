//! The ssh-keygen ALLOWED SIGNERS format (ssh-keygen(1)): principals patterns, options
//! (`namespaces`, `valid-after`, `valid-before`, `cert-authority`) and a public key per line.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use ssh_key::public::KeyData;
use ssh_key::PublicKey;

/// One usable line of an allowed-signers file.
#[derive(Debug, Clone)]
pub struct AllowedSigner {
    /// 1-based line number.
    pub line: usize,
    /// Principal patterns (`*` and `?` wildcards, `!` negation).
    pub principals: Vec<String>,
    /// `namespaces="..."`; `None` allows every namespace.
    pub namespaces: Option<Vec<String>>,
    pub valid_after: Option<DateTime<Utc>>,
    pub valid_before: Option<DateTime<Utc>>,
    pub key: PublicKey,
}

/// A parsed allowed-signers file: usable entries and located problems.
#[derive(Debug, Clone, Default)]
pub struct AllowedSigners {
    pub entries: Vec<AllowedSigner>,
    /// (line, problem) for lines that were skipped.
    pub problems: Vec<(usize, String)>,
}

impl AllowedSigners {
    /// Parse the file text; bad lines are skipped and reported, never fatal.
    pub fn parse(text: &str) -> Self {
        let mut out = AllowedSigners::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(i + 1, line) {
                Ok(e) => out.entries.push(e),
                Err(why) => out.problems.push((i + 1, why)),
            }
        }
        out
    }

    /// Entries for `key` that allow namespace `git` at time `at` (the time of judging).
    pub fn for_key<'a>(
        &'a self,
        key: &'a KeyData,
        at: DateTime<Utc>,
    ) -> impl Iterator<Item = &'a AllowedSigner> + 'a {
        self.for_key_any_time(key).filter(move |e| e.valid_at(at))
    }

    /// Entries for `key` that allow namespace `git`, whatever their validity period.
    pub fn for_key_any_time<'a>(
        &'a self,
        key: &'a KeyData,
    ) -> impl Iterator<Item = &'a AllowedSigner> + 'a {
        self.entries.iter().filter(move |e| {
            e.key.key_data() == key
                && e.namespaces
                    .as_ref()
                    .is_none_or(|ns| ns.iter().any(|n| n == "git"))
        })
    }
}

impl AllowedSigner {
    /// Whether `at` is inside the line's `valid-after` / `valid-before` (both inclusive).
    pub fn valid_at(&self, at: DateTime<Utc>) -> bool {
        self.valid_after.is_none_or(|t| at >= t) && self.valid_before.is_none_or(|t| at <= t)
    }

    /// The identities this entry vouches for: its literal principals, plus each `claimed`
    /// identity (e.g. the committer e-mail) that its pattern list matches.
    pub fn identities(&self, claimed: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = self
            .principals
            .iter()
            .filter(|p| !p.starts_with('!') && !p.contains(['*', '?']))
            .cloned()
            .collect();
        for c in claimed {
            if !c.is_empty() && self.matches(c) && !out.iter().any(|o| o == c) {
                out.push((*c).to_owned());
            }
        }
        out
    }

    /// ssh `match_pattern_list`: a negated match rejects, otherwise any positive match.
    pub fn matches(&self, principal: &str) -> bool {
        let mut ok = false;
        for p in &self.principals {
            if let Some(neg) = p.strip_prefix('!') {
                if wildcard(neg.as_bytes(), principal.as_bytes()) {
                    return false;
                }
            } else if wildcard(p.as_bytes(), principal.as_bytes()) {
                ok = true;
            }
        }
        ok
    }
}

fn wildcard(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => wildcard(&p[1..], s) || (!s.is_empty() && wildcard(p, &s[1..])),
        (Some(b'?'), Some(_)) => wildcard(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => wildcard(&p[1..], &s[1..]),
        _ => false,
    }
}

/// Split on whitespace outside double quotes (quotes are kept).
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn is_key_type(t: &str) -> bool {
    t.starts_with("ssh-") || t.starts_with("ecdsa-") || t.starts_with("sk-")
}

/// Split `a,b="x,y",c` on commas outside quotes.
fn split_options(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

fn parse_line(line: usize, text: &str) -> Result<AllowedSigner, String> {
    let toks = tokens(text);
    if toks.len() < 3 {
        return Err("expected `principals [options] keytype key`".into());
    }
    let principals: Vec<String> = unquote(&toks[0])
        .split(',')
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    let (mut namespaces, mut valid_after, mut valid_before) = (None, None, None);
    let mut rest = &toks[1..];
    if !is_key_type(&rest[0]) {
        for opt in split_options(&rest[0]) {
            let (k, v) = match opt.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(unquote(v.trim()))),
                None => (opt.trim().to_ascii_lowercase(), None),
            };
            match (k.as_str(), v) {
                ("cert-authority", None) => {
                    return Err("cert-authority entries are not supported by baton".into())
                }
                ("namespaces", Some(v)) => {
                    namespaces = Some(
                        v.split(',')
                            .map(|n| n.trim().to_owned())
                            .filter(|n| !n.is_empty())
                            .collect(),
                    )
                }
                ("valid-after", Some(v)) => valid_after = Some(parse_time(v)?),
                ("valid-before", Some(v)) => valid_before = Some(parse_time(v)?),
                (other, _) => return Err(format!("unsupported option `{other}`")),
            }
        }
        rest = &rest[1..];
    }
    if rest.len() < 2 {
        return Err("missing public key".into());
    }
    let key = PublicKey::from_openssh(&format!("{} {}", rest[0], rest[1]))
        .map_err(|e| format!("bad public key: {e}"))?;
    Ok(AllowedSigner {
        line,
        principals,
        namespaces,
        valid_after,
        valid_before,
        key,
    })
}

/// `YYYYMMDD[HHMM[SS]][Z]`; times without `Z` are read as UTC.
fn parse_time(v: &str) -> Result<DateTime<Utc>, String> {
    let bad = || format!("bad time `{v}` (use YYYYMMDD[HHMM[SS]][Z])");
    let s = v.strip_suffix(['Z', 'z']).unwrap_or(v);
    if !s.bytes().all(|b| b.is_ascii_digit()) || s.len() < 8 {
        return Err(bad());
    }
    let date = NaiveDate::parse_from_str(&s[..8], "%Y%m%d").map_err(|_| bad())?;
    let time = match s.len() {
        8 => NaiveTime::MIN,
        12 => NaiveTime::parse_from_str(&s[8..], "%H%M").map_err(|_| bad())?,
        14 => NaiveTime::parse_from_str(&s[8..], "%H%M%S").map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    Ok(NaiveDateTime::new(date, time).and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID6KGnlTnCvLf7PVgnYbAKzK/ca3fKkA1i1xIajbueZ8";

    #[test]
    fn parses_options_and_patterns() {
        let text = format!(
            "# c\nalice@acme.com namespaces=\"git\" {KEY}\n\"*@acme.com,!mallory@acme.com\" namespaces=\"file,git\",valid-after=\"20260101\",valid-before=\"20261231Z\" {KEY} bob\nbad line\n@ca cert-authority {KEY}\n"
        );
        let s = AllowedSigners::parse(&text);
        assert_eq!(s.entries.len(), 2);
        assert_eq!(s.problems.len(), 2, "{:?}", s.problems);
        let e = &s.entries[1];
        assert!(e.matches("carol@acme.com"));
        assert!(!e.matches("mallory@acme.com"));
        assert!(!e.matches("carol@evil.com"));
        assert_eq!(e.identities(&["carol@acme.com"]), vec!["carol@acme.com"]);
        assert_eq!(s.entries[0].identities(&[]), vec!["alice@acme.com"]);
        assert_eq!(
            e.valid_after.unwrap().to_rfc3339(),
            "2026-01-01T00:00:00+00:00"
        );
    }

    #[test]
    fn namespace_and_validity_filter() {
        let text = format!(
            "a@x namespaces=\"file\" {KEY}\nb@x valid-before=\"20200101\" {KEY}\nc@x {KEY}\n"
        );
        let s = AllowedSigners::parse(&text);
        let key = s.entries[0].key.key_data().clone();
        let now = Utc::now();
        let names: Vec<_> = s
            .for_key(&key, now)
            .map(|e| e.principals[0].clone())
            .collect();
        assert_eq!(names, vec!["c@x"]);
    }
}
