//! Live metrics of a long-running process (worker, collector) in the Prometheus text format, served
//! over plain HTTP at `GET /metrics` on the address the operator picks, optionally behind a bearer
//! token. A deliberately small server: one route, requests read up to their headers, one answer.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

enum Value {
    Counter(f64),
    Gauge(f64),
    Histogram { bounds: &'static [f64], counts: Vec<u64>, sum: f64, count: u64 },
}

struct Family {
    help: &'static str,
    /// The kind of a family declared before its first series ("counter").
    declared: Option<&'static str>,
    series: BTreeMap<String, Value>,
}

/// Metric families by name, each with its series by label set.
#[derive(Default)]
pub struct Registry {
    families: Mutex<BTreeMap<&'static str, Family>>,
}

/// Seconds buckets for single requests: 1 ms to 2 minutes.
pub const REQUEST_SECONDS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0];

/// Seconds buckets for batch phases: 10 ms to 20 minutes.
pub const PHASE_SECONDS: &[f64] = &[0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0];

fn label_set(labels: &[(&str, &str)]) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")))
        .collect::<Vec<_>>()
        .join(",")
}

impl Registry {
    fn with(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)], new: impl FnOnce() -> Value, update: impl FnOnce(&mut Value)) {
        let mut families = self.families.lock().expect("metrics lock");
        let family = families.entry(name).or_insert_with(|| Family { help, declared: None, series: BTreeMap::new() });
        update(family.series.entry(label_set(labels)).or_insert_with(new));
    }

    /// Declares a labelled counter before its first event, so that it is exported (its HELP and
    /// TYPE, no series) from the start: dashboards and alerts then see it exist at zero events.
    pub fn declare_counter(&self, name: &'static str, help: &'static str) {
        let mut families = self.families.lock().expect("metrics lock");
        families.entry(name).or_insert_with(|| Family { help, declared: Some("counter"), series: BTreeMap::new() });
    }

    /// Adds `by` to a counter.
    pub fn add(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)], by: f64) {
        self.with(name, help, labels, || Value::Counter(0.0), |v| {
            if let Value::Counter(c) = v {
                *c += by;
            }
        });
    }

    /// Sets a gauge.
    pub fn set(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)], to: f64) {
        self.with(name, help, labels, || Value::Gauge(0.0), |v| {
            if let Value::Gauge(g) = v {
                *g = to;
            }
        });
    }

    /// Records one observation in a histogram with the given upper bounds.
    pub fn observe(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)], bounds: &'static [f64], value: f64) {
        self.observe_n(name, help, labels, bounds, value, 1);
    }

    /// Records `n` observations of `value` (a bucket of a finer histogram, say) at once.
    pub fn observe_n(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)], bounds: &'static [f64], value: f64, n: u64) {
        let new = || Value::Histogram { bounds, counts: vec![0; bounds.len()], sum: 0.0, count: 0 };
        self.with(name, help, labels, new, |v| {
            if let Value::Histogram { bounds, counts, sum, count } = v {
                if let Some(i) = bounds.iter().position(|b| value <= *b) {
                    counts[i] += n;
                }
                *sum += value * n as f64;
                *count += n;
            }
        });
    }

    /// The text exposition format, version 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, family) in self.families.lock().expect("metrics lock").iter() {
            let kind = match family.series.values().next() {
                Some(Value::Counter(_)) => "counter",
                Some(Value::Gauge(_)) => "gauge",
                Some(Value::Histogram { .. }) => "histogram",
                None => match family.declared {
                    Some(kind) => kind,
                    None => continue,
                },
            };
            let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} {kind}", family.help);
            for (labels, value) in &family.series {
                let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
                match value {
                    Value::Counter(v) | Value::Gauge(v) => {
                        let _ = writeln!(out, "{name}{braces} {v}");
                    }
                    Value::Histogram { bounds, counts, sum, count } => {
                        let sep = if labels.is_empty() { "" } else { "," };
                        let mut cumulative = 0;
                        for (bound, n) in bounds.iter().zip(counts) {
                            cumulative += n;
                            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
                        }
                        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}\n{name}_sum{braces} {sum}\n{name}_count{braces} {count}");
                    }
                }
            }
        }
        out
    }
}

/// Compares a presented secret with the expected one in time that depends only on their lengths,
/// so that the comparison does not tell a prober how much of a guess was right.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

