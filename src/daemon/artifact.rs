//! Where artifact bytes come from: a relative path read from the git object at the release's
//! commit, a `file://` path, or an `https://` download with a timeout. Verification is the
//! target's job (it hashes while storing).

use super::release::{Release, ReleaseVersion};
use crate::registry::invariants::{artifact_location, ArtifactLocation};
use git2::{Oid, Repository};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::sync::Arc;
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
    /// Tree listings (name -> object id) read so far; big trees such as `artifacts/` with one
    /// folder per model are parsed once instead of once per artifact.
    pub trees: &'r TreeCache,
}

/// A tree's entries: name -> (object id, is a regular file).
pub type Listing = Arc<HashMap<String, (Oid, bool)>>;

/// Tree id -> its listing.
pub type TreeCache = RefCell<HashMap<Oid, Listing>>;

impl ArtifactSource for Fetcher<'_> {
    fn open(&self, release: &Release, v: &ReleaseVersion) -> Result<Box<dyn Read>, ArtifactError> {
        let err = |m: String| ArtifactError::fetch(release, v, m);
        match artifact_location(&v.uri).map_err(err)? {
            ArtifactLocation::Registry(rel) => {
                let path = crate::repo::join(&release.root, &rel);
                let bytes = self.read_git_file(&release.commit, &path).map_err(err)?;
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

impl Fetcher<'_> {
    fn listing(&self, tree: Oid) -> Result<Listing, String> {
        if let Some(l) = self.trees.borrow().get(&tree) {
            return Ok(l.clone());
        }
        let t = self.repo.find_tree(tree).map_err(|e| e.to_string())?;
        let l: HashMap<String, (Oid, bool)> = t
            .iter()
            .filter_map(|e| {
                let blob = e.kind() == Some(git2::ObjectType::Blob) && e.filemode() != 0o120000;
                let tree = e.kind() == Some(git2::ObjectType::Tree);
                (blob || tree).then(|| (e.name().unwrap_or_default().to_owned(), (e.id(), blob)))
            })
            .collect();
        let l = Arc::new(l);
        self.trees.borrow_mut().insert(tree, l.clone());
        Ok(l)
    }

    /// The regular file at `path` in `commit`, walking cached tree listings.
    fn read_git_file(&self, commit: &str, path: &str) -> Result<Vec<u8>, String> {
        let oid = Oid::from_str(commit).map_err(|e| e.to_string())?;
        let c = self.repo.find_commit(oid).map_err(|e| e.to_string())?;
        let missing = || {
            format!(
                "no file {path} at commit {}",
                &commit[..commit.len().min(10)]
            )
        };
        let mut tree = c.tree_id();
        let parts: Vec<&str> = path.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let (id, is_blob) = *self.listing(tree)?.get(*part).ok_or_else(missing)?;
            if i + 1 == parts.len() {
                if !is_blob {
                    return Err(missing());
                }
                let blob = self.repo.find_blob(id).map_err(|e| e.to_string())?;
                return Ok(blob.content().to_vec());
            }
            if is_blob {
                return Err(missing());
            }
            tree = id;
        }
        Err(missing())
    }
}
