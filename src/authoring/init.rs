//! `baton init`: the files of a new registry (policy, one example model, the user's SSH key as
//! signer and policy owner), planned purely; the CLI finds the key and writes them.

use crate::fsutil;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum InitError {
    #[error(
        "no SSH public key found: pass --key ~/.ssh/id_ed25519.pub, set `git config user.signingkey`, \
         or make one with `ssh-keygen -t ed25519 -C you@example.com`"
    )]
    NoKey,
    #[error("several SSH public keys found ({}); choose one with --key", .0.join(", "))]
    AmbiguousKey(Vec<String>),
    #[error("{path}: not an SSH public key (expected `<type> <base64> [comment]`)")]
    NotAKey { path: String },
    #[error("no email for the signer: pass --email or set `git config user.email`")]
    NoEmail,
    #[error("`{0}` is not an email address")]
    BadEmail(String),
    #[error("{0} already exists: this folder holds a registry; nothing was written")]
    Exists(String),
}

/// Where the user's public key is looked for, in order.
#[derive(Debug, Clone, Default)]
pub struct KeySearch {
    /// `--key`.
    pub explicit: Option<PathBuf>,
    /// `git config user.signingkey`: a key file (its `.pub` beside it is used) or a literal
    /// `key::ssh-ed25519 AAAA…`.
    pub git_signingkey: Option<String>,
    /// `~/.ssh`, whose `*.pub` files are the last resort (exactly one, else ask).
    pub ssh_dir: Option<PathBuf>,
}

/// The public key text (`<type> <base64>`) and where it came from.
pub fn find_key(s: &KeySearch) -> Result<(String, String), InitError> {
    let read = |p: &Path| -> Result<(String, String), InitError> {
        let text = std::fs::read_to_string(p).map_err(|_| InitError::NotAKey {
            path: p.display().to_string(),
        })?;
        let key = public_key(&text).ok_or_else(|| InitError::NotAKey {
            path: p.display().to_string(),
        })?;
        Ok((key, p.display().to_string()))
    };
    if let Some(p) = &s.explicit {
        return read(p);
    }
    if let Some(k) = s.git_signingkey.as_deref().map(str::trim) {
        if let Some(lit) = k.strip_prefix("key::") {
            if let Some(key) = public_key(lit) {
                return Ok((key, "git config user.signingkey".into()));
            }
        } else if !k.is_empty() {
            let p = expand_home(k, s.ssh_dir.as_deref());
            let pubp = if p.extension().is_some_and(|e| e == "pub") {
                p.clone()
            } else {
                PathBuf::from(format!("{}.pub", p.display()))
            };
            if pubp.is_file() {
                return read(&pubp);
            }
        }
    }
    let Some(dir) = &s.ssh_dir else {
        return Err(InitError::NoKey);
    };
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "pub") && p.is_file())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    match found.as_slice() {
        [] => Err(InitError::NoKey),
        [one] => read(one),
        many => Err(InitError::AmbiguousKey(
            many.iter().map(|p| p.display().to_string()).collect(),
        )),
    }
}

/// `~/x` relative to the home that holds `ssh_dir` (`<home>/.ssh`).
fn expand_home(p: &str, ssh_dir: Option<&Path>) -> PathBuf {
    match (p.strip_prefix("~/"), ssh_dir.and_then(Path::parent)) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(p),
    }
}

/// `<type> <base64>` of an OpenSSH public key line, without its comment.
pub fn public_key(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let mut parts = line.split_whitespace();
    let (kind, body) = (parts.next()?, parts.next()?);
    let known = kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-");
    let b64 = body
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='));
    (known && b64 && body.len() >= 16).then(|| format!("{kind} {body}"))
}

/// A plausible email (the signer principal and the policy owner).
pub fn check_email(e: &str) -> Result<String, InitError> {
    let e = e.trim();
    let ok = e
        .split_once('@')
        .is_some_and(|(u, d)| !u.is_empty() && d.contains('.') && !e.contains(char::is_whitespace));
    if ok {
        Ok(e.to_owned())
    } else {
        Err(InitError::BadEmail(e.to_owned()))
    }
}

/// The example artifact's bytes.
const EXAMPLE_ARTIFACT: &[u8] = b"replace me with your model file\n";

