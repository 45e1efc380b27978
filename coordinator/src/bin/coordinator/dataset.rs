//! `coordinator dataset …`: manifests from folders and buckets, synthetic datasets, seeding a
//! dataset into a bucket, and removing a run's objects.

use anyhow::{Context, bail};
use service::progress_bar;
use coordinator::manifest::Manifest;
use coordinator::{seed, synth};
use storage::{RetryPolicy, StorageConfig};

use super::DatasetCommand;

pub async fn run(command: DatasetCommand) -> anyhow::Result<()> {
    match command {
        DatasetCommand::Synth { out, count, seed } => {
            if count == 0 {
                bail!("--count must be at least 1");
            }
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let bar = progress_bar("writing", 0);
            bar.set_length(count);
            let entries = synth::generate(seed, count, threads, |key, data| {
                bar.inc(1);
                std::fs::write(out.join(key), data)
            })
            .with_context(|| format!("writing images into {}", out.display()))?;
            bar.finish_and_clear();
            let manifest = Manifest::new(format!("synth seed {seed} count {count}"), entries).map_err(anyhow::Error::msg)?;
            let path = out.join("manifest.json");
            manifest.save(&path).with_context(|| format!("writing {}", path.display()))?;
            println!("{} images, {:.1} MiB, manifest {}", count, manifest.bytes() as f64 / 1048576.0, path.display());
        }
        DatasetCommand::Scan { location, out, concurrency } => {
            let (manifest, path) = match StorageConfig::from_url(&location).map_err(anyhow::Error::msg)? {
                StorageConfig::Local { path: folder, .. } => {
                    let path = out.unwrap_or_else(|| folder.join("manifest.json"));
                    (Manifest::scan(&folder)?, path)
                }
                config => {
                    let path = out.context("--out is required when scanning a bucket or container")?;
                    let store = config.open().await?;
                    let bar = progress_bar("hashing", 0);
                    (seed::scan(store.as_ref(), concurrency, RetryPolicy::default(), &bar).await.map_err(anyhow::Error::msg)?, path)
                }
            };
            manifest.save(&path).with_context(|| format!("writing {}", path.display()))?;
            println!("{} images, {:.1} MiB, manifest {}", manifest.objects.len(), manifest.bytes() as f64 / 1048576.0, path.display());
        }
        DatasetCommand::Seed { from, to, manifest, create, concurrency } => {
            let from_config = StorageConfig::from_url(&from).map_err(anyhow::Error::msg)?;
            let to_config = StorageConfig::from_url(&to).map_err(anyhow::Error::msg)?;
            let source = from_config.open().await.context("dataset")?;
            if create {
                to_config.create().await.context("creating the target")?;
            }
            let target = to_config.open().await.context("target")?;
            let manifest = match (manifest, &from_config) {
                (Some(path), _) => Manifest::load(&path)?,
                (None, StorageConfig::Local { path, .. }) if path.join("manifest.json").exists() => Manifest::load(&path.join("manifest.json"))?,
                (None, _) => seed::scan(source.as_ref(), concurrency, RetryPolicy::default(), &progress_bar("hashing", 0)).await.map_err(anyhow::Error::msg)?,
            };
            let bar = progress_bar("seeding", 0);
            let done = seed::seed(source.as_ref(), target.as_ref(), &manifest, concurrency, RetryPolicy::default(), &bar)
                .await
                .map_err(anyhow::Error::msg)?;
            println!(
                "{} objects uploaded ({:.1} MiB), {} already there, into {}",
                done.uploaded,
                done.bytes as f64 / 1048576.0,
                done.skipped,
                target.describe()
            );
        }
        DatasetCommand::Cleanup { run_id, store, concurrency } => {
            let store = StorageConfig::from_url(&store).map_err(anyhow::Error::msg)?.open().await?;
            let deleted = seed::cleanup(store.as_ref(), &run_id, concurrency, RetryPolicy::default()).await.map_err(anyhow::Error::msg)?;
            println!("{deleted} objects of run {run_id} deleted from {}", store.describe());
        }
    }
    Ok(())
}
