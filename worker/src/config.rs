//! Worker configuration from flags, environment and a TOML file (in that order of precedence),
//! validated once into a [`WorkerConfig`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use control::{Namespace, SecretUrl};
use serde::Deserialize;
pub use storage::StorageConfig;
use storage::RetryPolicy;
pub use invoke::TargetConfig;

use crate::inference::Load;

/// Takes batch jobs from one platform's queue and measures them.
#[derive(Debug, Parser, Default)]
#[command(name = "worker", version, about)]
pub struct Args {
    /// TOML file with any of the settings below (flags and environment win).
    #[arg(long, env = "CLOUDBENCH_WORKER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Platform whose queue this worker serves ("aws", "azure", "local", any name).
    #[arg(long, env = "CLOUDBENCH_PLATFORM")]
    pub platform: Option<String>,
    /// RabbitMQ URL.
    #[arg(long, env = "AMQP_URL")]
    pub amqp_url: Option<String>,
    /// Redis URL for run state and heartbeats.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Prefix of every queue and key.
    #[arg(long, env = "CLOUDBENCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Folder holding the dataset's images, keyed as in the manifest.
    #[arg(long, env = "CLOUDBENCH_DATASET_DIR", conflicts_with = "dataset")]
    pub dataset_dir: Option<PathBuf>,
    /// The dataset as a store URL: a path, s3://BUCKET/PREFIX?..., azure://CONTAINER/PREFIX?...
    #[arg(long, env = "CLOUDBENCH_DATASET")]
    pub dataset: Option<String>,
    /// Folder acting as the platform's bucket (the local storage backend).
    #[arg(long, env = "CLOUDBENCH_STORAGE_DIR", conflicts_with = "storage")]
    pub storage_dir: Option<PathBuf>,
    /// The platform's storage as a store URL: s3://BUCKET?region=..., azure://CONTAINER?endpoint=...
    #[arg(long, env = "CLOUDBENCH_STORAGE")]
    pub storage: Option<String>,
    /// Flushes every stored object to disk before acknowledging it, as object stores do.
    #[arg(long, env = "CLOUDBENCH_STORAGE_DURABLE")]
    pub durable: bool,
    /// Jobs the broker may hand this worker ahead of the one in progress, plus one.
    #[arg(long, env = "CLOUDBENCH_PREFETCH")]
    pub prefetch: Option<u16>,
    /// Storage requests in flight per phase.
    #[arg(long, env = "CLOUDBENCH_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// Seconds to finish the job in hand after SIGTERM before returning it to the queue.
    #[arg(long, env = "CLOUDBENCH_GRACE_SECS")]
    pub grace_secs: Option<u64>,
    /// Seconds between heartbeats.
    #[arg(long, env = "CLOUDBENCH_HEARTBEAT_SECS")]
    pub heartbeat_secs: Option<u64>,
    /// Leaves uploaded objects in the bucket instead of deleting them after each batch.
    #[arg(long, env = "CLOUDBENCH_KEEP_UPLOADS")]
    pub keep_uploads: bool,
    /// Worker id in heartbeats and metrics (default: platform-host-pid).
    #[arg(long, env = "CLOUDBENCH_WORKER_ID")]
    pub worker_id: Option<String>,
    /// Cloud provider recorded with every metric ("aws", "azure", "local").
    #[arg(long, env = "CLOUDBENCH_PROVIDER")]
    pub provider: Option<String>,
    /// Region recorded with every metric.
    #[arg(long, env = "CLOUDBENCH_REGION")]
    pub region: Option<String>,
    /// Instance type recorded with every metric.
    #[arg(long, env = "CLOUDBENCH_INSTANCE_TYPE")]
    pub instance_type: Option<String>,
    /// The platform's model endpoint: sagemaker://ENDPOINT?region=.., https://APP/score (token from
    /// CLOUDBENCH_ENDPOINT_TOKEN), or local:WEIGHTS?device=flex for the in-process model. Without
    /// one the platform is a storage-only benchmark.
    #[arg(long, env = "CLOUDBENCH_INFERENCE")]
    pub inference: Option<String>,
    /// Inference requests in flight (closed loop, the paper's client).
    #[arg(long, env = "CLOUDBENCH_INFERENCE_CONCURRENCY", conflicts_with = "open_loop_rate")]
    pub inference_concurrency: Option<usize>,
    /// Sends inference requests at this fixed rate per second instead (open loop).
    #[arg(long, env = "CLOUDBENCH_OPEN_LOOP_RATE")]
    pub open_loop_rate: Option<f64>,
    /// Serves Prometheus metrics at http://ADDR/metrics (e.g. 0.0.0.0:9090); a bearer token is
    /// required when CLOUDBENCH_METRICS_TOKEN is set.
    #[arg(long, env = "CLOUDBENCH_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    platform: Option<String>,
    amqp_url: Option<String>,
    redis_url: Option<String>,
    namespace: Option<String>,
    prefetch: Option<u16>,
    concurrency: Option<usize>,
    grace_secs: Option<u64>,
    heartbeat_secs: Option<u64>,
    keep_uploads: Option<bool>,
    worker_id: Option<String>,
    provider: Option<String>,
    region: Option<String>,
    instance_type: Option<String>,
    dataset: Option<StorageConfig>,
    storage: Option<StorageConfig>,
    retry: Option<RetryPolicy>,
    inference: Option<TargetConfig>,
    load: Option<Load>,
    metrics_addr: Option<std::net::SocketAddr>,
}

