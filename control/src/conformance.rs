//! Assertions every [`RunStore`] and every [`Broker`] must pass, so that the in-process
//! implementations the embedded run uses and the servers a deployment uses (Redis, RabbitMQ) mean the
//! same thing. Each implementation's tests run them in a namespace of their own (`control/tests`).
//! The expected values come from the traits' documentation and from values written just before,
//! read back; never from another implementation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::broker::{Broker, Delivery, Outgoing, Subscription};
use crate::state::{BatchRef, BatchState, BatchStatus, Change, Outcome, RunMeta, RunStore, StateError};
use crate::Namespace;

/// Runs every run-state check against `store`, with run ids starting with `prefix`. Heartbeats are
/// checked too, so `store` must see no other worker's.
pub async fn run_store(store: &dyn RunStore, prefix: &str) {
    created_once_and_refused_with_another_plan(store, &format!("{prefix}-create")).await;
    transitions_compare_and_set_in_order(store, &format!("{prefix}-cas")).await;
    progress_follows_the_batches_and_the_clock(store, &format!("{prefix}-times")).await;
    results_and_cancellation(store, &format!("{prefix}-results")).await;
    unknown_runs_are_named(store, &format!("{prefix}-unknown")).await;
    heartbeats_expire(store).await;
    let (clock, now) = (store.clock_us().await.unwrap(), crate::now_us());
    assert!((clock - now).abs() < 2_000_000, "the store's clock is {clock} µs, this machine's {now} µs");
}

fn meta(run_id: &str) -> RunMeta {
    RunMeta {
        run_id: run_id.into(),
        fingerprint: "plan-1".into(),
        platforms: vec!["a".into(), "b".into()],
        rounds: 2,
        batches_per_round: 3,
        spec: format!("run_id = \"{run_id}\"\n"),
    }
}

fn batch(platform: &str, round: u32, index: u32) -> BatchRef {
    BatchRef { platform: platform.into(), round, index }
}

fn change(batch: &BatchRef, from: &'static [BatchState], to: BatchState, owner: &str) -> Change {
    Change { batch: batch.clone(), from, to, owner: owner.into(), bump_attempt: false }
}

fn status(state: BatchState, attempt: u32, owner: &str) -> BatchStatus {
    BatchStatus { state, attempt, owner: owner.into() }
}

async fn created_once_and_refused_with_another_plan(store: &dyn RunStore, run_id: &str) {
    let meta = meta(run_id);
    assert!(store.create_run(&meta, 1_000).await.unwrap(), "a new run is created");
    assert!(!store.create_run(&meta, 2_000).await.unwrap(), "the same plan again is a resume, not a new run");
    let other = RunMeta { fingerprint: "plan-2".into(), ..meta.clone() };
    assert!(matches!(store.create_run(&other, 3_000).await, Err(StateError::PlanMismatch { .. })), "another plan under the same id is refused");
    let progress = store.progress(run_id).await.unwrap().expect("the run exists");
    assert_eq!((progress.total, progress.created_unix_ms, progress.started_unix_ms, progress.finished_unix_ms), (12, 1_000, None, None));
    assert!(!progress.cancelled);
    for platform in ["a", "b"] {
        assert_eq!(progress.platforms[platform].get(&BatchState::Pending), Some(&6), "{progress:?}");
    }
    assert_eq!(store.spec(run_id).await.unwrap(), meta.spec);
    let pending = store.batches_in(run_id, &[BatchState::Pending]).await.unwrap();
    let mut planned: Vec<BatchRef> = pending.iter().map(|(b, _)| b.clone()).collect();
    planned.sort();
    let mut expected: Vec<BatchRef> = meta.batches().collect();
    expected.sort();
    assert_eq!(planned, expected);
    assert!(pending.iter().all(|(_, s)| *s == BatchStatus::planned()), "{pending:?}");
}

