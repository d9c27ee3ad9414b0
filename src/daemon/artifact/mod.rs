//! Where artifact bytes come from, within bounds: a relative path read from the git object at
//! the release's commit, a `file://` path under an allowed root, an `s3://` or `gs://` object
//! ([`remote`]) or an HTTP(S) download ([`http`]) (docs/targets.md "Artifact sources").
//!
//! Every source stops at the manifest's `size` (when given) and at `--max-artifact-size`, and
//! refuses a body shorter than `size`; verification of the digest is the target's job (it
//! hashes while storing).

pub mod aws_profile;
pub mod describe;
pub mod http;
pub mod remote;
pub mod stream;

use super::release::{Release, ReleaseVersion};
use crate::manifest::version::ArtifactFile;
use crate::registry::invariants::{artifact_location, ArtifactLocation};
use git2::{Oid, Repository};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Cursor, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// `--max-artifact-size` when not given: 20 GiB.
pub const DEFAULT_MAX_SIZE: u64 = 20 << 30;

#[derive(Debug, Error)]
pub enum ArtifactError {
    #[error("{model}@{version}: artifact {uri}: {message}")]
    Fetch {
        model: String,
        version: String,
        uri: String,
        message: String,
    },
    /// The bytes read do not hash to the manifest's digest. What they do hash to is never
    /// said: it would let a manifest author learn the digest of any file the daemon can read.
    #[error("{model}@{version}: artifact {uri} refused: sha256 mismatch: expected {expected}")]
    Digest {
        model: String,
        version: String,
        uri: String,
        expected: String,
    },
    #[error("{model}@{version}: artifact {uri} refused: {limit}")]
    TooLarge {
        model: String,
        version: String,
        uri: String,
        limit: SizeLimit,
    },
    #[error("{model}@{version}: artifact {uri} refused: {short}")]
    Truncated {
        model: String,
        version: String,
        uri: String,
        short: Short,
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

    /// `err` as an artifact error: a [`SizeLimit`] or a [`Short`] carried by an I/O error
    /// (from [`Bounded`]) becomes [`ArtifactError::TooLarge`] or [`ArtifactError::Truncated`],
    /// anything else a fetch error.
    pub fn from_io(release: &Release, v: &ReleaseVersion, err: &std::io::Error) -> Self {
        let inner = err.get_ref();
        if let Some(limit) = inner.and_then(|e| e.downcast_ref::<SizeLimit>()) {
            return ArtifactError::TooLarge {
                model: release.model.clone(),
                version: v.version.clone(),
                uri: v.uri.clone(),
                limit: *limit,
            };
        }
        if let Some(short) = inner.and_then(|e| e.downcast_ref::<Short>()) {
            return ArtifactError::Truncated {
                model: release.model.clone(),
                version: v.version.clone(),
                uri: v.uri.clone(),
                short: *short,
            };
        }
        ArtifactError::fetch(release, v, err.to_string())
    }
}

/// A body that ended before the manifest's `size`: a truncated transfer, or the wrong object.
/// The message says which way the size differs, not what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("shorter than the manifest's size of {expected} bytes")]
pub struct Short {
    pub expected: u64,
    /// Bytes there were (kept for callers, not shown).
    pub got: u64,
}

/// Which bound an artifact went past.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SizeLimit {
    #[error("larger than the manifest's size of {0} bytes")]
    Manifest(u64),
    #[error("larger than --max-artifact-size ({})", show_size(*.0))]
    Max(u64),
}

/// A size for messages: `512 MiB`, `20 GiB`, or bytes.
pub fn show_size(n: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{} {unit}", n >> shift);
        }
    }
    format!("{n} bytes")
}

/// A size argument that does not parse.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("`{0}` is not a size (use bytes or a unit: 512MiB, 20GiB, 1.5GB)")]
pub struct SizeError(String);

