//! The endpoint server's Prometheus metrics, in the text exposition format: requests by route and
//! status, request latency, forward-pass sizes and times, and the model queue's depth, kept in the
//! same registry (and rendered by the same code) as every other process's `/metrics`. They live
//! beside the batching queue, which keeps the model's half of them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use service::telemetry::Registry;

const SECONDS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
const SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// Everything `/metrics` reports.
#[derive(Default)]
pub struct Metrics {
    registry: Registry,
    /// Images waiting for the model, kept by the batcher and read when rendering.
    pub queue_depth: AtomicUsize,
    /// Most images the next forward pass takes, as the batcher last chose it.
    pub pass_limit: AtomicUsize,
}

impl Metrics {
    /// Records one answered request of `route`.
    pub fn record_request(&self, route: &'static str, status: u16, took: Duration) {
        let status = status.to_string();
        self.registry.add("cloudbench_endpoint_requests_total", "Requests answered, by route and HTTP status.", &[("route", route), ("status", &status)], 1.0);
        self.registry.observe("cloudbench_endpoint_request_seconds", "Time from request to answer, by route.", &[("route", route)], SECONDS, took.as_secs_f64());
    }

    /// Records one forward pass of `images` images.
    pub fn record_batch(&self, images: usize, took: Duration) {
        self.registry.observe("cloudbench_endpoint_batch_size", "Images per forward pass.", &[], SIZES, images as f64);
        self.registry.observe("cloudbench_endpoint_inference_seconds", "Time of one forward pass.", &[], SECONDS, took.as_secs_f64());
        self.registry.add("cloudbench_endpoint_images_total", "Images through the model.", &[], images as f64);
    }

    /// The text exposition format, version 0.0.4.
    pub fn render(&self) -> String {
        let depth = self.queue_depth.load(Ordering::Relaxed) as f64;
        self.registry.set("cloudbench_endpoint_queue_depth", "Images waiting for the model.", &[], depth);
        let limit = self.pass_limit.load(Ordering::Relaxed) as f64;
        self.registry.set("cloudbench_endpoint_pass_limit", "Most images the model thread takes into its next forward pass.", &[], limit);
        self.registry.render()
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
