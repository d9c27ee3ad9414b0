//! Wiring the daemon: refuse an unauthenticated non-loopback listen, lock the state dir, clone
//! for `--url`, start the watcher, the controller thread ([`super::runner`]) and HTTP; stop.

use super::controller::{Controller, ControllerConfig, ControllerError};
use super::events::{Event, EventKind};
use super::http::{self, ApiToken, Published, Shared};
use super::runner::{self, Alive, Live, Settings};
use super::state::{StateDir, StateError};
use super::view::{StatusView, SyncStatus};
use super::watch::{self, Trigger, WatchError};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
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
    /// `BATON_API_TOKEN`: `/api/*` needs `Authorization: Bearer <token>`.
    pub api_token: Option<String>,
    /// `BATON_ALERTMANAGER_TOKEN`: `POST /hooks/alertmanager` needs it (else `BATON_API_TOKEN`).
    pub alertmanager_token: Option<String>,
    /// `--insecure-listen`: serve a non-loopback `--listen` without a token (with a warning).
    pub insecure_listen: bool,
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
    #[error("--listen {addr} is not a loopback address and BATON_API_TOKEN is not set: set it to require `Authorization: Bearer <token>` on /api/*, or pass --insecure-listen to serve status and events to anyone who can reach the address")]
    Insecure { addr: String },
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
                        SyncStatus::Blocked
                            | SyncStatus::Degraded
                            | SyncStatus::OutOfSync
                            | SyncStatus::Diverged
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
    // SAFETY: mallopt only tunes the allocator; called before the other threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Raise the soft limit on open files to the hard limit (as Go's runtime does at start) and
/// return the limit in force: the HTTP server's connection cap is sized from it.
fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit read and write a plain struct for this process.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 1024;
        }
        if r.rlim_cur < r.rlim_max {
            let want = libc::rlimit {
                rlim_cur: r.rlim_max,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                r.rlim_cur = r.rlim_max;
            }
        }
        r.rlim_cur as u64
    }
}

/// True when every address `listen` names is a loopback address.
pub fn is_loopback(listen: &str) -> Result<bool, ServeError> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<_> = listen
        .to_socket_addrs()
        .map_err(|e| ServeError::Listen {
            addr: listen.to_owned(),
            message: e.to_string(),
        })?
        .collect();
    Ok(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()))
}

/// Run until SIGTERM / SIGINT. Prints `deploying to DIR` and `listening on http://ADDR`.
pub fn serve(cfg: ServeConfig) -> Result<(), ServeError> {
    limit_arenas();
    let nofile = raise_fd_limit();
    let token = cfg.api_token.as_deref().map(ApiToken::new);
    let loopback = is_loopback(&cfg.listen)?;
    if token.is_none() && !loopback && !cfg.insecure_listen {
        return Err(ServeError::Insecure {
            addr: cfg.listen.clone(),
        });
    }
    // One line per feature that is off or open, and why (docs/daemon.md#logs).
    for (level, line) in super::features::report(&cfg, loopback) {
        match level {
            super::features::Level::Warn => tracing::warn!(startup = true, "{line}"),
            super::features::Level::Info => tracing::info!(startup = true, "{line}"),
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut ctrl = open(&cfg, stop.clone())?;
    let (tx, rx) = mpsc::channel::<Trigger>();
    let alive = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared {
        published: Mutex::new(Published::default()),
        events: ctrl.events.ring.clone(),
        trigger: Mutex::new(tx.clone()),
        secret: cfg.webhook_secret.clone().map(String::into_bytes),
        branch: cfg.controller.branch.clone(),
        remote: cfg.url.is_some(),
        alive: alive.clone(),
        api_token: token,
        alerts: super::verify::alerts::AlertHook {
            token: cfg
                .alertmanager_token
                .as_deref()
                .or(cfg.api_token.as_deref())
                .map(ApiToken::new),
            inbox: Default::default(),
        },
    });
    let dashboard = super::dashboard::Config {
        repo: cfg.controller.repo.clone(),
        state_dir: cfg.state_dir.clone(),
        live: ctrl.events.live.clone(),
        registry_cache: ctrl.registry_cache(),
    };

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

    // Local repositories: notify on the branch's ref files; the resync timer is the fallback.
    let _watcher = if cfg.url.is_none() {
        let repo = crate::repo::open(&cfg.controller.repo).map_err(ControllerError::from)?;
        match watch::watch_refs(repo.commondir(), &cfg.controller.branch, tx.clone()) {
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

    let settings = Settings {
        interval: cfg.controller.interval,
        remote: cfg.url.is_some(),
    };
    let mut live = Live {
        ctrl,
        shared: shared.clone(),
        clone: cfg
            .url
            .as_ref()
            .map(|_| (cfg.controller.repo.clone(), cfg.controller.branch.clone())),
    };
    let ctl_stop = stop.clone();
    let running = Alive::new(alive);
    let worker = std::thread::Builder::new()
        .name("controller".into())
        .spawn(move || {
            let _running = running;
            runner::run(&mut live, &rx, &ctl_stop, settings);
        })
        .map_err(|e| ServeError::Runtime(e.to_string()))?;

    let app =
        http::router(shared.clone()).merge(super::dashboard::router(shared.clone(), dashboard));
    let limits = http::Limits::for_fd_limit(nofile);
    let sig_stop = stop.clone();
    let sig_tx = tx.clone();
    let shutdown = async move {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            },
            Err(e) => {
                tracing::error!("cannot handle SIGTERM ({e}); stopping on SIGINT only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        tracing::info!("signal received: finishing the step in flight");
        sig_stop.store(true, Ordering::SeqCst);
        let _ = sig_tx.send(Trigger::Stop);
    };
    rt.block_on(http::serve(listener, app, limits, shutdown));
    let _ = tx.send(Trigger::Stop);
    let _ = worker.join();
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
