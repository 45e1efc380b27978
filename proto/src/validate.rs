//! Checks on decoded messages: what must hold before a worker runs a job or the analyzer stores metrics.

use crate::v1::{BatchJob, BatchMetrics};
use crate::{JobKey, NameError};

/// A decoded message that breaks the contract; such a message is dead-lettered, never retried.
#[derive(Debug, thiserror::Error)]
pub enum InvalidMessage {
    #[error("message does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("{0}")]
    Contract(String),
}

/// Decodes and checks a [`BatchJob`], returning it with its key.
pub fn batch_job(payload: &[u8]) -> Result<(JobKey, BatchJob), InvalidMessage> {
    let job: BatchJob = prost::Message::decode(payload)?;
    let key = JobKey::new(&job.run_id, job.round, &job.platform, job.batch_index)?;
    if job.batch_count == 0 || job.batch_index >= job.batch_count {
        return Err(InvalidMessage::Contract(format!(
            "job {key}: batch index {} outside batch count {}",
            job.batch_index, job.batch_count
        )));
    }
    if job.objects.is_empty() {
        return Err(InvalidMessage::Contract(format!("job {key} has no objects")));
    }
    if let Some(bad) = job.objects.iter().find(|o| o.key.is_empty() || o.sha256.len() != 64) {
        return Err(InvalidMessage::Contract(format!(
            "job {key}: object {:?} needs a key and a 64-digit sha256",
            bad.key
        )));
    }
    Ok((key, job))
}

/// Decodes and checks a [`BatchMetrics`], returning it with its key.
pub fn batch_metrics(payload: &[u8]) -> Result<(JobKey, BatchMetrics), InvalidMessage> {
    let metrics: BatchMetrics = prost::Message::decode(payload)?;
    let key = JobKey::new(&metrics.run_id, metrics.round, &metrics.platform, metrics.batch_index)?;
    if metrics.job_key != key.to_string() {
        return Err(InvalidMessage::Contract(format!(
            "metrics job key {:?} does not match its fields ({key})",
            metrics.job_key
        )));
    }
    if metrics.upload.is_none() || metrics.download.is_none() {
        return Err(InvalidMessage::Contract(format!("metrics {key} lack upload or download timing")));
    }
    Ok((key, metrics))
}