/// A validated worker configuration.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub platform: String,
    pub amqp_url: SecretUrl,
    pub redis_url: SecretUrl,
    pub namespace: Namespace,
    pub prefetch: u16,
    pub concurrency: usize,
    pub grace: Duration,
    pub heartbeat: Duration,
    pub keep_uploads: bool,
    pub worker_id: String,
    pub provider: String,
    pub region: String,
    pub instance_type: String,
    pub dataset: StorageConfig,
    pub storage: StorageConfig,
    pub retry: RetryPolicy,
    /// The model endpoint and how to load it; `None` for a storage-only platform.
    pub inference: Option<(TargetConfig, Load)>,
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Default storage requests in flight per phase: the best of 4, 8, 16, 32 and 64 in the transfer
/// benchmark (`scripts/bench-transfer.sh`) over S3 and Azure Blob together.
pub const DEFAULT_CONCURRENCY: usize = 32;

impl WorkerConfig {
    /// Merges flags and environment (`args`) over the TOML file they name, then validates.
    pub fn from_args(args: Args) -> Result<Self, String> {
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let platform = args.platform.or(file.platform).ok_or("no platform: give --platform or set platform in the config")?;
        proto::check_name("platform", &platform).map_err(|e| e.to_string())?;
        let namespace = args.namespace.or(file.namespace).unwrap_or_else(|| Namespace::DEFAULT.to_owned());
        let namespace = Namespace::new(&namespace).map_err(|e| e.to_string())?;
        let dataset = match (args.dataset_dir, args.dataset) {
            (Some(path), _) => StorageConfig::Local { path, durable: false },
            (None, Some(url)) => StorageConfig::from_url(&url)?,
            (None, None) => file.dataset.ok_or("no dataset: give --dataset, --dataset-dir or a [dataset] table")?,
        };
        let storage = match (args.storage_dir, args.storage) {
            (Some(path), _) => StorageConfig::Local { path, durable: args.durable },
            (None, Some(url)) => StorageConfig::from_url(&url)?,
            (None, None) => file.storage.ok_or("no storage: give --storage, --storage-dir or a [storage] table")?,
        };
        let prefetch = args.prefetch.or(file.prefetch).unwrap_or(1);
        let concurrency = args.concurrency.or(file.concurrency).unwrap_or(DEFAULT_CONCURRENCY);
        if prefetch == 0 || concurrency == 0 || concurrency > 1024 {
            return Err("prefetch must be at least 1 and concurrency between 1 and 1024".into());
        }
        let heartbeat = Duration::from_secs(args.heartbeat_secs.or(file.heartbeat_secs).unwrap_or(5).max(1));
        let target = match args.inference {
            Some(url) => Some(TargetConfig::from_url(&url)?),
            None => file.inference,
        };
        let load = match (args.open_loop_rate, args.inference_concurrency) {
            (Some(rate), _) => Load::Open { rate },
            (None, Some(concurrency)) => Load::Closed { concurrency },
            (None, None) => file.load.unwrap_or_default(),
        };
        load.validate()?;
        let inference = target.map(|t| (t, load));
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let worker_id = args
            .worker_id
            .or(file.worker_id)
            .unwrap_or_else(|| format!("{platform}-{host}-{}", std::process::id()));
        proto::check_name("worker id", &worker_id).map_err(|e| e.to_string())?;
        Ok(Self {
            amqp_url: SecretUrl::new(args.amqp_url.or(file.amqp_url).unwrap_or_else(|| "amqp://127.0.0.1:5672/%2f".into())),
            redis_url: SecretUrl::new(args.redis_url.or(file.redis_url).unwrap_or_else(|| "redis://127.0.0.1:6379".into())),
            namespace,
            prefetch,
            concurrency,
            grace: Duration::from_secs(args.grace_secs.or(file.grace_secs).unwrap_or(30)),
            heartbeat,
            keep_uploads: args.keep_uploads || file.keep_uploads.unwrap_or(false),
            worker_id,
            provider: args.provider.or(file.provider).unwrap_or_else(|| "local".into()),
            region: args.region.or(file.region).unwrap_or_default(),
            instance_type: args.instance_type.or(file.instance_type).unwrap_or_default(),
            dataset,
            storage,
            retry: file.retry.unwrap_or_default(),
            inference,
            metrics_addr: args.metrics_addr.or(file.metrics_addr),
            platform,
        })
    }
}

