//! GitHub pull-request reviews as approvals: the REST API (`GITHUB_API_URL`, token in
//! `GITHUB_TOKEN`), paginated on the API's own origin; a review counts only for the head it approved.

use super::{Approval, Source};
use crate::http_client::{self, Redirects};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;
use thiserror::Error;

/// The API base when `GITHUB_API_URL` is not set.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// At most this many pages of one listing are read.
const MAX_PAGES: usize = 100;

/// Which pull request's reviews count for a judged change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pull {
    /// A named pull request (`baton check --pr N`): its reviews count when the judged head is
    /// the pull request's current head or a merge of it.
    Number(u64),
    /// The pull request the judged commit came from (`baton serve --github`): the merged pull
    /// request whose `merge_commit_sha` is the judged commit, found through
    /// `GET /repos/{owner}/{repo}/commits/{sha}/pulls`; its reviews of its final head count.
    OfJudgedCommit,
}

/// Where forge (GitHub) reviews come from, when used.
#[derive(Debug, Clone)]
pub struct GithubSource {
    /// `owner/repo`.
    pub repo: String,
    pub pull: Pull,
    pub token: Option<String>,
    /// API base, e.g. [`DEFAULT_API_URL`]; pagination follows links on its origin only.
    pub api_url: String,
}

/// Why the forge's reviews could not be read (the check cannot produce a verdict).
#[derive(Debug, Error)]
pub enum GithubError {
    #[error("API URL `{url}`: {reason}")]
    ApiUrl { url: String, reason: String },
    #[error("GET {url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("GET {url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: Box<ureq::Transport>,
    },
    #[error("{what}: bad JSON: {source}")]
    Json {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{method} {url}: HTTP {status}: {body}")]
    Write {
        method: &'static str,
        url: String,
        status: u16,
        body: String,
    },
    #[error("{what}: more than {MAX_PAGES} pages")]
    TooManyPages { what: String },
    #[error(
        "{what}: the next page `{link}` is not on the API's origin {origin}; not followed \
         (the token goes to {origin} only)"
    )]
    ForeignLink {
        what: String,
        link: String,
        origin: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub login: String,
}

/// `GET /repos/{owner}/{repo}/pulls/{n}` and the items of `.../commits/{sha}/pulls` (the
/// fields baton reads).
#[derive(Debug, Clone, Deserialize)]
pub struct PullRequest {
    #[serde(default)]
    pub number: u64,
    pub user: User,
    pub head: Head,
    #[serde(default)]
    pub merged_at: Option<String>,
    #[serde(default)]
    pub merge_commit_sha: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Head {
    pub sha: String,
}

/// `GET /repos/{owner}/{repo}/pulls/{n}/reviews` items (the fields baton reads).
#[derive(Debug, Clone, Deserialize)]
pub struct Review {
    pub id: u64,
    pub user: Option<User>,
    pub state: String,
    #[serde(default)]
    pub commit_id: Option<String>,
}

/// `GET /repos/{owner}/{repo}/issues/{n}/comments` items (the fields baton reads).
#[derive(Debug, Clone, Deserialize)]
pub struct IssueComment {
    pub id: u64,
    #[serde(default)]
    pub body: Option<String>,
}

/// The reviews of one pull request.
#[derive(Debug, Clone)]
pub struct PullReviews {
    pub author: String,
    pub head_sha: String,
    pub reviews: Vec<Review>,
}

/// The commit being judged: its id and, for a merge commit, its parents.
#[derive(Debug, Clone, Default)]
pub struct JudgedHead {
    pub sha: String,
    pub merge_parents: Vec<String>,
}

/// What the forge adds to a change's evidence.
#[derive(Debug, Clone, Default)]
pub struct ForgeEvidence {
    /// The pull request's author (a GitHub login), an author of the change.
    pub author: Option<String>,
    pub approvals: Vec<Approval>,
    /// Why reviews did not count (for a failing verdict's `note:`).
    pub notes: Vec<String>,
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
}

/// A GitHub REST client bound to one API origin: the token is sent there only.
pub struct Client {
    base: String,
    /// `scheme://host[:port]` of the API base.
    origin: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(api_url: &str, token: Option<String>) -> Result<Client, GithubError> {
        let agent =
            http_client::agent(Duration::from_secs(30), Redirects::FollowWithoutCredentials);
        let base = api_url.trim_end_matches('/').to_owned();
        let origin = origin_of(&agent, &base).map_err(|reason| GithubError::ApiUrl {
            url: api_url.to_owned(),
            reason,
        })?;
        Ok(Client {
            base,
            origin,
            token,
            agent,
        })
    }

