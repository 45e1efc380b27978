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
    let every_ms = schedule.every.as_millis() as i64;
    let mut outcomes = Vec::new();
    for round in 0..schedule.rounds {
        let pending: Vec<_> = store.batches_in(run_id, &[BatchState::Pending]).await?.into_iter().filter(|(b, _)| b.round == round).collect();
        if pending.is_empty() {
            let outcome = RoundOutcome::Handled { round };
            on_round(&outcome);
            outcomes.push(outcome);
            continue;
        }
        let due = epoch + i64::from(round) * every_ms;
        let wait = due - control::now_ms();
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
        if store.is_cancelled(run_id).await? {
            break;
        }
        let late = control::now_ms() - due;
        let behind = store.batches_in(run_id, IN_FLIGHT).await?.iter().filter(|(b, _)| b.round < round).count();
        let skip = if late >= every_ms {
            Some(format!("its slot passed {} s ago before it could be published (no coordinator running, or the broker or run-state store unreachable)", late / 1000))
        } else if behind > 0 {
            Some(format!("{behind} batches of earlier rounds are still queued or running"))
        } else {
            None
        };
        let outcome = match skip {
            Some(reason) => {
                enqueue::cancel_batches(store, run_id, pending.into_iter().map(|(batch, _)| batch), &[BatchState::Pending]).await?;
                RoundOutcome::Skipped { round, reason }
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
}
