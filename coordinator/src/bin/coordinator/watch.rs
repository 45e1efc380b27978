//! `coordinator status` and `coordinator cancel`: a run's progress once or live, and cancelling it.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::bail;
use service::progress_bar;
use control::{Namespace, RedisStore, RunStore};
use coordinator::enqueue;
use coordinator::status::{self, StatusView};

use super::Services;

/// Prints the run's progress once (a table, or JSON), or follows it live with `watch`.
pub async fn status(services: &Services, ns: &Namespace, run_id: &str, json: bool, watch: bool) -> anyhow::Result<()> {
    let store = RedisStore::connect(&services.redis_url, ns.clone()).await?;
    if watch {
        let _observed = services.observe(ns, &store, run_id).await?;
        follow(&store, run_id, &services.amqp_url, ns).await?;
    } else {
        let view = view(&store, run_id).await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&view)?);
        } else {
            print!("{}", status::render(&view, control::now_ms()));
        }
    }
    Ok(())
}

/// Cancels the batches of the run that have not started.
pub async fn cancel(services: &Services, ns: &Namespace, run_id: &str) -> anyhow::Result<()> {
    let store = RedisStore::connect(&services.redis_url, ns.clone()).await?;
    let cancelled = enqueue::cancel_run(&store, run_id).await?;
    println!("run {run_id} cancelled: {cancelled} batches will not run; running batches finish");
    Ok(())
}

async fn view(store: &dyn RunStore, run_id: &str) -> anyhow::Result<StatusView> {
    let Some(run) = store.progress(run_id).await? else { bail!("run {run_id} not found") };
    let workers = status::workers_by_platform(&store.heartbeats().await?);
    Ok(StatusView::new(run, workers, control::now_ms()))
}

/// Shows live progress until the run completes: bars on a terminal, a table every 10 s otherwise.
/// Jobs the broker dead-lettered at their delivery limit (poison jobs that kept killing workers) fail
/// their batches on the way, checked every few seconds.
pub async fn follow(store: &dyn RunStore, run_id: &str, amqp_url: &str, ns: &Namespace) -> anyhow::Result<()> {
    let mut dead_letters = control::dead::DeadLetterWatch::new(amqp_url, ns, run_id);
    let tty = std::io::stderr().is_terminal();
    let bars = indicatif::MultiProgress::new();
    let mut by_platform = std::collections::BTreeMap::new();
    let mut last_table = std::time::Instant::now() - Duration::from_secs(60);
    let mut recent = status::RecentPace::default();
    loop {
        dead_letters.tick(store).await;
        let mut view = view(store, run_id).await?;
        view.pace.extend(recent.update(control::now_ms(), &view.run.platforms));
        if tty {
            for (platform, counts) in &view.run.platforms {
                let bar = by_platform.entry(platform.clone()).or_insert_with(|| {
                    let total: u64 = counts.values().sum();
                    bars.add(progress_bar(platform, total))
                });
                let get = |s| counts.get(&s).copied().unwrap_or(0);
                use control::state::BatchState::*;
                bar.set_position(get(Done) + get(Failed) + get(Cancelled));
                let w = view.workers.get(platform).cloned().unwrap_or_default();
                let pace = view.pace.get(platform).map_or(String::new(), |p| {
                    format!(" · {:.1}/min eta {}", p.batches_per_min, p.eta_secs.map_or("-".into(), |s| format!("{:.0}s", s)))
                });
                bar.set_message(format!("running {} failed {} · workers {}/{} · errors {}{pace}", get(Running), get(Failed), w.busy, w.live, w.errors));
            }
        } else if last_table.elapsed() >= Duration::from_secs(10) || view.complete {
            print!("{}", status::render(&view, control::now_ms()));
            last_table = std::time::Instant::now();
        }
        if view.complete {
            for bar in by_platform.values() {
                bar.finish();
            }
            if tty {
                print!("{}", status::render(&view, control::now_ms()));
            }
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
