//! The fault-injection suite, many trials of every fault (run by `scripts/faults.sh`); prints the
//! table the README carries: fault, trials, batches expected, collected, lost, duplicated.
//!
//!   CLOUDBENCH_FAULT_TRIALS=5   trials per fault (each with its own random moments)

#[path = "../tests/common/mod.rs"]
mod common;

use common::faults::{Fault, Tally, trial};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let trials: u64 = std::env::var("CLOUDBENCH_FAULT_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let mut table = Vec::new();
    for fault in Fault::all() {
        let mut sum = Tally::default();
        let started = std::time::Instant::now();
        for seed in 0..trials {
            let t = trial(fault, seed).await;
            sum.expected += t.expected;
            sum.collected += t.collected;
            sum.distinct += t.distinct;
            sum.dead_lettered += t.dead_lettered;
            sum.restarts += t.restarts;
        }
        eprintln!("{}: {trials} trials in {:.0} s", fault.name(), started.elapsed().as_secs_f64());
        table.push((fault, sum));
    }
    println!("| fault | trials | batches expected | collected | lost | duplicated | dead-lettered |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (fault, t) in &table {
        println!("| {} | {trials} | {} | {} | {} | {} | {} |", fault.name(), t.expected, t.distinct, t.lost(), t.duplicated(), t.dead_lettered);
    }
    let failed = table.iter().filter(|(_, t)| t.lost() + t.duplicated() > 0).count();
    if failed > 0 {
        eprintln!("{failed} faults lost or duplicated batches");
        std::process::exit(1);
    }
}
