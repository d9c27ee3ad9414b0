//! Where artifact bytes come from: a relative path read from the git object at the release's
//! commit, a `file://` path, or an `https://` download with a timeout. Verification is the
//! target's job (it hashes while storing).

use super::release::{Release, ReleaseVersion};
use crate::registry::invariants::{artifact_location, ArtifactLocation};
use git2::{Oid, Repository};
use std::io::{Cursor, Read};
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ArtifactError {
    #[error("{model}@{version}: artifact {uri}: {message}")]
    Fetch {
        model: String,
        version: String,
        uri: String,
        message: String,
    },
    #[error("{model}@{version}: artifact {uri} refused: sha256 is {actual}, the manifest says {expected}")]
    Digest {
        model: String,
        version: String,
        uri: String,
        expected: String,
        actual: String,
    },
}

impl ArtifactError {
    pub fn fetch(release: &Release, v: &ReleaseVersion, message: impl Into<String>) -> Self {
        ArtifactError::Fetch {
            model: release.model.clone(),
            version: v.version.clone(),
            uri: v.uri.clone(),
            message: message.into(),
        }
    }
}

/// Opens the bytes of one version's artifact.
pub trait ArtifactSource {
    fn open(&self, release: &Release, v: &ReleaseVersion) -> Result<Box<dyn Read>, ArtifactError>;
}

/// The real source: git objects of the watched repository, local files, and HTTP(S).
pub struct Fetcher<'r> {
    pub repo: &'r Repository,
    pub timeout: Duration,
}

impl ArtifactSource for Fetcher<'_> {
    fn open(&self, release: &Release, v: &ReleaseVersion) -> Result<Box<dyn Read>, ArtifactError> {
        let err = |m: String| ArtifactError::fetch(release, v, m);
        match artifact_location(&v.uri).map_err(err)? {
            ArtifactLocation::Registry(rel) => {
                let path = crate::repo::join(&release.root, &rel);
                let bytes = read_git_file(self.repo, &release.commit, &path).map_err(err)?;
                Ok(Box::new(Cursor::new(bytes)))
            }
            ArtifactLocation::External => {
                if let Some(p) = v.uri.strip_prefix("file://") {
                    let f = std::fs::File::open(p).map_err(|e| err(format!("{p}: {e}")))?;
                    Ok(Box::new(f))
                } else if v.uri.starts_with("https://") || v.uri.starts_with("http://") {
                    let agent = ureq::AgentBuilder::new()
                        .timeout_connect(self.timeout)
                        .timeout(self.timeout)
                        .build();
                    let resp = agent.get(&v.uri).call().map_err(|e| err(e.to_string()))?;
                    Ok(Box::new(resp.into_reader()))
                } else {
                    Err(err(
                        "this scheme has no fetcher in the local target (use a relative path, file:// or https://)"
                            .into(),
                    ))
                }
            }
        }
    }
}

fn read_git_file(repo: &Repository, commit: &str, path: &str) -> Result<Vec<u8>, String> {
    let oid = Oid::from_str(commit).map_err(|e| e.to_string())?;
    let commit = repo.find_commit(oid).map_err(|e| e.to_string())?;
    match crate::repo::read_file(repo, &commit, path) {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err(format!(
            "no file {path} at commit {}",
            &commit.id().to_string()[..10]
        )),
        Err(e) => Err(e.to_string()),
    }
}
