//! Crash-safe filesystem primitives shared by the controller and the gates engine's caches:
//! atomic file writes (temp, fsync, rename, fsync dir), atomic symlink switches, sha256 of files.

use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A temp path beside `path`, unique to this process and call: `.<name>.tmp-<pid>-<n>`, so
/// two writers in one process (threads, or two judges) never share a temp file.
pub fn temp_beside(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// True for names made by [`temp_beside`] (left over by a crash; safe to delete).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp-")
}

/// fsync a directory so a rename inside it is durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Write `bytes` to `path` atomically: temp file, fsync, rename over, fsync the directory.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    atomic_write_with(path, bytes, true)
}

/// [`atomic_write`], leaving the directory fsync to the caller when `sync_dir` is false
/// (several renames in one directory, made durable by one fsync at the end).
pub fn atomic_write_with(path: &Path, bytes: &[u8], sync_dir: bool) -> io::Result<()> {
    let tmp = temp_beside(path);
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        // Leave nothing behind: the old file (if any) is intact, the temp file is useless.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if sync_dir {
        if let Some(dir) = path.parent() {
            fsync_dir(dir)?;
        }
    }
    Ok(())
}

/// [`atomic_write`] of what `fill` writes (buffered), without building it in memory first.
pub fn atomic_write_stream(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = temp_beside(path);
    {
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let mut w = io::BufWriter::with_capacity(1 << 16, f);
        fill(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Point the symlink `link` at `target` atomically: make a temp symlink, rename it over.
pub fn atomic_symlink(target: &Path, link: &Path) -> io::Result<()> {
    atomic_symlink_with(target, link, true)
}

/// [`atomic_symlink`], optionally leaving the directory fsync to the caller.
pub fn atomic_symlink_with(target: &Path, link: &Path, sync_dir: bool) -> io::Result<()> {
    let tmp = temp_beside(link);
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    fs::rename(&tmp, link)?;
    if sync_dir {
        if let Some(dir) = link.parent() {
            fsync_dir(dir)?;
        }
    }
    Ok(())
}

/// The one streaming sha256: everything `r` yields, hashed and written to `out` on the way, in
/// 1 MiB chunks. Returns the lower-case hex digest and the byte count.
pub fn hash_through(mut r: impl Read, mut out: impl Write) -> io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..k]);
        out.write_all(&buf[..k])?;
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

/// Streaming sha256 of a reader, as lower-case hex, and the byte count.
pub fn sha256_reader(r: impl Read) -> io::Result<(String, u64)> {
    hash_through(r, io::sink())
}

/// Streaming sha256 of a file.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    Ok(sha256_reader(File::open(path)?)?.0)
}

/// Copy `r` into a new file at `path` while hashing; fsyncs the file. Returns (sha256, bytes).
pub fn copy_hashing(r: impl Read, path: &Path) -> io::Result<(String, u64)> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let out = hash_through(r, &mut f)?;
    f.sync_all()?;
    Ok(out)
}

/// An I/O error as the end of a sentence ("no such file or directory"), without Rust's
/// `(os error 2)` suffix, for messages that already name the file.
pub fn io_sentence(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error ") {
                Some(i) => s[..i].to_lowercase(),
                None => s,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.json");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn a_failed_atomic_write_leaves_no_temp_file() {
        let d = tempfile::tempdir().unwrap();
        // A folder in the way: the rename fails.
        let p = d.path().join("index");
        fs::create_dir(&p).unwrap();
        assert!(atomic_write(&p, b"x").is_err());
        let names: Vec<_> = fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn temp_names_are_unique_per_call() {
        let p = Path::new("/x/requires-index");
        let (a, b) = (temp_beside(p), temp_beside(p));
        assert_ne!(a, b);
        for t in [a, b] {
            assert!(is_temp_name(&t.file_name().unwrap().to_string_lossy()));
            assert_eq!(t.parent(), p.parent());
        }
    }

    #[test]
    fn symlink_switch_is_a_rename() {
        let d = tempfile::tempdir().unwrap();
        let link = d.path().join("current");
        atomic_symlink(Path::new("a"), &link).unwrap();
        atomic_symlink(Path::new("b"), &link).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("b"));
        assert!(is_temp_name(
            &temp_beside(&link).file_name().unwrap().to_string_lossy()
        ));
    }

    #[test]
    fn sha256_of_known_bytes() {
        let (h, n) = sha256_reader(&b"test"[..]).unwrap();
        assert_eq!(
            h,
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert_eq!(n, 4);
    }
}
