//! What a platform's service gave: merged request latency per phase, the server/outside split,
//! observed availability against the SLA, and cost at the measured throughput.

use crate::batch::{Batch, Latencies, Phase};

use super::config::Catalog;
use super::model::*;

/// The timed phases of a batch, by name: what the latency, availability and validity tables count.
pub(super) fn phases(m: &Batch) -> [(&'static str, Option<&Phase>); 3] {
    [("upload", m.upload.as_ref()), ("download", m.download.as_ref()), ("inference", m.inference.as_ref())]
}

pub(super) fn latency(platforms: &[String], metrics: &[&Batch]) -> Vec<LatencyRow> {
    let mut out = Vec::new();
    for platform in platforms {
        for phase in ["upload", "download", "inference"] {
            let timings = metrics.iter().filter(|m| &m.platform == platform).filter_map(|m| {
                phases(m).into_iter().find(|(name, _)| *name == phase).and_then(|(_, t)| t).map(|t| &t.latency)
            });
            let Some(merged) = Latencies::merge(timings) else { continue };
            let ms = |q: f64| merged.value_at_quantile(q) as f64 / 1000.0;
            out.push(LatencyRow { platform: platform.clone(), phase, requests: merged.len(), p50_ms: ms(0.5), p90_ms: ms(0.9), p99_ms: ms(0.99), p999_ms: ms(0.999) });
        }
    }
    out
}

pub(super) fn server_split(platforms: &[String], metrics: &[&Batch]) -> Vec<ServerSplitRow> {
    let mut out = Vec::new();
    for platform in platforms {
        let phases: Vec<&Phase> = metrics.iter().filter(|m| &m.platform == platform).filter_map(|m| m.inference.as_ref()).collect();
        if phases.is_empty() {
            continue;
        }
        let merge = |get: fn(&Phase) -> &Latencies| Latencies::merge(phases.iter().map(|p| get(p)));
        let (server, outside) = (merge(|p| &p.server), merge(|p| &p.outside));
        let q = |h: &Option<hdrhistogram::Histogram<u64>>, q: f64| h.as_ref().map(|h| h.value_at_quantile(q) as f64 / 1000.0);
        out.push(ServerSplitRow {
            platform: platform.clone(),
            reported: server.as_ref().map_or(0, |h| h.len()),
            requests: phases.iter().map(|p| p.requests).sum(),
            server_p50_ms: q(&server, 0.5),
            server_p99_ms: q(&server, 0.99),
            outside_p50_ms: q(&outside, 0.5),
            outside_p99_ms: q(&outside, 0.99),
        });
    }
    out
}

pub(super) fn availability(platforms: &[String], metrics: &[&Batch], catalog: &Catalog) -> Vec<AvailabilityRow> {
    platforms
        .iter()
        .map(|platform| {
            let (mut requests, mut failed) = (0, 0);
            for m in metrics.iter().filter(|m| &m.platform == platform) {
                for t in phases(m).into_iter().filter_map(|(_, t)| t) {
                    requests += t.requests;
                    failed += t.failed;
                }
            }
            let availability_percent = if requests == 0 { 100.0 } else { 100.0 * (requests - failed) as f64 / requests as f64 };
            let sla_percent = catalog.platform.get(platform).and_then(|e| e.sla_percent);
            AvailabilityRow { platform: platform.clone(), requests, failed, availability_percent, sla_percent, meets_sla: sla_percent.map(|s| availability_percent >= s) }
        })
        .collect()
}

pub(super) fn costs(platforms: &[String], metrics: &[&Batch], catalog: &Catalog) -> Vec<CostRow> {
    let mut out = Vec::new();
    for platform in platforms {
        let Some(entry) = catalog.platform.get(platform) else { continue };
        let (images, seconds) = metrics.iter().filter(|m| &m.platform == platform).fold((0u64, 0f64), |(i, s), m| {
            let secs = |t: &Option<Phase>| t.as_ref().map_or(0.0, |t| t.duration_ns as f64 / 1e9);
            (i + u64::from(m.images), s + secs(&m.download) + secs(&m.inference))
        });
        let images_per_second = if seconds > 0.0 { images as f64 / seconds } else { f64::NAN };
        let (lo, hi) = entry.usd_per_hour();
        let per_1000 = |usd_h: f64| usd_h / (images_per_second * 3600.0) * 1000.0;
        out.push(CostRow {
            platform: platform.clone(),
            provider: entry.provider.clone(),
            components: entry.components.clone(),
            usd_per_hour: (lo, hi),
            usd_per_day: (lo * 24.0, hi * 24.0),
            images_per_second,
            usd_per_1000_images: (per_1000(lo), per_1000(hi)),
        });
    }
    out
}
