//! `s3://` and `gs://` artifacts through the object_store crate: one store per bucket, built
//! once from each store's standard environment, driven by a small tokio runtime of its own.
//!
//! Credentials and endpoints come from the environment the way the stores' own tools read it
//! (docs/targets.md "Artifact sources"): `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL` (S3-compatible stores),
//! `AWS_ALLOW_HTTP`, shared profiles (`AWS_PROFILE`, [`super::aws_profile`]), web identity and
//! container credentials, the instance metadata service
//! unless `AWS_EC2_METADATA_DISABLED=true`, and `AWS_MAX_ATTEMPTS`; for Google Cloud Storage
//! `GOOGLE_APPLICATION_CREDENTIALS` or `GOOGLE_SERVICE_ACCOUNT`, else the metadata server.

use super::stream::ChunkReader;
use object_store::aws::AmazonS3Builder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientConfigKey, ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use thiserror::Error;

/// A directory artifact lists at most this many objects (a manifest holds far fewer).
pub const MAX_LISTING: usize = 10_000;

/// The object stores baton reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    S3,
    Gs,
}

impl Scheme {
    pub fn prefix(self) -> &'static str {
        match self {
            Scheme::S3 => "s3://",
            Scheme::Gs => "gs://",
        }
    }
}

/// `s3://bucket/key` or `gs://bucket/key`, split (the key as written, not percent-decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectUri<'a> {
    pub scheme: Scheme,
    pub bucket: &'a str,
    /// Empty for the bucket's root; ends in `/` for a folder.
    pub key: &'a str,
}

impl ObjectUri<'_> {
    pub fn is_folder(&self) -> bool {
        self.key.is_empty() || self.key.ends_with('/')
    }
}

/// True when `uri` names an object store this module reads.
pub fn is_object_uri(uri: &str) -> bool {
    uri.starts_with("s3://") || uri.starts_with("gs://")
}

/// Split an `s3://` or `gs://` URI. Bucket names are DNS-like (letters, digits, `.`, `-`,
/// `_`); keys must not hold empty, `.` or `..` segments.
pub fn parse_object_uri(uri: &str) -> Result<ObjectUri<'_>, RemoteError> {
    let bad = |reason: &str| RemoteError::Uri {
        uri: uri.to_owned(),
        reason: reason.to_owned(),
    };
    let (scheme, rest) = if let Some(r) = uri.strip_prefix("s3://") {
        (Scheme::S3, r)
    } else if let Some(r) = uri.strip_prefix("gs://") {
        (Scheme::Gs, r)
    } else {
        return Err(bad("not an s3:// or gs:// URI"));
    };
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(bad("no bucket name"));
    }
    if bucket.len() > 222
        || !bucket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(bad(
            "a bucket name is letters, digits, `.`, `-` and `_` only",
        ));
    }
    let segments = key.strip_suffix('/').unwrap_or(key);
    if !segments.is_empty()
        && segments
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(bad(
            "the key must not contain empty, `.` or `..` path segments",
        ));
    }
    if key.contains(['?', '#']) || key.bytes().any(|b| b.is_ascii_control()) {
        return Err(bad(
            "the key must not contain `?`, `#` or control characters",
        ));
    }
    Ok(ObjectUri {
        scheme,
        bucket,
        key,
    })
}

#[derive(Debug, Error)]
pub enum RemoteError {
    #[error("{uri}: {reason}")]
    Uri { uri: String, reason: String },
    #[error("cannot set up the {store} client: {message}")]
    Config {
        store: &'static str,
        message: String,
    },
    #[error("no such object")]
    NotFound,
    #[error("{0}")]
    Request(String),
    #[error("no answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("cannot start the fetch runtime: {0}")]
    Runtime(String),
    #[error("the prefix holds more than {MAX_LISTING} objects")]
    TooMany,
}

impl From<object_store::Error> for RemoteError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => RemoteError::NotFound,
            other => RemoteError::Request(request_message(&other)),
        }
    }
}

