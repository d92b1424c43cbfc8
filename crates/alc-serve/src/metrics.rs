//! Prometheus text exposition of the server's counters, gauges and histograms.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A fixed-bucket histogram.
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative), plus the +Inf bucket at the end.
    counts: Vec<AtomicU64>,
    sum: Mutex<f64>,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: Mutex::new(0.0),
        }
    }

    pub fn observe(&self, x: f64) {
        if !x.is_finite() {
            return;
        }
        let i = self
            .bounds
            .iter()
            .position(|&b| x <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        *self.sum.lock().unwrap_or_else(|e| e.into_inner()) += x;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cum = 0;
        for (i, c) in self.counts.iter().enumerate() {
            cum += c.load(Ordering::Relaxed);
            match self.bounds.get(i) {
                Some(b) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cum}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cum}");
                }
            }
        }
        let sum = *self.sum.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cum}");
    }
}

const TTFT_BOUNDS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
const TPS_BOUNDS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0];
const BATCH_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// Everything `/metrics` reports, shared by the handlers.
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    pub tokens_generated: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub rejected_queue_full: AtomicU64,
    pub ttft: Histogram,
    pub tokens_per_second: Histogram,
    pub peak_batch: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::new(BTreeMap::new()),
            tokens_generated: AtomicU64::new(0),
            prompt_tokens: AtomicU64::new(0),
            rejected_queue_full: AtomicU64::new(0),
            ttft: Histogram::new(TTFT_BOUNDS),
            tokens_per_second: Histogram::new(TPS_BOUNDS),
            peak_batch: Histogram::new(BATCH_BOUNDS),
        }
    }
}

/// The endpoint label of a request path (unknown paths share one label).
pub fn endpoint_label(path: &str) -> &'static str {
    match path {
        "/v1/chat/completions" => "chat_completions",
        "/v1/completions" => "completions",
        "/v1/embeddings" => "embeddings",
        "/v1/models" => "models",
        "/health" => "health",
        "/metrics" => "metrics",
        _ => "other",
    }
}

impl Metrics {
    pub fn count_request(&self, endpoint: &'static str, status: u16) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((endpoint, status))
            .or_insert(0) += 1;
    }

    /// The exposition text; `queues` gives each model's id and its admitted
    /// requests (running + waiting).
    pub fn render(&self, queues: &[(String, usize)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP alc_requests_total HTTP requests answered, by endpoint and status.\n# TYPE alc_requests_total counter\n");
        for ((e, s), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "alc_requests_total{{endpoint=\"{e}\",status=\"{s}\"}} {n}"
            );
        }
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            &mut out,
            "alc_tokens_generated_total",
            "Tokens generated over all requests.",
            self.tokens_generated.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "alc_prompt_tokens_total",
            "Prompt tokens processed over all requests (embedding inputs included).",
            self.prompt_tokens.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "alc_queue_rejections_total",
            "Requests refused with 429 because a model's queue was full.",
            self.rejected_queue_full.load(Ordering::Relaxed),
        );
        out.push_str("# HELP alc_queue_depth Requests admitted per model (running + waiting).\n# TYPE alc_queue_depth gauge\n");
        for (m, d) in queues {
            let m = m.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(out, "alc_queue_depth{{model=\"{m}\"}} {d}");
        }
        self.ttft.render(
            &mut out,
            "alc_time_to_first_token_seconds",
            "Time from the start of a generation to its first token.",
        );
        self.tokens_per_second.render(
            &mut out,
            "alc_tokens_per_second",
            "Decode speed of each finished generation.",
        );
        self.peak_batch.render(
            &mut out,
            "alc_batch_sequences",
            "Most sequences that shared a forward pass with each finished generation (continuous batching; 1: it ran alone).",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_cumulative_buckets() {
        let m = Metrics::default();
        m.count_request("chat_completions", 200);
        m.count_request("chat_completions", 200);
        m.ttft.observe(0.02);
        m.ttft.observe(100.0);
        let t = m.render(&[("smol".into(), 3)]);
        assert!(t.contains("alc_requests_total{endpoint=\"chat_completions\",status=\"200\"} 2"));
        assert!(t.contains("alc_time_to_first_token_seconds_bucket{le=\"0.025\"} 1"));
        assert!(t.contains("alc_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(t.contains("alc_time_to_first_token_seconds_count 2"));
        assert!(t.contains("alc_queue_depth{model=\"smol\"} 3"));
    }
}
