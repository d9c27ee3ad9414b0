//! GitHub pull-request reviews as approvals: the REST API (`GITHUB_API_URL`, token in
//! `GITHUB_TOKEN`), paginated; the latest review per user counts when APPROVED on the head sha.

use super::{Approval, Source};
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;

/// Where the reviews come from.
#[derive(Debug, Clone)]
pub struct Client {
    /// API base, e.g. `https://api.github.com`.
    pub api_url: String,
    pub token: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub login: String,
}

/// `GET /repos/{owner}/{repo}/pulls/{n}` (the fields baton reads).
#[derive(Debug, Clone, Deserialize)]
pub struct PullRequest {
    pub user: User,
    pub head: Head,
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

/// The reviews of one pull request.
#[derive(Debug, Clone)]
pub struct PullReviews {
    pub author: String,
    pub head_sha: String,
    pub reviews: Vec<Review>,
}

impl Client {
    fn get(&self, url: &str) -> Result<ureq::Response, String> {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .build();
        let mut req = agent
            .get(url)
            .set("Accept", "application/vnd.github+json")
            .set("X-GitHub-Api-Version", "2022-11-28")
            .set("User-Agent", "baton");
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        match req.call() {
            Ok(r) => Ok(r),
            Err(ureq::Error::Status(code, r)) => {
                let body = r.into_string().unwrap_or_default();
                Err(format!("GET {url}: HTTP {code}: {}", body.trim()))
            }
            Err(e) => Err(format!("GET {url}: {e}")),
        }
    }

    /// Fetch the pull request and all its reviews (following `Link: rel="next"`).
    pub fn pull_reviews(&self, repo: &str, pr: u64) -> Result<PullReviews, String> {
        let base = self.api_url.trim_end_matches('/');
        let pull: PullRequest = self
            .get(&format!("{base}/repos/{repo}/pulls/{pr}"))?
            .into_json()
            .map_err(|e| format!("pull request {repo}#{pr}: bad JSON: {e}"))?;
        let mut reviews = Vec::new();
        let mut next = Some(format!(
            "{base}/repos/{repo}/pulls/{pr}/reviews?per_page=100"
        ));
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > 100 {
                return Err(format!("{repo}#{pr}: more than 100 pages of reviews"));
            }
            let resp = self.get(&url)?;
            next = resp.header("link").and_then(next_link);
            let page: Vec<Review> = resp
                .into_json()
                .map_err(|e| format!("reviews of {repo}#{pr}: bad JSON: {e}"))?;
            reviews.extend(page);
        }
        Ok(PullReviews {
            author: pull.user.login,
            head_sha: pull.head.sha,
            reviews,
        })
    }
}

impl Client {
    /// `SHA256:` fingerprints of a user's SSH signing keys
    /// (`GET /users/{login}/ssh_signing_keys`); empty when the API does not answer.
    pub fn signing_keys(&self, login: &str) -> Vec<String> {
        #[derive(Deserialize)]
        struct Key {
            key: String,
        }
        let base = self.api_url.trim_end_matches('/');
        let url = format!("{base}/users/{login}/ssh_signing_keys?per_page=100");
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
                &pr.head_sha[..pr.head_sha.len().min(7)]
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
}