async fn transitions_compare_and_set_in_order(store: &dyn RunStore, run_id: &str) {
    store.create_run(&meta(run_id), 0).await.unwrap();
    let (first, second) = (batch("a", 0, 0), batch("a", 0, 1));
    let enqueue = Change { bump_attempt: true, ..change(&first, &[BatchState::Pending], BatchState::Enqueuing, "") };
    let outcomes = store.transition(run_id, std::slice::from_ref(&enqueue), 10).await.unwrap();
    assert_eq!(outcomes, [Outcome::Applied(BatchStatus::planned())], "the outcome holds the status before the change");
    let outcomes = store.transition(run_id, &[enqueue], 11).await.unwrap();
    assert_eq!(outcomes, [Outcome::Refused(status(BatchState::Enqueuing, 1, ""))], "a change from a state the batch has left is refused");
    // Several changes in one call apply in order, each seeing the ones before it.
    let outcomes = store
        .transition(
            run_id,
            &[
                change(&first, &[BatchState::Enqueuing], BatchState::Queued, ""),
                change(&first, &[BatchState::Queued], BatchState::Running, "worker-1"),
                change(&second, &[BatchState::Running], BatchState::Done, ""),
                change(&batch("a", 0, 99), &[BatchState::Pending], BatchState::Queued, ""),
                change(&batch("c", 0, 0), &[BatchState::Pending], BatchState::Queued, ""),
            ],
            12,
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            Outcome::Applied(status(BatchState::Enqueuing, 1, "")),
            Outcome::Applied(status(BatchState::Queued, 1, "")),
            Outcome::Refused(BatchStatus::planned()),
            Outcome::Missing,
            Outcome::Missing,
        ]
    );
    let running = store.batches_in(run_id, &[BatchState::Running]).await.unwrap();
    assert_eq!(running, [(first.clone(), status(BatchState::Running, 1, "worker-1"))], "the owner and the attempt are kept");
    // An empty owner clears it.
    store.transition(run_id, &[change(&first, &[BatchState::Running], BatchState::Queued, "")], 13).await.unwrap();
    assert_eq!(store.batches_in(run_id, &[BatchState::Queued]).await.unwrap(), [(first, status(BatchState::Queued, 1, ""))]);
}

/// Every count in the run's progress against the batches' own states, read back.
async fn counts_agree(store: &dyn RunStore, run_id: &str) {
    let progress = store.progress(run_id).await.unwrap().unwrap();
    let mut counted: BTreeMap<(String, BatchState), u64> = BTreeMap::new();
    for (b, s) in store.batches_in(run_id, &BatchState::ALL).await.unwrap() {
        *counted.entry((b.platform, s.state)).or_default() += 1;
    }
    for platform in ["a", "b"] {
        for state in BatchState::ALL {
            let stored = progress.platforms.get(platform).and_then(|m| m.get(&state)).copied().unwrap_or(0);
            let real = counted.get(&(platform.to_owned(), state)).copied().unwrap_or(0);
            assert_eq!(stored, real, "{run_id}: {platform} {state}: progress says {stored}, the batches {real}");
        }
    }
}