    fn get(&self, url: &str) -> Result<ureq::Response, GithubError> {
        let mut req = self
            .agent
            .get(url)
            .set("Accept", "application/vnd.github+json")
            .set("X-GitHub-Api-Version", "2022-11-28")
            .set("User-Agent", "baton");
        if let Some(t) = &self.token {
            // Defence in depth: every URL here is on the API's origin, and only there does the
            // token go.
            if origin_of(&self.agent, url).as_deref() == Ok(self.origin.as_str()) {
                req = req.set("Authorization", &format!("Bearer {t}"));
            }
        }
        match req.call() {
            Ok(r) => Ok(r),
            Err(ureq::Error::Status(status, r)) => {
                let body = r.into_string().unwrap_or_default();
                let body = body.trim();
                let cut = body.char_indices().nth(300).map_or(body.len(), |(i, _)| i);
                Err(GithubError::Status {
                    url: url.to_owned(),
                    status,
                    body: body[..cut].to_owned(),
                })
            }
            Err(ureq::Error::Transport(t)) => Err(GithubError::Transport {
                url: url.to_owned(),
                source: Box::new(t),
            }),
        }
    }

    /// `POST` or `PATCH` a JSON body on the API (statuses, comments); the token goes along.
    fn send(
        &self,
        method: &'static str,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<ureq::Response, GithubError> {
        let mut req = self
            .agent
            .request(method, url)
            .set("Accept", "application/vnd.github+json")
            .set("X-GitHub-Api-Version", "2022-11-28")
            .set("User-Agent", "baton");
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        match req.send_json(body) {
            Ok(r) => Ok(r),
            Err(ureq::Error::Status(status, r)) => {
                let body = r.into_string().unwrap_or_default();
                let body = body.trim();
                let cut = body.char_indices().nth(300).map_or(body.len(), |(i, _)| i);
                Err(GithubError::Write {
                    method,
                    url: url.to_owned(),
                    status,
                    body: body[..cut].to_owned(),
                })
            }
            Err(ureq::Error::Transport(t)) => Err(GithubError::Transport {
                url: url.to_owned(),
                source: Box::new(t),
            }),
        }
    }

    /// The comments of issue or pull request `n` (every page).
    pub fn issue_comments(&self, repo: &str, n: u64) -> Result<Vec<IssueComment>, GithubError> {
        self.get_all(
            &format!(
                "{}/repos/{repo}/issues/{n}/comments?per_page=100",
                self.base
            ),
            &format!("comments of {repo}#{n}"),
        )
    }

    /// A new comment on issue or pull request `n`.
    pub fn create_comment(&self, repo: &str, n: u64, body: &str) -> Result<(), GithubError> {
        let url = format!("{}/repos/{repo}/issues/{n}/comments", self.base);
        self.send("POST", &url, &serde_json::json!({ "body": body }))
            .map(|_| ())
    }

    /// Replace the text of comment `id`.
    pub fn update_comment(&self, repo: &str, id: u64, body: &str) -> Result<(), GithubError> {
        let url = format!("{}/repos/{repo}/issues/comments/{id}", self.base);
        self.send("PATCH", &url, &serde_json::json!({ "body": body }))
            .map(|_| ())
    }