/// The files of a new registry, registry-relative, for signer `email` with `key`.
pub fn scaffold(email: &str, key: &str) -> Vec<(String, Vec<u8>)> {
    let (digest, _) = fsutil::sha256_reader(EXAMPLE_ARTIFACT).expect("reading a byte slice");
    let size = EXAMPLE_ARTIFACT.len();
    let policy = format!(
        r#"# baton policy: the promotion path, its gates, who may approve, and where stages deploy.
# Every field is described in docs/registry-format.md of baton.
version: 1
stages:                        # ordered: the promotion path
  - name: development
  - name: staging
    gates:
      - metric: {{name: accuracy, min: 0.80}}
  - name: production
    gates:
      # Approvals never count the change's own author: add a second reviewer to ml-leads.
      - approvals: {{min: 1, from: [group:ml-leads, owners]}}
      - metric: {{name: accuracy, min: 0.85, max_regression: 0.01}}
      - soak: {{stage: staging, for: 1h}}
  - name: archived
    terminal: true             # reachable from any stage; holds no deployment
rollback:
  approvals: 0                 # returning a version to a stage it legitimately held before
groups:
  ml-leads: [{email}]
  registry-admins: [{email}]
policy_owners: [group:registry-admins]   # changes to baton.yaml, model.yaml or signers need them
signers: .baton/allowed_signers
environments:
  staging:
    stage: staging
    target: {{kind: local, path: staging}}
  production:
    stage: production
    target: {{kind: local, path: production}}
    health: {{command: "test -s \"$BATON_ARTIFACT\""}}
"#
    );
    let signers = format!(
        "# ssh-keygen ALLOWED SIGNERS: who may sign approval commits (baton docs/approvals.md).\n\
         {email} namespaces=\"git\" {key}\n"
    );
    let model = format!(
        "name: example\ndescription: An example model; copy this folder for yours\nowners: [{email}]\n"
    );
    let version = format!(
        "model: example\nversion: \"1\"\nstage: development\nartifact:\n  uri: artifacts/example/1/model.txt\n  sha256: {digest}\n  size: {size}\nmetrics:\n  accuracy: 0.9\ncreated: {}\n",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
    );
    vec![
        ("baton.yaml".into(), policy.into_bytes()),
        (".baton/allowed_signers".into(), signers.into_bytes()),
        ("models/example/model.yaml".into(), model.into_bytes()),
        (
            "models/example/versions/1.yaml".into(),
            version.into_bytes(),
        ),
        (
            "artifacts/example/1/model.txt".into(),
            EXAMPLE_ARTIFACT.to_vec(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ3IEtuvAA5i3T6umC4I0u94nidIKuLnJyOXXqt6vc0+";

    #[test]
    fn public_keys_are_read_without_their_comment() {
        assert_eq!(
            public_key(&format!("{KEY} me@host\n")).as_deref(),
            Some(KEY)
        );
        assert_eq!(public_key("-----BEGIN OPENSSH PRIVATE KEY-----"), None);
        assert_eq!(public_key(""), None);
    }

    #[test]
    fn one_key_in_ssh_dir_is_taken_and_several_are_asked_about() {
        let d = tempfile::tempdir().unwrap();
        let ssh = d.path().join(".ssh");
        std::fs::create_dir(&ssh).unwrap();
        let search = KeySearch {
            ssh_dir: Some(ssh.clone()),
            ..Default::default()
        };
        assert_eq!(find_key(&search), Err(InitError::NoKey));
        std::fs::write(ssh.join("id_ed25519.pub"), format!("{KEY} a\n")).unwrap();
        assert_eq!(find_key(&search).unwrap().0, KEY);
        std::fs::write(ssh.join("id_rsa.pub"), format!("{KEY} b\n")).unwrap();
        assert!(matches!(find_key(&search), Err(InitError::AmbiguousKey(v)) if v.len() == 2));
        // git's user.signingkey decides between them.
        let with_git = KeySearch {
            git_signingkey: Some("~/.ssh/id_rsa".into()),
            ..search
        };
        assert!(find_key(&with_git).unwrap().1.ends_with("id_rsa.pub"));
    }

    #[test]
    fn the_scaffold_names_the_signer_everywhere_it_matters() {
        let files = scaffold("me@acme.com", KEY);
        let get = |p: &str| {
            String::from_utf8(files.iter().find(|f| f.0 == p).unwrap().1.clone()).unwrap()
        };
        assert!(get("baton.yaml").contains("registry-admins: [me@acme.com]"));
        assert_eq!(
            get(".baton/allowed_signers").lines().nth(1),
            Some(format!("me@acme.com namespaces=\"git\" {KEY}").as_str())
        );
        assert!(get("models/example/versions/1.yaml").contains("size: 32"));
        assert!(check_email("me@acme.com").is_ok());
        assert!(check_email("not an email").is_err());
    }
}
