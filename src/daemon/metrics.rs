//! The daemon's Prometheus metrics (`GET /metrics`), kept in a `prometheus-client` registry:
//! the controller updates the atomics, a scrape encodes them (OpenMetrics text).

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Buckets for durations from a millisecond to minutes.
pub const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// The content type of what [`Metrics::render`] writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The labels of one `baton_model_info` series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ModelInfo {
    pub env: String,
    pub model: String,
    pub version: String,
    pub sync: String,
    pub health: String,
}

/// The labels of one `baton_notifications_total` series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct NotificationLabels {
    pub sink: String,
    /// `delivered`, `failed` (after retries) or `dropped` (queue full).
    pub result: String,
}

/// Everything `/metrics` shows. Clones share the same series (the published status holds
/// one, the controller another).
#[derive(Clone)]
pub struct Metrics {
    pub reconcile_seconds: Histogram,
    pub commit_to_deployed_seconds: Histogram,
    pub reconciles_total: Counter,
    pub deployments_total: Counter,
    pub failures_total: Counter,
    pub blocked_models: Gauge,
    pub ready: Gauge,
    models: Family<ModelInfo, Gauge>,
    notifications: Family<NotificationLabels, Counter>,
    /// The `baton_model_info` label sets now set, so stale ones are removed.
    current: Arc<Mutex<HashSet<ModelInfo>>>,
    registry: Arc<Registry>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("reconciles_total", &self.reconciles_total.get())
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            reconcile_seconds: Histogram::new(SECONDS.iter().copied()),
            commit_to_deployed_seconds: Histogram::new(SECONDS.iter().copied()),
            reconciles_total: Counter::default(),
            deployments_total: Counter::default(),
            failures_total: Counter::default(),
            blocked_models: Gauge::default(),
            ready: Gauge::default(),
            models: Family::default(),
            notifications: Family::default(),
            current: Arc::default(),
            registry: Arc::new(Registry::default()),
        };
        let mut r = Registry::default();
        r.register(
            "baton_reconcile_duration_seconds",
            "Duration of one reconcile pass over every environment",
            m.reconcile_seconds.clone(),
        );
        r.register(
            "baton_commit_to_deployed_seconds",
            "From seeing a new branch head to its switch being in place",
            m.commit_to_deployed_seconds.clone(),
        );
        // Counters get their `_total` suffix from the encoder.
        r.register(
            "baton_reconciles",
            "Reconcile passes run",
            m.reconciles_total.clone(),
        );
        r.register(
            "baton_deployments",
            "Switches that put a new release in place",
            m.deployments_total.clone(),
        );
        r.register(
            "baton_failures",
            "Failed switches (fetch, digest, health, I/O)",
            m.failures_total.clone(),
        );
        r.register(
            "baton_blocked_models",
            "Models held back by failed gates",
            m.blocked_models.clone(),
        );
        r.register(
            "baton_ready",
            "1 after the first full reconcile",
            m.ready.clone(),
        );
        r.register(
            "baton_model_info",
            "Deployed version, sync and health of each model per environment",
            m.models.clone(),
        );
        r.register(
            "baton_notifications",
            "Notifications by sink and result (delivered, failed after retries, dropped)",
            m.notifications.clone(),
        );
        Metrics {
            registry: Arc::new(r),
            ..m
        }
    }
}

/// A label value escaped as the exposition formats require (`\\`, `\"`, `\n`).
/// prometheus-client 0.23 writes label values verbatim (prometheus/client_rust#151), so one
/// stray quote would make Prometheus reject the whole scrape. baton's values are validated names
/// and cannot hold these characters; this is defence in depth, to revisit on an upgrade.
fn escape(s: &str) -> String {
    if !s.contains(['\\', '"', '\n']) {
        return s.to_owned();
    }
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Make `baton_model_info` exactly `infos` (each with value 1).
    pub fn set_models(&self, infos: Vec<ModelInfo>) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let new: HashSet<ModelInfo> = infos
            .into_iter()
            .map(|m| ModelInfo {
                env: escape(&m.env),
                model: escape(&m.model),
                version: escape(&m.version),
                sync: escape(&m.sync),
                health: escape(&m.health),
            })
            .collect();
        for gone in current.difference(&new) {
            self.models.remove(gone);
        }
        for m in &new {
            self.models.get_or_create(m).set(1);
        }
        *current = new;
    }

    /// Count one notification outcome.
    pub fn notification(&self, sink: &str, result: &str) {
        self.notifications
            .get_or_create(&NotificationLabels {
                sink: sink.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// The OpenMetrics text of every series ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cumulative_buckets_and_labels() {
        let m = Metrics::default();
        m.reconcile_seconds.observe(0.003);
        m.reconcile_seconds.observe(0.2);
        m.failures_total.inc();
        m.set_models(vec![ModelInfo {
            env: "prod".into(),
            model: "a\"b".into(),
            version: "1".into(),
            sync: "synced".into(),
            health: "healthy".into(),
        }]);
        let s = m.render();
        assert!(
            s.contains("baton_reconcile_duration_seconds_bucket{le=\"0.005\"} 1"),
            "{s}"
        );
        assert!(s.contains("baton_reconcile_duration_seconds_bucket{le=\"0.25\"} 2"));
        assert!(s.contains("baton_reconcile_duration_seconds_count 2"));
        assert!(s.contains("baton_failures_total 1"));
        assert!(s.contains("model=\"a\\\"b\""), "{s}");
        assert!(s.ends_with("# EOF\n"));
        // A model that left is no longer a series.
        m.set_models(vec![]);
        assert!(!m.render().contains("a\\\"b"));
    }
}