    /// A commit status on `sha` (`state`: pending, success, failure, error).
    pub fn create_status(
        &self,
        repo: &str,
        sha: &str,
        state: &str,
        context: &str,
        description: &str,
        target_url: Option<&str>,
    ) -> Result<(), GithubError> {
        let url = format!("{}/repos/{repo}/statuses/{sha}", self.base);
        let mut body = serde_json::json!({
            "state": state,
            "context": context,
            "description": description,
        });
        if let Some(t) = target_url {
            body["target_url"] = serde_json::json!(t);
        }
        self.send("POST", &url, &body).map(|_| ())
    }

    fn get_json<T: DeserializeOwned>(&self, url: &str, what: &str) -> Result<T, GithubError> {
        self.get(url)?
            .into_json()
            .map_err(|source| GithubError::Json {
                what: what.to_owned(),
                source,
            })
    }

    /// Every item of a paginated listing, following `Link: rel="next"` on the API's origin
    /// only; a next page elsewhere is an error (an incomplete listing is never judged).
    fn get_all<T: DeserializeOwned>(&self, first: &str, what: &str) -> Result<Vec<T>, GithubError> {
        let mut out = Vec::new();
        let mut next = Some(first.to_owned());
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(GithubError::TooManyPages {
                    what: what.to_owned(),
                });
            }
            let resp = self.get(&url)?;
            if let Some(link) = resp.header("link").and_then(next_link) {
                next = Some(self.on_origin(&url, &link, what)?);
            }
            let page: Vec<T> = resp.into_json().map_err(|source| GithubError::Json {
                what: what.to_owned(),
                source,
            })?;
            out.extend(page);
        }
        Ok(out)
    }

    /// `link` resolved against `page`, when it is on the API's origin.
    fn on_origin(&self, page: &str, link: &str, what: &str) -> Result<String, GithubError> {
        let foreign = || GithubError::ForeignLink {
            what: what.to_owned(),
            link: link.to_owned(),
            origin: self.origin.clone(),
        };
        let resolved = self
            .agent
            .get(page)
            .request_url()
            .ok()
            .and_then(|u| u.as_url().join(link).ok())
            .ok_or_else(foreign)?;
        if origin_of(&self.agent, resolved.as_str()).as_deref() != Ok(self.origin.as_str()) {
            return Err(foreign());
        }
        Ok(resolved.to_string())
    }

    /// `GET /repos/{repo}/pulls/{n}`.
    pub fn pull(&self, repo: &str, n: u64) -> Result<PullRequest, GithubError> {
        self.get_json(
            &format!("{}/repos/{repo}/pulls/{n}", self.base),
            &format!("pull request {repo}#{n}"),
        )
    }

    /// All reviews of pull request `n`.
    pub fn reviews(&self, repo: &str, n: u64) -> Result<Vec<Review>, GithubError> {
        self.get_all(
            &format!("{}/repos/{repo}/pulls/{n}/reviews?per_page=100", self.base),
            &format!("reviews of {repo}#{n}"),
        )
    }

    /// The pull requests associated with commit `sha`
    /// (`GET /repos/{repo}/commits/{sha}/pulls`).
    pub fn pulls_of_commit(&self, repo: &str, sha: &str) -> Result<Vec<PullRequest>, GithubError> {
        self.get_all(
            &format!(
                "{}/repos/{repo}/commits/{sha}/pulls?per_page=100",
                self.base
            ),
            &format!("pull requests of {repo}@{}", short(sha)),
        )
    }

    /// Fetch the pull request and all its reviews.
    pub fn pull_reviews(&self, repo: &str, pr: u64) -> Result<PullReviews, GithubError> {
        let pull = self.pull(repo, pr)?;
        Ok(PullReviews {
            author: pull.user.login,
            head_sha: pull.head.sha,
            reviews: self.reviews(repo, pr)?,
        })
    }

    /// `SHA256:` fingerprints of a user's SSH signing keys
    /// (`GET /users/{login}/ssh_signing_keys`); empty when the API does not answer.
    pub fn signing_keys(&self, login: &str) -> Vec<String> {
        #[derive(Deserialize)]
        struct Key {
            key: String,
        }
        let url = format!("{}/users/{login}/ssh_signing_keys?per_page=100", self.base);
        let Ok(resp) = self.get(&url) else {
            return Vec::new();
        };
        let keys: Vec<Key> = resp.into_json().unwrap_or_default();
        keys.iter()
            .filter_map(|k| ssh_key::PublicKey::from_openssh(k.key.trim()).ok())
            .map(|k| k.fingerprint(ssh_key::HashAlg::Sha256).to_string())
            .collect()
    }
}

