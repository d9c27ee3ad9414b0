//! Running the daemon: lock the state dir, clone for `--url`, run the controller on its own
//! thread (woken by ref changes, webhooks and the resync timer), serve HTTP, stop on signals.

use super::controller::{Controller, ControllerConfig, ControllerError};
use super::events::{Event, EventKind};
use super::http::{self, Published, Shared};
use super::state::{StateDir, StateError};
use super::view::{StatusView, Sync};
use super::watch::{self, Trigger, WatchError};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub controller: ControllerConfig,
    /// `--url`: the remote to clone (into `<state-dir>/repo.git`).
    pub url: Option<String>,
    pub state_dir: PathBuf,
    pub listen: String,
    pub once: bool,
    pub webhook_secret: Option<String>,
}

/// Errors that stop the daemon from starting (exit 2).
#[derive(Debug, Error)]
pub enum ServeError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Controller(#[from] ControllerError),
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error("--listen {addr}: {message}")]
    Listen { addr: String, message: String },
    #[error("runtime: {0}")]
    Runtime(String),
}

/// How `--once` ended.
#[derive(Debug, Clone)]
pub struct OnceReport {
    pub status: StatusView,
    pub failed: bool,
}

impl OnceReport {
    /// Exit 0 when nothing failed, is blocked, degraded or out of sync, and the head is valid.
    pub fn ok(&self) -> bool {
        !self.failed
            && self.status.errors.is_empty()
            && self.status.environments.iter().all(|e| {
                e.models.iter().all(|m| {
                    !matches!(
                        m.sync,
                        Sync::Blocked | Sync::Degraded | Sync::OutOfSync | Sync::Diverged
                    )
                })
            })
    }
}

/// The clone directory used with `--url`.
pub fn clone_dir(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join("repo.git")
}

fn open(cfg: &ServeConfig, stop: Arc<AtomicBool>) -> Result<Controller, ServeError> {
    let dir = StateDir::open(&cfg.state_dir)?;
    if let Some(url) = &cfg.url {
        watch::ensure_clone(url, &cfg.controller.repo, &cfg.controller.branch)?;
    }
    Ok(Controller::new(cfg.controller.clone(), dir, stop)?)
}

/// `--once`: one pass, then exit.
pub fn once(cfg: &ServeConfig) -> Result<OnceReport, ServeError> {
    let mut c = open(cfg, Arc::new(AtomicBool::new(false)))?;
    println!("deploying to {}", c.deploy_dir().display());
    let out = c.reconcile()?;
    c.set_ready();
    Ok(OnceReport {
        status: (*c.status).clone(),
        failed: out.failed,
    })
}

/// Few malloc arenas: the controller is one thread, HTTP a couple; fewer arenas, less RSS.
fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Give memory freed by a pass (parsed manifests, JSON buffers) back to the OS.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Run until SIGTERM / SIGINT. Prints `deploying to DIR` and `listening on http://ADDR`.
pub fn serve(cfg: ServeConfig) -> Result<(), ServeError> {
    limit_arenas();
    let stop = Arc::new(AtomicBool::new(false));
    let mut ctrl = open(&cfg, stop.clone())?;
    let (tx, rx) = mpsc::channel::<Trigger>();
    let shared = Arc::new(Shared {
        published: Mutex::new(Published::default()),
        events: ctrl.events.ring.clone(),
        trigger: Mutex::new(tx.clone()),
        secret: cfg.webhook_secret.clone().map(String::into_bytes),
        branch: cfg.controller.branch.clone(),
        remote: cfg.url.is_some(),
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ServeError::Runtime(e.to_string()))?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(&cfg.listen))
        .map_err(|e| ServeError::Listen {
            addr: cfg.listen.clone(),
            message: e.to_string(),
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServeError::Runtime(e.to_string()))?;

    // Local repositories: notify on ref files; the resync timer is the polling fallback.
    let _watcher = if cfg.url.is_none() {
        let repo = crate::repo::open(&cfg.controller.repo).map_err(ControllerError::from)?;
        match watch::watch_refs(repo.path(), repo.commondir(), tx.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("{e}; falling back to polling every --interval");
                None
            }
        }
    } else {
        None
    };

    println!(
        "baton serve: branch {} of {}",
        cfg.controller.branch,
        cfg.url
            .clone()
            .unwrap_or_else(|| cfg.controller.repo.display().to_string())
    );
    println!("deploying to {}", ctrl.deploy_dir().display());
    println!("listening on http://{addr}");
    tracing::info!("listening on http://{addr}");
    ctrl.events.push(Event::new(
        EventKind::Started,
        format!(
            "baton serve {} listening on http://{addr}",
            env!("CARGO_PKG_VERSION")
        ),
    ));

    let interval = cfg.controller.interval;
    let url = cfg.url.clone();
    let clone = cfg.controller.repo.clone();
    let branch = cfg.controller.branch.clone();
    let pub_shared = shared.clone();
    let ctl_stop = stop.clone();
    let worker = std::thread::Builder::new()
        .name("controller".into())
        .spawn(move || {
            let mut errors = 0u32;
            let mut wait = Duration::ZERO;
            let mut first = true;
            loop {
                let mut fetch_now = first && url.is_some();
                match rx.recv_timeout(wait) {
                    Ok(Trigger::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                    Ok(Trigger::Fetch) => fetch_now = true,
                    Ok(Trigger::Changed) => {}
                    Err(RecvTimeoutError::Timeout) => fetch_now |= url.is_some(),
                }
                // Coalesce a burst into one pass over the newest head.
                while let Ok(t) = rx.try_recv() {
                    match t {
                        Trigger::Stop => ctl_stop.store(true, Ordering::SeqCst),
                        Trigger::Fetch => fetch_now = true,
                        Trigger::Changed => {}
                    }
                }
                if ctl_stop.load(Ordering::SeqCst) {
                    break;
                }
                if fetch_now && !first {
                    if let Err(e) = watch::fetch(&clone, &branch) {
                        ctrl.events
                            .push(Event::new(EventKind::Failed, format!("fetch: {e}")));
                    }
                }
                first = false;
                match ctrl.reconcile() {
                    Ok(_) => {
                        errors = 0;
                        wait = interval;
                        if !ctrl.status.ready {
                            ctrl.set_ready();
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        wait = super::controller::backoff(interval, errors);
                        ctrl.metrics.failures_total += 1;
                        ctrl.events.push(Event::new(
                            EventKind::Failed,
                            format!(
                                "reconcile: {e} (retry in {})",
                                humantime::format_duration(wait)
                            ),
                        ));
                    }
                }
                trim_heap();
                {
                    let mut p = pub_shared
                        .published
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    p.status = ctrl.status.clone();
                    p.metrics = ctrl.metrics.clone();
                }
                if ctl_stop.load(Ordering::SeqCst) {
                    break;
                }
            }
            ctrl.events
                .push(Event::new(EventKind::Stopped, "baton serve stopped"));
        })
        .map_err(|e| ServeError::Runtime(e.to_string()))?;

    let app = http::router(shared.clone());
    let sig_stop = stop.clone();
    let sig_tx = tx.clone();
    rt.block_on(async move {
        let shutdown = async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
            tracing::info!("signal received: finishing the step in flight");
            sig_stop.store(true, Ordering::SeqCst);
            let _ = sig_tx.send(Trigger::Stop);
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!("http: {e}");
        }
    });
    let _ = tx.send(Trigger::Stop);
    let _ = worker.join();
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