fn load_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("worker config {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("worker config {}: {}", path.display(), e.message()))
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Lines of a worker config: known keys and tables with values of any type, and noise.
    fn line() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("platform"), Just("prefetch"), Just("concurrency"), Just("grace_secs"), Just("kind"), Just("path"), Just("bucket"),
            Just("url"), Just("max_attempts"), Just("attempt_timeout"), Just("mode"), Just("rate"), Just("metrics_addr"), Just("region")
        ];
        let value = prop_oneof![
            Just("1".to_owned()), Just("-5".to_owned()), Just("1e400".to_owned()), Just("true".to_owned()), Just("[1, 2]".to_owned()),
            "\"[ -~]{0,24}\"", "[0-9]{1,12}"
        ];
        let table = prop_oneof![Just("[dataset]"), Just("[storage]"), Just("[retry]"), Just("[inference]"), Just("[load]"), Just("[[platform]]")];
        prop_oneof![4 => (key, value).prop_map(|(k, v)| format!("{k} = {v}")), 1 => table.prop_map(String::from), 1 => "[ -~]{0,30}"]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn any_config_file_is_read_or_refused_in_one_line(lines in prop::collection::vec(line(), 0..12)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("worker.toml");
            std::fs::write(&path, lines.join("\n")).unwrap();
            if let Err(e) = load_file(&path) {
                prop_assert!(e.starts_with("worker config ") && !e.contains('\n'), "{e}");
            }
        }

        #[test]
        fn any_store_or_endpoint_url_is_parsed_or_refused(url in prop_oneof!["(s3|azure|https?|sagemaker|local|file)://[a-zA-Z0-9._%@:/?&=-]{0,60}", "[ -~]{0,60}"]) {
            // Accepted only with a scheme the parser knows; refused in one line that names the URL.
            match StorageConfig::from_url(&url) {
                // Without a scheme it is a folder; with one, only s3, azure and file.
                Ok(_) => prop_assert!(!url.contains("://") || ["s3://", "azure://", "file://"].iter().any(|p| url.starts_with(p)), "{url}"),
                Err(e) => prop_assert!(!e.is_empty() && !e.contains('\n'), "{e:?}"),
            }
            match TargetConfig::from_url(&url) {
                Ok(_) => prop_assert!(["http:", "https:", "sagemaker:", "local:"].iter().any(|p| url.starts_with(p)), "{url}"),
                Err(e) => prop_assert!(e.contains(&format!("{url:?}")) && !e.contains('\n'), "{e:?}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.toml");
        std::fs::write(&path, "platform = 'azure'\nconcurrency = 4\nregion = 'westeurope'\n[dataset]\nkind = 'local'\npath = '/data'\n[storage]\nkind = 'local'\npath = '/bucket'\ndurable = true\n").unwrap();
        let args = Args { config: Some(path), concurrency: Some(16), ..Default::default() };
        let config = WorkerConfig::from_args(args).unwrap();
        assert_eq!((config.platform.as_str(), config.concurrency, config.region.as_str()), ("azure", 16, "westeurope"));
        assert_eq!(config.storage, StorageConfig::Local { path: "/bucket".into(), durable: true });
        assert_eq!(config.prefetch, 1);
        assert!(config.inference.is_none(), "no endpoint: a storage-only platform");
    }

    #[test]
    fn the_inference_target_and_load_come_from_the_file_or_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.toml");
        std::fs::write(
            &path,
            "platform = 'aws'\n[dataset]\nkind = 'local'\npath = '/d'\n[storage]\nkind = 'local'\npath = '/s'\n[inference]\nkind = 'sagemaker'\nendpoint_name = 'yolo'\nregion = 'us-east-1'\n[load]\nmode = 'open'\nrate = 12.5\n",
        )
        .unwrap();
        let config = WorkerConfig::from_args(Args { config: Some(path.clone()), ..Default::default() }).unwrap();
        let (target, load) = config.inference.unwrap();
        assert!(matches!(target, TargetConfig::Sagemaker(ref c) if c.endpoint_name == "yolo"));
        assert_eq!(load, Load::Open { rate: 12.5 });
        let args = Args { config: Some(path.clone()), inference: Some("https://app.azurewebsites.net/score".into()), inference_concurrency: Some(8), ..Default::default() };
        let (target, load) = WorkerConfig::from_args(args).unwrap().inference.unwrap();
        assert!(matches!(target, TargetConfig::Http(_)));
        assert_eq!(load, Load::Closed { concurrency: 8 });
        let err = WorkerConfig::from_args(Args { config: Some(path), open_loop_rate: Some(-1.0), ..Default::default() }).unwrap_err();
        assert!(err.contains("open-loop rate"), "{err}");
    }

    #[test]
    fn platforms_name_cloud_storage_in_the_file_or_by_url() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.toml");
        std::fs::write(
            &path,
            "platform = 'aws'\n[dataset]\nkind = 's3'\nbucket = 'coco'\nprefix = 'train2017'\nregion = 'eu-west-1'\n[storage]\nkind = 'azure'\nendpoint = 'https://acme.blob.core.windows.net'\ncontainer = 'bench'\n[retry]\nmax_attempts = 6\n",
        )
        .unwrap();
        let config = WorkerConfig::from_args(Args { config: Some(path.clone()), ..Default::default() }).unwrap();
        assert!(matches!(config.dataset, StorageConfig::S3(ref c) if c.bucket == "coco" && c.prefix == "train2017"));
        assert!(matches!(config.storage, StorageConfig::Azure(ref c) if c.container == "bench"));
        assert_eq!((config.retry.max_attempts, config.retry.base_delay), (6, RetryPolicy::default().base_delay));
        let args = Args { config: Some(path), storage: Some("s3://other?region=us-east-2".into()), ..Default::default() };
        let config = WorkerConfig::from_args(args).unwrap();
        assert!(matches!(config.storage, StorageConfig::S3(ref c) if c.bucket == "other"));
    }

    #[test]
    fn a_bad_config_is_one_clear_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.toml");
        std::fs::write(&path, "platfrom = 'aws'").unwrap();
        let err = WorkerConfig::from_args(Args { config: Some(path), ..Default::default() }).unwrap_err();
        assert!(err.contains("unknown field") && !err.contains('\n'), "{err}");
        let err = WorkerConfig::from_args(Args { platform: Some("a/b".into()), ..Default::default() }).unwrap_err();
        assert!(err.contains("invalid platform"), "{err}");
        let err = WorkerConfig::from_args(Args { platform: Some("aws".into()), ..Default::default() }).unwrap_err();
        assert!(err.contains("no dataset"), "{err}");
    }

    #[test]
    fn urls_with_passwords_never_print() {
        let args = Args {
            platform: Some("aws".into()),
            amqp_url: Some("amqp://u:hunter2@mq".into()),
            dataset_dir: Some("/d".into()),
            storage_dir: Some("/s".into()),
            ..Default::default()
        };
        let config = WorkerConfig::from_args(args).unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