/// The origin (`scheme://host[:port]`, default ports left out) of an http(s) URL.
fn origin_of(agent: &ureq::Agent, url: &str) -> Result<String, String> {
    let parsed = agent.get(url).request_url().map_err(|e| e.to_string())?;
    let u = parsed.as_url();
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("scheme `{}` is not http or https", u.scheme()));
    }
    let origin = u.origin();
    if !origin.is_tuple() {
        return Err("no host".into());
    }
    Ok(origin.ascii_serialization())
}

/// The `rel="next"` URL of an RFC 8288 `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"")
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            })
    })
}

/// Approvals from reviews: the latest state-changing review per user (COMMENTED and PENDING
/// reviews do not change it) counts when it is APPROVED on `head_sha`.
pub fn approvals(pr: &PullReviews) -> (Vec<Approval>, Vec<String>) {
    let mut latest: HashMap<String, &Review> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for r in &pr.reviews {
        let Some(u) = &r.user else { continue };
        if !matches!(
            r.state.as_str(),
            "APPROVED" | "CHANGES_REQUESTED" | "DISMISSED"
        ) {
            continue;
        }
        let key = u.login.to_lowercase();
        if !latest.contains_key(&key) {
            order.push(key.clone());
        }
        // Reviews are listed oldest first; a later one replaces an earlier one.
        match latest.get(&key) {
            Some(prev) if prev.id > r.id => {}
            _ => {
                latest.insert(key, r);
            }
        }
    }
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for key in order {
        let r = latest[&key];
        let login = r.user.as_ref().map(|u| u.login.clone()).unwrap_or_default();
        if r.state != "APPROVED" {
            continue;
        }
        if r.commit_id.as_deref() != Some(pr.head_sha.as_str()) {
            notes.push(format!(
                "github:{login}: approved an earlier commit, not the head {}",
                short(&pr.head_sha)
            ));
            continue;
        }
        out.push(Approval {
            source: Source::Github {
                login: login.clone(),
            },
            identities: vec![format!("github:{login}")],
            key: None,
            linked_keys: Vec::new(),
            targets: Vec::new(),
            blobs: HashMap::new(),
        });
    }
    (out, notes)
}

/// Whether reviews of the pull request's head `pr_head` speak for the judged head: it is that
/// commit, or a merge commit one of whose parents it is (GitHub's `refs/pull/N/merge`, or a
/// merge commit that landed it).
pub fn speaks_for(pr_head: &str, judged: &JudgedHead) -> bool {
    judged.sha == pr_head || judged.merge_parents.iter().any(|p| p == pr_head)
}

