//! The release store (docs/targets.md): `releases/<sha256>/` under a root folder holds one
//! verified build per folder, read-only, staged crash-safely (temp folder, hashed, renamed).
//!
//! A single-file artifact is stored under its own file name (the last segment of its URI), a
//! directory artifact as its files. A folder `releases/<sha>` exists only complete: it is
//! written beside, every file hashed while written and checked against the manifest, then
//! renamed into place and fsynced. Nothing here follows a symbolic link.

use super::TargetError;
use crate::daemon::artifact::{file_uri, ArtifactError, ArtifactSource};
use crate::daemon::release::{Release, ReleaseVersion};
use crate::fsutil::{copy_hashing, fsync_dir, is_temp_name, sha256_file, temp_beside};
use crate::manifest::version::{listing_digest, listing_problems, ArtifactFile};
use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The store's folder under its root.
pub const RELEASES: &str = "releases";

/// File identity used to skip re-hashing unchanged files: inode, size, mtime (s, ns), ctime.
pub(crate) type Stamp = (u64, u64, i64, i64, i64);

pub(crate) fn stamp_of(md: &fs::Metadata) -> Stamp {
    (
        md.ino(),
        md.size(),
        md.mtime(),
        md.mtime_nsec(),
        md.ctime_nsec() ^ md.ctime(),
    )
}

/// One folder of verified builds, `<root>/releases/<sha256>/`.
pub struct ReleaseStore {
    root: PathBuf,
    /// path -> (stamp, sha256) of stored files hashed before.
    hashes: HashMap<PathBuf, (Stamp, String)>,
    /// Files read to hash them since this store was made (the stamp cache's misses).
    hashed: u64,
    /// sha256 -> the file of a single-file build, as last verified or stored.
    files: HashMap<String, PathBuf>,
    /// sha256 -> what its folder held when last scanned.
    trees: HashMap<String, Tree>,
}

/// True for a lower-case hex sha256: the only names a release folder has.
pub fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The file name a single-file artifact is stored under: the last segment of its URI (of an
/// `http(s)://` URL, without its query or fragment). Refused when that is empty, `.`, `..`,
/// or holds a NUL or a `\`: the name is never guessed.
pub fn artifact_name(uri: &str) -> Result<&str, String> {
    let path = if uri.starts_with("https://") || uri.starts_with("http://") {
        uri.split(['?', '#']).next().unwrap_or(uri)
    } else {
        uri
    };
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.is_empty() || name == "." || name == ".." || name.contains(['\0', '\\']) {
        return Err(format!(
            "cannot store the artifact under a file name: the last segment of `{uri}` is `{}` (name the file in the URI)",
            name.escape_default()
        ));
    }
    Ok(name)
}

pub use crate::manifest::version::check_file_path;

/// Check a directory artifact's listing before anything is fetched: safe, unique paths,
/// no file inside another file's path, and the listing digest equal to `sha256`.
pub fn check_listing(files: &[ArtifactFile], sha256: &str) -> Result<(), String> {
    if let Some(first) = listing_problems(files).into_iter().next() {
        return Err(first);
    }
    let digest = listing_digest(files);
    if digest != sha256 {
        return Err(format!(
            "sha256 is not the digest of the listed files (the listing hashes to {digest})"
        ));
    }
    Ok(())
}

/// True when `p` is a folder itself, not a symbolic link to one.
pub fn is_real_dir(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_dir())
}

/// Make `p` a real folder: a symbolic link (or a file) in its place is removed (the link
/// itself, never what it points to) and a folder made.
pub fn ensure_real_dir(p: &Path) -> Result<(), TargetError> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_dir() => return Ok(()),
        Ok(_) => fs::remove_file(p).map_err(TargetError::io(p))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(TargetError::io(p)(e)),
    }
    fs::create_dir_all(p).map_err(TargetError::io(p))
}

/// Open the folder `p` itself (never through a symbolic link).
fn open_dir_nofollow(p: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY)
        .open(p)
}

/// Remove `p` and everything under it without following a symbolic link: a link is removed
/// as a link, read-only folders are made writable (through a descriptor opened without
/// following links) before they are emptied. A missing `p` is fine.
pub fn remove_tree(p: &Path) -> io::Result<()> {
    let md = match fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !md.file_type().is_dir() {
        return fs::remove_file(p);
    }
    if md.permissions().mode() & 0o700 != 0o700 {
        open_dir_nofollow(p)?.set_permissions(fs::Permissions::from_mode(0o700))?;
    }
    for e in fs::read_dir(p)? {
        remove_tree(&e?.path())?;
    }
    fs::remove_dir(p)
}