async fn progress_follows_the_batches_and_the_clock(store: &dyn RunStore, run_id: &str) {
    let meta = meta(run_id);
    store.create_run(&meta, 0).await.unwrap();
    let all: Vec<BatchRef> = meta.batches().collect();
    let to_queue: Vec<Change> = all.iter().map(|b| change(b, &[BatchState::Pending], BatchState::Queued, "")).collect();
    store.transition(run_id, &to_queue, 100).await.unwrap();
    counts_agree(store, run_id).await;
    assert_eq!(store.progress(run_id).await.unwrap().unwrap().started_unix_ms, None, "queued is not started");
    store.transition(run_id, &[change(&all[0], &[BatchState::Queued], BatchState::Running, "w")], 200).await.unwrap();
    store.transition(run_id, &[change(&all[1], &[BatchState::Queued], BatchState::Running, "w")], 300).await.unwrap();
    assert_eq!(store.progress(run_id).await.unwrap().unwrap().started_unix_ms, Some(200), "started when the first batch ran");
    counts_agree(store, run_id).await;
    let (last, rest) = all.split_last().unwrap();
    let finish: Vec<Change> = rest.iter().map(|b| change(b, &[BatchState::Queued, BatchState::Running], BatchState::Done, "")).collect();
    store.transition(run_id, &finish, 400).await.unwrap();
    assert_eq!(store.progress(run_id).await.unwrap().unwrap().finished_unix_ms, None, "one batch is still queued");
    store.transition(run_id, &[change(last, &[BatchState::Queued], BatchState::Failed, "")], 500).await.unwrap();
    let progress = store.progress(run_id).await.unwrap().unwrap();
    assert_eq!(progress.finished_unix_ms, Some(500), "finished when the last batch reached a terminal state");
    assert!(progress.is_complete() && progress.count(BatchState::Done) == 11 && progress.count(BatchState::Failed) == 1);
    counts_agree(store, run_id).await;
    store.transition(run_id, &[change(&all[0], &[BatchState::Done], BatchState::Done, "")], 600).await.unwrap();
    assert_eq!(store.progress(run_id).await.unwrap().unwrap().finished_unix_ms, Some(500), "a later change keeps the finish time");
    // Started again: the failed batch goes back to be enqueued, and the run is no longer finished.
    store.transition(run_id, &[change(last, &[BatchState::Failed], BatchState::Enqueuing, "")], 700).await.unwrap();
    let progress = store.progress(run_id).await.unwrap().unwrap();
    assert_eq!((progress.finished_unix_ms, progress.started_unix_ms), (None, Some(200)));
    counts_agree(store, run_id).await;
}

async fn results_and_cancellation(store: &dyn RunStore, run_id: &str) {
    store.create_run(&meta(run_id), 0).await.unwrap();
    let (first, second) = (batch("a", 1, 2), batch("b", 0, 0));
    store.put_result(run_id, &first, b"first").await.unwrap();
    store.put_result(run_id, &second, b"").await.unwrap();
    store.put_result(run_id, &first, b"first, again").await.unwrap();
    let mut results = store.results(run_id).await.unwrap();
    results.sort();
    assert_eq!(results, [(first, b"first, again".to_vec()), (second, Vec::new())], "one payload a batch, the last one written");

    assert!(!store.is_cancelled(run_id).await.unwrap());
    store.set_cancelled(run_id, true).await.unwrap();
    assert!(store.is_cancelled(run_id).await.unwrap() && store.progress(run_id).await.unwrap().unwrap().cancelled);
    store.set_cancelled(run_id, false).await.unwrap();
    assert!(!store.is_cancelled(run_id).await.unwrap() && !store.progress(run_id).await.unwrap().unwrap().cancelled);
}

async fn unknown_runs_are_named(store: &dyn RunStore, run_id: &str) {
    let unknown = |e: StateError| matches!(&e, StateError::UnknownRun(id) if id == run_id);
    assert!(store.progress(run_id).await.unwrap().is_none());
    assert!(unknown(store.spec(run_id).await.unwrap_err()));
    assert!(unknown(store.transition(run_id, &[change(&batch("a", 0, 0), &[BatchState::Pending], BatchState::Queued, "")], 0).await.unwrap_err()));
    assert!(unknown(store.batches_in(run_id, &[BatchState::Pending]).await.unwrap_err()));
    assert!(unknown(store.set_cancelled(run_id, true).await.unwrap_err()));
    assert!(!store.is_cancelled(run_id).await.unwrap(), "an unknown run is not cancelled");
    assert!(unknown(store.put_result(run_id, &batch("a", 0, 0), b"x").await.unwrap_err()));
    assert!(unknown(store.results(run_id).await.unwrap_err()));
}

async fn heartbeats_expire(store: &dyn RunStore) {
    store.heartbeat("short", b"short-1", 400).await.unwrap();
    store.heartbeat("long", b"long-1", 60_000).await.unwrap();
    store.heartbeat("long", b"long-2", 60_000).await.unwrap();
    let mut beats = store.heartbeats().await.unwrap();
    beats.sort();
    assert_eq!(beats, [b"long-2".to_vec(), b"short-1".to_vec()], "one heartbeat a worker, the latest");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(store.heartbeats().await.unwrap(), [b"long-2".to_vec()], "a heartbeat is gone after its time to live");
}

