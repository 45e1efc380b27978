//! Turns the measurements of a batch into the `BatchMetrics` message (pure).

use proto::v1::{BatchJob, BatchMetrics, Counter, Phase, PhaseTiming, Versions, WorkerIdentity};

use crate::batch::{BatchRun, PhaseRun};

fn timing(run: &PhaseRun) -> PhaseTiming {
    PhaseTiming {
        duration_ns: run.duration.as_nanos().min(u128::from(u64::MAX)) as u64,
        requests: run.requests,
        failed: run.failed,
        latency_histogram: proto::latency::encode(&run.latency),
        clamped: run.clamped,
        start_lag_histogram: run.start_lag.as_ref().map(proto::latency::encode).unwrap_or_default(),
        cpu_ns: run.cpu.as_nanos().min(u128::from(u64::MAX)) as u64,
        server_histogram: run.server.as_ref().map(proto::latency::encode).unwrap_or_default(),
        outside_histogram: run.outside.as_ref().map(proto::latency::encode).unwrap_or_default(),
        first_success_ns: run.first_success.map_or(0, |d| d.as_nanos().min(u128::from(u64::MAX)) as u64),
        windows: run.windows.clone(),
    }
}

fn counters(phase: Phase, counts: &std::collections::BTreeMap<String, u64>) -> impl Iterator<Item = Counter> + '_ {
    counts.iter().map(move |(kind, count)| Counter { phase: phase as i32, kind: kind.clone(), count: *count })
}

/// What the worker knows besides the phases: who it is, what it runs, when the batch ran.
pub struct Context<'a> {
    pub identity: &'a WorkerIdentity,
    pub versions: &'a Versions,
    pub started_unix_ns: i64,
    pub finished_unix_ns: i64,
    pub previous_deliveries: u32,
    /// The worker's clock minus the run store's, at its latest heartbeat.
    pub clock_offset_us: Option<i64>,
}