/// Put the folder `new` at `dst`: a rename when nothing is there, else an atomic exchange
/// (`renameat2` with `RENAME_EXCHANGE`), so `dst` never goes missing, after which what was
/// there — now at `new`, a temp name — is removed without following links (or left to
/// [`ReleaseStore::gc`] when that fails). Where the filesystem cannot exchange, what was there
/// is renamed aside first (a moment without `dst`).
fn replace_dir(new: &Path, dst: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    if fs::symlink_metadata(dst).is_err() {
        return fs::rename(new, dst);
    }
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other);
    let (a, b) = (c(new)?, c(dst)?);
    // SAFETY: two valid NUL-terminated paths; renameat2 only renames.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        let _ = remove_tree(new);
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if !matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
    ) {
        return Err(e);
    }
    let aside = temp_beside(dst);
    fs::rename(dst, &aside)?;
    fs::rename(new, dst)?;
    let _ = remove_tree(&aside);
    Ok(())
}

/// A temp folder removed on drop unless it was renamed into place.
struct TempDir(Option<PathBuf>);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = remove_tree(&p);
        }
    }
}

/// What a scan of a build folder found: the stamp of each of its folders (itself first),
/// taken before it was read, and its regular files (relative `/`-separated path, path).
/// While no folder's stamp changes, no entry was added, removed or renamed in it.
struct Tree {
    dirs: Vec<(PathBuf, Stamp)>,
    files: Vec<(String, PathBuf)>,
}

/// The regular files under `dir` with their metadata, or `None` when something else is there
/// (a symbolic link, a special file, a non-UTF-8 name).
fn scan(dir: &Path) -> Option<(Tree, Vec<fs::Metadata>)> {
    fn walk(dir: &Path, rel: &str, tree: &mut Tree, mds: &mut Vec<fs::Metadata>) -> Option<()> {
        let md = fs::symlink_metadata(dir).ok()?;
        if !md.file_type().is_dir() {
            return None;
        }
        tree.dirs.push((dir.to_path_buf(), stamp_of(&md)));
        for e in fs::read_dir(dir).ok()? {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            let path = e.path();
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            // DirEntry::metadata does not follow links.
            let md = e.metadata().ok()?;
            if md.file_type().is_dir() {
                walk(&path, &rel, tree, mds)?;
            } else if md.file_type().is_file() {
                tree.files.push((rel, path));
                mds.push(md);
            } else {
                return None;
            }
        }
        Some(())
    }
    let mut tree = Tree {
        dirs: Vec::new(),
        files: Vec::new(),
    };
    let mut mds = Vec::new();
    walk(dir, "", &mut tree, &mut mds)?;
    Some((tree, mds))
}

/// The files of `tree` with fresh metadata when none of its folders changed (no readdir);
/// `None` when one did, or a file is no longer a regular file.
fn rescan_unchanged(tree: &Tree) -> Option<Vec<fs::Metadata>> {
    for (dir, stamp) in &tree.dirs {
        let md = fs::symlink_metadata(dir).ok()?;
        if !md.file_type().is_dir() || stamp_of(&md) != *stamp {
            return None;
        }
    }
    tree.files
        .iter()
        .map(|(_, p)| {
            fs::symlink_metadata(p)
                .ok()
                .filter(|m| m.file_type().is_file())
        })
        .collect()
}