/// Parse a human size: a number, optionally with a decimal part, and an optional unit: `B`,
/// decimal `kB`/`KB`, `MB`, `GB`, `TB` (powers of 1000) or binary `KiB`, `MiB`, `GiB`, `TiB`
/// (powers of 1024; a bare `K`, `M`, `G`, `T` means the same). Case-insensitive.
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let bad = || SizeError(s.to_owned());
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000_u64.pow(2),
        "gb" => 1000_u64.pow(3),
        "tb" => 1000_u64.pow(4),
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        _ => return Err(bad()),
    };
    let (whole, frac) = match num.split_once('.') {
        Some((w, f)) => (w, f),
        None => (num, ""),
    };
    if whole.is_empty() && frac.is_empty() || !frac.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let mut n = whole.checked_mul(mult).ok_or_else(bad)?;
    if !frac.is_empty() {
        let digits = frac.len().min(18) as u32;
        let f: u128 = frac[..digits as usize].parse().map_err(|_| bad())?;
        let part = f * u128::from(mult) / 10u128.pow(digits);
        n = n.checked_add(part as u64).ok_or_else(bad)?;
    }
    Ok(n)
}

/// A reader that fails once more than `limit` bytes come out of `inner`, and, when the limit
/// is the manifest's size, at an end before that size ([`Short`]).
pub struct Bounded<R> {
    inner: R,
    left: u64,
    limit: SizeLimit,
}

impl<R: Read> Bounded<R> {
    pub fn new(inner: R, limit: SizeLimit) -> Self {
        let left = match limit {
            SizeLimit::Manifest(n) | SizeLimit::Max(n) => n,
        };
        Bounded { inner, left, limit }
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Read one byte past the bound at most, to tell "exactly the limit" from "more".
        let room = usize::try_from(self.left.saturating_add(1))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..room])?;
        if n as u64 > self.left {
            return Err(std::io::Error::other(self.limit));
        }
        if let (0, SizeLimit::Manifest(expected)) = (n, self.limit) {
            if self.left > 0 {
                return Err(std::io::Error::other(Short {
                    expected,
                    got: expected - self.left,
                }));
            }
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// What the operator allows artifact reads to do (`--max-artifact-size`, `--allow-file-root`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactLimits {
    /// No artifact is read past this many bytes.
    pub max_size: u64,
    /// Folders `file://` artifacts may be read from: as given (absolute) and canonical.
    file_roots: Vec<(PathBuf, PathBuf)>,
}

impl Default for ArtifactLimits {
    fn default() -> Self {
        ArtifactLimits {
            max_size: DEFAULT_MAX_SIZE,
            file_roots: Vec::new(),
        }
    }
}

/// An `--allow-file-root` that cannot be used.
#[derive(Debug, Error)]
#[error("--allow-file-root {path}: {message}")]
pub struct FileRootError {
    pub path: PathBuf,
    pub message: String,
}

impl ArtifactLimits {
    /// Limits with `max_size` and the folders `roots` (each must exist and be a folder).
    pub fn new(max_size: u64, roots: &[PathBuf]) -> Result<Self, FileRootError> {
        let mut file_roots = Vec::new();
        for r in roots {
            let err = |message: String| FileRootError {
                path: r.clone(),
                message,
            };
            let canon = std::fs::canonicalize(r).map_err(|e| err(e.to_string()))?;
            if !canon.is_dir() {
                return Err(err("not a folder".into()));
            }
            let given = std::path::absolute(r).map_err(|e| err(e.to_string()))?;
            file_roots.push((given, canon));
        }
        Ok(ArtifactLimits {
            max_size,
            file_roots,
        })
    }

    /// The canonical allowed roots.
    pub fn file_roots(&self) -> impl Iterator<Item = &Path> {
        self.file_roots.iter().map(|(_, c)| c.as_path())
    }

    /// The tighter of the manifest's `size` and `max_size`.
    pub fn limit_for(&self, v: &ReleaseVersion) -> SizeLimit {
        match v.size {
            Some(n) if n <= self.max_size => SizeLimit::Manifest(n),
            _ => SizeLimit::Max(self.max_size),
        }
    }

    fn inside_canonical(&self, p: &Path) -> bool {
        self.file_roots.iter().any(|(_, c)| p.starts_with(c))
    }

