//! Which routes an event goes to, and the five-minute dedupe that keeps a repeated state from
//! sending the same message again (pure: events and times in, decisions out).

use crate::daemon::events::{Event, EventKind};
use crate::manifest::notify::Route;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;

/// How long an identical message is not sent again.
pub const DEDUPE_WINDOW: Duration = Duration::minutes(5);

/// Entries kept before the oldest are forgotten (bounds memory with many models).
const MAX_KEYS: usize = 10_000;

/// True when `route` takes `event`: its kind is listed (or `*`), and it passes the
/// environment and model filters. A failed notification is never itself notified.
pub fn matches(route: &Route, event: &Event) -> bool {
    if event.kind == EventKind::NotificationFailed {
        return false;
    }
    let kind = event.kind.as_str();
    let listed = route.on.iter().any(|k| k == "*" || k == kind);
    let env_ok = route.environments.is_empty()
        || event
            .environment
            .as_ref()
            .is_some_and(|e| route.environments.contains(e));
    let model_ok = route.models.is_empty()
        || event
            .model
            .as_ref()
            .is_some_and(|m| route.models.contains(m));
    listed && env_ok && model_ok
}

/// What makes two messages the same: the route, kind, model, environment, version, reasons.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DedupeKey {
    route: usize,
    kind: EventKind,
    model: Option<String>,
    environment: Option<String>,
    version: Option<String>,
    reasons: Vec<String>,
}

impl DedupeKey {
    pub fn new(route: usize, e: &Event) -> Self {
        DedupeKey {
            route,
            kind: e.kind,
            model: e.model.clone(),
            environment: e.environment.clone(),
            version: e.version.clone(),
            reasons: e.reasons.clone(),
        }
    }
}

/// The messages sent recently.
#[derive(Debug, Default)]
pub struct Dedupe {
    sent: HashMap<DedupeKey, DateTime<Utc>>,
}

impl Dedupe {
    /// True when `key` was not sent within [`DEDUPE_WINDOW`] before `now` (and records it).
    pub fn admit(&mut self, key: DedupeKey, now: DateTime<Utc>) -> bool {
        if let Some(at) = self.sent.get(&key) {
            if now - *at < DEDUPE_WINDOW {
                return false;
            }
        }
        if self.sent.len() >= MAX_KEYS {
            self.sent.retain(|_, at| now - *at < DEDUPE_WINDOW);
        }
        self.sent.insert(key, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(y: &str) -> Route {
        serde_yaml::from_str(y).unwrap()
    }

    #[test]
    fn kinds_and_filters_select_events() {
        let r = route(
            "{on: [blocked, deployed], environments: [production], sink: {slack: {url_env: U}}}",
        );
        let dep = Event::new(EventKind::Deployed, "x")
            .env("production")
            .model("m");
        assert!(matches(&r, &dep));
        assert!(!matches(&r, &dep.clone().env("staging")));
        assert!(!matches(
            &r,
            &Event::new(EventKind::Repaired, "x").env("production")
        ));
        // An environment filter needs an environment on the event.
        assert!(!matches(
            &r,
            &Event::new(EventKind::Blocked, "x").model("m")
        ));
        let all = route("{on: ['*'], models: [m], sink: {slack: {url_env: U}}}");
        assert!(matches(&all, &dep));
        assert!(!matches(&all, &dep.clone().model("other")));
        let failed = Event::new(EventKind::NotificationFailed, "x").model("m");
        assert!(!matches(&all, &failed));
    }

    #[test]
    fn the_same_message_is_sent_once_per_window() {
        let mut d = Dedupe::default();
        let t0 = Utc::now();
        let e = Event::new(EventKind::Blocked, "x")
            .model("m")
            .reasons(&["approvals: 0 of 2".into()]);
        assert!(d.admit(DedupeKey::new(0, &e), t0));
        assert!(!d.admit(DedupeKey::new(0, &e), t0 + Duration::minutes(4)));
        // Another route, or other reasons, is another message.
        assert!(d.admit(DedupeKey::new(1, &e), t0));
        let e2 = e.clone().reasons(&["approvals: 1 of 2".into()]);
        assert!(d.admit(DedupeKey::new(0, &e2), t0));
        assert!(d.admit(DedupeKey::new(0, &e), t0 + Duration::minutes(6)));
    }
}
