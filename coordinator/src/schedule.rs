//! Long-term stability runs: a run's rounds repeated on a schedule, round `r` due at
//! `created + r × every`, for as many rounds as fit in the duration.
//!
//! Round `r` is published at its time unless an earlier round still has batches queued or running
//! (the platform is not keeping up), or its whole slot went by before it could be published (no
//! coordinator running, or the broker or the run-state store unreachable); then it
//! is skipped: its batches are recorded `cancelled`, never published, and said so. The schedule's clock
//! is the run's creation time in the run-state store, so a restarted coordinator resumes the same
//! schedule: rounds already published or skipped are left as they are.

use std::time::Duration;

use control::state::BatchState;
use control::{Broker, Namespace, RunStore};
use serde::Serialize;

use crate::enqueue::{self, EnqueueError, EnqueueOptions};
use crate::manifest::Manifest;
use crate::spec::RunSpec;

/// When rounds are due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub every: Duration,
    pub rounds: u32,
}

impl Schedule {
    /// Rounds every `every` for `duration`: the rounds whose start falls inside it.
    pub fn new(every: Duration, duration: Duration) -> Result<Self, String> {
        if every.is_zero() {
            return Err("the interval must be longer than zero".into());
        }
        let rounds = duration.as_nanos().div_ceil(every.as_nanos()).max(1);
        let rounds = u32::try_from(rounds).map_err(|_| "too many rounds".to_owned())?;
        if rounds > 100_000 {
            return Err(format!("{rounds} rounds is more than 100000: use a longer interval"));
        }
        Ok(Self { every, rounds })
    }

    /// When `round` is due, in Unix milliseconds, for a schedule whose clock started at `epoch_ms`.
    pub fn due_ms(&self, epoch_ms: i64, round: u32) -> i64 {
        epoch_ms + i64::from(round) * self.every_ms()
    }

    /// How long to wait at `now_ms` for a round due at `due_ms`; `None` once it is due.
    pub fn wait(due_ms: i64, now_ms: i64) -> Option<Duration> {
        let wait = due_ms - now_ms;
        (wait > 0).then(|| Duration::from_millis(wait as u64))
    }

    /// Why a round due at `due_ms`, decided at `now_ms` with `behind` batches of earlier rounds
    /// still queued or running, is skipped; `None` to publish it. A round is published while it is
    /// late by less than one interval: once its whole slot went by (late by exactly one interval
    /// or more), the next round's time has come and this one is skipped.
    pub fn skip(&self, due_ms: i64, now_ms: i64, behind: usize) -> Option<Skip> {
        let late_ms = now_ms - due_ms;
        if late_ms >= self.every_ms() {
            Some(Skip::SlotPassed { late_ms })
        } else if behind > 0 {
            Some(Skip::Behind { batches: behind })
        } else {
            None
        }
    }

    fn every_ms(&self) -> i64 {
        self.every.as_millis() as i64
    }
}

/// Why a round is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Its slot went by before it could be published, `late_ms` ago.
    SlotPassed { late_ms: i64 },
    /// Batches of earlier rounds are still queued or running: the platform is not keeping up.
    Behind { batches: usize },
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::SlotPassed { late_ms } => write!(
                f,
                "its slot passed {} s ago before it could be published (no coordinator running, or the broker or run-state store unreachable)",
                late_ms / 1000
            ),
            Skip::Behind { batches } => write!(f, "{batches} batches of earlier rounds are still queued or running"),
        }
    }
}

/// Parses `500ms`, `90s`, `30m`, `12h`, `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("{text:?}: a whole number and a unit (ms, s, m, h, d), e.g. 30m"))?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h, d)")),
    };
    n.checked_mul(secs).map(Duration::from_secs).ok_or_else(|| format!("{text:?} is too long"))
}

/// What happened to one round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RoundOutcome {
    Published { round: u32, published: u64 },
    Skipped { round: u32, reason: String },
    /// Handled by an earlier coordinator (published or skipped) before a restart.
    Handled { round: u32 },
}

impl RoundOutcome {
    pub fn round(&self) -> u32 {
        match self {
            Self::Published { round, .. } | Self::Skipped { round, .. } | Self::Handled { round } => *round,
        }
    }
}

const IN_FLIGHT: &[BatchState] = &[BatchState::Enqueuing, BatchState::Queued, BatchState::Running];