    /// Open the file a `file://` URI names, only inside an allowed root. Refusals never say
    /// anything about the file's content; paths outside every root are refused before the
    /// filesystem is asked about them.
    pub fn open_file(&self, uri: &str) -> Result<File, String> {
        let rest = uri.strip_prefix("file://").ok_or("not a file:// URI")?;
        let path = rest.strip_prefix("localhost").unwrap_or(rest);
        if self.file_roots.is_empty() {
            return Err("file:// artifacts are not allowed: start baton serve with --allow-file-root DIR for the folders they may come from".into());
        }
        if !path.starts_with('/') {
            return Err("a file:// URI needs an absolute path (file:///PATH)".into());
        }
        let path = Path::new(path);
        if path.components().any(|c| c == Component::ParentDir) {
            return Err("a file:// path must not contain `..`".into());
        }
        let outside = || {
            format!(
                "{} is outside the folders allowed with --allow-file-root",
                path.display()
            )
        };
        let lexically_inside = self
            .file_roots
            .iter()
            .any(|(g, c)| path.starts_with(g) || path.starts_with(c));
        if !lexically_inside {
            return Err(outside());
        }
        let escaped = || {
            format!(
                "{} resolves (through a symbolic link) outside the folders allowed with --allow-file-root",
                path.display()
            )
        };
        let canon = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !self.inside_canonical(&canon) {
            return Err(escaped());
        }
        // The canonical path has no symbolic link left; O_NOFOLLOW refuses one swapped in
        // since, and the opened descriptor's own path is checked again.
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&canon)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let md = f
            .metadata()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if !md.is_file() {
            return Err(format!("{} is not a regular file", path.display()));
        }
        if let Ok(real) = std::fs::read_link(format!("/proc/self/fd/{}", fd_of(&f))) {
            if !self.inside_canonical(&real) {
                return Err(escaped());
            }
        }
        Ok(f)
    }
}

fn fd_of(f: &File) -> i32 {
    use std::os::fd::AsRawFd;
    f.as_raw_fd()
}

/// Opens the bytes of one version's artifact.
pub trait ArtifactSource {
    /// The bytes of a single-file artifact, bounded by its `size` and the maximum.
    fn open(&self, release: &Release, v: &ReleaseVersion) -> Result<Box<dyn Read>, ArtifactError>;
    /// The bytes of one file of a directory artifact (`v.uri` names the folder), bounded by
    /// the file's `size` and the maximum.
    fn open_file(
        &self,
        release: &Release,
        v: &ReleaseVersion,
        file: &ArtifactFile,
    ) -> Result<Box<dyn Read>, ArtifactError>;
}

/// The URI of `file` inside the directory artifact at `dir` (`dir` ends in `/` or gets one).
pub fn file_uri(dir: &str, file: &ArtifactFile) -> String {
    if dir.ends_with('/') {
        format!("{dir}{}", file.path)
    } else {
        format!("{dir}/{}", file.path)
    }
}

/// The real source: git objects of the watched repository, local files, object stores and
/// HTTP(S).
pub struct Fetcher<'r> {
    pub repo: &'r Repository,
    /// Bounds connecting and each wait for data of a download (not the whole transfer).
    pub timeout: Duration,
    /// The object stores (built once, kept by the controller).
    pub remote: &'r remote::Remote,
    /// Tree listings (name -> object id) read so far; big trees such as `artifacts/` with one
    /// folder per model are parsed once instead of once per artifact.
    pub trees: &'r TreeCache,
    pub limits: &'r ArtifactLimits,
}

/// A tree's entries: name -> (object id, is a regular file).
pub type Listing = Arc<HashMap<String, (Oid, bool)>>;

/// Tree id -> its listing.
pub type TreeCache = RefCell<HashMap<Oid, Listing>>;

impl ArtifactSource for Fetcher<'_> {
    fn open(&self, release: &Release, v: &ReleaseVersion) -> Result<Box<dyn Read>, ArtifactError> {
        self.open_uri(release, v, &v.uri, self.limits.limit_for(v))
    }

    fn open_file(
        &self,
        release: &Release,
        v: &ReleaseVersion,
        file: &ArtifactFile,
    ) -> Result<Box<dyn Read>, ArtifactError> {
        let limit = if file.size <= self.limits.max_size {
            SizeLimit::Manifest(file.size)
        } else {
            SizeLimit::Max(self.limits.max_size)
        };
        self.open_uri(release, v, &file_uri(&v.uri, file), limit)
    }
}

