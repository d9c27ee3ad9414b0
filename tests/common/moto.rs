//! A moto S3 server on loopback for tests and benchmarks: `moto_server` found on PATH or in
//! the venv `.ci/run` makes, started on a free port, killed when dropped.
#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where `.ci/run` installs moto (`pip install "moto[server]"`).
pub fn venv_bin() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(cache.join("baton-ci/venv/bin"))
}

/// The `moto_server` program, if installed.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(venv_bin())
        .map(|d| d.join("moto_server"))
        .find(|p| p.is_file())
}

/// A running moto server.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Moto {
    /// A fresh server, or `None` (saying why) when moto is not installed. Under `CI=true` a
    /// missing moto fails instead: CI must not skip these tests silently.
    pub fn start() -> Option<Moto> {
        let Some(program) = find() else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("moto_server not found on PATH or in the .ci/run venv; CI installs it (pip install \"moto[server]\")");
            }
            eprintln!(
                "skipped: moto_server not found (pip install \"moto[server]\", or run .ci/run)"
            );
            return None;
        };
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut cmd = Command::new(&program);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe; the server dies with the thread that
            // started it even if this process is killed before `Drop` runs.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let endpoint = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        loop {
            if ureq::get(&format!("{endpoint}/")).call().is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("moto_server exited ({status}): {err}");
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                panic!("moto_server did not answer on {endpoint} within 60 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Its request log is not read: let it go nowhere rather than fill a pipe.
        drop(child.stderr.take());
        Some(Moto { child, endpoint })
    }

    /// The environment an S3 client needs to reach this server (dummy credentials).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    pub fn create_bucket(&self, bucket: &str) {
        ureq::put(&format!("{}/{bucket}", self.endpoint))
            .call()
            .unwrap_or_else(|e| panic!("create bucket {bucket}: {e}"));
    }

    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        ureq::put(&format!("{}/{bucket}/{key}", self.endpoint))
            .send_bytes(bytes)
            .unwrap_or_else(|e| panic!("put {bucket}/{key}: {e}"));
    }

    /// Upload `len` bytes from `body` without holding them in memory here, readable by a
    /// plain unsigned GET (public-read).
    pub fn put_stream(&self, bucket: &str, key: &str, len: u64, body: impl Read) {
        ureq::put(&format!("{}/{bucket}/{key}", self.endpoint))
            .set("Content-Length", &len.to_string())
            .set("x-amz-acl", "public-read")
            .send(body)
            .unwrap_or_else(|e| panic!("put {bucket}/{key}: {e}"));
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
