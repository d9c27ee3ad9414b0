//! What `baton register --artifact URI` records for a remote artifact: one object or HTTP(S)
//! file streamed through sha256, or every object below an `s3://`/`gs://` folder, each streamed.

use super::remote::{self, Remote, RemoteError};
use crate::manifest::version::{listing_digest, Artifact, ArtifactFile};
use std::io::Read;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DescribeError {
    #[error("{uri}: {error}")]
    Remote { uri: String, error: RemoteError },
    #[error("{uri}: {message}")]
    Http { uri: String, message: String },
    #[error("{uri}: reading: {error}")]
    Read { uri: String, error: std::io::Error },
    #[error("{uri}: no objects below this folder")]
    Empty { uri: String },
    #[error("{uri}: an http(s):// folder cannot be listed; register its files one by one, or copy them to s3:// or gs://")]
    NotListable { uri: String },
    #[error("{uri}: the object is {got} bytes but was listed with {listed}; it changed while registering")]
    Changed { uri: String, listed: u64, got: u64 },
    #[error(
        "{uri}: `{path}` cannot be a file of a directory artifact (no `.`, `..` or empty segments)"
    )]
    BadPath { uri: String, path: String },
}

/// Told how far a long transfer got.
pub trait Progress {
    /// The bytes to read in all, once known.
    fn total(&mut self, bytes: u64);
    /// `bytes` more were read.
    fn advance(&mut self, bytes: u64);
}

/// A [`Progress`] that shows nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn total(&mut self, _: u64) {}
    fn advance(&mut self, _: u64) {}
}

/// True for the URIs [`describe`] reads (the rest are local paths).
pub fn is_remote(uri: &str) -> bool {
    remote::is_object_uri(uri) || uri.starts_with("https://") || uri.starts_with("http://")
}

/// The artifact at `uri`: sha256 and size of one object, or, for an `s3://`/`gs://` URI that
/// ends in `/`, its files (each hashed) with the listing digest and their total size.
pub fn describe(
    uri: &str,
    remote: &Remote,
    timeout: Duration,
    progress: &mut dyn Progress,
) -> Result<Artifact, DescribeError> {
    let artifact = |sha256, size, files| Artifact {
        uri: uri.to_owned(),
        sha256,
        size: Some(size),
        format: None,
        files,
    };
    let rerr = |error| DescribeError::Remote {
        uri: uri.to_owned(),
        error,
    };
    if !remote::is_object_uri(uri) {
        if uri.ends_with('/') {
            return Err(DescribeError::NotListable {
                uri: uri.to_owned(),
            });
        }
        let got = super::http::open(uri, timeout).map_err(|message| DescribeError::Http {
            uri: uri.to_owned(),
            message,
        })?;
        if let Some(n) = got.size {
            progress.total(n);
        }
        let (sha, size) = hash(uri, got.reader, progress)?;
        return Ok(artifact(sha, size, None));
    }
    let parsed = remote::parse_object_uri(uri).map_err(rerr)?;
    if !parsed.is_folder() {
        let got = remote.open(uri).map_err(rerr)?;
        progress.total(got.size);
        let (sha, size) = hash(uri, got.reader, progress)?;
        return Ok(artifact(sha, size, None));
    }
    let listed = remote.list(uri).map_err(rerr)?;
    if listed.is_empty() {
        return Err(DescribeError::Empty {
            uri: uri.to_owned(),
        });
    }
    progress.total(listed.iter().map(|l| l.size).sum());
    let mut files = Vec::with_capacity(listed.len());
    let folder = if uri.ends_with('/') {
        uri.to_owned()
    } else {
        format!("{uri}/")
    };
    for l in listed {
        if l.path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(DescribeError::BadPath {
                uri: uri.to_owned(),
                path: l.path,
            });
        }
        let file_uri = format!("{folder}{}", l.path);
        let got = remote
            .open(&file_uri)
            .map_err(|error| DescribeError::Remote {
                uri: file_uri.clone(),
                error,
            })?;
        if got.size != l.size {
            return Err(DescribeError::Changed {
                uri: file_uri,
                listed: l.size,
                got: got.size,
            });
        }
        let (sha256, size) = hash(&file_uri, got.reader, progress)?;
        files.push(ArtifactFile {
            path: l.path,
            sha256,
            size,
        });
    }
    let total = files.iter().map(|f| f.size).sum();
    Ok(artifact(listing_digest(&files), total, Some(files)))
}

/// Digest and size of `r`, telling `progress` as it goes.
fn hash(
    uri: &str,
    r: impl Read,
    progress: &mut dyn Progress,
) -> Result<(String, u64), DescribeError> {
    let counting = Counting { inner: r, progress };
    crate::register::digest(counting).map_err(|error| DescribeError::Read {
        uri: uri.to_owned(),
        error,
    })
}

struct Counting<'p, R> {
    inner: R,
    progress: &'p mut dyn Progress,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_uris_are_told_from_local_paths() {
        for u in [
            "s3://b/k",
            "gs://b/k/",
            "https://h/x.onnx",
            "http://127.0.0.1:1/x",
        ] {
            assert!(is_remote(u), "{u}");
        }
        for p in ["model.onnx", "/tmp/s3://x", "file:///m.onnx", "./https://x"] {
            assert!(!is_remote(p), "{p}");
        }
    }

    #[test]
    fn an_https_folder_is_not_listed() {
        let r = Remote::new(Duration::from_secs(1));
        let e = describe("https://h/models/", &r, Duration::from_secs(1), &mut Quiet)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot be listed"), "{e}");
    }
}
