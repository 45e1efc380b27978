//! Names used in queue names, store keys and file names, and the canonical job key built from them.

use std::fmt;
use std::str::FromStr;

/// Error for a run id or platform name that cannot be used in queue names and keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: use 1 to 64 characters from a-z, A-Z, 0-9, '.', '_' and '-'")]
pub struct NameError {
    /// What the name is for ("run id", "platform").
    pub what: &'static str,
    /// The offending value.
    pub value: String,
}

/// Checks that `value` is usable as a `what` (a run id, a platform name) in queue names, Redis keys and
/// file names: 1 to 64 characters of `[A-Za-z0-9._-]`, not starting with '.'.
pub fn check_name(what: &'static str, value: &str) -> Result<(), NameError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && !value.starts_with('.')
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(NameError { what, value: value.to_owned() })
    }
}

/// Identity of one batch job: run, round, platform and batch index.
///
/// Its text form `{run_id}/{round}/{platform}/{batch_index}` is the deduplication key of metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobKey {
    pub run_id: String,
    pub round: u32,
    pub platform: String,
    pub batch_index: u32,
}

impl JobKey {
    /// Builds a key after checking the run id and platform name.
    pub fn new(run_id: &str, round: u32, platform: &str, batch_index: u32) -> Result<Self, NameError> {
        check_name("run id", run_id)?;
        check_name("platform", platform)?;
        Ok(Self { run_id: run_id.to_owned(), round, platform: platform.to_owned(), batch_index })
    }
}

impl fmt::Display for JobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{}", self.run_id, self.round, self.platform, self.batch_index)
    }
}

impl FromStr for JobKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let [run, round, platform, index] = parts.as_slice() else {
            return Err(format!("invalid job key {s:?}: expected run/round/platform/batch"));
        };
        let round = round.parse().map_err(|_| format!("invalid round in job key {s:?}"))?;
        let index = index.parse().map_err(|_| format!("invalid batch index in job key {s:?}"))?;
        JobKey::new(run, round, platform, index).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_key_round_trips_through_text() {
        let key = JobKey::new("coco-2026", 3, "aws", 115).unwrap();
        assert_eq!(key.to_string(), "coco-2026/3/aws/115");
        assert_eq!(key.to_string().parse::<JobKey>().unwrap(), key);
    }

    #[test]
    fn names_that_would_break_keys_are_rejected() {
        for bad in ["", "a/b", "a b", ".hidden", "x|y", &"a".repeat(65)] {
            assert!(check_name("platform", bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_name("platform", "azure-westeurope_1.2").is_ok());
        assert!("a/1/b".parse::<JobKey>().is_err());
        assert!("a/x/b/1".parse::<JobKey>().is_err());
    }
}
