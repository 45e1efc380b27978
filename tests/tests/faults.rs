//! One trial of every fault of the fault-injection suite (`common::faults`): the run completes, no
//! batch is lost, none is counted twice. `scripts/faults.sh` runs many trials of each.

mod common;

use common::faults::{Fault, trial};

async fn survives(fault: Fault) {
    let seed = std::env::var("CLOUDBENCH_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let tally = trial(fault, seed).await;
    assert_eq!((tally.lost(), tally.duplicated()), (0, 0), "{}: {tally:?}", fault.name());
    let dead = match fault {
        Fault::Malformed => 8,
        Fault::Poison => 1,
        _ => 0,
    };
    assert_eq!(tally.dead_lettered, dead, "{}: {tally:?}", fault.name());
    match fault {
        Fault::WorkerCrash(_) => assert_eq!(tally.restarts, 1, "the crash point was reached once: {tally:?}"),
        Fault::WorkerKills => assert_eq!(tally.restarts, 4, "{tally:?}"),
        Fault::Network => assert!(tally.retries > 0, "failed requests were retried and counted: {tally:?}"),
        Fault::Poison => assert!(tally.restarts >= 4, "a worker died at each of the job's 4 deliveries: {tally:?}"),
        _ => {}
    }
}

macro_rules! faults {
    ($($name:ident => $fault:expr),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            survives($fault).await;
        }
    )*};
}

faults! {
    worker_killed_after_claiming => Fault::WorkerCrash("claimed"),
    worker_killed_after_uploading => Fault::WorkerCrash("uploaded"),
    worker_killed_after_downloading => Fault::WorkerCrash("downloaded"),
    worker_killed_after_publishing_metrics => Fault::WorkerCrash("published"),
    worker_killed_before_acknowledging => Fault::WorkerCrash("recorded"),
    workers_killed_at_random => Fault::WorkerKills,
    broker_restarted_mid_run => Fault::BrokerRestart,
    redis_restarted_mid_run => Fault::RedisRestart,
    coordinator_killed_while_publishing => Fault::CoordinatorKill,
    collector_killed_while_storing => Fault::CollectorKill,
    collector_disk_full_then_space_returns => Fault::DiskFull,
    undecodable_jobs_and_metrics_are_dead_lettered => Fault::Malformed,
    storage_connections_delayed_reset_and_stalled => Fault::Network,
    a_poison_job_is_dead_lettered_and_its_batch_failed => Fault::Poison,
}
