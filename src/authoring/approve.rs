//! `approve`'s judgement before it commits (pure): whether git would sign with SSH, and whether
//! the approver is approving a change they made, with who may approve it instead.

use crate::manifest::{Gate, Policy};
use std::collections::BTreeSet;

/// The two-line setup to print when `git config gpg.format` is not `ssh`: git would sign with
/// GPG (or fail with gpg's own output), and baton's approvals are SSH signatures.
pub fn ssh_signing_setup(gpg_format: Option<&str>, signers_file: &str) -> Option<String> {
    match gpg_format.map(str::trim) {
        Some(f) if f.eq_ignore_ascii_case("ssh") => None,
        found => Some(format!(
            "git signs with {} here, but approvals are SSH-signed commits (docs/approvals.md). Set up SSH signing:\n  git config gpg.format ssh && git config user.signingkey ~/.ssh/id_ed25519.pub   # a key listed in {signers_file}",
            match found {
                Some(f) if !f.is_empty() => format!("`gpg.format={f}`"),
                _ => "GPG (`gpg.format` is unset)".to_owned(),
            }
        )),
    }
}

/// Who may approve moving a version of a model with `owners` into `stage`: the resolved
/// members of the stage's approvals gates, minus `exclude` (lower-cased identities).
pub fn eligible(
    policy: &Policy,
    stage: &str,
    owners: &[String],
    exclude: &BTreeSet<String>,
) -> Vec<String> {
    let Some(s) = policy.stage(stage) else {
        return Vec::new();
    };
    let mut out: Vec<String> = s
        .gates
        .iter()
        .filter_map(|g| match g {
            Gate::Approvals(a) => Some(policy.expand_principals(&a.from, owners)),
            _ => None,
        })
        .flatten()
        .filter(|p| !exclude.contains(&p.to_lowercase()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The refusal when `me` (the approver's e-mail) is among the `authors` (author and committer
/// e-mails of the commit that put the manifest as it is at HEAD, in `commit`); `None` when
/// someone else made the change.
pub fn own_change(
    me: &str,
    authors: &BTreeSet<String>,
    commit: &str,
    eligible: &[String],
) -> Option<String> {
    let me = me.trim().to_lowercase();
    if me.is_empty() || !authors.contains(&me) {
        return None;
    }
    let instead = match eligible.is_empty() {
        true => "nobody else is eligible: add a reviewer to the stage's approvals group in baton.yaml (a policy change)".to_owned(),
        false => format!("ask {} to run the same `baton approve`", eligible.join(", ")),
    };
    Some(format!(
        "you ({me}) made this change (commit {commit}), and approvals never count a change's own author; {instead}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ssh_signing_passes_and_the_setup_is_two_lines() {
        assert_eq!(
            ssh_signing_setup(Some("ssh"), ".baton/allowed_signers"),
            None
        );
        assert_eq!(ssh_signing_setup(Some(" SSH\n"), "s"), None);
        let unset = ssh_signing_setup(None, ".baton/allowed_signers").unwrap();
        assert_eq!(unset.lines().count(), 2, "{unset}");
        assert!(unset.contains("GPG (`gpg.format` is unset)"), "{unset}");
        assert!(unset.contains("git config gpg.format ssh"), "{unset}");
        assert!(
            unset.contains("listed in .baton/allowed_signers"),
            "{unset}"
        );
        let x509 = ssh_signing_setup(Some("x509"), "s").unwrap();
        assert!(x509.contains("`gpg.format=x509`"), "{x509}");
    }

    #[test]
    fn approving_your_own_change_is_refused_naming_who_may() {
        let authors: BTreeSet<String> = ["alice@example.com".to_owned()].into();
        let eligible = vec!["bob@example.com".to_owned()];
        let why = own_change("Alice@Example.com", &authors, "1234567890", &eligible).unwrap();
        assert!(
            why.contains("you (alice@example.com) made this change (commit 1234567890)"),
            "{why}"
        );
        assert!(
            why.ends_with("ask bob@example.com to run the same `baton approve`"),
            "{why}"
        );
        assert_eq!(
            own_change("bob@example.com", &authors, "1", &eligible),
            None
        );
        assert!(own_change("alice@example.com", &authors, "1", &[])
            .unwrap()
            .contains("nobody else is eligible"));
    }

    #[test]
    fn eligible_resolves_the_stage_gates_minus_the_excluded() {
        let policy = crate::manifest::parse_policy(
            b"version: 1\nstages:\n  - name: dev\n  - name: prod\n    gates:\n      - approvals: {min: 1, from: [group:leads, owners]}\ngroups:\n  leads: [alice@x.com, bob@x.com]\n",
        )
        .unwrap();
        let exclude: BTreeSet<String> = ["alice@x.com".to_owned()].into();
        let owners = vec!["carol@x.com".to_owned()];
        assert_eq!(
            eligible(&policy, "prod", &owners, &exclude),
            ["bob@x.com", "carol@x.com"]
        );
        assert!(eligible(&policy, "dev", &owners, &exclude).is_empty());
    }
}
