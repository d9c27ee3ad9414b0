//! The event log: every decision the daemon takes (new head, blocked, deployed, rolled back,
//! repaired...) appended as one JSON line to `events.jsonl`, with the newest kept in memory.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Events kept in memory for `/api/v1/events`.
pub const RING: usize = 1000;

/// Events buffered for each live subscriber (the dashboard's stream) before it lags.
pub const LIVE: usize = 256;

/// What happened; written in kebab-case (`health-failed`) in JSON (docs/daemon.md, events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    Started,
    /// The daemon took a commit as its trusted baseline.
    Trusted,
    /// The branch moved.
    Head,
    /// A model's change failed its gates (or does not parse): it keeps its last good state.
    Blocked,
    /// A model's change waits only for time (a deploy window, a soak).
    Waiting,
    Unblocked,
    Deployed,
    Repaired,
    Undeployed,
    /// A deploy failed its health check (it was switched back).
    #[serde(alias = "health-failed")]
    Degraded,
    RolledBack,
    /// Live verification of a deployed version failed (docs/verification.md).
    VerificationFailed,
    /// A notification could not be delivered after its retries (never itself notified).
    NotificationFailed,
    Failed,
    BadHead,
    /// The branch moved to a commit that does not descend from the accepted head.
    Diverged,
    Stopped,
}

/// How loudly an event is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Normal,
    Warning,
}

impl EventKind {
    pub fn severity(self) -> Severity {
        match self {
            EventKind::Failed
            | EventKind::Degraded
            | EventKind::VerificationFailed
            | EventKind::NotificationFailed
            | EventKind::BadHead
            | EventKind::Blocked
            | EventKind::Diverged
            | EventKind::Trusted => Severity::Warning,
            _ => Severity::Normal,
        }
    }

    /// Every kind, in the order docs/daemon.md lists them.
    pub const ALL: [EventKind; 17] = [
        EventKind::Started,
        EventKind::Trusted,
        EventKind::Head,
        EventKind::Blocked,
        EventKind::Waiting,
        EventKind::Unblocked,
        EventKind::Deployed,
        EventKind::Repaired,
        EventKind::Undeployed,
        EventKind::Degraded,
        EventKind::RolledBack,
        EventKind::VerificationFailed,
        EventKind::Failed,
        EventKind::BadHead,
        EventKind::Diverged,
        EventKind::NotificationFailed,
        EventKind::Stopped,
    ];

    /// The kind written `name` in `events.jsonl` (and in notification routes).
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Started => "started",
            EventKind::Trusted => "trusted",
            EventKind::Head => "head",
            EventKind::Blocked => "blocked",
            EventKind::Waiting => "waiting",
            EventKind::Unblocked => "unblocked",
            EventKind::Deployed => "deployed",
            EventKind::Repaired => "repaired",
            EventKind::Undeployed => "undeployed",
            EventKind::Degraded => "degraded",
            EventKind::RolledBack => "rolled-back",
            EventKind::VerificationFailed => "verification-failed",
            EventKind::NotificationFailed => "notification-failed",
            EventKind::Failed => "failed",
            EventKind::BadHead => "bad-head",
            EventKind::Diverged => "diverged",
            EventKind::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub time: DateTime<Utc>,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Who made `commit` (`Name <email>`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// The first line of `commit`'s message, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Why (failed gates, with their locations), one sentence each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    pub message: String,
}

impl Event {
    pub fn new(kind: EventKind, message: impl Into<String>) -> Self {
        Event {
            time: Utc::now(),
            kind,
            environment: None,
            model: None,
            version: None,
            commit: None,
            author: None,
            subject: None,
            reasons: Vec::new(),
            message: message.into(),
        }
    }
    pub fn author(mut self, a: Option<&str>) -> Self {
        self.author = a.map(str::to_owned);
        self
    }
    pub fn subject(mut self, s: Option<&str>) -> Self {
        self.subject = s.map(str::to_owned);
        self
    }
    pub fn reasons(mut self, r: &[String]) -> Self {
        self.reasons = r.to_vec();
        self
    }
    pub fn env(mut self, e: &str) -> Self {
        self.environment = Some(e.to_owned());
        self
    }
    pub fn model(mut self, m: &str) -> Self {
        self.model = Some(m.to_owned());
        self
    }
    pub fn version(mut self, v: &str) -> Self {
        self.version = Some(v.to_owned());
        self
    }
    pub fn commit(mut self, c: &str) -> Self {
        self.commit = Some(c.to_owned());
        self
    }
}

/// Append-only log file plus an in-memory ring of the newest events, and the notifier
/// every event is offered to.
pub struct EventLog {
    file: Option<File>,
    pub ring: Arc<Mutex<VecDeque<Event>>>,
    pub notifier: Option<super::notify::Notifier>,
    /// Every event, as it is pushed, for live subscribers (`/api/v1/events/stream`).
    pub live: tokio::sync::broadcast::Sender<Event>,
}

impl EventLog {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(EventLog {
            file: Some(file),
            ring: Arc::new(Mutex::new(VecDeque::new())),
            notifier: None,
            live: tokio::sync::broadcast::channel(LIVE).0,
        })
    }

    /// Log to tracing, append to the file (one `write` per line), keep in the ring.
    pub fn push(&mut self, e: Event) {
        // Absent fields are left out of the record (an `Option` field records only `Some`).
        let (env, model, version, commit) = (
            e.environment.as_deref(),
            e.model.as_deref(),
            e.version.as_deref(),
            e.commit.as_deref(),
        );
        match e.kind.severity() {
            Severity::Warning => tracing::warn!(
                kind = %e.kind, environment = env, model, version, commit, "{}", e.message
            ),
            Severity::Normal => tracing::info!(
                kind = %e.kind, environment = env, model, version, commit, "{}", e.message
            ),
        }
        if let Some(f) = &mut self.file {
            if let Ok(mut line) = serde_json::to_vec(&e) {
                line.push(b'\n');
                if let Err(err) = f.write_all(&line) {
                    tracing::warn!("events.jsonl: {err}");
                }
            }
        }
        if let Some(n) = &mut self.notifier {
            n.offer(&e);
        }
        // In the ring first: a subscriber that reads the ring after subscribing sees an
        // event twice at most (it skips what it already replayed), never not at all.
        let live = (self.live.receiver_count() > 0).then(|| e.clone());
        {
            let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
            if ring.len() == RING {
                ring.pop_front();
            }
            ring.push_back(e);
        }
        if let Some(e) = live {
            // Never blocks: a subscriber that falls behind is told it lagged.
            let _ = self.live.send(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_from_its_name_and_old_names_still_read() {
        let names: std::collections::BTreeSet<&str> =
            EventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), EventKind::ALL.len());
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        let old: EventKind = serde_json::from_str("\"health-failed\"").unwrap();
        assert_eq!(old, EventKind::Degraded);
        assert_eq!(EventKind::parse("nope"), None);
    }
}