/// An object_store error without its long source chain repeated: the first line of each
/// distinct cause, joined.
fn request_message(e: &object_store::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        let line = err.to_string();
        let line = line.lines().next().unwrap_or_default().to_owned();
        if !parts.iter().any(|p| p.contains(&line)) {
            parts.push(line);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// One object opened for reading: its size (from the response) and its bytes.
pub struct RemoteObject {
    pub size: u64,
    pub reader: ChunkReader,
}

/// One object of a listed prefix: its path below the prefix and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub path: String,
    pub size: u64,
}

/// The object stores, built once per (scheme, bucket) and reused for every request.
pub struct Remote {
    /// Bounds connecting, each wait for an answer or for more data, and retries.
    timeout: Duration,
    /// The variables stores are configured from; `None`: the process environment.
    env: Option<Vec<(String, String)>>,
    runtime: OnceLock<tokio::runtime::Runtime>,
    stores: Mutex<HashMap<(Scheme, String), Arc<dyn ObjectStore>>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// Stores configured from the process environment. Nothing is started until the first
    /// request.
    pub fn new(timeout: Duration) -> Self {
        Remote {
            timeout: timeout.max(Duration::from_millis(100)),
            env: None,
            runtime: OnceLock::new(),
            stores: Mutex::new(HashMap::new()),
        }
    }

    /// Stores configured from `env` instead of the process environment (for tests and
    /// benchmarks that point at a local S3-compatible server).
    pub fn with_env(timeout: Duration, env: Vec<(String, String)>) -> Self {
        let mut r = Remote::new(timeout);
        r.env = Some(env);
        r
    }

    fn handle(&self) -> Result<tokio::runtime::Handle, RemoteError> {
        if let Some(rt) = self.runtime.get() {
            return Ok(rt.handle().clone());
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("baton-fetch")
            .enable_all()
            .build()
            .map_err(|e| RemoteError::Runtime(e.to_string()))?;
        Ok(self.runtime.get_or_init(|| rt).handle().clone())
    }

    fn store(&self, scheme: Scheme, bucket: &str) -> Result<Arc<dyn ObjectStore>, RemoteError> {
        let mut stores = self.stores.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = stores.get(&(scheme, bucket.to_owned())) {
            return Ok(s.clone());
        }
        let store = match &self.env {
            Some(env) => build_store(scheme, bucket, self.timeout, env)?,
            None => {
                let env: Vec<(String, String)> = std::env::vars().collect();
                build_store(scheme, bucket, self.timeout, &env)?
            }
        };
        stores.insert((scheme, bucket.to_owned()), store.clone());
        Ok(store)
    }

    /// How long one request may take with its retries before it is given up.
    fn request_deadline(&self) -> Duration {
        self.timeout * 3
    }

    /// Start reading the object `uri` names; returns once the store answered (with the
    /// object's size), the bytes then stream as they are read.
    pub fn open(&self, uri: &str) -> Result<RemoteObject, RemoteError> {
        let u = parse_object_uri(uri)?;
        if u.is_folder() {
            return Err(RemoteError::Uri {
                uri: uri.to_owned(),
                reason: "names a folder, not an object".into(),
            });
        }
        let path = ObjectPath::parse(u.key).map_err(|e| RemoteError::Uri {
            uri: uri.to_owned(),
            reason: e.to_string(),
        })?;
        let store = self.store(u.scheme, u.bucket)?;
        let rt = self.handle()?;
        let deadline = self.request_deadline();
        let answer = rt.spawn(async move {
            match tokio::time::timeout(deadline, store.get(&path)).await {
                Err(_) => Err(RemoteError::Timeout(deadline)),
                Ok(r) => r.map_err(RemoteError::from),
            }
        });
        let got = wait(&rt, answer)?;
        let size = got.meta.size;
        let reader = ChunkReader::spawn(&rt, got.into_stream(), self.timeout, |e| {
            request_message(&e)
        });
        Ok(RemoteObject { size, reader })
    }

    /// The objects below the folder `uri` names (recursively), sorted by path.
    pub fn list(&self, uri: &str) -> Result<Vec<Listed>, RemoteError> {
        use futures_util::StreamExt;
        let u = parse_object_uri(uri)?;
        let prefix = u.key.strip_suffix('/').unwrap_or(u.key);
        let path = ObjectPath::parse(prefix).map_err(|e| RemoteError::Uri {
            uri: uri.to_owned(),
            reason: e.to_string(),
        })?;
        let store = self.store(u.scheme, u.bucket)?;
        let rt = self.handle()?;
        let deadline = self.request_deadline();
        let strip = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let task = rt.spawn(async move {
            let mut out = Vec::new();
            let mut s = store.list(Some(&path));
            loop {
                let next = match tokio::time::timeout(deadline, s.next()).await {
                    Err(_) => return Err(RemoteError::Timeout(deadline)),
                    Ok(None) => break,
                    Ok(Some(m)) => m?,
                };
                if out.len() == MAX_LISTING {
                    return Err(RemoteError::TooMany);
                }
                out.push(next);
            }
            Ok(out)
        });
        let metas = wait(&rt, task)?;
        let mut out: Vec<Listed> = metas
            .into_iter()
            .filter_map(|m| {
                let full = m.location.as_ref();
                let rel = full.strip_prefix(strip.as_str())?;
                (!rel.is_empty()).then(|| Listed {
                    path: rel.to_owned(),
                    size: m.size,
                })
            })
            .collect();
        out.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        Ok(out)
    }
}

/// Block the calling (plain) thread until `task` on `rt` finishes.
fn wait<T: Send + 'static>(
    rt: &tokio::runtime::Handle,
    task: tokio::task::JoinHandle<Result<T, RemoteError>>,
) -> Result<T, RemoteError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(task.await);
    });
    match rx.recv() {
        Ok(Ok(r)) => r,
        Ok(Err(join)) => Err(RemoteError::Runtime(join.to_string())),
        Err(_) => Err(RemoteError::Runtime("the fetch runtime stopped".into())),
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // Never blocks, so dropping is safe from any thread.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn truthy(v: Option<&str>) -> bool {
    v.is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// Client options from the `AWS_`/`GOOGLE_` variables that name one (`AWS_ALLOW_HTTP`,
/// `AWS_PROXY_URL`...), then baton's timeouts: connecting and retries are bounded by
/// `timeout`; the transfer as a whole is not (a large artifact takes as long as it takes),
/// each wait for data is (see [`ChunkReader`]).
fn client_options(prefix: &str, timeout: Duration, env: &[(String, String)]) -> ClientOptions {
    let mut o = ClientOptions::new();
    for (k, v) in env {
        let Some(rest) = k.strip_prefix(prefix) else {
            continue;
        };
        if let Ok(key) = rest.to_ascii_lowercase().parse::<ClientConfigKey>() {
            o = o.with_config(key, v);
        }
    }
    o.with_timeout_disabled().with_connect_timeout(timeout)
}

/// Retries: `AWS_MAX_ATTEMPTS` tries in all (3 by default, as in the AWS SDKs), with backoff,
/// never for longer than `timeout` after the first.
fn retry_config(timeout: Duration, max_attempts: Option<&str>) -> RetryConfig {
    let attempts = max_attempts
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(3);
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: attempts - 1,
        retry_timeout: timeout,
    }
}

