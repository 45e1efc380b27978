//! The server's Prometheus metrics, in the text exposition format: requests by route and status,
//! request latency, forward-pass sizes and times, and the model queue's depth.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// A cumulative histogram with fixed upper bounds.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self { bounds, counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(), sum_micros: AtomicU64::new(0), count: AtomicU64::new(0) }
    }

    fn observe(&self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add((value * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

const SECONDS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
const SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// Everything `/metrics` reports.
#[derive(Debug)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    batch_size: Histogram,
    inference: Histogram,
    images: AtomicU64,
    pub queue_depth: AtomicUsize,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Mutex::default(),
            latency: Mutex::default(),
            batch_size: Histogram::new(SIZES),
            inference: Histogram::new(SECONDS),
            images: AtomicU64::new(0),
            queue_depth: AtomicUsize::new(0),
        }
    }
}

impl Metrics {
    /// Records one answered request of `route`.
    pub fn record_request(&self, route: &'static str, status: u16, took: Duration) {
        *self.requests.lock().expect("metrics lock").entry((route, status)).or_insert(0) += 1;
        self.latency.lock().expect("metrics lock").entry(route).or_insert_with(|| Histogram::new(SECONDS)).observe(took.as_secs_f64());
    }

    /// Records one forward pass of `images` images.
    pub fn record_batch(&self, images: usize, took: Duration) {
        self.batch_size.observe(images as f64);
        self.inference.observe(took.as_secs_f64());
        self.images.fetch_add(images as u64, Ordering::Relaxed);
    }

    /// The text exposition format, version 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP cloudbench_endpoint_requests_total Requests answered, by route and HTTP status.\n");
        out.push_str("# TYPE cloudbench_endpoint_requests_total counter\n");
        for ((route, status), n) in self.requests.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "cloudbench_endpoint_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
        }
        out.push_str("# HELP cloudbench_endpoint_request_seconds Time from request to answer, by route.\n");
        out.push_str("# TYPE cloudbench_endpoint_request_seconds histogram\n");
        for (route, h) in self.latency.lock().expect("metrics lock").iter() {
            h.render(&mut out, "cloudbench_endpoint_request_seconds", &format!("route=\"{route}\""));
        }
        out.push_str("# HELP cloudbench_endpoint_batch_size Images per forward pass.\n# TYPE cloudbench_endpoint_batch_size histogram\n");
        self.batch_size.render(&mut out, "cloudbench_endpoint_batch_size", "");
        out.push_str("# HELP cloudbench_endpoint_inference_seconds Time of one forward pass.\n# TYPE cloudbench_endpoint_inference_seconds histogram\n");
        self.inference.render(&mut out, "cloudbench_endpoint_inference_seconds", "");
        out.push_str("# HELP cloudbench_endpoint_images_total Images through the model.\n# TYPE cloudbench_endpoint_images_total counter\n");
        let _ = writeln!(out, "cloudbench_endpoint_images_total {}", self.images.load(Ordering::Relaxed));
        out.push_str("# HELP cloudbench_endpoint_queue_depth Images waiting for the model.\n# TYPE cloudbench_endpoint_queue_depth gauge\n");
        let _ = writeln!(out, "cloudbench_endpoint_queue_depth {}", self.queue_depth.load(Ordering::Relaxed));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.record_request("invocations", 200, Duration::from_millis(20));
        m.record_request("invocations", 200, Duration::from_millis(300));
        m.record_request("score", 503, Duration::from_millis(1));
        m.record_batch(3, Duration::from_millis(40));
        let text = m.render();
        assert!(text.contains("cloudbench_endpoint_requests_total{route=\"invocations\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("cloudbench_endpoint_requests_total{route=\"score\",status=\"503\"} 1"));
        assert!(text.contains("cloudbench_endpoint_request_seconds_bucket{route=\"invocations\",le=\"0.025\"} 1"));
        assert!(text.contains("cloudbench_endpoint_request_seconds_bucket{route=\"invocations\",le=\"0.5\"} 2"));
        assert!(text.contains("cloudbench_endpoint_batch_size_bucket{le=\"4\"} 1"));
        assert!(text.contains("cloudbench_endpoint_images_total 3"));
    }
}
