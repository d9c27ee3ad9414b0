//! Prometheus metrics, kept as plain counters and histograms and rendered by hand in the
//! text exposition format (version 0.0.4) for `GET /metrics`.

use std::fmt::Write;

/// A cumulative histogram with fixed upper bounds (seconds).
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// Buckets for durations from a millisecond to minutes.
pub const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, v: f64) {
        for (i, b) in self.bounds.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

/// One `baton_model_info` series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub env: String,
    pub model: String,
    pub version: String,
    pub sync: String,
    pub health: String,
}

/// Everything `/metrics` shows.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub reconcile_seconds: Histogram,
    pub commit_to_deployed_seconds: Histogram,
    pub reconciles_total: u64,
    pub deployments_total: u64,
    pub failures_total: u64,
    pub blocked_models: usize,
    pub ready: bool,
    /// Shared with the published copy (rebuilt only by a pass).
    pub models: std::sync::Arc<Vec<ModelInfo>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            reconcile_seconds: Histogram::new(SECONDS),
            commit_to_deployed_seconds: Histogram::new(SECONDS),
            reconciles_total: 0,
            deployments_total: 0,
            failures_total: 0,
            blocked_models: 0,
            ready: false,
            models: Default::default(),
        }
    }
}

/// Escape a label value (backslash, quote, newline).
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut o = String::new();
        self.reconcile_seconds.render(
            "baton_reconcile_duration_seconds",
            "Duration of one reconcile pass over every environment.",
            &mut o,
        );
        self.commit_to_deployed_seconds.render(
            "baton_commit_to_deployed_seconds",
            "From seeing a new branch head to its switch being in place.",
            &mut o,
        );
        let counter = |o: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            &mut o,
            "baton_reconciles_total",
            "Reconcile passes run.",
            self.reconciles_total,
        );
        counter(
            &mut o,
            "baton_deployments_total",
            "Switches that put a new release in place.",
            self.deployments_total,
        );
        counter(
            &mut o,
            "baton_failures_total",
            "Failed switches (fetch, digest, health, I/O).",
            self.failures_total,
        );
        let _ = writeln!(
            o,
            "# HELP baton_blocked_models Models held back by failed gates.\n# TYPE baton_blocked_models gauge\nbaton_blocked_models {}",
            self.blocked_models
        );
        let _ = writeln!(
            o,
            "# HELP baton_ready 1 after the first full reconcile.\n# TYPE baton_ready gauge\nbaton_ready {}",
            u8::from(self.ready)
        );
        let _ = writeln!(
            o,
            "# HELP baton_model_info Deployed version, sync and health of each model per environment.\n# TYPE baton_model_info gauge"
        );
        for m in self.models.iter() {
            let _ = writeln!(
                o,
                "baton_model_info{{env=\"{}\",model=\"{}\",version=\"{}\",sync=\"{}\",health=\"{}\"}} 1",
                esc(&m.env),
                esc(&m.model),
                esc(&m.version),
                esc(&m.sync),
                esc(&m.health)
            );
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cumulative_buckets_and_labels() {
        let mut m = Metrics::default();
        m.reconcile_seconds.observe(0.003);
        m.reconcile_seconds.observe(0.2);
        m.models = std::sync::Arc::new(vec![ModelInfo {
            env: "prod".into(),
            model: "a\"b".into(),
            version: "1".into(),
            sync: "synced".into(),
            health: "healthy".into(),
        }]);
        let s = m.render();
        assert!(s.contains("baton_reconcile_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(s.contains("baton_reconcile_duration_seconds_bucket{le=\"0.25\"} 2"));
        assert!(s.contains("baton_reconcile_duration_seconds_count 2"));
        assert!(s.contains("model=\"a\\\"b\""));
    }
}
