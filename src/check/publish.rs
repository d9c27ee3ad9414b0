//! A check's verdict on its pull request (docs/ci.md): one Markdown comment kept up to date
//! (found by a hidden marker, edited in place) and a `baton/check` commit status.

use super::approvals::github::{Client, GithubError, IssueComment};
use super::report::CheckReport;

/// The hidden first line that marks baton's comment.
pub const MARKER: &str = "<!-- baton:check -->";

/// The commit status context `--status` sets.
pub const CONTEXT: &str = "baton/check";

/// What `upsert_comment` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentAction {
    Created,
    Updated(u64),
    /// The comment already said this.
    Unchanged(u64),
}

/// The comment's text: the marker, then the Markdown report.
pub fn comment_body(markdown: &str) -> String {
    format!("{MARKER}\n{markdown}")
}

/// baton's comment among `comments` (the oldest one carrying the marker).
pub fn find_comment(comments: &[IssueComment]) -> Option<&IssueComment> {
    comments.iter().find(|c| {
        c.body
            .as_deref()
            .is_some_and(|b| b.trim_start().starts_with(MARKER))
    })
}

/// Create baton's comment on pull request `pr`, or edit the one there.
pub fn upsert_comment(
    client: &Client,
    repo: &str,
    pr: u64,
    markdown: &str,
) -> Result<CommentAction, GithubError> {
    let body = comment_body(markdown);
    let comments = client.issue_comments(repo, pr)?;
    match find_comment(&comments) {
        Some(c) if c.body.as_deref() == Some(body.as_str()) => Ok(CommentAction::Unchanged(c.id)),
        Some(c) => {
            client.update_comment(repo, c.id, &body)?;
            Ok(CommentAction::Updated(c.id))
        }
        None => {
            client.create_comment(repo, pr, &body)?;
            Ok(CommentAction::Created)
        }
    }
}

/// The status a report sets: `success` or `failure`, with a one-line description
/// (GitHub keeps 140 characters).
pub fn status_of(report: &CheckReport) -> (&'static str, String) {
    let failing: usize = report.change.iter().filter(|v| !v.passed).count()
        + report
            .models
            .values()
            .flatten()
            .filter(|v| !v.passed)
            .count()
        + report
            .transitions
            .iter()
            .map(|t| t.verdicts.iter().filter(|v| !v.passed).count())
            .sum::<usize>();
    let moves = report.transitions.len();
    if failing == 0 {
        (
            "success",
            format!("all gates pass ({moves} transition{})", plural(moves)),
        )
    } else {
        (
            "failure",
            format!(
                "{failing} gate{} failing over {moves} transition{}",
                plural(failing),
                plural(moves)
            ),
        )
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The page of this CI run, when it runs in GitHub Actions (the status links there).
pub fn actions_run_url() -> Option<String> {
    let v = |k: &str| std::env::var(k).ok().filter(|s| !s.is_empty());
    Some(format!(
        "{}/{}/actions/runs/{}",
        v("GITHUB_SERVER_URL")?,
        v("GITHUB_REPOSITORY")?,
        v("GITHUB_RUN_ID")?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marked_comment_is_found_and_others_ignored() {
        let c = |id, body: &str| IssueComment {
            id,
            body: Some(body.to_owned()),
        };
        let comments = vec![
            c(1, "LGTM"),
            c(2, "quoting <!-- baton:check --> in the middle"),
            c(3, &comment_body("## old report")),
            c(4, &comment_body("## a duplicate")),
        ];
        assert_eq!(find_comment(&comments).map(|c| c.id), Some(3));
        assert!(find_comment(&comments[..2]).is_none());
    }
}
