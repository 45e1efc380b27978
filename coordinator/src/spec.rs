//! Run specs: the TOML a user writes to describe a run, validated once into a [`RunSpec`].

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Default images per batch, as in the paper (116 batches for COCO train2017).
pub const DEFAULT_BATCH_SIZE: u32 = 1024;
/// Default deliveries of a job before it is dead-lettered.
pub const DEFAULT_DELIVERY_LIMIT: u32 = 5;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    run_id: Option<String>,
    manifest: PathBuf,
    batch_size: Option<u32>,
    rounds: Option<u32>,
    delivery_limit: Option<u32>,
    /// Seconds after publishing when a job's result is no longer wanted; absent means no deadline.
    job_deadline_secs: Option<u64>,
    #[serde(rename = "platform")]
    platforms: Vec<RawPlatform>,
    scaling: Option<RawScaling>,
    load_sweep: Option<control::sweep::RawSweep>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScaling {
    workers: Vec<u32>,
    wait_secs: Option<u64>,
}

/// A scaling experiment: the same batches at several worker counts, one stage (round) after another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scaling {
    /// Workers per platform in each stage; stage `i` is round `i`.
    pub workers: Vec<u32>,
    /// Longest wait for a stage's workers to register before it starts short (and says so).
    pub wait_secs: u64,
}

/// Default wait for a stage's workers.
pub const DEFAULT_SCALING_WAIT_SECS: u64 = 600;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlatform {
    name: String,
}

/// A validated run spec.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// Run id from the spec, if it names one (the command line may give it instead).
    pub run_id: Option<String>,
    /// Manifest path, resolved against the spec file's directory.
    pub manifest: PathBuf,
    pub batch_size: u32,
    pub rounds: u32,
    pub delivery_limit: u32,
    pub job_deadline_secs: Option<u64>,
    pub platforms: Vec<String>,
    /// Present for a scaling experiment; its stages are the run's rounds.
    pub scaling: Option<Scaling>,
    /// Present for a load sweep; its stages are the run's rounds, one batch per platform each.
    pub load_sweep: Option<control::sweep::LoadSweep>,
    /// The spec's text, stored with the run for the report.
    pub text: String,
}

/// Why a spec was refused; printed as one line.
#[derive(Debug, thiserror::Error)]
#[error("run spec {path}: {reason}")]
pub struct SpecError {
    pub path: PathBuf,
    pub reason: String,
}

