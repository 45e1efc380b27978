//! `coordinator run` and `coordinator schedule`: publishing a run's batches (a plain run, scaling
//! stages or a load sweep), resumed through lost connections, and repeating rounds on a schedule.

use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use control::{AmqpBroker, Broker, Namespace, RedisStore};
use coordinator::enqueue::{self, EnqueueError, EnqueueOptions};
use coordinator::manifest::Manifest;
use coordinator::spec::RunSpec;

use super::Services;

/// The run id given on the command line, else the spec's, checked.
fn run_id_of(spec: &RunSpec, given: Option<String>) -> anyhow::Result<String> {
    let Some(run_id) = given.or(spec.run_id.clone()) else {
        bail!("no run id: give --run-id or set run_id in the spec");
    };
    proto::check_name("run id", &run_id)?;
    Ok(run_id)
}

/// Publishes the run of `spec` (resuming it if it was started before), then follows it with `watch`.
pub async fn run(services: &Services, ns: &Namespace, spec: &Path, run_id: Option<String>, max_rate: Option<f64>, watch: bool) -> anyhow::Result<()> {
    let spec = RunSpec::load(spec)?;
    let run_id = run_id_of(&spec, run_id)?;
    let manifest = Manifest::load(&spec.manifest)?;
    let store = RedisStore::connect(&services.redis_url, ns.clone()).await?;
    let broker = AmqpBroker::connect(&services.amqp_url).await?;
    let _observed = services.observe(ns, &store, &run_id).await?;
    let options = EnqueueOptions { max_rate, ..Default::default() };
    if let Some(scaling) = spec.scaling.clone() {
        let stages = coordinator::stages::run_stages(
            &broker,
            &store,
            ns,
            &run_id,
            &spec,
            &scaling,
            &manifest,
            &options,
            std::time::Duration::from_millis(250),
            print_stage,
        )
        .await;
        broker.close().await;
        let stages = stages?;
        let short = stages.iter().filter(|s| s.short).count();
        println!("run {run_id}: {} stages done, {short} started short", stages.len());
        return Ok(());
    }
    if let Some(sweep) = spec.load_sweep.clone() {
        let swept = coordinator::sweep::run_sweep(&broker, &store, ns, &run_id, &spec, &sweep, &manifest, &options, Duration::from_millis(250), print_sweep).await;
        broker.close().await;
        let swept = swept?;
        let stages: usize = swept.values().map(Vec::len).sum();
        println!("run {run_id}: load sweep over, {stages} stages on {} platforms", swept.len());
        return Ok(());
    }
    // Publishing resumes where it stopped, so a lost broker or run store only delays it.
    let mut broker = broker;
    let mut attempt = 0;
    let report = loop {
        match enqueue::start_run(&broker, &store, ns, &run_id, &spec, &manifest, &options).await {
            Err(e) if e.is_transient() && attempt < RECONNECTS => {
                attempt += 1;
                broker = reconnect(services, broker, &e, attempt).await;
            }
            report => break report,
        }
    };
    broker.close().await;
    let report = report?;
    println!(
        "run {} {}: {} batches, published {} in {:.2} s ({:.0} jobs/s), {} already queued or done",
        report.run_id,
        if report.created { "created" } else { "resumed" },
        report.batches,
        report.published,
        report.elapsed.as_secs_f64(),
        report.published as f64 / report.elapsed.as_secs_f64().max(1e-9),
        report.skipped
    );
    if watch {
        super::watch::follow(&store, &run_id, &services.amqp_url, ns).await?;
    }
    Ok(())
}

