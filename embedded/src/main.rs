use std::path::PathBuf;

use analyzer::export::{self, Format};
use analyzer::report::config::{Catalog, DEFAULT_CATALOG, DEFAULT_REQUIREMENTS, Requirements};
use analyzer::report;
use analyzer::store::MetricsStore;
use anyhow::Context;
use clap::Parser;

/// Runs the whole benchmark in one process (no external service) and writes its metrics.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Output folder: dataset, buckets, metrics store, CSV and JSON exports.
    #[arg(long, default_value = "out/embedded")]
    out: PathBuf,
    /// Images in the generated dataset.
    #[arg(long, default_value_t = 2048)]
    images: u64,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    batch_size: u32,
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// Workers per platform.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Storage requests in flight per phase.
    #[arg(long, default_value_t = worker::config::DEFAULT_CONCURRENCY)]
    concurrency: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run id; defaults to one derived from the clock.
    #[arg(long)]
    run_id: Option<String>,
    /// YOLOv8 weights (ONNX or safetensors) for the inference phase; defaults to the repository's
    /// random-weight YOLOv8n fixture (`detector/fixtures/yolov8n-random.onnx`, found from the
    /// current folder or the binary's), which times the model exactly but detects nothing useful.
    #[arg(long, env = "CLOUDBENCH_WEIGHTS")]
    weights: Option<PathBuf>,
    /// Side of the network input; 160 keeps the default run to a few minutes on two cores (640 is
    /// the paper's model input).
    #[arg(long, default_value_t = 160)]
    imgsz: u32,
    /// Inference requests in flight per worker.
    #[arg(long, default_value_t = 4)]
    inference_concurrency: usize,
    /// Skips the inference phase: a storage-only benchmark.
    #[arg(long)]
    no_inference: bool,
}

/// The repository's fixture, looked for where a checkout has it: under the current folder, or
/// under a folder the binary lies in (`target/release/embedded` of a checkout), so a build moved
/// elsewhere does not point at the build machine's path.
fn default_weights() -> anyhow::Result<PathBuf> {
    const FIXTURE: &str = "detector/fixtures/yolov8n-random.onnx";
    let exe = std::env::current_exe().ok();
    let folders = std::iter::once(PathBuf::from(".")).chain(exe.iter().flat_map(|e| e.ancestors().skip(1).map(std::path::Path::to_path_buf)));
    folders
        .map(|folder| folder.join(FIXTURE))
        .find(|path| path.is_file())
        .ok_or_else(|| anyhow::anyhow!("no --weights given and no {FIXTURE} under this folder or the binary's; pass --weights FILE (or CLOUDBENCH_WEIGHTS)"))
}

fn main() {
    let args = Args::parse();
    service::run_main("warn", run(args));
}

async fn run(args: Args) -> anyhow::Result<()> {
    let run_id = args.run_id.unwrap_or_else(|| format!("embedded-{}", control::now_ms() / 1000));
    proto::check_name("run id", &run_id)?;
    let settings = embedded::Settings {
        out: args.out.clone(),
        images: args.images,
        batch_size: args.batch_size,
        rounds: args.rounds,
        workers_per_platform: args.workers,
        concurrency: args.concurrency,
        seed: args.seed,
        run_id: run_id.clone(),
        inference: match args.no_inference {
            true => None,
            false => {
                let weights = match args.weights {
                    Some(weights) => weights,
                    None => default_weights()?,
                };
                Some(invoke::client::LocalConfig { imgsz: args.imgsz, ..invoke::client::LocalConfig::new(&weights) })
            }
        },
        inference_concurrency: args.inference_concurrency,
    };
    eprintln!("embedded run {run_id}: {} images in batches of {}, {} workers per platform", args.images, args.batch_size, args.workers);
    let outcome = embedded::run(&settings).await?;
    let store = MetricsStore::open(&outcome.store_dir)?;
    let rows = analyzer::run_rows(&store, &run_id)?;
    for (format, name) in [(Format::Csv, "metrics.csv"), (Format::Json, "metrics.json")] {
        let path = args.out.join(name);
        std::fs::write(&path, export::render(&rows, format)).with_context(|| format!("writing {}", path.display()))?;
    }
    let catalog = Catalog::parse(DEFAULT_CATALOG).map_err(anyhow::Error::msg)?;
    let requirements = Requirements::parse(DEFAULT_REQUIREMENTS).map_err(anyhow::Error::msg)?;
    let options = report::Options { spec: Some(outcome.spec.clone()), ..Default::default() };
    let report = report::build(&run_id, &store.read(&run_id)?, &catalog, &requirements, &options);
    let rendered = report::render(&report);
    for (name, text) in [("report.md", &rendered.markdown), ("report.html", &rendered.html), ("report.json", &rendered.json)] {
        let path = args.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    print!("{}", analyzer::summary::render_markdown(&run_id, &rows));
    for row in &report.winners {
        match &row.winner {
            Some(winner) => println!("{}: {winner} ({})", row.criterion, row.basis),
            None => println!("{}: {}", row.criterion, row.basis),
        }
    }
    println!(
        "\n{} batches collected of {} in {:.1} s; report and metrics in {} (report.md, report.html, report.json, metrics.csv, metrics.json)",
        outcome.stored,
        outcome.batches,
        outcome.elapsed.as_secs_f64(),
        args.out.display()
    );
    Ok(())
}
