//! Live metrics of a long-running process (worker, collector) in the Prometheus text format, served
//! over plain HTTP at `GET /metrics` on the address the operator picks, optionally behind a bearer
//! token (the server is the `metrics-server` feature; the registry is always built).

use std::collections::BTreeMap;
use std::fmt::Write;
#[cfg(feature = "metrics-server")]
use std::net::SocketAddr;
#[cfg(feature = "metrics-server")]
use std::sync::Arc;
use std::sync::Mutex;

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
#[cfg(any(feature = "metrics-server", test))]
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

/// The `/metrics` server [`serve`] started: it answers until [`MetricsServer::shutdown`] or until
/// it is dropped.
#[cfg(feature = "metrics-server")]
#[must_use = "the server stops when this is dropped"]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

#[cfg(feature = "metrics-server")]
impl MetricsServer {
    /// The address it listens on (the port picked, where port 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections and returns once the answers under way are sent.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        self.stop.take().map(|stop| stop.send(()));
        match self.task.take().expect("not yet shut down").await {
            Ok(served) => served,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

#[cfg(feature = "metrics-server")]
impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.take().map(|stop| stop.send(()));
    }
}

/// The content type of Prometheus' text exposition format, version 0.0.4 (every answer's).
#[cfg(feature = "metrics-server")]
const TEXT_FORMAT: &str = "text/plain; version=0.0.4";

/// Serves `registry` at `GET /metrics` on `addr` (port 0 picks one), with the workspace's HTTP
/// stack (axum on hyper: HTTP/1.1 with keep-alive, accept errors retried, graceful shutdown).
/// With `token` (not empty), requests must carry `Authorization: Bearer TOKEN`.
#[cfg(feature = "metrics-server")]
pub async fn serve(addr: SocketAddr, registry: Arc<Registry>, token: Option<String>) -> std::io::Result<MetricsServer> {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;

    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let expected = token.filter(|t| !t.is_empty()).map(|t| format!("Bearer {t}"));
    let metrics = move |headers: header::HeaderMap| async move {
        let authorized = expected.as_ref().is_none_or(|expected| {
            headers.get(header::AUTHORIZATION).is_some_and(|given| same_secret(given.as_bytes(), expected.as_bytes()))
        });
        let text = [(header::CONTENT_TYPE, TEXT_FORMAT)];
        match authorized {
            true => (StatusCode::OK, text, registry.render()).into_response(),
            false => (StatusCode::UNAUTHORIZED, text, "missing or wrong bearer token\n").into_response(),
        }
    };
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .fallback(|| async { (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, TEXT_FORMAT)], "not found\n") });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                // A send or a dropped handle both stop the server.
                let _ = stopped.await;
            })
            .await
    });
    Ok(MetricsServer { addr: bound, stop: Some(stop), task: Some(task) })
}

/// The environment variable that holds the bearer token of the processes' `/metrics` (unset or
/// empty: none asked).
pub const TOKEN_ENV: &str = "CLOUDBENCH_METRICS_TOKEN";

/// [`serve`] at `addr` when one is given, behind the token of [`TOKEN_ENV`]; logs where. The error
/// names the address.
#[cfg(feature = "metrics-server")]
pub async fn serve_at(addr: Option<SocketAddr>, registry: Arc<Registry>) -> std::io::Result<Option<MetricsServer>> {
    let Some(addr) = addr else { return Ok(None) };
    let server = serve(addr, registry, std::env::var(TOKEN_ENV).ok())
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("metrics address {addr}: {e}")))?;
    tracing::info!(bound = %server.addr(), "metrics at /metrics");
    Ok(Some(server))
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

    /// One request on a fresh connection (closed after the answer); the whole answer.
    #[cfg(feature = "metrics-server")]
    async fn get(addr: SocketAddr, path: &str, auth: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let exchange = async {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n{auth}connection: close\r\n\r\n").as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), exchange).await.expect("an answer within 10 s")
    }

    #[cfg(feature = "metrics-server")]
    #[tokio::test]
    async fn serves_metrics_behind_an_optional_token() {
        let r = Arc::new(Registry::default());
        r.add("up_total", "Up.", &[], 1.0);
        let server = serve("127.0.0.1:0".parse().unwrap(), r.clone(), Some("t0k".into())).await.unwrap();
        let ok = get(server.addr(), "/metrics", "authorization: Bearer t0k\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200") && ok.contains("content-type: text/plain; version=0.0.4") && ok.ends_with("up_total 1\n"), "{ok}");
        for wrong in ["", "authorization: Bearer t0j\r\n", "authorization: Bearer t0\r\n", "authorization: t0k\r\n"] {
            let answer = get(server.addr(), "/metrics", wrong).await;
            assert!(answer.starts_with("HTTP/1.1 401") && !answer.contains("up_total"), "{wrong:?}: {answer}");
        }
        assert!(get(server.addr(), "/other", "authorization: Bearer t0k\r\n").await.starts_with("HTTP/1.1 404"));
        // No token, or an empty one: open.
        let open = serve("127.0.0.1:0".parse().unwrap(), r, Some(String::new())).await.unwrap();
        assert!(get(open.addr(), "/metrics", "").await.contains("up_total 1"));
    }

    #[cfg(feature = "metrics-server")]
    #[tokio::test]
    async fn keeps_a_connection_alive_and_stops_on_shutdown_or_drop() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let r = Arc::new(Registry::default());
        r.set("busy", "Busy.", &[], 1.0);
        let server = serve("127.0.0.1:0".parse().unwrap(), r.clone(), None).await.unwrap();
        let addr = server.addr();
        // Two scrapes on one connection, as Prometheus makes them.
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        for _ in 0..2 {
            s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
            let mut answer = Vec::new();
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&answer).ends_with("busy 1\n") {
                let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf)).await.expect("an answer within 10 s").unwrap();
                assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&answer));
                answer.extend_from_slice(&buf[..n]);
            }
        }
        drop(s);
        tokio::time::timeout(std::time::Duration::from_secs(10), server.shutdown()).await.expect("shut down within 10 s").unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "still listening after shutdown");
        // Dropping the handle stops it too.
        let dropped = serve("127.0.0.1:0".parse().unwrap(), r, None).await.unwrap();
        let addr = dropped.addr();
        drop(dropped);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            assert!(tokio::time::Instant::now() < deadline, "still listening 10 s after the handle was dropped");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
