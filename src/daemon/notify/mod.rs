//! Notifications (docs/notifications.md): events routed by the policy's `notifications:` to
//! Slack, Teams, a signed webhook or GitHub statuses, delivered off the controller's thread.
//!
//! [`Notifier::offer`] is all the controller pays: route matching, the dedupe and a
//! non-blocking push onto the sink's bounded queue. Each sink has its own worker thread, so a
//! sink that never answers delays only itself; a full queue drops (and counts) the message.

pub mod deliver;
pub mod payload;
pub mod route;

use super::events::{Event, EventKind};
use super::metrics::Metrics;
use crate::manifest::notify::{Route, Sink};
use crate::manifest::Policy;
use chrono::Utc;
use deliver::Delivery;
use payload::Notice;
use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Messages waiting per sink before new ones are dropped.
pub const QUEUE: usize = 256;

/// Failure events kept until the controller takes them.
const MAX_FAILURES: usize = 100;

/// Routes of the policy in force and one delivery worker per sink.
pub struct Notifier {
    routes: Vec<(Route, Sink)>,
    workers: HashMap<Sink, SyncSender<Delivery>>,
    dedupe: route::Dedupe,
    /// The dashboard's address (`--public-url`), for links.
    public_url: Option<String>,
    /// environment -> its stage, for hints and GitHub contexts.
    environments: Vec<(String, String)>,
    metrics: Metrics,
    failures: Arc<Mutex<Vec<Event>>>,
    retry_base: Duration,
}

impl Notifier {
    pub fn new(public_url: Option<String>, metrics: Metrics) -> Self {
        Notifier {
            routes: Vec::new(),
            workers: HashMap::new(),
            dedupe: route::Dedupe::default(),
            public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
            environments: Vec::new(),
            metrics,
            failures: Arc::default(),
            retry_base: deliver::RETRY_BASE,
        }
    }

    /// Take the routes of `policy` (the policy in force); a route whose sink does not
    /// validate is skipped (validation reports it). Workers of sinks no route names stop.
    pub fn configure(&mut self, policy: &Policy) {
        let routes: Vec<(Route, Sink)> = policy
            .notifications
            .iter()
            .filter_map(|r| r.sink().ok().map(|s| (r.clone(), s)))
            .collect();
        self.environments = policy
            .environments
            .iter()
            .map(|(n, e)| (n.clone(), e.stage.clone()))
            .collect();
        if routes == self.routes {
            return;
        }
        self.workers
            .retain(|sink, _| routes.iter().any(|(_, s)| s == sink));
        self.routes = routes;
    }

    /// Route `event`: each matching route's sink gets it once per dedupe window.
    pub fn offer(&mut self, event: &Event) {
        if self.routes.is_empty() {
            return;
        }
        let now = Utc::now();
        let mut picked: Vec<Sink> = Vec::new();
        for (i, (r, sink)) in self.routes.iter().enumerate() {
            if route::matches(r, event)
                && self.dedupe.admit(route::DedupeKey::new(i, event), now)
                && !picked.contains(sink)
            {
                picked.push(sink.clone());
            }
        }
        for sink in picked {
            let d = Delivery {
                notice: self.notice(event),
                environments: self.environments.iter().map(|(e, _)| e.clone()).collect(),
                sink: sink.clone(),
            };
            let tx = self.worker(&sink);
            match tx.try_send(d) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.metrics.notification(sink.kind(), "dropped");
                }
            }
        }
    }

    /// Failure events of deliveries since the last call (for the event log).
    pub fn take_failures(&self) -> Vec<Event> {
        std::mem::take(&mut *self.failures.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The notice for `e`: the link to the model's page and a command that resolves it.
    fn notice(&self, e: &Event) -> Notice {
        let link = self.public_url.as_ref().map(|u| match &e.model {
            Some(m) => format!("{u}/models/{m}"),
            None => format!("{u}/"),
        });
        Notice {
            event: e.clone(),
            link,
            hint: hint(e),
        }
    }

    fn worker(&mut self, sink: &Sink) -> SyncSender<Delivery> {
        if let Some(tx) = self.workers.get(sink) {
            return tx.clone();
        }
        let (tx, rx) = sync_channel::<Delivery>(QUEUE);
        let metrics = self.metrics.clone();
        let failures = self.failures.clone();
        let base = self.retry_base;
        let kind = sink.kind();
        let spawned = std::thread::Builder::new()
            .name(format!("notify-{kind}"))
            .spawn(move || {
                let agent = deliver::agent();
                for d in rx {
                    match deliver::deliver(&agent, &d, base) {
                        Ok(()) => metrics.notification(kind, "delivered"),
                        Err(err) => {
                            metrics.notification(kind, "failed");
                            tracing::warn!(sink = kind, "notification failed: {}", err.message);
                            let mut f = failures.lock().unwrap_or_else(|p| p.into_inner());
                            if f.len() < MAX_FAILURES {
                                let e = &d.notice.event;
                                let mut ev = Event::new(
                                    EventKind::NotificationFailed,
                                    format!(
                                        "{kind}: could not deliver `{}`: {}",
                                        d.notice.title(),
                                        err.message
                                    ),
                                );
                                ev.environment = e.environment.clone();
                                ev.model = e.model.clone();
                                f.push(ev);
                            }
                        }
                    }
                }
            });
        if spawned.is_err() {
            self.metrics.notification(kind, "dropped");
        }
        self.workers.insert(sink.clone(), tx.clone());
        tx
    }
}

/// A command that resolves a blocked model: for missing approvals, `baton approve`.
/// Reasons read `model@version -> stage: approvals: …` for a transition.
fn hint(e: &Event) -> Option<String> {
    if e.kind != EventKind::Blocked {
        return None;
    }
    e.reasons.iter().find_map(|r| {
        let (head, rest) = r.split_once(": ")?;
        if !rest.starts_with("approvals:") {
            return None;
        }
        let (mv, stage) = head.split_once(" -> ")?;
        let (model, version) = mv.split_once('@')?;
        Some(format!("baton approve {model} {version} --stage {stage}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_approvals_hint_at_baton_approve() {
        let e = Event::new(EventKind::Blocked, "x").reasons(&[
            "fraud-detector@4 -> production: metric: auc below".into(),
            "fraud-detector@4 -> production: approvals: 0 of 2 from group:ml-leads".into(),
        ]);
        assert_eq!(
            hint(&e).as_deref(),
            Some("baton approve fraud-detector 4 --stage production")
        );
        assert_eq!(hint(&Event::new(EventKind::Deployed, "x")), None);
    }
}