impl ReleaseStore {
    /// The store under `root` (`<root>/releases/`); nothing is read or made yet.
    pub fn new(root: &Path) -> Self {
        ReleaseStore {
            root: root.to_path_buf(),
            hashes: HashMap::new(),
            hashed: 0,
            files: HashMap::new(),
            trees: HashMap::new(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/releases`.
    pub fn releases(&self) -> PathBuf {
        self.root.join(RELEASES)
    }

    /// `<root>/releases/<sha>`: the folder of one build (a file inside it, or its files).
    pub fn release_dir(&self, sha: &str) -> PathBuf {
        self.releases().join(sha)
    }

    /// Where a staged version's bytes are: the file of a single-file artifact, the folder of
    /// a directory artifact. A build stored before under another file name (the same bytes
    /// registered again) keeps that name; a version that could not be stored gets its
    /// folder.
    pub fn path_of(&self, v: &ReleaseVersion) -> PathBuf {
        let dir = self.release_dir(&v.sha256);
        if !v.files.is_empty() {
            return dir;
        }
        if let Some(p) = self.files.get(&v.sha256) {
            return p.clone();
        }
        if let Ok(mut entries) = fs::read_dir(&dir) {
            if let (Some(Ok(e)), None) = (entries.next(), entries.next()) {
                return e.path();
            }
        }
        match artifact_name(&v.uri) {
            Ok(name) => dir.join(name),
            Err(_) => dir,
        }
    }

    /// [`ReleaseStore::path_of`] relative to the root: `releases/<sha>/<file>` or
    /// `releases/<sha>`.
    pub fn relative_path_of(&self, v: &ReleaseVersion) -> PathBuf {
        let p = self.path_of(v);
        p.strip_prefix(&self.root)
            .map(Path::to_path_buf)
            .unwrap_or(p)
    }

    /// The sha256 of a stored file, re-hashed only when its inode, size, mtime or ctime
    /// changed since the last time.
    fn digest(&mut self, path: &Path, md: &fs::Metadata) -> io::Result<String> {
        let stamp = stamp_of(md);
        if let Some((s, d)) = self.hashes.get(path) {
            if *s == stamp {
                return Ok(d.clone());
            }
        }
        let d = sha256_file(path)?;
        self.hashed += 1;
        self.hashes.insert(path.to_path_buf(), (stamp, d.clone()));
        Ok(d)
    }

    /// True when `releases/<sha>` is a real folder in a real `releases/` holding a complete
    /// build named `sha`: one regular file hashing to `sha`, or regular files whose listing
    /// digest is `sha`. A symbolic link or special file anywhere inside fails it.
    pub fn verified(&mut self, sha: &str) -> bool {
        let ok = self.check(sha);
        if !ok {
            self.files.remove(sha);
        }
        ok
    }

    fn check(&mut self, sha: &str) -> bool {
        if !is_digest(sha) || !is_real_dir(&self.releases()) {
            return false;
        }
        // Unchanged folders are not read again: their files' metadata is enough.
        let known = self.trees.get(sha).and_then(rescan_unchanged);
        let mds = match known {
            Some(mds) => mds,
            None => {
                self.trees.remove(sha);
                let Some((tree, mds)) = scan(&self.release_dir(sha)) else {
                    return false;
                };
                self.trees.insert(sha.to_owned(), tree);
                mds
            }
        };
        let tree = self.trees.remove(sha).expect("just scanned or known");
        let ok = self.matches(sha, &tree, &mds);
        self.trees.insert(sha.to_owned(), tree);
        ok
    }

    /// True when the files of `tree` (with metadata `mds`) are the build `sha`.
    fn matches(&mut self, sha: &str, tree: &Tree, mds: &[fs::Metadata]) -> bool {
        if let ([(rel, path)], [md]) = (tree.files.as_slice(), mds) {
            if !rel.contains('/') && matches!(self.digest(path, md), Ok(d) if d == sha) {
                self.files.insert(sha.to_owned(), path.clone());
                return true;
            }
        }
        if tree.files.is_empty() {
            return false;
        }
        let mut listing = Vec::with_capacity(tree.files.len());
        for ((rel, path), md) in tree.files.iter().zip(mds) {
            let Ok(d) = self.digest(path, md) else {
                return false;
            };
            listing.push(ArtifactFile {
                path: rel.clone(),
                sha256: d,
                size: md.size(),
            });
        }
        listing_digest(&listing) == sha
    }

    /// Make every version of `release` stored and verified (idempotent).
    pub fn stage(
        &mut self,
        release: &Release,
        source: &dyn ArtifactSource,
    ) -> Result<(), TargetError> {
        for v in &release.versions {
            self.stage_version(release, v, source)?;
        }
        Ok(())
    }

    /// Make `v` stored and verified: a build already stored and verified is not fetched
    /// again; anything else in its place (a modified build, a link) is removed (never
    /// followed) and the build fetched again. Any refusal leaves nothing behind.
    pub fn stage_version(
        &mut self,
        release: &Release,
        v: &ReleaseVersion,
        source: &dyn ArtifactSource,
    ) -> Result<(), TargetError> {
        let refuse = |m: String| TargetError::Artifact(ArtifactError::fetch(release, v, m));
        if !is_digest(&v.sha256) {
            return Err(refuse("sha256 is not 64 lower-case hex digits".into()));
        }
        // Checked before anything is fetched.
        let name = if v.files.is_empty() {
            Some(artifact_name(&v.uri).map_err(refuse)?.to_owned())
        } else {
            check_listing(&v.files, &v.sha256).map_err(refuse)?;
            let total: u64 = v.files.iter().map(|f| f.size).sum();
            if v.size.is_some_and(|s| s != total) {
                return Err(refuse(format!(
                    "size {} is not the sum of the listed files' sizes ({total})",
                    v.size.unwrap_or_default()
                )));
            }
            None
        };
        // Real folders only: a link in place of the root or of `releases/` is replaced (the
        // link, not its target), so nothing is written or deleted through it.
        ensure_real_dir(&self.root)?;
        let releases = self.releases();
        ensure_real_dir(&releases)?;
        if self.verified(&v.sha256) {
            return Ok(());
        }
        // Whatever is there (a modified build, perhaps the live one) stays until the new
        // one is complete and takes its place.
        let dir = self.release_dir(&v.sha256);
        self.forget(&dir);

        let mut tmp = TempDir(Some(temp_beside(&dir)));
        let t = tmp.0.clone().unwrap_or_default();
        fs::create_dir(&t).map_err(TargetError::io(&t))?;
        let mut written: Vec<(PathBuf, String)> = Vec::new();
        match &name {
            Some(name) => {
                let file = t.join(name);
                let reader = source.open(release, v)?;
                let (digest, n) = copy_hashing(reader, &file)
                    .map_err(|e| TargetError::Artifact(ArtifactError::from_io(release, v, &e)))?;
                if digest != v.sha256 {
                    return Err(ArtifactError::Digest {
                        model: release.model.clone(),
                        version: v.version.clone(),
                        uri: v.uri.clone(),
                        expected: v.sha256.clone(),
                    }
                    .into());
                }
                if let Some(size) = v.size.filter(|s| *s != n) {
                    return Err(size_mismatch(release, v, &v.uri, size, n).into());
                }
                written.push((Path::new(name).to_path_buf(), digest));
            }
            None => {
                let mut files: Vec<&ArtifactFile> = v.files.iter().collect();
                files.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
                for f in files {
                    let uri = file_uri(&v.uri, f);
                    let file = t.join(&f.path);
                    if let Some(parent) = file.parent() {
                        fs::create_dir_all(parent).map_err(TargetError::io(parent))?;
                    }
                    let reader = source.open_file(release, v, f)?;
                    let (digest, n) = copy_hashing(reader, &file).map_err(|e| {
                        let mut err = ArtifactError::from_io(release, v, &e);
                        set_uri(&mut err, &uri);
                        TargetError::Artifact(err)
                    })?;
                    if digest != f.sha256 {
                        return Err(ArtifactError::Digest {
                            model: release.model.clone(),
                            version: v.version.clone(),
                            uri,
                            expected: f.sha256.clone(),
                        }
                        .into());
                    }
                    if n != f.size {
                        return Err(size_mismatch(release, v, &uri, f.size, n).into());
                    }
                    written.push((PathBuf::from(&f.path), digest));
                }
            }
        }
        seal(&t).map_err(TargetError::io(&t))?;
        replace_dir(&t, &dir).map_err(TargetError::io(&dir))?;
        // In place: the temp path is gone (or holds what was replaced, removed already).
        tmp.0 = None;
        fsync_dir(&releases).map_err(TargetError::io(&releases))?;
        if let Some(name) = &name {
            self.files.insert(v.sha256.clone(), dir.join(name));
        }
        // Hashed while written: remember, so the next check does not read them again.
        for (rel, digest) in written {
            let p = dir.join(rel);
            if let Ok(md) = fs::symlink_metadata(&p) {
                self.hashes.insert(p, (stamp_of(&md), digest));
            }
        }
        Ok(())
    }

    /// Delete stored builds that are neither in `keep` nor among the `keep_newest` newest
    /// others (by the time each was stored), and temp folders left by a crash. Returns the
    /// digests removed. Never follows a symbolic link: a linked `releases/` is left alone, a
    /// link inside it is removed as a link, and a folder is emptied without following the
    /// links in it. Names that are not digests are not the store's and are left alone.
    pub fn gc(&mut self, keep: &[&str], keep_newest: usize) -> Result<Vec<String>, TargetError> {
        let releases = self.releases();
        if !is_real_dir(&releases) {
            return Ok(Vec::new());
        }
        let mut candidates: Vec<(std::time::SystemTime, String)> = Vec::new();
        for e in fs::read_dir(&releases).map_err(TargetError::io(&releases))? {
            let e = e.map_err(TargetError::io(&releases))?;
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            if is_temp_name(&name) {
                let p = e.path();
                remove_tree(&p).map_err(TargetError::io(&p))?;
                continue;
            }
            if !is_digest(&name) || keep.contains(&name.as_str()) {
                continue;
            }
            // DirEntry::metadata does not follow links: a link's own time.
            let t = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            candidates.push((t, name));
        }
        candidates.sort_by(|a, b| b.cmp(a));
        let mut removed = Vec::new();
        for (_, name) in candidates.into_iter().skip(keep_newest) {
            let p = releases.join(&name);
            remove_tree(&p).map_err(TargetError::io(&p))?;
            self.forget(&p);
            removed.push(name);
        }
        if !removed.is_empty() {
            fsync_dir(&releases).map_err(TargetError::io(&releases))?;
        }
        Ok(removed)
    }

    /// How many stored files were read to be hashed since this store was made: a check of
    /// unchanged builds reads none.
    pub fn files_hashed(&self) -> u64 {
        self.hashed
    }

    /// Drop what is remembered about files under `path` (removed, or about to be).
    pub fn forget(&mut self, path: &Path) {
        self.hashes.retain(|p, _| !p.starts_with(path));
        self.files.retain(|_, p| !p.starts_with(path));
        self.trees
            .retain(|_, t| !t.dirs.first().is_some_and(|(d, _)| d.starts_with(path)));
    }
}

/// The bytes read are not the manifest's `size` (`want`): refused without saying more than
/// which way they differ.
fn size_mismatch(
    release: &Release,
    v: &ReleaseVersion,
    uri: &str,
    want: u64,
    got: u64,
) -> ArtifactError {
    if got > want {
        return ArtifactError::TooLarge {
            model: release.model.clone(),
            version: v.version.clone(),
            uri: uri.to_owned(),
            limit: crate::daemon::artifact::SizeLimit::Manifest(want),
        };
    }
    ArtifactError::Truncated {
        model: release.model.clone(),
        version: v.version.clone(),
        uri: uri.to_owned(),
        short: crate::daemon::artifact::Short {
            expected: want,
            got,
        },
    }
}

fn set_uri(err: &mut ArtifactError, to: &str) {
    match err {
        ArtifactError::Fetch { uri, .. }
        | ArtifactError::Digest { uri, .. }
        | ArtifactError::TooLarge { uri, .. }
        | ArtifactError::Truncated { uri, .. } => *uri = to.to_owned(),
    }
}

/// Make a freshly written folder read-only and durable: files 0444, folders 0555 (deepest
/// first), every folder fsynced.
fn seal(dir: &Path) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let kind = e.file_type()?;
        let p = e.path();
        if kind.is_dir() {
            seal(&p)?;
        } else if kind.is_file() {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o444))?;
        }
    }
    let d = open_dir_nofollow(dir)?;
    d.sync_all()?;
    d.set_permissions(fs::Permissions::from_mode(0o555))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::release::test_release;
    use crate::fsutil::sha256_reader;
    use std::io::Read;

    /// Serves bytes by version label (`open`) or `label/path` (`open_file`), counting opens.
    #[derive(Default)]
    struct Bytes {
        content: HashMap<String, Vec<u8>>,
        opens: std::cell::Cell<usize>,
    }

    impl Bytes {
        fn get(&self, key: &str) -> Box<dyn Read> {
            self.opens.set(self.opens.get() + 1);
            Box::new(io::Cursor::new(
                self.content.get(key).cloned().unwrap_or_default(),
            ))
        }
    }

    impl ArtifactSource for Bytes {
        fn open(&self, _r: &Release, v: &ReleaseVersion) -> Result<Box<dyn Read>, ArtifactError> {
            Ok(self.get(&v.version))
        }

        fn open_file(
            &self,
            _r: &Release,
            v: &ReleaseVersion,
            f: &ArtifactFile,
        ) -> Result<Box<dyn Read>, ArtifactError> {
            Ok(self.get(&format!("{}/{}", v.version, f.path)))
        }
    }

    fn sha(b: &[u8]) -> String {
        sha256_reader(b).unwrap().0
    }

    /// A one-version release of a single file `model.onnx` holding `bytes`.
    fn single(label: &str, bytes: &[u8]) -> (Release, Bytes) {
        let mut r = test_release("m", &[(label, 'x', 100)]);
        r.versions[0].sha256 = sha(bytes);
        r.versions[0].uri = format!("artifacts/m/{label}/model.onnx");
        let mut src = Bytes::default();
        src.content.insert(label.into(), bytes.to_vec());
        (r, src)
    }

    /// A one-version release of a directory artifact with `files` (path, bytes).
    fn folder(label: &str, files: &[(&str, &[u8])]) -> (Release, Bytes) {
        let mut r = test_release("m", &[(label, 'x', 100)]);
        let mut src = Bytes::default();
        let v = &mut r.versions[0];
        v.uri = format!("artifacts/m/{label}/");
        v.files = files
            .iter()
            .map(|(p, b)| ArtifactFile {
                path: (*p).into(),
                sha256: sha(b),
                size: b.len() as u64,
            })
            .collect();
        v.sha256 = listing_digest(&v.files);
        v.size = Some(files.iter().map(|(_, b)| b.len() as u64).sum());
        for (p, b) in files {
            src.content.insert(format!("{label}/{p}"), b.to_vec());
        }
        (r, src)
    }

    /// Names in `dir` (empty when it does not exist).
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn a_single_file_is_stored_read_only_under_its_name_and_not_fetched_twice() {
        let d = tempfile::tempdir().unwrap();
        let mut s = ReleaseStore::new(d.path());
        let (r, src) = single("1", b"weights");
        s.stage(&r, &src).unwrap();
        let v = &r.versions[0];
        let p = s.path_of(v);
        assert_eq!(p, s.release_dir(&v.sha256).join("model.onnx"));
        assert_eq!(
            s.relative_path_of(v),
            Path::new("releases").join(&v.sha256).join("model.onnx")
        );
        assert_eq!(fs::read(&p).unwrap(), b"weights");
        let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), 0o444);
        assert_eq!(mode(&s.release_dir(&v.sha256)), 0o555);
        assert!(s.verified(&v.sha256));
        assert_eq!(names(&s.releases()), vec![v.sha256.clone()], "no temp left");
        s.stage(&r, &src).unwrap();
        assert_eq!(src.opens.get(), 1, "a verified build is not fetched again");
        // A fresh store (a restart) verifies by hashing, and still does not fetch.
        let mut again = ReleaseStore::new(d.path());
        again.stage(&r, &src).unwrap();
        assert_eq!(src.opens.get(), 1);
    }

    #[test]
    fn the_same_bytes_under_another_name_keep_the_stored_name() {
        let d = tempfile::tempdir().unwrap();
        let mut s = ReleaseStore::new(d.path());
        let (r, src) = single("1", b"weights");
        s.stage(&r, &src).unwrap();
        // Version 2: the same build registered again, its URI naming another file.
        let (mut r2, src2) = single("2", b"weights");
        r2.versions[0].uri = "https://models.example/m/2/weights.bin?sig=x".into();
        s.stage(&r2, &src2).unwrap();
        assert_eq!(src2.opens.get(), 0, "not fetched again");
        let v2 = &r2.versions[0];
        assert_eq!(s.path_of(v2), s.release_dir(&v2.sha256).join("model.onnx"));
        // A fresh store (no memory of it) finds the same file.
        let again = ReleaseStore::new(d.path());
        assert_eq!(again.path_of(v2), s.path_of(v2));
    }

    #[test]
    fn a_tampered_build_is_fetched_again() {
        let d = tempfile::tempdir().unwrap();
        let mut s = ReleaseStore::new(d.path());
        let (r, src) = single("1", b"weights");
        s.stage(&r, &src).unwrap();
        let v = &r.versions[0];
        let p = s.path_of(v);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&p, b"evil").unwrap();
        assert!(!s.verified(&v.sha256));
        // A refused fetch leaves the modified build where it was (nothing goes missing).
        let refused = Bytes::default();
        assert!(s.stage(&r, &refused).is_err());
        assert_eq!(fs::read(&p).unwrap(), b"evil");
        s.stage(&r, &src).unwrap();
        assert_eq!(src.opens.get(), 2);
        assert_eq!(fs::read(&p).unwrap(), b"weights");
        assert!(s.verified(&v.sha256));
        assert_eq!(
            names(&s.releases()),
            vec![v.sha256.clone()],
            "the replaced build is gone"
        );

        // An extra file in a build is tampering too.
        let dir = s.release_dir(&v.sha256);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(dir.join("extra"), b"x").unwrap();
        assert!(!s.verified(&v.sha256));
        s.stage(&r, &src).unwrap();
        assert_eq!(names(&dir), ["model.onnx"]);
    }

    #[test]
    fn a_directory_artifact_is_stored_file_by_file() {
        let d = tempfile::tempdir().unwrap();
        let mut s = ReleaseStore::new(d.path());
        let (r, src) = folder(
            "6",
            &[
                ("MLmodel", b"flavors: {}"),
                ("model.pkl", b"pickle"),
                ("data/vocab.txt", b"a\nb\n"),
            ],
        );
        s.stage(&r, &src).unwrap();
        let v = &r.versions[0];
        let dir = s.path_of(v);
        assert_eq!(dir, s.release_dir(&v.sha256));
        assert_eq!(names(&dir), ["MLmodel", "data", "model.pkl"]);
        assert_eq!(fs::read(dir.join("data/vocab.txt")).unwrap(), b"a\nb\n");
        assert_eq!(
            fs::metadata(dir.join("data")).unwrap().permissions().mode() & 0o777,
            0o555
        );
        assert!(s.verified(&v.sha256));
        s.stage(&r, &src).unwrap();
        assert_eq!(src.opens.get(), 3, "each file fetched once");

        // One modified file fails the whole build; staging again repairs it.
        let f = dir.join("data/vocab.txt");
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&f, b"c\n").unwrap();
        assert!(!s.verified(&v.sha256));
        s.stage(&r, &src).unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"a\nb\n");
    }

    #[test]
    fn wrong_digests_and_sizes_are_refused_and_leave_nothing() {
        let d = tempfile::tempdir().unwrap();
        let mut s = ReleaseStore::new(d.path());
        let expect_refused = |s: &mut ReleaseStore, r: &Release, src: &Bytes, want: &str| {
            let e = s.stage(r, src).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
            assert!(
                names(&s.releases()).is_empty(),
                "left behind: {:?}",
                names(&s.releases())
            );
        };

        let (mut r, src) = single("1", b"weights");
        r.versions[0].sha256 = sha(b"other");
        expect_refused(&mut s, &r, &src, "sha256 mismatch: expected");
        let e = s.stage(&r, &src).unwrap_err().to_string();
        assert!(
            !e.contains(&sha(b"weights")),
            "the fetched digest leaks: {e}"
        );

        let (mut r, src) = single("1", b"weights");
        r.versions[0].size = Some(100);
        expect_refused(&mut s, &r, &src, "shorter than the manifest's size of 100");

        let (mut r, mut src) = folder("2", &[("a", b"one"), ("b/c", b"two")]);
        src.content.insert("2/b/c".into(), b"TWO".to_vec());
        expect_refused(
            &mut s,
            &r,
            &src,
            "artifacts/m/2/b/c refused: sha256 mismatch",
        );
        r.versions[0].files[1].size = 2;
        r.versions[0].sha256 = listing_digest(&r.versions[0].files);
        r.versions[0].size = None;
        src.content.insert("2/b/c".into(), b"two".to_vec());
        // `two` is 3 bytes: past the listed size of 2 (the source here is not bounded, the
        // digest check catches it first).
        expect_refused(
            &mut s,
            &r,
            &src,
            "b/c refused: larger than the manifest's size of 2 bytes",
        );

        let (mut r, src) = folder("3", &[("a", b"one")]);
        r.versions[0].sha256 = "0".repeat(64);
        expect_refused(&mut s, &r, &src, "not the digest of the listed files");
        assert_eq!(src.opens.get(), 0, "refused before anything is fetched");

        let (mut r, src) = folder("4", &[("a", b"one")]);
        r.versions[0].size = Some(7);
        expect_refused(&mut s, &r, &src, "not the sum");
    }

    #[test]
    fn unsafe_names_and_paths_are_refused() {
        for uri in ["artifacts/m/", "https://h/x/..", "s3://b/.", "a/b\\..", ""] {
            assert!(artifact_name(uri).is_err(), "{uri:?}");
        }
        assert_eq!(
            artifact_name("https://h/m/model.onnx?sig=1#x"),
            Ok("model.onnx")
        );
        assert_eq!(artifact_name("model.bin"), Ok("model.bin"));
        assert_eq!(artifact_name("s3://b/k/model?.bin"), Ok("model?.bin"));
        for p in [
            "",
            "/etc/passwd",
            "a/../b",
            "./a",
            "a//b",
            "a/",
            "..",
            "a\0b",
        ] {
            assert!(check_file_path(p).is_err(), "{p:?}");
        }
        check_file_path("a/b.c/d").unwrap();

        let d = tempfile::tempdir().unwrap();
        let mut s = ReleaseStore::new(d.path());
        let (mut r, src) = folder("1", &[("a", b"one")]);
        r.versions[0].files[0].path = "../escape".into();
        r.versions[0].sha256 = listing_digest(&r.versions[0].files);
        let e = s.stage(&r, &src).unwrap_err().to_string();
        assert!(e.contains("`..`"), "{e}");
        let (r, src) = folder("2", &[("a", b"one"), ("a/b", b"two")]);
        let e = s.stage(&r, &src).unwrap_err().to_string();
        assert!(e.contains("also a folder"), "{e}");
        let (mut r, src) = folder("3", &[("a", b"one")]);
        let twice = r.versions[0].files[0].clone();
        r.versions[0].files.push(twice);
        r.versions[0].sha256 = listing_digest(&r.versions[0].files);
        r.versions[0].size = None;
        let e = s.stage(&r, &src).unwrap_err().to_string();
        assert!(e.contains("listed twice"), "{e}");
        let (mut r, src) = single("4", b"x");
        r.versions[0].uri = "https://h/models/".into();
        let e = s.stage(&r, &src).unwrap_err().to_string();
        assert!(e.contains("name the file in the URI"), "{e}");
        assert!(!d.path().join(RELEASES).exists() || names(&s.releases()).is_empty());
    }

    #[test]
    fn links_in_the_store_are_never_followed() {
        let d = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let precious = elsewhere.path().join("precious");
        fs::write(&precious, b"weights").unwrap();
        let mut s = ReleaseStore::new(d.path());
        let (r, src) = single("1", b"weights");
        let v = &r.versions[0];

        // A build that is a link to a folder holding the right bytes: not verified, and
        // replaced by a real folder without touching the link's target.
        fs::create_dir_all(s.releases()).unwrap();
        let other = elsewhere.path().join("build");
        fs::create_dir(&other).unwrap();
        fs::write(other.join("model.onnx"), b"weights").unwrap();
        std::os::unix::fs::symlink(&other, s.release_dir(&v.sha256)).unwrap();
        assert!(!s.verified(&v.sha256));
        s.stage(&r, &src).unwrap();
        assert!(is_real_dir(&s.release_dir(&v.sha256)));
        assert_eq!(fs::read(other.join("model.onnx")).unwrap(), b"weights");

        // A link inside a build fails it.
        let dir = s.release_dir(&v.sha256);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        fs::remove_file(dir.join("model.onnx")).unwrap();
        std::os::unix::fs::symlink(&precious, dir.join("model.onnx")).unwrap();
        assert!(!s.verified(&v.sha256));
        s.stage(&r, &src).unwrap();
        assert!(fs::symlink_metadata(dir.join("model.onnx"))
            .unwrap()
            .is_file());
        assert!(precious.exists());

        // `releases/` itself as a link: not verified, replaced, its target untouched.
        let real = d.path().join("old-releases");
        fs::rename(s.releases(), &real).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), s.releases()).unwrap();
        assert!(!s.verified(&v.sha256));
        assert_eq!(
            s.gc(&[], 0).unwrap(),
            Vec::<String>::new(),
            "a linked store is not collected"
        );
        s.stage(&r, &src).unwrap();
        assert!(is_real_dir(&s.releases()));
        assert_eq!(names(elsewhere.path()), ["build", "precious"]);
    }

    #[test]
    fn gc_keeps_the_kept_and_the_newest_and_never_follows_links() {
        let d = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let precious = elsewhere.path().join("precious");
        fs::write(&precious, b"keep me").unwrap();
        let mut s = ReleaseStore::new(d.path());
        let mut shas = Vec::new();
        for i in 0..6u8 {
            let (r, src) = single(&i.to_string(), &[i; 10]);
            s.stage(&r, &src).unwrap();
            shas.push(r.versions[0].sha256.clone());
            // Distinct times for "newest".
            std::thread::sleep(std::time::Duration::from_millis(15));
        }
        // A folder build with a link inside, an old link, a crash's temp folder, a stranger.
        let (r, src) = folder("f", &[("a", b"one")]);
        s.stage(&r, &src).unwrap();
        let fdir = s.release_dir(&r.versions[0].sha256);
        fs::set_permissions(&fdir, fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(&precious, fdir.join("link")).unwrap();
        let filetime_old = |p: &Path| {
            let t = libc::timespec {
                tv_sec: 1,
                tv_nsec: 0,
            };
            let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: a valid path and two valid timespecs; AT_SYMLINK_NOFOLLOW: the link.
            unsafe {
                libc::utimensat(
                    libc::AT_FDCWD,
                    c.as_ptr(),
                    [t, t].as_ptr(),
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            };
        };
        filetime_old(&fdir);
        let link = s.releases().join("e".repeat(64));
        std::os::unix::fs::symlink(elsewhere.path(), &link).unwrap();
        filetime_old(&link);
        let crash = temp_beside(&s.release_dir(&shas[0]));
        fs::create_dir(&crash).unwrap();
        fs::write(crash.join("partial"), b"x").unwrap();
        fs::create_dir(s.releases().join("lost+found")).unwrap();

        let removed = s.gc(&[&shas[0]], 3).unwrap();
        let mut left = names(&s.releases());
        left.retain(|n| n != "lost+found");
        let mut want = vec![
            shas[0].clone(),
            shas[3].clone(),
            shas[4].clone(),
            shas[5].clone(),
        ];
        want.sort();
        assert_eq!(left, want, "removed {removed:?}");
        assert!(precious.exists(), "deleted through a link");
        assert_eq!(names(elsewhere.path()), ["precious"]);
        assert!(s.releases().join("lost+found").exists());
        // What is gone is not remembered as verified.
        assert!(!s.verified(&shas[1]));
        assert!(s.verified(&shas[5]));
    }
}