/// The store for one bucket, configured from `env` (the process environment).
fn build_store(
    scheme: Scheme,
    bucket: &str,
    timeout: Duration,
    env: &[(String, String)],
) -> Result<Arc<dyn ObjectStore>, RemoteError> {
    match scheme {
        Scheme::S3 => {
            let env = &super::aws_profile::with_profile(env);
            let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            let mut b = AmazonS3Builder::new();
            for (k, v) in env {
                if k.starts_with("AWS_") {
                    if let Ok(key) = k.to_ascii_lowercase().parse() {
                        b = b.with_config(key, v);
                    }
                }
            }
            let has_keys = get("AWS_ACCESS_KEY_ID").is_some();
            let other_source = [
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            ]
            .iter()
            .any(|k| get(k).is_some());
            if !has_keys
                && !other_source
                && !truthy(get("AWS_SKIP_SIGNATURE"))
                && truthy(get("AWS_EC2_METADATA_DISABLED"))
            {
                return Err(RemoteError::Config {
                    store: "S3",
                    message: "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a web identity or container credentials), or AWS_SKIP_SIGNATURE=true for a public bucket; AWS_EC2_METADATA_DISABLED forbids the instance metadata service".into(),
                });
            }
            b.with_bucket_name(bucket)
                .with_client_options(client_options("AWS_", timeout, env))
                .with_retry(retry_config(timeout, get("AWS_MAX_ATTEMPTS")))
                .build()
                .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
                .map_err(|e| RemoteError::Config {
                    store: "S3",
                    message: request_message(&e),
                })
        }
        Scheme::Gs => {
            let mut b = GoogleCloudStorageBuilder::new();
            for (k, v) in env {
                if k.starts_with("GOOGLE_") {
                    if let Ok(key) = k.to_ascii_lowercase().parse() {
                        b = b.with_config(key, v);
                    }
                }
            }
            b.with_bucket_name(bucket)
                .with_client_options(client_options("GOOGLE_", timeout, env))
                .with_retry(retry_config(timeout, None))
                .build()
                .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
                .map_err(|e| RemoteError::Config {
                    store: "Google Cloud Storage",
                    message: request_message(&e),
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_uris_split_into_bucket_and_key() {
        let u = parse_object_uri("s3://acme-models/fraud/6/model.onnx").unwrap();
        assert_eq!(
            u,
            ObjectUri {
                scheme: Scheme::S3,
                bucket: "acme-models",
                key: "fraud/6/model.onnx"
            }
        );
        assert!(!u.is_folder());
        let u = parse_object_uri("gs://b.example/fraud/6/").unwrap();
        assert_eq!(
            (u.scheme, u.bucket, u.key),
            (Scheme::Gs, "b.example", "fraud/6/")
        );
        assert!(u.is_folder());
        assert!(parse_object_uri("s3://bucket").unwrap().is_folder());
        for (bad, why) in [
            ("s3:///key", "no bucket"),
            ("s3://bu cket/k", "bucket name"),
            ("s3://user@host/k", "bucket name"),
            ("s3://b/a//c", "empty"),
            ("s3://b/a/../c", "`..`"),
            ("gs://b/./c", "`.`"),
            ("s3://b/k?versionId=1", "`?`"),
            ("https://b/k", "not an s3"),
        ] {
            let e = parse_object_uri(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn retries_follow_aws_max_attempts_within_the_timeout() {
        let t = Duration::from_secs(7);
        let r = retry_config(t, None);
        assert_eq!((r.max_retries, r.retry_timeout), (2, t));
        assert_eq!(retry_config(t, Some("1")).max_retries, 0);
        assert_eq!(retry_config(t, Some("0")).max_retries, 2);
        assert_eq!(retry_config(t, Some("lots")).max_retries, 2);
    }

    #[test]
    fn stores_build_from_the_environment_without_network() {
        let t = Duration::from_secs(5);
        let s3 = env(&[
            ("AWS_ACCESS_KEY_ID", "k"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("AWS_ALLOW_HTTP", "true"),
        ]);
        let store = build_store(Scheme::S3, "models", t, &s3).unwrap();
        assert!(store.to_string().contains("models"), "{store}");
        // Without AWS_ALLOW_HTTP an http:// endpoint is refused when used, not silently.
        let no_http: Vec<_> = s3
            .iter()
            .filter(|(k, _)| k != "AWS_ALLOW_HTTP")
            .cloned()
            .collect();
        let o = client_options("AWS_", t, &no_http);
        assert_eq!(
            o.get_config_value(&ClientConfigKey::AllowHttp).as_deref(),
            Some("false")
        );
        let o = client_options("AWS_", t, &s3);
        assert_eq!(
            o.get_config_value(&ClientConfigKey::AllowHttp).as_deref(),
            Some("true")
        );
        assert_eq!(o.get_config_value(&ClientConfigKey::Timeout), None);
        let e = build_store(
            Scheme::S3,
            "models",
            t,
            &env(&[("AWS_EC2_METADATA_DISABLED", "true")]),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("no AWS credentials"), "{e}");
        let gs = build_store(Scheme::Gs, "models", t, &env(&[])).unwrap();
        assert!(gs.to_string().contains("models"), "{gs}");
    }
}