/// Runs the schedule to its last round (it does not wait for that round to finish).
#[allow(clippy::too_many_arguments)]
pub async fn run_schedule(
    broker: &dyn Broker,
    store: &dyn RunStore,
    ns: &Namespace,
    run_id: &str,
    spec: &RunSpec,
    manifest: &Manifest,
    options: &EnqueueOptions,
    schedule: Schedule,
    mut on_round: impl FnMut(&RoundOutcome),
) -> Result<Vec<RoundOutcome>, EnqueueError> {
    let spec = RunSpec { rounds: schedule.rounds, ..spec.clone() };
    let meta = enqueue::run_meta(run_id, &spec, manifest);
    store.create_run(&meta, control::now_ms()).await?;
    broker.declare(ns, &spec.platforms, spec.delivery_limit).await?;
    let epoch = store.progress(run_id).await?.map_or_else(control::now_ms, |p| p.created_unix_ms);
    let mut outcomes = Vec::new();
    for round in 0..schedule.rounds {
        let pending: Vec<_> = store.batches_in(run_id, &[BatchState::Pending]).await?.into_iter().filter(|(b, _)| b.round == round).collect();
        if pending.is_empty() {
            let outcome = RoundOutcome::Handled { round };
            on_round(&outcome);
            outcomes.push(outcome);
            continue;
        }
        let due = schedule.due_ms(epoch, round);
        if let Some(wait) = Schedule::wait(due, control::now_ms()) {
            tokio::time::sleep(wait).await;
        }
        if store.is_cancelled(run_id).await? {
            break;
        }
        let now = control::now_ms();
        let behind = store.batches_in(run_id, IN_FLIGHT).await?.iter().filter(|(b, _)| b.round < round).count();
        let outcome = match schedule.skip(due, now, behind) {
            Some(skip) => {
                enqueue::cancel_batches(store, run_id, pending.into_iter().map(|(batch, _)| batch), &[BatchState::Pending]).await?;
                RoundOutcome::Skipped { round, reason: skip.to_string() }
            }
            None => {
                let report = enqueue::start_run(broker, store, ns, run_id, &spec, manifest, &EnqueueOptions { round: Some(round), ..options.clone() }).await?;
                RoundOutcome::Published { round, published: report.published }
            }
        };
        on_round(&outcome);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_round_counts() {
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5 parsecs").is_err() && parse_duration("m").is_err());
        let week = Schedule::new(Duration::from_secs(1800), Duration::from_secs(604_800)).unwrap();
        assert_eq!(week.rounds, 336, "every 30 minutes for 7 days");
        assert_eq!(Schedule::new(Duration::from_secs(60), Duration::from_secs(90)).unwrap().rounds, 2);
        assert!(Schedule::new(Duration::ZERO, Duration::from_secs(1)).is_err());
    }

    const EPOCH: i64 = 1_700_000_000_000;
    const MINUTE: i64 = 60_000;

    fn every_minute() -> Schedule {
        Schedule::new(Duration::from_secs(60), Duration::from_secs(600)).unwrap()
    }

    #[test]
    fn round_r_is_due_r_intervals_after_the_runs_creation() {
        let s = every_minute();
        assert_eq!(s.due_ms(EPOCH, 0), EPOCH);
        assert_eq!(s.due_ms(EPOCH, 7), EPOCH + 7 * MINUTE);
        assert_eq!(Schedule::wait(EPOCH + MINUTE, EPOCH + 15_000), Some(Duration::from_secs(45)));
        assert_eq!(Schedule::wait(EPOCH + MINUTE, EPOCH + MINUTE), None, "due now: no wait");
        assert_eq!(Schedule::wait(EPOCH, EPOCH + 5), None, "late: no wait");
    }

    #[test]
    fn a_round_late_by_less_than_its_slot_is_published() {
        let s = every_minute();
        assert_eq!(s.skip(EPOCH, EPOCH, 0), None, "on time");
        assert_eq!(s.skip(EPOCH, EPOCH + 59_999, 0), None, "1 ms short of a slot");
    }

    #[test]
    fn a_round_late_by_exactly_its_slot_is_skipped() {
        let s = every_minute();
        assert_eq!(s.skip(EPOCH, EPOCH + MINUTE, 0), Some(Skip::SlotPassed { late_ms: MINUTE }));
    }

    #[test]
    fn after_several_slots_went_by_only_the_round_whose_slot_is_running_is_published() {
        // The coordinator comes back 3.5 slots after the schedule started: rounds 0, 1 and 2 are
        // skipped, round 3 (half a slot late) is published, round 4 is waited for.
        let s = every_minute();
        let now = EPOCH + 3 * MINUTE + 30_000;
        let decided: Vec<Option<Skip>> = (0..4).map(|r| s.skip(s.due_ms(EPOCH, r), now, 0)).collect();
        let passed = |late_ms| Some(Skip::SlotPassed { late_ms });
        assert_eq!(decided, [passed(210_000), passed(150_000), passed(90_000), None]);
        assert_eq!(Schedule::wait(s.due_ms(EPOCH, 4), now), Some(Duration::from_secs(30)));
    }

    #[test]
    fn a_round_on_time_is_skipped_while_earlier_rounds_are_in_flight() {
        let s = every_minute();
        assert_eq!(s.skip(EPOCH, EPOCH + 10, 3), Some(Skip::Behind { batches: 3 }));
        assert_eq!(s.skip(EPOCH, EPOCH, 1), Some(Skip::Behind { batches: 1 }), "one batch is enough");
        // A slot that went by is the reason given, whatever is in flight.
        assert_eq!(s.skip(EPOCH, EPOCH + 2 * MINUTE, 3), Some(Skip::SlotPassed { late_ms: 2 * MINUTE }));
    }

    #[test]
    fn skip_reasons_read_as_before() {
        assert_eq!(
            Skip::SlotPassed { late_ms: 125_900 }.to_string(),
            "its slot passed 125 s ago before it could be published (no coordinator running, or the broker or run-state store unreachable)"
        );
        assert_eq!(Skip::Behind { batches: 4 }.to_string(), "4 batches of earlier rounds are still queued or running");
    }
}
