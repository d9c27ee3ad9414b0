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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub time: DateTime<Utc>,
    /// `started`, `head`, `blocked`, `waiting`, `unblocked`, `deployed`, `repaired`,
    /// `undeployed`, `health-failed`, `rolled-back`, `failed`, `bad-head`, `stopped`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    pub message: String,
}

impl Event {
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        Event {
            time: Utc::now(),
            kind: kind.to_owned(),
            environment: None,
            model: None,
            version: None,
            commit: None,
            message: message.into(),
        }
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

/// Append-only log file plus an in-memory ring of the newest events.
pub struct EventLog {
    file: Option<File>,
    pub ring: Arc<Mutex<VecDeque<Event>>>,
}

impl EventLog {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(EventLog {
            file: Some(file),
            ring: Arc::new(Mutex::new(VecDeque::new())),
        })
    }

    /// Log to tracing, append to the file (one `write` per line), keep in the ring.
    pub fn push(&mut self, e: Event) {
        if e.kind == "failed" || e.kind == "health-failed" || e.kind == "bad-head" {
            tracing::warn!(kind = %e.kind, "{}", e.message);
        } else {
            tracing::info!(kind = %e.kind, "{}", e.message);
        }
        if let Some(f) = &mut self.file {
            if let Ok(mut line) = serde_json::to_vec(&e) {
                line.push(b'\n');
                if let Err(err) = f.write_all(&line) {
                    tracing::warn!("events.jsonl: {err}");
                }
            }
        }
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == RING {
            ring.pop_front();
        }
        ring.push_back(e);
    }
}