/// Builds the metrics of `job` from its phases.
pub fn batch_metrics(key: &proto::JobKey, job: &BatchJob, run: &BatchRun, ctx: &Context<'_>) -> BatchMetrics {
    let inference = run.inference.as_ref();
    let mut versions = ctx.versions.clone();
    if let Some(hash) = inference.and_then(|i| i.model_sha256.clone()) {
        versions.model_hash = hash;
    }
    BatchMetrics {
        job_key: key.to_string(),
        run_id: job.run_id.clone(),
        round: job.round,
        platform: job.platform.clone(),
        batch_index: job.batch_index,
        batch_count: job.batch_count,
        bytes: job.objects.iter().map(|o| o.size).sum(),
        images: job.objects.len() as u32,
        source: Some(timing(&run.source)),
        upload: Some(timing(&run.upload)),
        download: Some(timing(&run.download)),
        inference: inference.map(|i| timing(&i.phase)),
        errors: counters(Phase::Source, &run.source.errors)
            .chain(counters(Phase::Upload, &run.upload.errors))
            .chain(counters(Phase::Download, &run.download.errors))
            .chain(inference.into_iter().flat_map(|i| counters(Phase::Inference, &i.phase.errors)))
            .collect(),
        retries: counters(Phase::Source, &run.source.retries)
            .chain(counters(Phase::Upload, &run.upload.retries))
            .chain(counters(Phase::Download, &run.download.retries))
            .chain(inference.into_iter().flat_map(|i| counters(Phase::Inference, &i.phase.retries)))
            .collect(),
        inference_setup: inference.map(|i| i.setup.clone()),
        started_unix_ns: ctx.started_unix_ns,
        finished_unix_ns: ctx.finished_unix_ns,
        worker: Some(ctx.identity.clone()),
        versions: Some(versions),
        attempt: job.attempt,
        previous_deliveries: ctx.previous_deliveries,
        manifest_sha256: job.manifest_sha256.clone(),
        clock_offset_us: ctx.clock_offset_us,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use proto::v1::ObjectRef;

    fn phase(ms: u64, errors: &[(&str, u64)]) -> PhaseRun {
        let mut latency = proto::latency::new_histogram();
        proto::latency::record(&mut latency, ms * 1000);
        PhaseRun {
            duration: Duration::from_millis(ms),
            requests: 2,
            failed: errors.iter().map(|(_, n)| n).sum(),
            latency,
            clamped: 0,
            start_lag: None,
            cpu: Duration::ZERO,
            server: None,
            outside: None,
            first_success: None,
            windows: Vec::new(),
            errors: errors.iter().map(|(k, n)| (k.to_string(), *n)).collect::<BTreeMap<_, _>>(),
            retries: BTreeMap::from([("throttled".to_string(), 1)]),
        }
    }

    #[test]
    fn metrics_carry_the_batch_size_timings_and_errors_by_phase() {
        let job = BatchJob {
            run_id: "r".into(),
            round: 1,
            platform: "aws".into(),
            batch_index: 4,
            batch_count: 9,
            objects: vec![ObjectRef { key: "a".into(), size: 100, sha256: String::new() }, ObjectRef { key: "b".into(), size: 50, sha256: String::new() }],
            attempt: 2,
            ..Default::default()
        };
        let run = BatchRun { source: phase(1, &[]), upload: phase(20, &[("throttled", 1)]), download: phase(10, &[("checksum_mismatch", 1)]), inference: None, cleanup: Duration::ZERO };
        let key = proto::JobKey::new("r", 1, "aws", 4).unwrap();
        let identity = WorkerIdentity { worker_id: "w1".into(), ..Default::default() };
        let versions = Versions::default();
        let ctx = Context { identity: &identity, versions: &versions, started_unix_ns: 1, finished_unix_ns: 2, previous_deliveries: 1, clock_offset_us: None };
        let m = batch_metrics(&key, &job, &run, &ctx);
        assert_eq!((m.job_key.as_str(), m.bytes, m.images, m.attempt, m.previous_deliveries), ("r/1/aws/4", 150, 2, 2, 1));
        assert!(m.inference_setup.is_none());
        assert_eq!(m.upload.as_ref().unwrap().duration_ns, 20_000_000);
        assert!(m.inference.is_none());
        let kinds: Vec<_> = m.errors.iter().map(|c| (c.phase, c.kind.as_str(), c.count)).collect();
        assert_eq!(kinds, [(Phase::Upload as i32, "throttled", 1), (Phase::Download as i32, "checksum_mismatch", 1)]);
        assert_eq!(m.retries.len(), 3, "every phase reports its retries");
        let hist = proto::latency::decode(&m.download.as_ref().unwrap().latency_histogram).unwrap();
        assert_eq!(hist.len(), 1);
        proto::validate::batch_metrics(&prost::Message::encode_to_vec(&m)).unwrap();

        // With an inference phase: its timing, errors and retries under PHASE_INFERENCE, the load it
        // ran with, and the hash of the model that answered.
        let setup = proto::v1::InferenceSetup { target_kind: "sagemaker".into(), mode: proto::v1::LoadMode::OpenLoop as i32, rate_per_second: 5.0, ..Default::default() };
        let inference = crate::batch::InferenceRun { phase: phase(30, &[("bad_response", 1)]), setup: setup.clone(), detections: 3, model_sha256: Some("ab12".into()) };
        let run = BatchRun { inference: Some(inference), ..run };
        let m = batch_metrics(&key, &job, &run, &ctx);
        assert_eq!(m.inference.as_ref().unwrap().duration_ns, 30_000_000);
        assert_eq!(m.inference_setup, Some(setup));
        assert_eq!(m.versions.as_ref().unwrap().model_hash, "ab12");
        assert!(m.errors.iter().any(|c| c.phase == Phase::Inference as i32 && c.kind == "bad_response"));
        assert_eq!(m.retries.len(), 4);
        proto::validate::batch_metrics(&prost::Message::encode_to_vec(&m)).unwrap();
    }
}
