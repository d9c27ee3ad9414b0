//! The controller thread's loop: woken by ref writes, webhooks, and the [`Action`] each pass
//! returns (resync or the next wake-up); coalesces, skips unchanged heads, backs off, recovers.
//!
//! [`run`] is generic over [`Reconciler`] so the loop's policy is tested without a repository;
//! [`Live`] is the real one (the [`Controller`], `git fetch` for `--url`, publishing for HTTP).

use super::controller::{Action, Controller, ControllerError};
use super::events::{Event, EventKind};
use super::http::Shared;
use super::watch::{self, Trigger, WatchError};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// What the loop drives: one pass, and what it needs around it.
pub trait Reconciler {
    type Error: std::fmt::Display;
    /// The branch head now (a cheap ref read); `None` when it cannot be read.
    fn head(&self) -> Option<String>;
    /// Refresh the clone (`--url`); nothing for a local repository.
    fn fetch(&mut self) -> Result<(), Self::Error>;
    /// One full pass; says when the next one should run.
    fn reconcile(&mut self) -> Result<Action, Self::Error>;
    /// Forget what memory holds after a pass panicked; start again from what is on disk.
    fn recover(&mut self) -> Result<(), Self::Error>;
    /// Record a failure of the loop (a `failed` event, counted in the metrics).
    fn failed(&mut self, message: String);
    /// Make the pass's status and metrics visible (HTTP).
    fn publish(&mut self);
    /// The loop ended.
    fn stopped(&mut self);
}

/// How the loop was configured.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// `--interval`: the base of the backoff, and how often `--url` is fetched.
    pub interval: Duration,
    /// `--url`: fetch before every resync.
    pub remote: bool,
}

/// The triggers that arrived since the last pass, coalesced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wake {
    pub stop: bool,
    pub fetch: bool,
    pub changed: bool,
    /// The sleep ran out (the pass's [`Action`]), or a pass was asked for
    /// ([`Trigger::Pass`]): run one whatever the head.
    pub timer: bool,
}

impl Wake {
    pub fn add(&mut self, t: Trigger) {
        match t {
            Trigger::Stop => self.stop = true,
            Trigger::Fetch => self.fetch = true,
            Trigger::Changed => self.changed = true,
            Trigger::Pass => self.timer = true,
        }
    }
}

/// The text of a panic payload.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

/// Run passes until a [`Trigger::Stop`], `stop`, or every sender is gone. The first pass runs
/// at once. Then a pass runs when the last pass's [`Action`] says (resync or a wake-up), a
/// fetch was asked for, or a ref write moved the branch head (a write that leaves the head
/// where the last pass saw it runs nothing). A failed or panicking pass is recorded and
/// retried per [`Action::error_policy`]; a panic first resets the reconciler from disk.
pub fn run<R: Reconciler>(r: &mut R, rx: &Receiver<Trigger>, stop: &AtomicBool, s: Settings) {
    let mut errors = 0u32;
    let mut last_head: Option<String> = None;
    let mut next_resync = Instant::now();
    let mut next_pass = Instant::now();
    let mut first = true;
    loop {
        let wait = next_pass.saturating_duration_since(Instant::now());
        let mut wake = Wake::default();
        match rx.recv_timeout(wait) {
            Ok(t) => wake.add(t),
            Err(RecvTimeoutError::Timeout) => wake.timer = true,
            Err(RecvTimeoutError::Disconnected) => wake.stop = true,
        }
        // Coalesce a burst into one pass over the newest head.
        while let Ok(t) = rx.try_recv() {
            wake.add(t);
        }
        if wake.stop || stop.load(Ordering::SeqCst) {
            break;
        }
        let head = r.head();
        if !wake.timer && !wake.fetch && head.is_some() && head == last_head {
            continue;
        }
        let resync_due = Instant::now() >= next_resync;
        last_head = if s.remote && !first && (wake.fetch || resync_due) {
            if let Err(e) = r.fetch() {
                r.failed(format!("fetch: {e}"));
            }
            r.head()
        } else {
            head
        };
        first = false;
        let outcome = catch_unwind(AssertUnwindSafe(|| r.reconcile()));
        let result: Result<Action, String> = match outcome {
            Ok(Ok(action)) => Ok(action),
            Ok(Err(e)) => Err(format!("reconcile: {e}")),
            Err(p) => {
                let msg = panic_message(&*p);
                let reset = match catch_unwind(AssertUnwindSafe(|| r.recover())) {
                    Ok(Ok(())) => "state reloaded from disk".to_owned(),
                    Ok(Err(e)) => format!("reloading the state failed: {e}"),
                    Err(p) => format!("reloading the state panicked: {}", panic_message(&*p)),
                };
                // Judge the head again from the reloaded state.
                last_head = None;
                Err(format!("reconcile panicked: {msg}; {reset}"))
            }
        };
        let (action, resync) = match result {
            Ok(action) => {
                errors = 0;
                (action, s.interval)
            }
            Err(msg) => {
                errors += 1;
                let action = Action::error_policy(s.interval, errors);
                r.failed(format!(
                    "{msg} (retry in {})",
                    humantime::format_duration(action.requeue_after)
                ));
                (action, action.requeue_after)
            }
        };
        next_pass = Instant::now() + action.requeue_after;
        next_resync = Instant::now() + resync;
        r.publish();
        if stop.load(Ordering::SeqCst) {
            break;
        }
    }
    r.stopped();
}