impl Fetcher<'_> {
    /// Open `uri` (the version's artifact, or one file of it) bounded by `limit`.
    fn open_uri(
        &self,
        release: &Release,
        v: &ReleaseVersion,
        uri: &str,
        limit: SizeLimit,
    ) -> Result<Box<dyn Read>, ArtifactError> {
        let err = |m: String| ArtifactError::Fetch {
            model: release.model.clone(),
            version: v.version.clone(),
            uri: uri.to_owned(),
            message: m,
        };
        let too_large = || ArtifactError::TooLarge {
            model: release.model.clone(),
            version: v.version.clone(),
            uri: uri.to_owned(),
            limit,
        };
        // A size the store announces is judged before any byte is read.
        let announced = |size: u64| match limit {
            _ if size > limit_bytes(limit) => Err(too_large()),
            SizeLimit::Manifest(expected) if size < expected => Err(ArtifactError::Truncated {
                model: release.model.clone(),
                version: v.version.clone(),
                uri: uri.to_owned(),
                short: Short {
                    expected,
                    got: size,
                },
            }),
            _ => Ok(()),
        };
        let reader: Box<dyn Read> = match artifact_location(uri).map_err(err)? {
            ArtifactLocation::Registry(rel) => {
                let path = crate::repo::join(&release.root, &rel);
                let bytes = self
                    .read_git_file(&release.commit, &path, limit)
                    .map_err(|e| match e {
                        GitRead::TooLarge => too_large(),
                        GitRead::Other(m) => err(m),
                    })?;
                Box::new(Cursor::new(bytes))
            }
            ArtifactLocation::External if uri.starts_with("file://") => {
                let f = self.limits.open_file(uri).map_err(err)?;
                Box::new(f)
            }
            ArtifactLocation::External
                if uri.starts_with("https://") || uri.starts_with("http://") =>
            {
                let got = http::open(uri, self.timeout).map_err(err)?;
                if let Some(n) = got.size {
                    announced(n)?;
                }
                got.reader
            }
            ArtifactLocation::External if remote::is_object_uri(uri) => {
                let got = self.remote.open(uri).map_err(|e| err(e.to_string()))?;
                announced(got.size)?;
                Box::new(got.reader)
            }
            ArtifactLocation::External => {
                return Err(err(
                    "this scheme has no fetcher (use a relative path, file://, s3://, gs:// or https://)"
                        .into(),
                ))
            }
        };
        Ok(Box::new(Bounded::new(reader, limit)))
    }
}

fn limit_bytes(l: SizeLimit) -> u64 {
    match l {
        SizeLimit::Manifest(n) | SizeLimit::Max(n) => n,
    }
}

/// Why a registry file could not be read.
enum GitRead {
    TooLarge,
    Other(String),
}

