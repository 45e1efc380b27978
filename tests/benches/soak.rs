//! Accelerated soak (run by `scripts/soak.sh`): many short rounds of a stability schedule through the
//! real binaries and services, printing each long-running process's memory early in the run and at
//! its end. Memory that grew with the number of rounds would show here as an end far above the start.
//!
//!   CLOUDBENCH_SOAK_ROUNDS=600     rounds (two batches of four images each)
//!   CLOUDBENCH_SOAK_EVERY_MS=200   interval between rounds

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use control::Broker;

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds = env_number("CLOUDBENCH_SOAK_ROUNDS", 600);
    let every_ms = env_number("CLOUDBENCH_SOAK_EVERY_MS", 200);
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| dir.path().join(p);
    let ns = namespace("soak");
    let run_id = unique("soak");
    local_run(dir.path(), &run_id, 8, 20_000);

    // A collector that runs until stopped, so that its memory can be read once the run is stored.
    let mut collect = Command::new(bin("analyzer"));
    collect.args(["collect", "--namespace", ns.as_str(), "--store"]).arg(path("store")).stderr(Stdio::null());
    let collector = Child(with_cloud_env(&mut collect).spawn().unwrap());
    let workers: Vec<Child> = (0..2).map(|i| Child(local_worker(&ns, &path("data"), &path(&format!("bucket{i}"))).spawn().unwrap())).collect();
    let mut cmd = Command::new(bin("coordinator"));
    cmd.args(["--namespace", ns.as_str(), "schedule"])
        .arg(path("run.toml"))
        .args(["--every", &format!("{every_ms}ms"), "--for", &format!("{}ms", rounds * every_ms)])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut coordinator = Child(with_cloud_env(&mut cmd).spawn().unwrap());
    let mut processes = vec![("coordinator schedule".to_owned(), coordinator.0.id()), ("analyzer collect".to_owned(), collector.0.id())];
    processes.extend(workers.iter().enumerate().map(|(i, w)| (format!("worker {i}"), w.0.id())));

    // The latest reading of every process, every 200 ms (the coordinator exits at the schedule's end).
    let latest = Arc::new(Mutex::new(vec![(0u64, 0u64); processes.len()]));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (latest, sampling) = (latest.clone(), sampling.clone());
        let pids: Vec<u32> = processes.iter().map(|(_, pid)| *pid).collect();
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                let readings: Vec<(u64, u64)> = pids.iter().map(|pid| memory(*pid)).collect();
                for (slot, reading) in latest.lock().unwrap().iter_mut().zip(readings) {
                    if reading.1 > 0 {
                        *slot = reading;
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };

    println!("soak: {rounds} rounds, one every {every_ms} ms, 2 batches of 4 images each, 2 workers");
    let early = (rounds / 10).max(5);
    let mut at_early = Vec::new();
    let (mut published, mut skipped) = (0u64, 0u64);
    let started = Instant::now();
    for line in BufReader::new(coordinator.0.stdout.take().unwrap()).lines().map_while(Result::ok) {
        if line.contains(": published ") {
            published += 1;
        } else if line.contains(": skipped: ") {
            skipped += 1;
        }
        if published + skipped == early && at_early.is_empty() {
            at_early = latest.lock().unwrap().clone();
        }
        if line.contains("schedule over") {
            break;
        }
    }
    let store = path("store");
    wait_for("every published batch stored", Duration::from_secs(120), || {
        let stored = analyzer::store::MetricsStore::open(&store).and_then(|s| s.read(&run_id)).map_or(0, |m| m.len() as u64);
        async move { (stored == published * 2).then_some(()) }
    })
    .await;
    std::thread::sleep(Duration::from_millis(500));
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    let at_end = latest.lock().unwrap().clone();
    let elapsed = started.elapsed();
    let rows = export_rows(&run_id, &store);
    let keys: std::collections::BTreeSet<&str> = rows.iter().map(|r| r["job_key"].as_str().unwrap()).collect();
    println!("{published} rounds published, {skipped} skipped, {} batches collected ({} distinct) in {:.0} s", rows.len(), keys.len(), elapsed.as_secs_f64());
    assert_eq!((rows.len() as u64, keys.len() as u64), (published * 2, published * 2), "every batch of every published round collected once");
    println!();
    println!("| process | peak RSS after {early} rounds | peak RSS after {rounds} rounds | end / start |");
    println!("|---|---:|---:|---:|");
    let mib = |kib: u64| kib as f64 / 1024.0;
    for (i, (name, _)) in processes.iter().enumerate() {
        let (start, end) = (at_early[i].1, at_end[i].1);
        println!("| {name} | {:.1} MiB | {:.1} MiB | {:.2} |", mib(start), mib(end), end as f64 / start.max(1) as f64);
    }
    drop((workers, collector));
    let broker = broker().await;
    broker.delete(&ns, &["local".into()]).await.unwrap();
    broker.close().await;
}