/// Publishes a round every `every` for `duration`, skipping rounds the run is not ready for.
pub async fn schedule(services: &Services, ns: &Namespace, spec: &Path, every: &str, duration: &str, run_id: Option<String>) -> anyhow::Result<()> {
    let spec = RunSpec::load(spec)?;
    if spec.scaling.is_some() || spec.load_sweep.is_some() {
        bail!("a schedule repeats rounds; a scaling or load-sweep spec's rounds are its stages: use `run` for it");
    }
    let run_id = run_id_of(&spec, run_id)?;
    let every = coordinator::schedule::parse_duration(every).map_err(anyhow::Error::msg)?;
    let duration = coordinator::schedule::parse_duration(duration).map_err(anyhow::Error::msg)?;
    let schedule = coordinator::schedule::Schedule::new(every, duration).map_err(anyhow::Error::msg)?;
    let manifest = Manifest::load(&spec.manifest)?;
    let store = RedisStore::connect(&services.redis_url, ns.clone()).await?;
    let mut broker = AmqpBroker::connect(&services.amqp_url).await?;
    let observed = services.observe(ns, &store, &run_id).await?;
    let count_round = |outcome: &str| {
        if let Some((registry, _)) = &observed {
            registry.add("cloudbench_coordinator_rounds_total", "Rounds of the schedule handled, by outcome.", &[("outcome", outcome)], 1.0);
        }
    };
    println!("run {run_id}: {} rounds, one every {} s", schedule.rounds, every.as_secs_f64());
    // A week-long schedule outlives broker and Redis restarts: on a lost connection it waits,
    // reconnects and resumes the same schedule (rounds already handled are left as they are).
    let mut said = std::collections::BTreeMap::new();
    let mut attempt = 0;
    loop {
        let handled = said.len();
        let outcomes = coordinator::schedule::run_schedule(&broker, &store, ns, &run_id, &spec, &manifest, &EnqueueOptions::default(), schedule, |o| {
            use coordinator::schedule::RoundOutcome;
            if said.contains_key(&o.round()) {
                return;
            }
            said.insert(o.round(), o.clone());
            match o {
                RoundOutcome::Published { round, published } => {
                    count_round("published");
                    println!("round {round}: published {published}");
                }
                RoundOutcome::Skipped { round, reason } => {
                    count_round("skipped");
                    println!("round {round}: skipped: {reason}");
                }
                RoundOutcome::Handled { round } => println!("round {round}: handled before"),
            }
        })
        .await;
        match outcomes {
            Ok(_) => break,
            Err(e) if e.is_transient() => {
                attempt = if said.len() > handled { 0 } else { attempt + 1 };
                broker = reconnect(services, broker, &e, attempt).await;
            }
            Err(e) => {
                broker.close().await;
                return Err(e.into());
            }
        }
    }
    broker.close().await;
    let skipped = said.values().filter(|o| matches!(o, coordinator::schedule::RoundOutcome::Skipped { .. })).count();
    println!("run {run_id}: schedule over, {} rounds, {skipped} skipped", said.len());
    Ok(())
}

/// Attempts `run` makes to publish through a lost broker or run store before it gives up (about
/// ten minutes at the longest backoff).
const RECONNECTS: u32 = 64;

/// After `error` (transient), waits the backoff of `attempt` and returns a fresh broker connection
/// when the broker was lost (the old one when it was not, or when the broker is still away).
async fn reconnect(services: &Services, broker: AmqpBroker, error: &EnqueueError, attempt: u32) -> AmqpBroker {
    let pause = control::consume::backoff(attempt);
    eprintln!("warning: {error}; resuming in {:.1} s", pause.as_secs_f64());
    tokio::time::sleep(pause).await;
    if !matches!(error, EnqueueError::Broker(_)) {
        return broker;
    }
    match AmqpBroker::connect(&services.amqp_url).await {
        Ok(fresh) => {
            broker.close().await;
            fresh
        }
        Err(e) => {
            eprintln!("warning: {e}");
            broker
        }
    }
}

/// One line per stage event of a scaling run.
fn print_stage(event: coordinator::stages::StageEvent) {
    use coordinator::stages::StageEvent;
    match event {
        StageEvent::Waiting { stage, target } => println!("stage {stage}: waiting for {target} workers per platform"),
        StageEvent::Started(r) => {
            let live: Vec<String> = r.live.iter().map(|(p, n)| format!("{p}={n}")).collect();
            println!(
                "stage {}: started with {} live (asked {} per platform){}; published {}",
                r.stage,
                live.join(" "),
                r.target,
                if r.short { ", started short" } else { "" },
                r.published
            );
        }
        StageEvent::Finished { stage, took } => println!("stage {stage}: finished in {:.1} s", took.as_secs_f64()),
    }
}

/// One line per stage event of a load sweep.
fn print_sweep(event: coordinator::sweep::SweepEvent) {
    use coordinator::sweep::SweepEvent;
    match event {
        SweepEvent::Started { platform, stage, load, resumed } => {
            println!("{platform} stage {stage}: {load}{}", if resumed { " (published before; waiting for it)" } else { "" });
        }
        SweepEvent::Finished { platform, stage, result, met } => {
            let verdict = match met {
                Some(true) => ": target met",
                Some(false) => ": target missed",
                None => "",
            };
            println!(
                "{platform} stage {stage}: p99 {:.1} ms, {} of {} requests failed{verdict}",
                result.p99_ms, result.failed, result.requests
            );
        }
        SweepEvent::Resting { platform, stage, seconds } => println!("{platform} stage {stage}: resting {seconds:.1} s first (idle_seconds)"),
        SweepEvent::Over { platform, stages } => println!("{platform}: sweep over after {stages} stages"),
    }
}