impl From<String> for GitRead {
    fn from(m: String) -> Self {
        GitRead::Other(m)
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

    /// The regular file at `path` in `commit`, walking cached tree listings; refused before
    /// it is loaded when the object is larger than `limit`.
    fn read_git_file(
        &self,
        commit: &str,
        path: &str,
        limit: SizeLimit,
    ) -> Result<Vec<u8>, GitRead> {
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
                    return Err(missing().into());
                }
                let odb = self.repo.odb().map_err(|e| e.to_string())?;
                let (size, _) = odb.read_header(id).map_err(|e| e.to_string())?;
                if size as u64 > limit_bytes(limit) {
                    return Err(GitRead::TooLarge);
                }
                let blob = self.repo.find_blob(id).map_err(|e| e.to_string())?;
                return Ok(blob.content().to_vec());
            }
            if is_blob {
                return Err(missing().into());
            }
            tree = id;
        }
        Err(missing().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn human_sizes() {
        for (s, n) in [
            ("0", 0),
            ("4096", 4096),
            ("512MiB", 512 << 20),
            ("512 MiB", 512 << 20),
            ("20GiB", 20 << 30),
            ("20g", 20 << 30),
            ("1.5GiB", 3 << 29),
            ("1GB", 1_000_000_000),
            ("2kB", 2000),
            ("10K", 10240),
            ("1TiB", 1 << 40),
            ("7b", 7),
        ] {
            assert_eq!(parse_size(s), Ok(n), "{s}");
        }
        for bad in [
            "",
            "MiB",
            "-1",
            "1.2.3",
            "12 parsecs",
            "1e9",
            "99999999999999999999",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(show_size(20 << 30), "20 GiB");
        assert_eq!(show_size(1000), "1000 bytes");
    }

    #[test]
    fn bounded_reads_stop_one_byte_past_the_limit() {
        let mut out = Vec::new();
        let mut r = Bounded::new(&[7u8; 100][..], SizeLimit::Manifest(100));
        assert_eq!(std::io::copy(&mut r, &mut out).unwrap(), 100);
        let endless = std::io::repeat(1);
        let mut r = Bounded::new(endless, SizeLimit::Max(1 << 20));
        let err = std::io::copy(&mut r, &mut std::io::sink()).unwrap_err();
        let limit = err.get_ref().and_then(|e| e.downcast_ref::<SizeLimit>());
        assert_eq!(limit, Some(&SizeLimit::Max(1 << 20)));
        assert_eq!(err.to_string(), "larger than --max-artifact-size (1 MiB)");
    }

    #[test]
    fn a_body_shorter_than_the_manifest_size_is_refused_at_its_end() {
        let mut out = Vec::new();
        let mut r = Bounded::new(&[7u8; 10][..], SizeLimit::Manifest(20));
        let err = std::io::copy(&mut r, &mut out).unwrap_err();
        let short = err.get_ref().and_then(|e| e.downcast_ref::<Short>());
        assert_eq!(
            short,
            Some(&Short {
                expected: 20,
                got: 10
            })
        );
        assert_eq!(
            err.to_string(),
            "shorter than the manifest's size of 20 bytes"
        );
        // Only the manifest's size is exact; the maximum is a cap.
        let mut r = Bounded::new(&[7u8; 10][..], SizeLimit::Max(20));
        assert_eq!(std::io::copy(&mut r, &mut std::io::sink()).unwrap(), 10);
    }

    #[test]
    fn the_manifest_size_bounds_below_the_maximum() {
        let l = ArtifactLimits::new(1000, &[]).unwrap();
        let mut v =
            crate::daemon::release::test_release("m", &[("1", 'a', 100)]).versions[0].clone();
        assert_eq!(l.limit_for(&v), SizeLimit::Max(1000));
        v.size = Some(10);
        assert_eq!(l.limit_for(&v), SizeLimit::Manifest(10));
        v.size = Some(5000);
        assert_eq!(l.limit_for(&v), SizeLimit::Max(1000));
    }

    #[test]
    fn file_uris_only_inside_allowed_roots() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("models");
        let secret_dir = d.path().join("private");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(&secret_dir).unwrap();
        let secret = secret_dir.join("key");
        std::fs::write(&secret, b"top secret").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(root.join("sub/model.bin"), b"weights").unwrap();
        std::os::unix::fs::symlink(&secret, root.join("sub/escape")).unwrap();
        std::os::unix::fs::symlink(root.join("sub/model.bin"), root.join("alias")).unwrap();
        let uri = |p: &Path| format!("file://{}", p.display());

        let none = ArtifactLimits::default();
        let e = none
            .open_file(&uri(&root.join("sub/model.bin")))
            .unwrap_err();
        assert!(e.contains("--allow-file-root"), "{e}");

        let l = ArtifactLimits::new(1 << 20, std::slice::from_ref(&root)).unwrap();
        let mut s = String::new();
        l.open_file(&uri(&root.join("sub/model.bin")))
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "weights");
        // A link that stays inside is fine; one that leaves is refused.
        l.open_file(&uri(&root.join("alias"))).unwrap();
        let e = l.open_file(&uri(&root.join("sub/escape"))).unwrap_err();
        assert!(e.contains("resolves"), "{e}");
        let e = l.open_file(&uri(&secret)).unwrap_err();
        assert!(e.contains("outside the folders allowed"), "{e}");
        let dotdot = format!("file://{}/sub/../../private/key", root.display());
        let e = l.open_file(&dotdot).unwrap_err();
        assert!(e.contains("`..`"), "{e}");
        let e = l.open_file("file://relative/path").unwrap_err();
        assert!(e.contains("absolute"), "{e}");
        let e = l.open_file(&uri(&root.join("sub"))).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        // A root that does not exist is refused at start.
        assert!(ArtifactLimits::new(1, &[d.path().join("nope")]).is_err());
    }
}