impl RunSpec {
    /// Reads and validates the spec at `path`.
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SpecError { path: path.into(), reason: e.to_string() })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|reason| SpecError { path: path.into(), reason })
    }

    /// Parses and validates spec text; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, String> {
        let raw: RawSpec = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        if let Some(id) = &raw.run_id {
            proto::check_name("run id", id).map_err(|e| e.to_string())?;
        }
        let batch_size = raw.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
        if batch_size == 0 {
            return Err("batch_size must be at least 1".into());
        }
        let scaling = match raw.scaling {
            None => None,
            Some(s) if s.workers.is_empty() || s.workers.contains(&0) => {
                return Err("scaling.workers must list at least one stage, each with at least 1 worker".into());
            }
            Some(s) => Some(Scaling { workers: s.workers, wait_secs: s.wait_secs.unwrap_or(DEFAULT_SCALING_WAIT_SECS) }),
        };
        let load_sweep = raw.load_sweep.map(control::sweep::LoadSweep::new).transpose()?;
        let rounds = match (&scaling, &load_sweep, raw.rounds) {
            (Some(_), Some(_), _) => return Err("a spec is a scaling run or a load sweep, not both".into()),
            (Some(s), None, Some(r)) if r as usize != s.workers.len() => {
                return Err(format!("rounds = {r} but scaling.workers lists {} stages: a stage is a round", s.workers.len()));
            }
            (Some(s), None, _) => s.workers.len() as u32,
            (None, Some(_), Some(_)) => return Err("a load sweep's rounds are its stages: leave rounds out".into()),
            (None, Some(sweep), None) => sweep.max_stages(),
            (None, None, r) => r.unwrap_or(1),
        };
        if rounds == 0 {
            return Err("rounds must be at least 1".into());
        }
        let delivery_limit = raw.delivery_limit.unwrap_or(DEFAULT_DELIVERY_LIMIT);
        if !(1..=100).contains(&delivery_limit) {
            return Err("delivery_limit must be between 1 and 100".into());
        }
        if raw.platforms.is_empty() {
            return Err("at least one [[platform]] is needed".into());
        }
        let mut platforms = Vec::new();
        for p in raw.platforms {
            proto::check_name("platform", &p.name).map_err(|e| e.to_string())?;
            if platforms.contains(&p.name) {
                return Err(format!("platform {:?} is listed twice", p.name));
            }
            platforms.push(p.name);
        }
        Ok(Self {
            run_id: raw.run_id,
            manifest: base.join(raw.manifest),
            batch_size,
            rounds,
            delivery_limit,
            job_deadline_secs: raw.job_deadline_secs,
            platforms,
            scaling,
            load_sweep,
            text: text.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        run_id = "coco-1"
        manifest = "data/manifest.json"
        rounds = 2
        [[platform]]
        name = "aws"
        [[platform]]
        name = "azure"
    "#;

    #[test]
    fn a_spec_takes_the_papers_defaults() {
        let spec = RunSpec::parse(GOOD, Path::new("/specs")).unwrap();
        assert_eq!(spec.batch_size, 1024);
        assert_eq!(spec.delivery_limit, DEFAULT_DELIVERY_LIMIT);
        assert_eq!(spec.manifest, Path::new("/specs/data/manifest.json"));
        assert_eq!(spec.platforms, ["aws", "azure"]);
        assert_eq!(spec.rounds, 2);
        assert_eq!(spec.scaling, None);
    }

    #[test]
    fn a_scaling_spec_has_one_round_per_stage() {
        let spec = RunSpec::parse("manifest = 'm'\n[[platform]]\nname='a'\n[scaling]\nworkers = [1, 2, 4]\n", Path::new(".")).unwrap();
        assert_eq!(spec.rounds, 3);
        assert_eq!(spec.scaling, Some(Scaling { workers: vec![1, 2, 4], wait_secs: DEFAULT_SCALING_WAIT_SECS }));
    }

    #[test]
    fn a_load_sweep_has_one_round_per_stage_it_may_run() {
        let text = "manifest = 'm'\n[[platform]]\nname='a'\n[load_sweep]\nsearch = { slo_p99_ms = 100, min_rate = 5, max_rate = 160 }\n";
        let spec = RunSpec::parse(text, Path::new(".")).unwrap();
        let sweep = spec.load_sweep.as_ref().unwrap();
        assert_eq!(spec.rounds, sweep.max_stages());
        assert_eq!(spec.rounds, 5 + 1 + 5 + 1, "5 doublings from 5 to 160, 5 halvings to 5%");
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            ("manifest = 'm'\n[[platform]]\nname='a'\nbatchsize=3", "unknown field"),
            ("manifest = 'm'\nbatch_size = 0\n[[platform]]\nname='a'", "batch_size"),
            ("manifest = 'm'\nplatform = []", "at least one"),
            ("manifest = 'm'\n[[platform]]\nname='a b'", "invalid platform"),
            ("manifest = 'm'\n[[platform]]\nname='a'\n[[platform]]\nname='a'", "twice"),
            ("[[platform]]\nname='a'", "manifest"),
            ("manifest = 'm'\n[[platform]]\nname='a'\n[scaling]\nworkers = [1, 0]", "at least 1 worker"),
            ("manifest = 'm'\nrounds = 3\n[[platform]]\nname='a'\n[scaling]\nworkers = [1, 2]", "a stage is a round"),
            ("manifest = 'm'\nrounds = 3\n[[platform]]\nname='a'\n[load_sweep]\nrates = [1, 2]", "leave rounds out"),
            ("manifest = 'm'\n[[platform]]\nname='a'\n[scaling]\nworkers = [1]\n[load_sweep]\nrates = [1]", "not both"),
            ("manifest = 'm'\n[[platform]]\nname='a'\n[load_sweep]\nrates = []", "load_sweep: rates"),
        ];
        for (text, expected) in cases {
            let err = RunSpec::parse(text, Path::new(".")).unwrap_err();
            assert!(err.contains(expected), "{text:?} gave {err:?}");
        }
    }
}