/// Set while the controller thread runs; cleared when it ends, however (`/healthz` reads it).
pub struct Alive(Arc<AtomicBool>);

impl Alive {
    pub fn new(flag: Arc<AtomicBool>) -> Self {
        flag.store(true, Ordering::SeqCst);
        Alive(flag)
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

#[derive(Debug, Error)]
pub enum LiveError {
    #[error(transparent)]
    Controller(#[from] ControllerError),
    #[error(transparent)]
    Fetch(#[from] WatchError),
}

/// The real reconciler: the controller, the `--url` clone, and what HTTP reads.
pub struct Live {
    pub ctrl: Controller,
    pub shared: Arc<Shared>,
    /// `--url`: the bare clone and the branch fetched into it.
    pub clone: Option<(PathBuf, String)>,
}

/// Give memory freed by a pass (parsed manifests, JSON buffers) back to the OS.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the OS.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Reconciler for Live {
    type Error = LiveError;

    fn head(&self) -> Option<String> {
        self.ctrl.head().ok().map(|o| o.to_string())
    }

    fn fetch(&mut self) -> Result<(), LiveError> {
        match &self.clone {
            Some((dir, branch)) => Ok(watch::fetch(dir, branch)?),
            None => Ok(()),
        }
    }

    fn reconcile(&mut self) -> Result<Action, LiveError> {
        // Alerts from `POST /hooks/alertmanager`, handled by this pass (docs/verification.md).
        self.ctrl.verify_alerts(self.shared.alerts.inbox.drain());
        let r = self.ctrl.reconcile();
        trim_heap();
        let outcome = r?;
        if !self.ctrl.status.ready {
            self.ctrl.set_ready();
        }
        Ok(outcome.action)
    }

    fn recover(&mut self) -> Result<(), LiveError> {
        Ok(self.ctrl.recover()?)
    }

    fn failed(&mut self, message: String) {
        self.ctrl.metrics.failures_total.inc();
        self.ctrl
            .events
            .push(Event::new(EventKind::Failed, message));
    }

    fn publish(&mut self) {
        let mut p = self
            .shared
            .published
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        p.status = self.ctrl.status.clone();
        p.metrics = self.ctrl.metrics.clone();
    }

    fn stopped(&mut self) {
        self.ctrl
            .events
            .push(Event::new(EventKind::Stopped, "baton serve stopped"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::{channel, Sender};
    use std::sync::Mutex;

    /// What the fake saw, shared with the test thread.
    #[derive(Default)]
    struct Seen {
        head: String,
        heads_read: usize,
        passes: usize,
        panic_on_pass: Option<usize>,
        fail_on_pass: Option<usize>,
        /// What each pass returns, in order; then an hour.
        requeue: Vec<Duration>,
        recovered: usize,
        failures: Vec<String>,
        published: usize,
        stopped: bool,
    }

    struct Fake(Arc<Mutex<Seen>>);

    impl Reconciler for Fake {
        type Error = String;
        fn head(&self) -> Option<String> {
            let mut s = self.0.lock().unwrap();
            s.heads_read += 1;
            Some(s.head.clone())
        }
        fn fetch(&mut self) -> Result<(), String> {
            Ok(())
        }
        fn reconcile(&mut self) -> Result<Action, String> {
            let mut s = self.0.lock().unwrap();
            s.passes += 1;
            let n = s.passes;
            if s.panic_on_pass == Some(n) {
                drop(s);
                panic!("boom in pass {n}");
            }
            if s.fail_on_pass == Some(n) {
                return Err("branch `main` not found".into());
            }
            let requeue_after = if s.requeue.is_empty() {
                Duration::from_secs(3600)
            } else {
                s.requeue.remove(0)
            };
            Ok(Action { requeue_after })
        }
        fn recover(&mut self) -> Result<(), String> {
            self.0.lock().unwrap().recovered += 1;
            Ok(())
        }
        fn failed(&mut self, message: String) {
            self.0.lock().unwrap().failures.push(message);
        }
        fn publish(&mut self) {
            self.0.lock().unwrap().published += 1;
        }
        fn stopped(&mut self) {
            self.0.lock().unwrap().stopped = true;
        }
    }

    fn start(
        seen: Seen,
        interval: Duration,
    ) -> (
        Arc<Mutex<Seen>>,
        Sender<Trigger>,
        std::thread::JoinHandle<()>,
    ) {
        let seen = Arc::new(Mutex::new(seen));
        let (tx, rx) = channel();
        let mut fake = Fake(seen.clone());
        let h = std::thread::spawn(move || {
            let stop = AtomicBool::new(false);
            let s = Settings {
                interval,
                remote: false,
            };
            run(&mut fake, &rx, &stop, s);
        });
        (seen, tx, h)
    }

    fn eventually(seen: &Mutex<Seen>, what: &str, cond: impl Fn(&Seen) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if cond(&seen.lock().unwrap()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("timed out waiting for {what}");
    }

    #[test]
    fn a_ref_write_that_leaves_the_head_runs_no_pass() {
        let hour = Duration::from_secs(3600);
        let (seen, tx, h) = start(
            Seen {
                head: "a".into(),
                ..Default::default()
            },
            hour,
        );
        eventually(&seen, "the first pass", |s| s.passes == 1);
        let before = seen.lock().unwrap().heads_read;
        for _ in 0..50 {
            tx.send(Trigger::Changed).unwrap();
        }
        eventually(&seen, "the head compared", |s| s.heads_read > before);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(seen.lock().unwrap().passes, 1, "same head: no pass");

        seen.lock().unwrap().head = "b".into();
        tx.send(Trigger::Changed).unwrap();
        eventually(&seen, "a pass for the new head", |s| s.passes == 2);
        // A webhook fetch always runs a pass.
        tx.send(Trigger::Fetch).unwrap();
        eventually(&seen, "a pass after a fetch", |s| s.passes == 3);
        tx.send(Trigger::Stop).unwrap();
        h.join().unwrap();
        let s = seen.lock().unwrap();
        assert!(s.stopped);
        assert_eq!(s.passes, 3);
        assert!(s.failures.is_empty(), "{:?}", s.failures);
    }

    #[test]
    fn a_panicking_pass_is_recorded_the_state_reloaded_and_the_loop_goes_on() {
        let (seen, tx, h) = start(
            Seen {
                head: "a".into(),
                panic_on_pass: Some(1),
                fail_on_pass: Some(2),
                ..Default::default()
            },
            Duration::from_millis(10),
        );
        eventually(&seen, "passes after the panic", |s| s.passes >= 3);
        tx.send(Trigger::Stop).unwrap();
        h.join().unwrap();
        let s = seen.lock().unwrap();
        assert_eq!(s.recovered, 1);
        assert!(
            s.failures[0].starts_with("reconcile panicked: boom in pass 1; state reloaded"),
            "{:?}",
            s.failures
        );
        assert!(s.failures[0].contains("retry in"), "{:?}", s.failures);
        assert!(
            s.failures[1].starts_with("reconcile: branch `main` not found (retry in"),
            "{:?}",
            s.failures
        );
        assert!(s.published >= 3);
    }

    #[test]
    fn the_next_pass_runs_when_the_last_action_says() {
        let hour = Duration::from_secs(3600);
        let (seen, tx, h) = start(
            Seen {
                head: "a".into(),
                requeue: vec![Duration::from_millis(200), Duration::ZERO],
                ..Default::default()
            },
            hour,
        );
        // 200 ms after the first pass, then at once, then an hour.
        eventually(&seen, "the third pass", |s| s.passes == 3);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(seen.lock().unwrap().passes, 3);
        tx.send(Trigger::Stop).unwrap();
        h.join().unwrap();
    }

    #[test]
    fn triggers_coalesce() {
        let mut w = Wake::default();
        for t in [Trigger::Changed, Trigger::Changed, Trigger::Fetch] {
            w.add(t);
        }
        assert_eq!(
            w,
            Wake {
                stop: false,
                fetch: true,
                changed: true,
                timer: false
            }
        );
        w.add(Trigger::Pass);
        assert!(w.timer, "an alert asks for a pass whatever the head");
        w.add(Trigger::Stop);
        assert!(w.stop);
    }
}