/// The reviews that count for the change judged at `judged` (docs/approvals.md, "GitHub
/// reviews"), with the pull request's author and why others did not count.
pub fn gather(src: &GithubSource, judged: &JudgedHead) -> Result<ForgeEvidence, GithubError> {
    let client = Client::new(&src.api_url, src.token.clone())?;
    let repo = src.repo.as_str();
    let pull = match src.pull {
        Pull::Number(n) => {
            let pull = client.pull(repo, n)?;
            if !speaks_for(&pull.head.sha, judged) {
                return Ok(ForgeEvidence {
                    author: Some(pull.user.login),
                    approvals: Vec::new(),
                    notes: vec![format!(
                        "github: the head {} of {repo}#{n} is not the judged commit {} nor \
                         merged by it, so its reviews do not count",
                        short(&pull.head.sha),
                        short(&judged.sha)
                    )],
                });
            }
            pull
        }
        Pull::OfJudgedCommit => {
            let found = client
                .pulls_of_commit(repo, &judged.sha)?
                .into_iter()
                .find(|p| {
                    p.merged_at.is_some()
                        && p.merge_commit_sha.as_deref() == Some(judged.sha.as_str())
                });
            match found {
                Some(p) => p,
                None => {
                    return Ok(ForgeEvidence {
                        notes: vec![format!(
                            "github: no pull request of {repo} was merged as {}",
                            short(&judged.sha)
                        )],
                        ..ForgeEvidence::default()
                    })
                }
            }
        }
    };
    let pr = PullReviews {
        author: pull.user.login,
        head_sha: pull.head.sha,
        reviews: client.reviews(repo, pull.number)?,
    };
    let (mut approvals, notes) = approvals(&pr);
    for a in &mut approvals {
        if let Source::Github { login } = &a.source {
            a.linked_keys = client.signing_keys(login);
        }
    }
    Ok(ForgeEvidence {
        author: Some(pr.author),
        approvals,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(id: u64, login: &str, state: &str, sha: &str) -> Review {
        Review {
            id,
            user: Some(User {
                login: login.into(),
            }),
            state: state.into(),
            commit_id: Some(sha.into()),
        }
    }

    #[test]
    fn latest_review_per_user_on_head() {
        let pr = PullReviews {
            author: "erin".into(),
            head_sha: "abc".into(),
            reviews: vec![
                review(1, "alice", "APPROVED", "abc"),
                review(2, "alice", "CHANGES_REQUESTED", "abc"),
                review(3, "bob", "APPROVED", "abc"),
                review(4, "bob", "COMMENTED", "abc"),
                review(5, "carol", "APPROVED", "old"),
            ],
        };
        let (a, notes) = approvals(&pr);
        let ids: Vec<_> = a.iter().map(|a| a.identities[0].clone()).collect();
        assert_eq!(ids, vec!["github:bob"]);
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn link_header() {
        let h = r#"<https://api.github.com/x?page=2>; rel="next", <https://api.github.com/x?page=5>; rel="last""#;
        assert_eq!(
            next_link(h).as_deref(),
            Some("https://api.github.com/x?page=2")
        );
        assert_eq!(next_link(r#"<https://a/x?page=1>; rel="prev""#), None);
    }

    #[test]
    fn reviews_speak_for_the_head_or_a_merge_of_it() {
        let head = JudgedHead {
            sha: "h".into(),
            merge_parents: Vec::new(),
        };
        assert!(speaks_for("h", &head));
        assert!(!speaks_for("older", &head));
        let merge = JudgedHead {
            sha: "m".into(),
            merge_parents: vec!["base".into(), "h".into()],
        };
        assert!(speaks_for("h", &merge));
        assert!(!speaks_for("older", &merge));
    }

    #[test]
    fn pagination_stays_on_the_api_origin() {
        let c = Client::new("https://api.github.com/", None).unwrap();
        let page = "https://api.github.com/repos/a/b/pulls/1/reviews?per_page=100";
        assert_eq!(
            c.on_origin(page, "https://api.github.com:443/x?page=2", "r")
                .unwrap(),
            "https://api.github.com/x?page=2"
        );
        assert_eq!(
            c.on_origin(page, "/x?page=3", "r").unwrap(),
            "https://api.github.com/x?page=3"
        );
        for foreign in [
            "http://api.github.com/x?page=2",
            "https://api.github.com:8443/x?page=2",
            "https://evil.example/x?page=2",
            "https://api.github.com@evil.example/x",
            "https://api.github.com.evil.example/x",
            "//evil.example/x",
        ] {
            assert!(
                matches!(
                    c.on_origin(page, foreign, "r"),
                    Err(GithubError::ForeignLink { .. })
                ),
                "{foreign}"
            );
        }
        assert!(matches!(
            Client::new("file:///etc", None),
            Err(GithubError::ApiUrl { .. })
        ));
    }
}