/// Serves `registry` at `GET /metrics` on `addr` (port 0 picks one); returns the bound address.
/// With `token`, requests must carry `Authorization: Bearer TOKEN`.
pub async fn serve(addr: SocketAddr, registry: Arc<Registry>, token: Option<String>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let token = Arc::new(token.filter(|t| !t.is_empty()));
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { continue };
            let (registry, token) = (registry.clone(), token.clone());
            tokio::spawn(async move {
                let mut head = Vec::with_capacity(1024);
                let mut buf = [0u8; 1024];
                let read = async {
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                        let n = socket.read(&mut buf).await?;
                        if n == 0 {
                            break;
                        }
                        head.extend_from_slice(&buf[..n]);
                    }
                    Ok::<_, std::io::Error>(())
                };
                if tokio::time::timeout(std::time::Duration::from_secs(5), read).await.is_err() {
                    return;
                }
                let text = String::from_utf8_lossy(&head);
                let authorized = token.as_ref().as_ref().is_none_or(|t| {
                    let expected = format!("Bearer {t}");
                    text.lines().any(|l| {
                        l.split_once(':').is_some_and(|(k, v)| k.eq_ignore_ascii_case("authorization") && same_secret(v.trim().as_bytes(), expected.as_bytes()))
                    })
                });
                let (status, body) = if !text.starts_with("GET /metrics ") {
                    ("404 Not Found", "not found\n".to_owned())
                } else if !authorized {
                    ("401 Unauthorized", "missing or wrong bearer token\n".to_owned())
                } else {
                    ("200 OK", registry.render())
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histograms() {
        let r = Registry::default();
        r.add("jobs_total", "Jobs.", &[("outcome", "done")], 1.0);
        r.add("jobs_total", "Jobs.", &[("outcome", "done")], 2.0);
        r.set("busy", "Busy.", &[], 1.0);
        r.observe("phase_seconds", "Phases.", &[("phase", "upload")], &[0.1, 1.0], 0.5);
        r.observe("phase_seconds", "Phases.", &[("phase", "upload")], &[0.1, 1.0], 5.0);
        let text = r.render();
        assert!(text.contains("# TYPE jobs_total counter\njobs_total{outcome=\"done\"} 3\n"), "{text}");
        assert!(text.contains("busy 1\n"));
        assert!(text.contains("phase_seconds_bucket{phase=\"upload\",le=\"1\"} 1\nphase_seconds_bucket{phase=\"upload\",le=\"+Inf\"} 2\n"), "{text}");
        assert!(text.contains("phase_seconds_count{phase=\"upload\"} 2"));
    }

    #[test]
    fn many_observations_at_once_and_declared_counters_render() {
        let r = Registry::default();
        r.observe_n("request_seconds", "Requests.", &[], &[0.001, 0.01], 0.003, 5);
        r.declare_counter("errors_total", "Errors.");
        let text = r.render();
        assert!(text.contains("request_seconds_bucket{le=\"0.001\"} 0\nrequest_seconds_bucket{le=\"0.01\"} 5\n"), "{text}");
        assert!(text.contains("request_seconds_sum 0.015") && text.contains("request_seconds_count 5"), "{text}");
        assert!(text.contains("# HELP errors_total Errors.\n# TYPE errors_total counter\n"), "{text}");
        r.add("errors_total", "Errors.", &[("kind", "timeout")], 1.0);
        assert!(r.render().contains("errors_total{kind=\"timeout\"} 1"));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"Bearer t0k", b"Bearer t0k"));
        assert!(!same_secret(b"Bearer t0j", b"Bearer t0k") && !same_secret(b"Bearer t0", b"Bearer t0k") && !same_secret(b"", b"x"));
    }

    #[tokio::test]
    async fn serves_metrics_behind_an_optional_token() {
        let r = Arc::new(Registry::default());
        r.add("up_total", "Up.", &[], 1.0);
        let addr = serve("127.0.0.1:0".parse().unwrap(), r, Some("t0k".into())).await.unwrap();
        let get = |auth: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET /metrics HTTP/1.1\r\nhost: x\r\n{auth}\r\n").as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        assert!(get("authorization: Bearer t0k\r\n").await.contains("up_total 1"));
        assert!(get("").await.starts_with("HTTP/1.1 401"));
    }
}