/// Opens a connection to the broker under test; for the in-process broker, another handle on the
/// same queues.
pub type Open<'a> = &'a (dyn Fn() -> BoxFuture<'static, Arc<dyn Broker>> + Sync);

/// The delivery limit the broker checks declare.
pub const DELIVERY_LIMIT: u32 = 2;

const WAIT: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(500);

/// Runs every broker check in `ns`, which no one else uses, and deletes its queues at the end.
pub async fn broker(open: Open<'_>, ns: &Namespace) {
    let broker = open().await;
    let platforms: Vec<String> = ["order", "requeue", "limit", "dead", "gone"].map(String::from).to_vec();
    broker.declare(ns, &platforms, DELIVERY_LIMIT).await.unwrap();
    broker.declare(ns, &platforms, DELIVERY_LIMIT).await.expect("declaring again is harmless");
    for queue in platforms.iter().map(|p| ns.job_queue(p)).chain([ns.metrics_queue(), ns.dead_letter_queue()]) {
        assert_eq!(broker.depth(&queue).await.unwrap(), 0, "{queue} starts empty");
    }
    deliveries_in_order_within_the_prefetch(&*broker, ns).await;
    returned_deliveries_count(&*broker, ns).await;
    dead_letters(&*broker, ns).await;
    unsettled_deliveries_come_back(&*broker, open, ns).await;
    let broker = open().await;
    broker.delete(ns, &platforms).await.unwrap();
    broker.delete(ns, &platforms).await.expect("deleting what is gone is harmless");
    assert!(broker.depth(&ns.job_queue("order")).await.is_err(), "a deleted queue has no depth");
    broker.close().await;
}

fn messages(tag: &str, n: usize) -> Vec<Outgoing> {
    (0..n).map(|i| Outgoing { id: format!("{tag}-{i}"), kind: "test", payload: format!("{tag} {i}").into_bytes() }).collect()
}

async fn next(subscription: &mut Box<dyn Subscription>) -> Delivery {
    match tokio::time::timeout(WAIT, subscription.next()).await {
        Ok(Some(Ok(delivery))) => delivery,
        Ok(other) => panic!("expected a delivery, got {other:?}"),
        Err(_) => panic!("no delivery within {WAIT:?}"),
    }
}

async fn nothing_more(subscription: &mut Box<dyn Subscription>) {
    if let Ok(Some(got)) = tokio::time::timeout(QUIET, subscription.next()).await {
        panic!("expected no delivery, got {got:?}");
    }
}

/// The depth once it has settled on `expected` (a server may count a moment late).
async fn depth_becomes(broker: &dyn Broker, queue: &str, expected: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let depth = broker.depth(queue).await.unwrap();
        if depth == expected {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{queue}: depth {depth}, expected {expected}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn deliveries_in_order_within_the_prefetch(broker: &dyn Broker, ns: &Namespace) {
    let queue = ns.job_queue("order");
    broker.publish(&queue, &messages("order", 5)).await.unwrap();
    depth_becomes(broker, &queue, 5).await;
    let mut subscription = broker.subscribe(&queue, 2).await.unwrap();
    let (first, second) = (next(&mut subscription).await, next(&mut subscription).await);
    assert_eq!((first.payload.as_slice(), second.payload.as_slice()), (&b"order 0"[..], &b"order 1"[..]));
    assert_eq!((first.message_id.as_deref(), first.previous_deliveries), (Some("order-0"), 0));
    nothing_more(&mut subscription).await;
    first.ack().await.unwrap();
    let third = next(&mut subscription).await;
    assert_eq!(third.payload, b"order 2", "settling one makes room for the next");
    second.ack().await.unwrap();
    third.ack().await.unwrap();
    for rest in [&b"order 3"[..], b"order 4"] {
        let delivery = next(&mut subscription).await;
        assert_eq!(delivery.payload, rest);
        delivery.ack().await.unwrap();
    }
    subscription.cancel().await;
    depth_becomes(broker, &queue, 0).await;
}

async fn returned_deliveries_count(broker: &dyn Broker, ns: &Namespace) {
    let queue = ns.job_queue("requeue");
    broker.publish(&queue, &messages("requeue", 1)).await.unwrap();
    let mut subscription = broker.subscribe(&queue, 1).await.unwrap();
    let first = next(&mut subscription).await;
    assert_eq!(first.previous_deliveries, 0);
    first.requeue().await.unwrap();
    let again = next(&mut subscription).await;
    assert_eq!((again.payload.as_slice(), again.previous_deliveries), (&b"requeue 0"[..], 1), "a returned message comes back, counted");
    again.ack().await.unwrap();
    subscription.cancel().await;

    // Past the delivery limit a returned message is dead-lettered: DELIVERY_LIMIT + 1 deliveries.
    let queue = ns.job_queue("limit");
    broker.publish(&queue, &messages("limit", 1)).await.unwrap();
    let mut subscription = broker.subscribe(&queue, 1).await.unwrap();
    for previous in 0..=DELIVERY_LIMIT {
        let delivery = next(&mut subscription).await;
        assert_eq!(delivery.previous_deliveries, previous);
        delivery.requeue().await.unwrap();
    }
    nothing_more(&mut subscription).await;
    subscription.cancel().await;
    depth_becomes(broker, &ns.dead_letter_queue(), 1).await;
    assert_eq!(broker.peek(&ns.dead_letter_queue(), 10).await.unwrap(), [b"limit 0".to_vec()]);
    take_the_dead_letter(broker, ns).await;
}

/// Consumes the one message in the dead-letter queue, so the next check starts from an empty one.
async fn take_the_dead_letter(broker: &dyn Broker, ns: &Namespace) {
    let mut dead = broker.subscribe(&ns.dead_letter_queue(), 1).await.unwrap();
    next(&mut dead).await.ack().await.unwrap();
    dead.cancel().await;
    depth_becomes(broker, &ns.dead_letter_queue(), 0).await;
}

async fn dead_letters(broker: &dyn Broker, ns: &Namespace) {
    let queue = ns.job_queue("dead");
    broker.publish(&queue, &messages("dead", 2)).await.unwrap();
    let mut subscription = broker.subscribe(&queue, 1).await.unwrap();
    next(&mut subscription).await.dead_letter().await.unwrap();
    next(&mut subscription).await.ack().await.unwrap();
    subscription.cancel().await;
    depth_becomes(broker, &ns.dead_letter_queue(), 1).await;
    assert_eq!(broker.peek(&ns.dead_letter_queue(), 10).await.unwrap(), [b"dead 0".to_vec()], "a dead-lettered message waits in the dead-letter queue");
    // A peek returns what it read as it closes (on RabbitMQ, a moment later): then it is there again.
    depth_becomes(broker, &ns.dead_letter_queue(), 1).await;
    assert_eq!(broker.peek(&ns.dead_letter_queue(), 10).await.unwrap(), [b"dead 0".to_vec()], "peeking leaves it there");
    depth_becomes(broker, &ns.dead_letter_queue(), 1).await;
    depth_becomes(broker, &queue, 0).await;
    take_the_dead_letter(broker, ns).await;
}

async fn unsettled_deliveries_come_back(broker: &dyn Broker, open: Open<'_>, ns: &Namespace) {
    let queue = ns.job_queue("gone");
    broker.publish(&queue, &messages("gone", 1)).await.unwrap();
    let mut subscription = broker.subscribe(&queue, 1).await.unwrap();
    let delivery = next(&mut subscription).await;
    // Its consumer goes away without settling it: the delivery, the subscription, the connection.
    drop(delivery);
    drop(subscription);
    broker.close().await;
    let broker = open().await;
    depth_becomes(&*broker, &queue, 1).await;
    let mut subscription = broker.subscribe(&queue, 1).await.unwrap();
    let again = next(&mut subscription).await;
    assert_eq!(again.payload, b"gone 0", "an unsettled delivery goes back to its queue");
    again.ack().await.unwrap();
    subscription.cancel().await;
    broker.close().await;
}

