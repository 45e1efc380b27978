//! `endpoint [serve]`: the model server. `serve` is what SageMaker passes to a bring-your-own
//! container; it is accepted and changes nothing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use detector::{Detector, PostOptions};
use endpoint::{BatchConfig, ServerConfig};
use invoke::TargetConfig;

/// Serves YOLOv8 over HTTP: SageMaker's /ping and /invocations, App Service's /score, a web page at /.
#[derive(Debug, Parser)]
#[command(name = "endpoint", version, about)]
struct Args {
    /// `serve` (SageMaker starts containers with it); optional.
    #[arg(hide = true, value_parser = ["serve"])]
    mode: Option<String>,
    /// Weights (ONNX or safetensors); SageMaker unpacks its model artifact into /opt/ml/model.
    #[arg(long, env = "CLOUDBENCH_WEIGHTS", default_value = "/opt/ml/model/model.onnx")]
    weights: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "CLOUDBENCH_ENDPOINT_HOST", default_value = "0.0.0.0")]
    host: String,
    /// Port (SageMaker requires 8080; App Service passes WEBSITES_PORT to the container as PORT).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    port: u16,
    /// Device: flex (CPU), or wgpu / lavapipe / cuda in builds with those features.
    #[arg(long, env = "CLOUDBENCH_DEVICE", default_value = "flex")]
    device: String,
    /// Side of the square network input.
    #[arg(long, default_value_t = detector::INPUT_SIZE)]
    imgsz: u32,
    /// Default minimum class score (a request can ask for another with ?conf=).
    #[arg(long, default_value_t = 0.25)]
    conf: f32,
    /// Most images per forward pass (concurrent requests are batched together).
    #[arg(long, env = "CLOUDBENCH_MAX_BATCH", default_value_t = 8)]
    max_batch: usize,
    /// Always wait for up to --max-batch images (by default a pass takes as many as measured
    /// throughput says pays, up to --max-batch: one at a time where larger passes are no faster).
    #[arg(long, env = "CLOUDBENCH_FIXED_BATCH")]
    fixed_batch: bool,
    /// Longest an image waits for others to share its forward pass, milliseconds.
    #[arg(long, env = "CLOUDBENCH_MAX_WAIT_MS", default_value_t = 5)]
    max_wait_ms: u64,
    /// Images waiting for the model beyond which requests get 503 with Retry-After.
    #[arg(long, env = "CLOUDBENCH_QUEUE", default_value_t = 64)]
    queue: usize,
    /// Largest request body, MiB.
    #[arg(long, default_value_t = 20)]
    max_body_mib: usize,
    /// Most images per request.
    #[arg(long, default_value_t = 32)]
    max_images: usize,
    /// Largest image in pixels, checked from its header before decoding.
    #[arg(long, default_value_t = invoke::api::DEFAULT_MAX_PIXELS)]
    max_pixels: u64,
    /// Seconds a request may wait for the model before 504.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
    /// File holding a bearer token required on /invocations, /score, /relay and /metrics
    /// (or CLOUDBENCH_ENDPOINT_TOKEN). Leave unset behind SageMaker, which authenticates callers itself.
    #[arg(long, env = "CLOUDBENCH_ENDPOINT_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Another endpoint the web page can send images to: NAME=URL (http(s)://..., sagemaker://...).
    #[arg(long = "target", value_name = "NAME=URL")]
    targets: Vec<String>,
    /// Serves HTTPS with this PEM certificate chain (with --tls-key); without it, plain HTTP for a
    /// platform that terminates TLS in front of the container.
    #[arg(long, env = "CLOUDBENCH_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "CLOUDBENCH_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    service::run_main("info", run(args));
}

async fn run(args: Args) -> anyhow::Result<()> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(endpoint::tls::server_config(cert, key).map_err(anyhow::Error::msg)?),
        _ => None,
    };
    let device = detector::device(&args.device).map_err(anyhow::Error::msg)?;
    let weights = args.weights.clone();
    let mut model = tokio::task::spawn_blocking(move || Detector::load(&weights, &device))
        .await?
        .with_context(|| format!("weights {}", args.weights.display()))?;
    if args.imgsz == 0 || !args.imgsz.is_multiple_of(32) {
        anyhow::bail!("--imgsz must be a positive multiple of 32");
    }
    model.input_size = args.imgsz;
    let token = storage::read_secret(Some("CLOUDBENCH_ENDPOINT_TOKEN"), args.token_file.as_deref()).map_err(anyhow::Error::msg)?;
    let mut targets = Vec::new();
    for spec in &args.targets {
        let (name, url) = spec.split_once('=').with_context(|| format!("--target {spec:?}: give NAME=URL"))?;
        let invoker = TargetConfig::from_url(url).map_err(anyhow::Error::msg)?.open().await.with_context(|| format!("target {name}"))?;
        targets.push((name.to_owned(), invoker));
    }
    let config = ServerConfig {
        max_body: args.max_body_mib << 20,
        max_images: args.max_images.max(1),
        max_pixels: args.max_pixels,
        timeout: Duration::from_secs(args.timeout_secs.max(1)),
        token,
        options: PostOptions { confidence: args.conf, ..PostOptions::default() },
        targets,
        device: args.device.clone(),
        vertex: endpoint::VertexRoutes::from_env().map_err(anyhow::Error::msg)?,
    };
    let batch = BatchConfig { max_batch: args.max_batch.max(1), max_wait: Duration::from_millis(args.max_wait_ms), queue: args.queue.max(1), adaptive: !args.fixed_batch };
    tracing::info!(
        variant = %model.model().variant(),
        classes = model.model().classes(),
        sha256 = %model.weights_sha256,
        device = args.device,
        auth = config.token.is_some(),
        "model loaded"
    );
    let app = endpoint::app(model, batch, config);
    // Vertex AI tells a custom container its port in AIP_HTTP_PORT, over --port and PORT.
    let port = match std::env::var("AIP_HTTP_PORT").ok().filter(|v| !v.is_empty()) {
        Some(v) => v.parse().map_err(|_| anyhow::anyhow!("AIP_HTTP_PORT {v:?} is not a port number"))?,
        None => args.port,
    };
    let addr: SocketAddr = format!("{}:{}", args.host, port).parse().context("listen address")?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening on {addr}"))?;
    // Tests and scripts start the server on port 0 and read the port from this line.
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!("endpoint listening on {scheme}://{}", listener.local_addr()?);
    match tls {
        Some(config) => endpoint::tls::serve(listener, app, config, service::shutdown_signal()).await,
        None => axum::serve(listener, app).with_graceful_shutdown(service::shutdown_signal()).await?,
    }
    Ok(())
}
