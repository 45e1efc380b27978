use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use analyzer::civil::parse_when;
use analyzer::collect::collect;
use analyzer::export::{self, Format};
use analyzer::store::MetricsStore;
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use control::consume::Connector;
use control::{AmqpBroker, Broker, Namespace, RedisStore, RunStore};

/// Collects benchmark metrics and exports them.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Consumes the metrics queue into the store until stopped (SIGTERM, Ctrl-C) or a run completes.
    Collect {
        /// Directory of the metrics store.
        #[arg(long, env = "CLOUDBENCH_STORE", default_value = "metrics-store")]
        store: PathBuf,
        #[arg(long, env = "AMQP_URL", default_value = "amqp://127.0.0.1:5672/%2f")]
        amqp_url: String,
        #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
        redis_url: String,
        #[arg(long, env = "CLOUDBENCH_NAMESPACE", default_value = Namespace::DEFAULT)]
        namespace: String,
        /// Stops once this run is complete and the store holds the metrics of all its done batches.
        #[arg(long)]
        until_complete: Option<String>,
        /// Serves Prometheus metrics at http://ADDR/metrics (a bearer token is required when
        /// CLOUDBENCH_METRICS_TOKEN is set).
        #[arg(long, env = "CLOUDBENCH_METRICS_ADDR")]
        metrics_addr: Option<std::net::SocketAddr>,
    },
    /// Exports a run's per-batch rows.
    Export {
        #[arg(long, env = "CLOUDBENCH_STORE", default_value = "metrics-store")]
        store: PathBuf,
        #[arg(long)]
        run: String,
        #[arg(long, value_enum, default_value = "csv")]
        format: Format,
        /// Output file; standard output when absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Writes report.md, a self-contained report.html and report.json for a run from the store.
    Report {
        #[arg(long, env = "CLOUDBENCH_STORE", default_value = "metrics-store")]
        store: PathBuf,
        #[arg(long)]
        run: String,
        /// Output folder; defaults to `report-RUN`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Price and service catalog (TOML); defaults to the paper's Tables 6 and 7.
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// Requirement weights (TOML); defaults after the paper's Table 9.
        #[arg(long)]
        requirements: Option<PathBuf>,
        #[command(flatten)]
        spec: SpecArgs,
        /// Significance level of every test.
        #[arg(long, default_value_t = 0.05)]
        alpha: f64,
        /// Seed of the bootstrap intervals.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Leaves out the first N batches of each platform, in time order, as warm-up.
        #[arg(long, value_name = "N")]
        exclude_warmup: Option<usize>,
        /// Exits with status 1 (after writing the report) when a validity check fails.
        #[arg(long)]
        strict: bool,
        #[command(flatten)]
        capacity: CapacityArgs,
    },
    /// Checks a run against service-level criteria and exits 1 when any fails, e.g.
    /// `--slo 'inference.p99_ms<=500' --slo 'availability>=99.9' --slo 'capacity_rps>=40'`.
    Check {
        #[arg(long, env = "CLOUDBENCH_STORE", default_value = "metrics-store")]
        store: PathBuf,
        #[arg(long)]
        run: String,
        /// A criterion METRIC OP VALUE: PHASE.p50_ms|p90_ms|p99_ms|p999_ms (upload, download,
        /// inference), availability (percent), capacity_rps; OP is <=, <, >= or >. Repeatable.
        #[arg(long = "slo", required = true)]
        slos: Vec<String>,
        /// Checks only this platform (repeatable); every platform of the run by default.
        #[arg(long = "platform")]
        platforms: Vec<String>,
        /// Leaves out the first N batches of each platform, in time order, as warm-up.
        #[arg(long, value_name = "N")]
        exclude_warmup: Option<usize>,
        #[command(flatten)]
        spec: SpecArgs,
        #[command(flatten)]
        capacity: CapacityArgs,
    },
    /// Compares runs with the first (the baseline): per platform and metric, medians with intervals,
    /// the relative change with its interval, Holm-adjusted Mann–Whitney p, Cliff's δ, and a verdict
    /// only where the change is significant and at least --min-change. Writes compare.md,
    /// compare.html and compare.json.
    Compare {
        #[arg(long, env = "CLOUDBENCH_STORE", default_value = "metrics-store")]
        store: PathBuf,
        /// A run, RUN (in --store) or RUN@STORE_DIR; the first is the baseline. Two or more.
        #[arg(long = "run", required = true, num_args = 1)]
        runs: Vec<String>,
        /// Output folder; defaults to `compare-BASELINE`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Smallest relative change of a median that gets a verdict.
        #[arg(long, default_value_t = 0.05)]
        min_change: f64,
        #[arg(long, default_value_t = 0.05)]
        alpha: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Exits with status 1 (after writing the comparison) when any metric got worse.
        #[arg(long)]
        fail_on_regression: bool,
    },
    /// Every run in the store (or those the filters keep) as series of run-level medians per platform
    /// and metric, with each change of level dated and tied to what changed with it. Writes
    /// history.md, history.html and history.json.
    History {
        #[arg(long, env = "CLOUDBENCH_STORE", default_value = "metrics-store")]
        store: PathBuf,
        /// Only this platform (repeatable).
        #[arg(long = "platform")]
        platforms: Vec<String>,
        /// Only runs whose platform answered with this model hash.
        #[arg(long)]
        model_hash: Option<String>,
        /// Only runs that started at or after this date (YYYY-MM-DD, UTC) or Unix time in seconds.
        #[arg(long)]
        since: Option<String>,
        /// Only runs that started before this date (YYYY-MM-DD, UTC) or Unix time in seconds.
        #[arg(long)]
        until: Option<String>,
        /// Shortest regime a change may start, in runs: a single odd run is never a change.
        #[arg(long, default_value_t = 3)]
        min_segment: usize,
        /// Output folder; defaults to `history`.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Merges the stores of several collectors (one beside each cloud) into one, deduplicated by job
    /// key; stores holding different records for the same job are refused, and nothing is written.
    Merge {
        /// The store to merge into (created when missing; its own records count too).
        #[arg(long)]
        into: PathBuf,
        /// The stores to merge.
        #[arg(required = true)]
        stores: Vec<PathBuf>,
    },
    /// Compares groups of samples: descriptives, Kruskal–Wallis, Dunn–Holm, Mann–Whitney, Cliff's delta.
    Stats {
        /// CSV file with the header `group,value`; groups are reported in order of first appearance.
        #[arg(long)]
        samples: PathBuf,
        #[arg(long, value_enum, default_value = "markdown")]
        format: analyzer::stats::cli::Format,
    },
}

/// The latency target of the Capacity section and the load it sizes instances for.
#[derive(clap::Args)]
struct CapacityArgs {
    /// The p99 target (ms) a load stage must keep to count as sustainable; default: the run spec's
    /// `[load_sweep]` target.
    #[arg(long, value_name = "MS")]
    slo_p99_ms: Option<f64>,
    /// The share of failed requests a stage may have and still meet the target (with --slo-p99-ms).
    #[arg(long, value_name = "SHARE", default_value_t = control::sweep::DEFAULT_MAX_ERROR_SHARE)]
    max_error_share: f64,
    /// Requests per second to size instance counts for, at each platform's sustainable rate.
    #[arg(long, value_name = "RPS")]
    target_load: Option<f64>,
}

impl CapacityArgs {
    fn target(&self) -> anyhow::Result<Option<control::sweep::Target>> {
        let Some(p99_ms) = self.slo_p99_ms else { return Ok(None) };
        if !(p99_ms.is_finite() && p99_ms > 0.0) {
            bail!("--slo-p99-ms must be a positive number of milliseconds, got {p99_ms}");
        }
        if !(0.0..=1.0).contains(&self.max_error_share) {
            bail!("--max-error-share must be between 0 and 1, got {}", self.max_error_share);
        }
        if let Some(load) = self.target_load.filter(|l| !(l.is_finite() && *l > 0.0)) {
            bail!("--target-load must be a positive rate, got {load}");
        }
        Ok(Some(control::sweep::Target { p99_ms, max_error_share: self.max_error_share }))
    }
}

/// Where the run's spec comes from: a file, or the run state.
#[derive(clap::Args)]
struct SpecArgs {
    /// Run spec (shown in the reproducibility block; a load sweep's target); without it, the spec
    /// the run was started with is read from the run state when a Redis URL is given.
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Redis URL of the run state, to read the run's spec from.
    #[arg(long, env = "REDIS_URL")]
    redis_url: Option<String>,
    #[arg(long, env = "CLOUDBENCH_NAMESPACE", default_value = Namespace::DEFAULT)]
    namespace: String,
}

impl SpecArgs {
    /// The run spec from the file, or from the run state when a Redis URL is given (a warning, not
    /// an error, when it is not there).
    async fn read(self, run: &str) -> anyhow::Result<Option<String>> {
        Ok(match (self.spec, self.redis_url) {
            (Some(p), _) => Some(std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?),
            (None, Some(url)) => match RedisStore::connect(&url, Namespace::new(&self.namespace)?).await {
                Ok(state) => state.spec(run).await.inspect_err(|e| tracing::warn!(error = %e, "run spec not in the run state")).ok(),
                Err(e) => {
                    tracing::warn!(error = %e, "run state unreachable; the report has no run spec");
                    None
                }
            },
            (None, None) => None,
        })
    }
}

/// Opens the store and reads a run's metrics; a missing store or run is a one-line error.
fn read_metrics(store: &std::path::Path, run: &str) -> anyhow::Result<Vec<proto::v1::BatchMetrics>> {
    if !store.is_dir() {
        bail!("metrics store {} not found", store.display());
    }
    let store = MetricsStore::open(store)?;
    let metrics = store.read(run)?;
    if metrics.is_empty() {
        bail!("no metrics for run {run} in the store (runs: {})", store.runs()?.join(", "));
    }
    Ok(metrics)
}

fn main() {
    let cli = Cli::parse();
    let mut status = 0;
    service::run_main("info", run(cli, &mut status));
    std::process::exit(status);
}

/// The exit status of `analyzer report`: 1 for an INVALID run under `--strict`, else 0 (an
/// INVALID run is still reported, and the line on standard error is a warning).
fn report_status(invalid: bool, strict: bool) -> i32 {
    i32::from(invalid && strict)
}

/// Runs a command; `status` is the exit status of a command that succeeded (`report --strict`).
async fn run(cli: Cli, status: &mut i32) -> anyhow::Result<()> {
    match cli.command {
        Command::Collect { store, amqp_url, redis_url, namespace, until_complete, metrics_addr } => {
            let ns = Namespace::new(&namespace)?;
            let telemetry = Arc::new(service::telemetry::Registry::default());
            // Served until the collector returns.
            let _metrics = service::telemetry::serve_at(metrics_addr, telemetry.clone()).await?;
            let store = Arc::new(Mutex::new(MetricsStore::open(&store)?));
            let (stop_tx, stop) = tokio::sync::watch::channel(false);
            let stop_tx = Arc::new(stop_tx);
            let signal_tx = stop_tx.clone();
            tokio::spawn(async move {
                service::shutdown_signal().await;
                let _ = signal_tx.send(true);
            });
            if let Some(run_id) = until_complete {
                proto::check_name("run id", &run_id)?;
                let state = RedisStore::connect(&redis_url, ns.clone()).await?;
                let watched = store.clone();
                let done_tx = stop_tx.clone();
                let mut dead_letters = control::dead::DeadLetterWatch::new(&amqp_url, &ns, &run_id);
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        // Jobs the broker dead-lettered (poison jobs that kept killing workers) fail
                        // their batches, so that the run can complete.
                        dead_letters.tick(&state).await;
                        let Ok(Some(progress)) = state.progress(&run_id).await else { continue };
                        let stored = watched.lock().expect("store lock").count(&run_id).unwrap_or(0) as u64;
                        if progress.is_collected(stored) {
                            tracing::info!(run_id, stored, "run complete");
                            let _ = done_tx.send(true);
                            return;
                        }
                    }
                });
            }
            let connections = telemetry.clone();
            let connector: Connector = Arc::new(move || {
                let url = amqp_url.clone();
                connections.add("cloudbench_collector_broker_connects_total", "Connections opened to the broker (more than one: reconnects).", &[], 1.0);
                Box::pin(async move { AmqpBroker::connect(&url).await.map(|b| Arc::new(b) as Arc<dyn Broker>) })
            });
            let stats = collect(&connector, &ns, store, stop, telemetry).await;
            eprintln!(
                "collector stopped: {} stored, {} duplicates dropped, {} malformed, {} reconnects",
                stats.stored, stats.duplicates, stats.malformed, stats.reconnects
            );
        }
        Command::Export { store, run, format, out } => {
            proto::check_name("run id", &run)?;
            if !store.is_dir() {
                bail!("metrics store {} not found", store.display());
            }
            let store = MetricsStore::open(&store)?;
            let rows = analyzer::run_rows(&store, &run)?;
            if rows.is_empty() {
                bail!("no metrics for run {run} in the store (runs: {})", store.runs()?.join(", "));
            }
            let bytes = export::render(&rows, format);
            match out {
                Some(path) => std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?,
                None => std::io::Write::write_all(&mut std::io::stdout(), &bytes)?,
            }
        }
        Command::Report { store, run, out, catalog, requirements, spec, alpha, seed, exclude_warmup, strict, capacity } => {
            use analyzer::report::config::{Catalog, DEFAULT_CATALOG, DEFAULT_REQUIREMENTS, Requirements};
            proto::check_name("run id", &run)?;
            if !(alpha > 0.0 && alpha < 1.0) {
                bail!("--alpha must be between 0 and 1, got {alpha}");
            }
            let target = capacity.target()?;
            let read = |path: &Option<PathBuf>, default: &str| -> anyhow::Result<String> {
                match path {
                    Some(p) => std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display())),
                    None => Ok(default.to_owned()),
                }
            };
            let catalog = Catalog::parse(&read(&catalog, DEFAULT_CATALOG)?).map_err(anyhow::Error::msg)?;
            let requirements = Requirements::parse(&read(&requirements, DEFAULT_REQUIREMENTS)?).map_err(anyhow::Error::msg)?;
            let spec = spec.read(&run).await?;
            // Reading, one step per metric (bootstrap intervals and tests), the rest, rendering.
            let bar = service::progress_bar("report", analyzer::report::build_steps() as u64 + 2);
            bar.set_message("reading the metrics");
            let metrics = read_metrics(&store, &run).inspect_err(|_| bar.finish_and_clear())?;
            let options = analyzer::report::Options { alpha, seed, spec, exclude_warmup, target, target_load: capacity.target_load, ..Default::default() };
            let report = analyzer::report::build_with_progress(&run, &metrics, &catalog, &requirements, &options, &mut |done, _, what| {
                bar.set_position(1 + done as u64);
                bar.set_message(format!("{what} over {} batches", metrics.len()));
            });
            bar.set_message("rendering Markdown, HTML and JSON");
            bar.inc(1);
            let rendered = analyzer::report::render(&report);
            let out = out.unwrap_or_else(|| PathBuf::from(format!("report-{run}")));
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            for (name, text) in [("report.md", &rendered.markdown), ("report.html", &rendered.html), ("report.json", &rendered.json)] {
                let path = out.join(name);
                std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            }
            bar.finish_and_clear();
            println!("report of run {run} ({} batches) in {}", report.reproducibility.batches, out.display());
            let invalid = analyzer::report::validity::invalid_line(&run, &report.validity);
            if let Some(line) = &invalid {
                eprintln!("{line}");
            }
            *status = report_status(invalid.is_some(), strict);
        }
        Command::Check { store, run, slos, platforms, exclude_warmup, spec, capacity } => {
            use analyzer::report::config::{Catalog, DEFAULT_CATALOG, DEFAULT_REQUIREMENTS, Requirements};
            proto::check_name("run id", &run)?;
            let slos = slos.iter().map(|s| analyzer::check::Slo::parse(s)).collect::<Result<Vec<_>, _>>().map_err(anyhow::Error::msg)?;
            let target = capacity.target()?;
            let spec = spec.read(&run).await?;
            let metrics = read_metrics(&store, &run)?;
            let catalog = Catalog::parse(DEFAULT_CATALOG).map_err(anyhow::Error::msg)?;
            let requirements = Requirements::parse(DEFAULT_REQUIREMENTS).map_err(anyhow::Error::msg)?;
            // The tests' bootstrap is not needed for the gates: the fewest resamples it allows.
            let options = analyzer::report::Options { spec, exclude_warmup, target, target_load: capacity.target_load, resamples: 1, ..Default::default() };
            let report = analyzer::report::build(&run, &metrics, &catalog, &requirements, &options);
            let verdicts = analyzer::check::check(&report, &slos, &platforms).map_err(anyhow::Error::msg)?;
            for v in &verdicts {
                println!("{v}");
            }
            let failed = verdicts.iter().filter(|v| !v.pass).count();
            println!("run {run}: {} of {} checks passed", verdicts.len() - failed, verdicts.len());
            *status = i32::from(failed > 0);
        }
        Command::Compare { store, runs, out, min_change, alpha, seed, fail_on_regression } => {
            if !(alpha > 0.0 && alpha < 1.0) {
                bail!("--alpha must be between 0 and 1, got {alpha}");
            }
            if !(min_change.is_finite() && min_change >= 0.0) {
                bail!("--min-change must be a share of at least 0 (0.05 is 5%), got {min_change}");
            }
            if runs.len() < 2 {
                bail!("compare needs two or more --run (the first is the baseline)");
            }
            let mut loaded = Vec::new();
            for spec in &runs {
                let (run, dir) = match spec.split_once('@') {
                    Some((run, dir)) => (run, PathBuf::from(dir)),
                    None => (spec.as_str(), store.clone()),
                };
                proto::check_name("run id", run)?;
                let rows: Vec<analyzer::rows::BatchRow> = read_metrics(&dir, run)?.iter().map(analyzer::rows::BatchRow::from_metrics).collect();
                loaded.push((spec.clone(), rows));
            }
            let options = analyzer::compare::Options { alpha, min_change, seed, ..Default::default() };
            let comparison = analyzer::compare::compare(&loaded, &options).map_err(anyhow::Error::msg)?;
            let blocks = analyzer::compare::blocks(&comparison);
            let out = out.unwrap_or_else(|| PathBuf::from(format!("compare-{}", runs[0].replace(['@', '/'], "_"))));
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let title = format!("cloudbench comparison against {}", comparison.baseline);
            let json = serde_json::to_string_pretty(&comparison)? + "\n";
            for (name, text) in [("compare.md", analyzer::report::document::markdown(&blocks)), ("compare.html", analyzer::report::document::html(&title, &blocks)), ("compare.json", json)] {
                let path = out.join(name);
                std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            }
            for row in comparison.rows.iter().filter(|r| r.verdict != analyzer::compare::Verdict::NoSignificantChange) {
                println!("{} {} {}: {} ({:+.1}%, p = {:.2e})", row.run, row.platform, row.title, analyzer::compare::verdict_word(row), row.change * 100.0, row.p_holm);
            }
            let worse = comparison.regressions().count();
            println!("comparison of {} against {} in {}: {} comparisons, {worse} worse", comparison.runs.join(", "), comparison.baseline, out.display(), comparison.rows.len());
            *status = i32::from(fail_on_regression && worse > 0);
        }
        Command::History { store, platforms, model_hash, since, until, min_segment, out } => {
            if min_segment == 0 {
                bail!("--min-segment must be at least 1");
            }
            if !store.is_dir() {
                bail!("metrics store {} not found", store.display());
            }
            let opened = MetricsStore::open(&store)?;
            let mut runs = Vec::new();
            for run in opened.runs()? {
                runs.push((run.clone(), opened.read(&run)?));
            }
            if runs.is_empty() {
                bail!("metrics store {} holds no runs", store.display());
            }
            let options = analyzer::history::Options { platforms, model_hash, since: since.as_deref().map(parse_when).transpose()?, until: until.as_deref().map(parse_when).transpose()?, min_segment };
            let history = analyzer::history::history(&runs, &options);
            let out = out.unwrap_or_else(|| PathBuf::from("history"));
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let json = serde_json::to_string_pretty(&history)? + "\n";
            let md = analyzer::report::document::markdown(&analyzer::history::blocks(&history, false));
            let html = analyzer::report::document::html("cloudbench history", &analyzer::history::blocks(&history, true));
            for (name, text) in [("history.md", md), ("history.html", html), ("history.json", json)] {
                let path = out.join(name);
                std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            }
            for s in &history.series {
                for c in &s.changes {
                    let with = if c.came_with.is_empty() { String::new() } else { format!(", with {}", c.came_with.join("; ")) };
                    println!("{} {}: changed at run {} ({}): {:.4} → {:.4} {}{with}", s.platform, s.title, c.run, analyzer::civil::iso(c.started_unix_s), c.before_median, c.after_median, s.unit);
                }
            }
            let changes: usize = history.series.iter().map(|s| s.changes.len()).sum();
            println!("history of {} runs in {}: {} series, {changes} changes", history.runs, out.display(), history.series.len());
        }
        Command::Merge { into, stores } => {
            let merged = analyzer::merge::merge(&into, &stores)?;
            let added: usize = merged.added.values().sum();
            let already: usize = merged.already.values().sum();
            println!("merged {added} records of {} runs into {} ({already} were there already)", merged.added.len(), into.display());
        }
        Command::Stats { samples, format } => {
            let text = std::fs::read_to_string(&samples).with_context(|| format!("reading {}", samples.display()))?;
            print!("{}", analyzer::stats::cli::run(&text, format)?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_strict_report_of_an_invalid_run_exits_non_zero() {
        assert_eq!([report_status(true, true), report_status(true, false), report_status(false, true), report_status(false, false)], [1, 0, 0, 0]);
    }

    #[test]
    fn report_flags_parse() {
        let cli = Cli::try_parse_from(["analyzer", "report", "--run", "r1", "--strict", "--exclude-warmup", "3"]).unwrap();
        let Command::Report { strict, exclude_warmup, .. } = cli.command else { panic!("not a report") };
        assert_eq!((strict, exclude_warmup), (true, Some(3)));
        assert!(Cli::try_parse_from(["analyzer", "report", "--run", "r1", "--exclude-warmup", "-1"]).is_err());
    }
}
